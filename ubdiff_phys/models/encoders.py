"""Encoders of the majority modality into the co-latent z in [-1, 1]^latent_dim.

:class:`VelocityEncoder` is the official UB-Diff encoder (specs/ubdiff.md §1): 15 blocks on a
1 x 70 x 70 velocity map, spatial 70 -> 1, last block Conv -> BN -> Tanh (2,167,616 parameters at
width 1). :class:`SeismicEncoder` serves the reversed direction (seismic as the majority): an
InversionNet-style encoder (time-only strided (7,1)/(3,1) convolutions, then 3 x 3 strided ones)
down to 1 x 1 with a Tanh, feeding the same co-latent.
"""

from __future__ import annotations

import torch
from torch import nn

from ubdiff_phys.models.blocks import ConvBlock, scaled

__all__ = ["SeismicEncoder", "VelocityEncoder"]

# (out channels, kernel, stride, padding) of the official encoder's first 14 blocks
_VELOCITY_LAYERS = (
    (32, 1, 1, 0),
    (32, 3, 1, 1),
    (64, 3, 2, 1),
    (64, 1, 1, 0),
    (64, 3, 1, 1),
    (64, 1, 1, 0),
    (128, 3, 2, 1),
    (128, 1, 1, 0),
    (128, 3, 1, 0),
    (128, 1, 1, 0),
    (256, 3, 2, 1),
    (256, 1, 1, 0),
    (256, 3, 2, 1),
    (256, 3, 2, 1),
)


class VelocityEncoder(nn.Module):
    """Velocity map (B, 1, 70, 70), normalised -> co-latent (B, latent_dim) in [-1, 1].

    Args:
        latent_dim: channels of z (128 in the paper).
        width: multiplier on the hidden channel counts (1.0 = the paper).
    """

    def __init__(self, latent_dim: int = 128, width: float = 1.0):
        super().__init__()
        blocks, c = [], 1
        for c_out, k, s, p in _VELOCITY_LAYERS:
            blocks.append(ConvBlock(c, scaled(c_out, width), k, s, p))
            c = scaled(c_out, width)
        blocks.append(ConvBlock(c, latent_dim, 3, 2, 1, act="tanh"))  # 2 -> 1
        self.blocks = nn.Sequential(*blocks)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if v.shape[-2:] != (70, 70):
            raise ValueError(f"VelocityEncoder expects (B, 1, 70, 70) maps, got {tuple(v.shape)}")
        return self.blocks(v).flatten(1)


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


class SeismicEncoder(nn.Module):
    """Gathers (B, S, nt, R), normalised -> co-latent (B, latent_dim) in [-1, 1].

    InversionNet's encoder layout (LeakyReLU 0.2): a (7,1)/(2,1) conv and three (3,1)/(2,1)
    stages halve time only, then four 3 x 3 stride-2 stages, then one conv whose kernel covers
    what is left, with BN and Tanh, to latent_dim x 1 x 1.
    """

    def __init__(
        self,
        seismic_shape=(5, 1000, 70),
        latent_dim: int = 128,
        width: float = 1.0,
        final_act: str = "tanh",
        spatial_stages: int = 4,
    ):
        """InversionNet's encoder is ``final_act="leaky"`` (an unbounded 512-d code instead of
        Tanh) with ``spatial_stages=3`` (three 3 x 3 stride-2 stages, then an 8 x 9 kernel)."""
        super().__init__()
        n_shots, nt, nr = seismic_shape
        w = [scaled(c, width) for c in (32, 64, 64, 128, 128, 256, 256)]
        layers = [ConvBlock(n_shots, w[0], (7, 1), (2, 1), (3, 0), act="leaky")]
        h = _out(nt, 7, 2, 3)
        c = w[0]
        for c_out in (w[1], w[2], w[3]):  # time-only downsampling
            layers += [
                ConvBlock(c, c_out, (3, 1), (2, 1), (1, 0), act="leaky"),
                ConvBlock(c_out, c_out, (3, 1), 1, (1, 0), act="leaky"),
            ]
            h, c = _out(h, 3, 2, 1), c_out
        x = nr
        if spatial_stages not in (3, 4):
            raise ValueError(f"spatial_stages must be 3 or 4, got {spatial_stages}")
        for c_out in (w[4], w[5], w[6], w[6])[:spatial_stages]:  # time and receivers
            layers += [
                ConvBlock(c, c_out, 3, 2, 1, act="leaky"),
                ConvBlock(c_out, c_out, 3, 1, 1, act="leaky"),
            ]
            h, x, c = _out(h, 3, 2, 1), _out(x, 3, 2, 1), c_out
        layers.append(ConvBlock(c, latent_dim, (h, x), 1, 0, act=final_act))
        self.blocks = nn.Sequential(*layers)
        self.seismic_shape = tuple(seismic_shape)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if tuple(s.shape[1:]) != self.seismic_shape:
            raise ValueError(
                f"SeismicEncoder expects (B, {self.seismic_shape}), got {tuple(s.shape)}"
            )
        return self.blocks(s).flatten(1)
