"""Diffusion checkpoints (``train-diffusion``): their format tag and the denoiser loader.

A checkpoint embeds the config, the U-Net (and EMA) weights, the sha256 of the autoencoder file
whose latents it was trained on and the survey/normalisation attributes of that autoencoder's
training store. Writing them is :mod:`ubdiff_phys.train.diffusion`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ubdiff_phys.diffusion.config import DiffusionTrainConfig
from ubdiff_phys.diffusion.denoiser import VDenoiser
from ubdiff_phys.models.unet1d import build_unet1d
from ubdiff_phys.runtime.checkpoint import load_checkpoint

__all__ = ["CHECKPOINT_FORMAT", "load_denoiser", "load_diffusion_checkpoint"]

CHECKPOINT_FORMAT = "ubdiff_phys.diffusion_checkpoint"


def load_diffusion_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a diffusion checkpoint (a file, or a run directory: its final.pt, else last.pt) with
    ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / "final.pt" if (path / "final.pt").exists() else path / "last.pt"
    return load_checkpoint(path, CHECKPOINT_FORMAT, "diffusion", map_location)


def load_denoiser(
    checkpoint: str | os.PathLike, device: Any = "cpu", *, weights: str = "model"
) -> tuple[VDenoiser, DiffusionTrainConfig, dict[str, Any]]:
    """(denoiser in eval mode, config, checkpoint) from a run directory or checkpoint file.

    ``weights``: "model" (the raw weights, what the official generation script uses) or "ema".
    """
    if weights not in ("model", "ema"):
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    ckpt = load_diffusion_checkpoint(checkpoint)
    cfg = DiffusionTrainConfig.from_dict(ckpt["config"])
    net = build_unet1d(cfg.model)
    net.load_state_dict(ckpt["model"] if weights == "model" else ckpt["ema"]["module"])
    net = net.to(device).eval()
    return VDenoiser(net, cfg.diffusion.schedule()), cfg, ckpt
