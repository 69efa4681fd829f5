"""Autoencoder checkpoints (``train-ae``): their format tag, loader and model loader.

Writing, RNG state and the atomic rename are :mod:`ubdiff_phys.runtime.checkpoint`'s.
"""

from __future__ import annotations

import os
from typing import Any

from ubdiff_phys.models import build_autoencoder
from ubdiff_phys.runtime.checkpoint import load_checkpoint as _load_tagged
from ubdiff_phys.train.config import TrainConfig

__all__ = ["CHECKPOINT_FORMAT", "load_autoencoder", "load_checkpoint"]

CHECKPOINT_FORMAT = "ubdiff_phys.autoencoder_checkpoint"


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read an autoencoder checkpoint with ``weights_only=True`` and check its format tag."""
    return _load_tagged(path, CHECKPOINT_FORMAT, "autoencoder", map_location)


def load_autoencoder(path: str | os.PathLike, device: Any = "cpu"):
    """(model in eval mode, TrainConfig) from any checkpoint of ``train-ae``."""
    ckpt = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ckpt["config"])
    model = build_autoencoder(cfg.model)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg
