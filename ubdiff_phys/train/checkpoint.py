"""Autoencoder checkpoints as the trainers use them: the model with its typed training config.

The format tag, the tag-checked reader and the model loader live with the model
(:mod:`ubdiff_phys.models.checkpoint`); the names here are kept for existing imports. Writing,
RNG state and the atomic rename are :mod:`ubdiff_phys.runtime.checkpoint`'s.
"""

from __future__ import annotations

import os
from typing import Any

from ubdiff_phys.models import UBDiffAutoencoder
from ubdiff_phys.models.checkpoint import AUTOENCODER_CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from ubdiff_phys.models.checkpoint import autoencoder_from_checkpoint
from ubdiff_phys.models.checkpoint import load_autoencoder_checkpoint as load_checkpoint
from ubdiff_phys.train.config import TrainConfig

__all__ = ["CHECKPOINT_FORMAT", "load_autoencoder", "load_checkpoint"]


def load_autoencoder(
    path: str | os.PathLike, device: Any = "cpu"
) -> tuple[UBDiffAutoencoder, TrainConfig]:
    """(model in eval mode, TrainConfig) from any checkpoint of ``train-ae`` (the file is read
    once; the model is rebuilt by :func:`ubdiff_phys.models.autoencoder_from_checkpoint`)."""
    ckpt = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ckpt["config"])
    return autoencoder_from_checkpoint(ckpt, device), cfg
