"""Device resolution: one rule for every command's ``--device``."""

from __future__ import annotations

import torch

from ubdiff_phys.runtime.errors import UserError

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(UserError, ValueError):
    """A device that this machine does not have."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` (or "") -> CUDA when available, else CPU; a CUDA device without one is refused
    with a message that says what to do."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "device 'cuda' requested but no CUDA device is available; use --device cpu"
        )
    return device
