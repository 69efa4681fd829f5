"""Building blocks shared by the autoencoder's encoders and decoders.

``ConvBlock`` = Conv2d -> BatchNorm2d -> activation; ``DeconvBlock`` = ConvTranspose2d ->
BatchNorm2d -> activation (specs/ubdiff.md §1). Convolutions keep their bias, as in the official
code, so the parameter counts match the paper's.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ConvBlock", "DeconvBlock", "scaled"]


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}")


class ConvBlock(nn.Sequential):
    """Conv2d(k, s, p) -> BatchNorm2d -> activation ("relu", "leaky" or "tanh")."""

    def __init__(self, c_in: int, c_out: int, k=3, s=1, p=1, act: str = "relu"):
        super().__init__(nn.Conv2d(c_in, c_out, k, s, p), nn.BatchNorm2d(c_out), _activation(act))


class DeconvBlock(nn.Sequential):
    """ConvTranspose2d(k, s, p) -> BatchNorm2d -> activation."""

    def __init__(self, c_in: int, c_out: int, k=4, s=2, p=1, act: str = "relu"):
        super().__init__(
            nn.ConvTranspose2d(c_in, c_out, k, s, p), nn.BatchNorm2d(c_out), _activation(act)
        )
