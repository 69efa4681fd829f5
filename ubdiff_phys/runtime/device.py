"""Device resolution: one rule for every command's ``--device``."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` (or "") -> CUDA when available, else CPU; a CUDA device without one is refused
    with a message that says what to do."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' requested but no CUDA device is available; use --device cpu"
        )
    return device
