"""Diffusion checkpoints (``train-diffusion``, ``train-velocity-diffusion``): their format tags
and the denoiser loaders.

A checkpoint embeds the config, the U-Net (and EMA) weights, the sha256 of the autoencoder file
whose latents it was trained on and the survey/normalisation attributes of that autoencoder's
training store. Writing them is :mod:`ubdiff_phys.train.diffusion`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ubdiff_phys.diffusion.config import DiffusionTrainConfig, VelocityDiffusionConfig
from ubdiff_phys.diffusion.denoiser import VDenoiser
from ubdiff_phys.models.unet1d import build_unet1d
from ubdiff_phys.models.unet2d import build_unet2d
from ubdiff_phys.runtime.checkpoint import load_checkpoint

__all__ = [
    "CHECKPOINT_FORMAT",
    "PACKAGED_VELOCITY_FILE",
    "VELOCITY_CHECKPOINT_FORMAT",
    "checkpoint_file",
    "is_velocity_checkpoint",
    "load_denoiser",
    "load_diffusion_checkpoint",
    "load_velocity_denoiser",
]

CHECKPOINT_FORMAT = "ubdiff_phys.diffusion_checkpoint"
#: a diffusion model in velocity space (:mod:`ubdiff_phys.train.velocity_diffusion`)
VELOCITY_CHECKPOINT_FORMAT = "ubdiff_phys.velocity_diffusion_checkpoint"
#: the weights file of a packaged velocity-space model (``package_velocity_checkpoint``'s layout)
PACKAGED_VELOCITY_FILE = "velocity_diffusion.pt"


def checkpoint_file(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory's final.pt (else last.pt), or a packaged
    velocity-space model's folder's ``velocity_diffusion.pt`` (when it has no run checkpoint)."""
    path = Path(path)
    if path.is_dir():
        for name in ("final.pt", "last.pt", PACKAGED_VELOCITY_FILE):
            if (path / name).exists():
                return path / name
        path = path / "last.pt"
    return path


def is_velocity_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` (file or run directory) holds a velocity-space diffusion checkpoint
    (False for anything else, including unreadable files: the loaders report those)."""
    try:
        ckpt = torch.load(checkpoint_file(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (any unreadable file is "not this kind")
        return False
    return isinstance(ckpt, dict) and ckpt.get("format") == VELOCITY_CHECKPOINT_FORMAT


def load_diffusion_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a diffusion checkpoint (a file, or a run directory: its final.pt, else last.pt) with
    ``weights_only=True``."""
    return load_checkpoint(checkpoint_file(path), CHECKPOINT_FORMAT, "diffusion", map_location)


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


def load_velocity_denoiser(
    checkpoint: str | os.PathLike, device: Any = "cpu", *, weights: str = "model"
) -> tuple[VDenoiser, VelocityDiffusionConfig, dict[str, Any]]:
    """(denoiser in eval mode, config, checkpoint) of a velocity-space diffusion run directory
    or checkpoint file; ``weights``: "model" or "ema"."""
    if weights not in ("model", "ema"):
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    ckpt = load_checkpoint(
        checkpoint_file(checkpoint), VELOCITY_CHECKPOINT_FORMAT, "velocity diffusion"
    )
    cfg = VelocityDiffusionConfig.from_dict(ckpt["config"])
    net = build_unet2d(cfg.model)
    net.load_state_dict(ckpt["model"] if weights == "model" else ckpt["ema"]["module"])
    net = net.to(device).eval()
    return VDenoiser(net, cfg.diffusion.schedule()), cfg, ckpt
