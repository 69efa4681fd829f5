"""Autoencoder checkpoints (written by ``train-ae``): their format tag and the model loader.

A checkpoint embeds the resolved run config, whose ``model`` section is an
:class:`~ubdiff_phys.models.autoencoder.AutoencoderConfig` dict: that section alone rebuilds the
network, so loading a model needs neither the trainer nor its config class. Writing checkpoints
is :mod:`ubdiff_phys.train.loop`'s; reading them (``weights_only``, format tag) is
:func:`ubdiff_phys.runtime.checkpoint.load_checkpoint`.
"""

from __future__ import annotations

import os
from typing import Any

from ubdiff_phys.models.autoencoder import AutoencoderConfig, UBDiffAutoencoder, build_autoencoder
from ubdiff_phys.runtime.checkpoint import load_checkpoint

__all__ = [
    "AUTOENCODER_CHECKPOINT_FORMAT",
    "autoencoder_from_checkpoint",
    "load_autoencoder_checkpoint",
    "load_autoencoder_model",
]

AUTOENCODER_CHECKPOINT_FORMAT = "ubdiff_phys.autoencoder_checkpoint"


def load_autoencoder_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Read an autoencoder checkpoint with ``weights_only=True`` and check its format tag.

    Raises:
        CheckpointError: missing, unreadable or not an autoencoder checkpoint.
    """
    return load_checkpoint(path, AUTOENCODER_CHECKPOINT_FORMAT, "autoencoder", map_location)


def autoencoder_from_checkpoint(ckpt: dict[str, Any], device: Any = "cpu") -> UBDiffAutoencoder:
    """The autoencoder of a loaded checkpoint (built from its ``config["model"]``, its weights
    loaded), on ``device`` in eval mode."""
    model = build_autoencoder(AutoencoderConfig.from_dict(ckpt["config"].get("model", {})))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


def load_autoencoder_model(path: str | os.PathLike, device: Any = "cpu") -> UBDiffAutoencoder:
    """The autoencoder of any ``train-ae`` checkpoint file, on ``device`` in eval mode (for the
    model and its training config together: :func:`ubdiff_phys.train.load_autoencoder`)."""
    return autoencoder_from_checkpoint(load_autoencoder_checkpoint(path), device)
