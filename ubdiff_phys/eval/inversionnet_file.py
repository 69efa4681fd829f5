"""A trained InversionNet on disk, with the options and the training data that made it.

Training the baseline is the dearest part of an evaluation on two CPU cores (5,000 steps at width
0.25 take about an hour), and runs on other map seeds or noise levels need the same network. The
file is a code-free checkpoint (:mod:`ubdiff_phys.runtime.checkpoint`: weights_only, written
atomically) holding the weights, the :class:`ProtocolConfig` and a ``training`` dict that says what
the network was trained on (store, pairs, noise augmentation). Loading checks both against what
the caller would have trained, so a file made with other options or data is refused, not used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ubdiff_phys.eval.protocol import ProtocolConfig
from ubdiff_phys.models.inversionnet import InversionNet
from ubdiff_phys.runtime.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ubdiff_phys.runtime.errors import UserError
from ubdiff_phys.runtime.resume import config_mismatch

__all__ = ["INVERSIONNET_FORMAT", "load_inversionnet", "save_inversionnet"]

INVERSIONNET_FORMAT = "ubdiff_phys.inversionnet/1"


def save_inversionnet(
    path: str | os.PathLike,
    model: InversionNet,
    cfg: ProtocolConfig,
    training: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write a trained ``model`` to ``path`` (temp file + rename).

    Args:
        path: the file to write; an existing one is refused unless ``overwrite``.
        model: the network; its weights are stored as float32 on the CPU.
        cfg: the options it was trained with (its ``width`` rebuilds the network).
        training: plain JSON-like values naming what it was trained on, e.g. the store's name and
            size, the number of pairs and the training-noise level; :func:`load_inversionnet`
            compares them.

    Raises:
        UserError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{str(path)!r} already exists; remove it or pass overwrite=True")
    state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    return save_checkpoint(
        path,
        {
            "format": INVERSIONNET_FORMAT,
            "config": cfg.to_dict(),
            "training": dict(training),
            "seismic_shape": list(model.encoder.seismic_shape),
            "model": state,
        },
    )


def load_inversionnet(
    path: str | os.PathLike,
    cfg: ProtocolConfig | None = None,
    training: dict[str, Any] | None = None,
    *,
    map_location: Any = "cpu",
) -> tuple[InversionNet, ProtocolConfig, dict[str, Any]]:
    """Read what :func:`save_inversionnet` wrote: (model in eval mode, its config, its training
    dict).

    Args:
        cfg: when given, the stored config must equal it (``num_workers`` aside).
        training: when given, the stored training dict must equal it.

    Raises:
        CheckpointError: not a file, unreadable, of another kind, or trained with other options
            or data than ``cfg`` / ``training`` (the differing names are in the message).
    """
    ckpt = load_checkpoint(path, INVERSIONNET_FORMAT, "InversionNet", map_location)
    stored_cfg = ProtocolConfig.from_dict(ckpt["config"])
    stored_training = dict(ckpt["training"])
    diff = []
    if cfg is not None:
        diff += config_mismatch(ckpt["config"], cfg.to_dict(), [("num_workers",)])
    if training is not None:
        keys = set(training) | set(stored_training)
        diff += sorted(f"training.{k}" for k in keys if training.get(k) != stored_training.get(k))
    if diff:
        raise CheckpointError(
            f"{str(path)!r} holds an InversionNet trained with other options or data "
            f"({', '.join(diff)}); remove it or name another file"
        )
    model = InversionNet(tuple(ckpt["seismic_shape"]), width=stored_cfg.width)
    model.load_state_dict(ckpt["model"])
    return model.to(map_location).eval(), stored_cfg, stored_training
