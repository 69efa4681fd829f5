"""2-D U-Net denoiser on velocity maps: the network of the *velocity-space* diffusion prior.

The latent model denoises UB-Diff's 128-d co-latent, so its samples can be no sharper than the
velocity decoder's reconstructions (on FlatVel-A-like maps these pass the family's interface test
at 0.31). This network denoises the normalised map itself, x (B, 1, nz, nx) in [-1, 1], so
interfaces are whatever the model learns.

Layout (a small DDPM-style U-Net, written for CPU training):

- the map is padded (replicate) to the next multiple of 2^(levels-1) in each direction (70 -> 72
  for 4 levels) and cropped back at the end;
- time embedding: sinusoidal(dim) -> Linear(dim, 4 dim) -> SiLU -> Linear(4 dim, 4 dim);
- init Conv2d(1, dim, 3); levels of widths ``dim * dim_mults``: one ResNet block each, then a
  stride-2 Conv2d(3) downsample (not after the last);
- middle: ResNet block, pre-norm multi-head self-attention over the coarsest level's pixels,
  ResNet block;
- up path mirrored: a ResNet block on [x, skip], then nearest x2 upsample + Conv2d(3) to the next
  width; output GroupNorm -> SiLU -> Conv2d(3) to 1 channel, initialised to zero.

ResNet block: GroupNorm -> SiLU -> Conv2d(3) -> GroupNorm -> FiLM (1 + scale, shift from a Linear of
the time embedding) -> SiLU -> Conv2d(3), plus a 1x1 residual when the widths differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ubdiff_phys.runtime.config import section_from_dict

__all__ = ["UNet2D", "UNet2DConfig", "build_unet2d"]


@dataclass(frozen=True)
class UNet2DConfig:
    """Attributes:
    dim: base width (16).
    dim_mults: width multipliers per level ((1, 2, 4, 4)).
    nz, nx: map size in cells (70 x 70, the OpenFWI grid).
    groups: GroupNorm groups (8); every width must be divisible by it.
    attn_heads: heads of the middle attention (4); the coarsest width must be divisible by it.
    """

    dim: int = 16
    dim_mults: tuple[int, ...] = (1, 2, 4, 4)
    nz: int = 70
    nx: int = 70
    groups: int = 8
    attn_heads: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim_mults", tuple(int(m) for m in self.dim_mults))
        if self.dim < 1 or not self.dim_mults or min(self.dim_mults) < 1:
            raise ValueError("unet2d: dim >= 1 and positive dim_mults required")
        if self.nz < 2 or self.nx < 2:
            raise ValueError("unet2d: nz, nx >= 2 required")
        widths = [self.dim * m for m in self.dim_mults]
        if self.groups < 1 or any(w % self.groups for w in widths):
            raise ValueError(f"unet2d: every width must be divisible by groups={self.groups}")
        if self.attn_heads < 1 or widths[-1] % self.attn_heads:
            raise ValueError(f"unet2d: width {widths[-1]} not divisible by attn_heads")

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) replicate padding to a multiple of 2^(levels-1)."""
        m = 2 ** (len(self.dim_mults) - 1)
        pz, px = -self.nz % m, -self.nx % m
        return (px // 2, px - px // 2, pz // 2, pz - pz // 2)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dim_mults"] = list(self.dim_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNet2DConfig:
        return section_from_dict(cls, d, "model")


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sinusoidal embedding (sin half, cos half)."""
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    a = t.float()[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


class ResBlock2D(nn.Module):
    """GN -> SiLU -> conv3 -> GN -> FiLM(t) -> SiLU -> conv3, plus a 1x1 skip when widths differ."""

    def __init__(self, cin: int, cout: int, tdim: int, groups: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.film = nn.Linear(tdim, 2 * cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)
        h = self.c2(F.silu(self.n2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class Attention2D(nn.Module):
    """Residual pre-norm multi-head self-attention over the pixels of a feature map."""

    def __init__(self, c: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.attn = nn.MultiheadAttention(c, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.norm(x).flatten(2).transpose(1, 2)
        out = self.attn(s, s, s, need_weights=False)[0]
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet2D(nn.Module):
    """``net(x (B, 1, nz, nx), t (B,) int64) -> v (B, 1, nz, nx)`` (see the module docstring).

    ``channels_last`` (default True): on the CPU the feature maps run in channels-last memory
    format, where oneDNN's convolutions are faster (the shipped model's DDIM sampling 1.19x
    faster, ``benchmarks/bench_channels_last.py``; a training step about 10 % faster in an ad
    hoc timing; 2 cores); the same arithmetic up to float rounding. Other devices keep the
    default format (not measured there).
    """

    channels_last: bool = True

    def __init__(self, config: UNet2DConfig | None = None):
        super().__init__()
        self.config = cfg = config or UNet2DConfig()
        widths, tdim, g = [cfg.dim * m for m in cfg.dim_mults], 4 * cfg.dim, cfg.groups
        self.temb = nn.Sequential(nn.Linear(cfg.dim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.inp = nn.Conv2d(1, widths[0], 3, padding=1)
        self.down, self.pool = nn.ModuleList(), nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down.append(ResBlock2D(c, w, tdim, g))
            c = w
            if i < len(widths) - 1:
                self.pool.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid1 = ResBlock2D(c, c, tdim, g)
        self.mid_attn = Attention2D(c, cfg.attn_heads, g)
        self.mid2 = ResBlock2D(c, c, tdim, g)
        self.up, self.unpool = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(ResBlock2D(c + w, w, tdim, g))
            c = w
            if i > 0:
                self.unpool.append(nn.Conv2d(w, widths[i - 1], 3, padding=1))
                c = widths[i - 1]
        self.out = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.ndim != 4 or x.shape[1:] != (1, cfg.nz, cfg.nx):
            raise ValueError(f"unet2d: x must be (B, 1, {cfg.nz}, {cfg.nx}), got {tuple(x.shape)}")
        temb = self.temb(timestep_embedding(t, cfg.dim))
        left, right, top, bottom = cfg.padding
        h = self.inp(F.pad(x, cfg.padding, mode="replicate"))
        if self.channels_last and h.device.type == "cpu":
            h = h.contiguous(memory_format=torch.channels_last)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for j, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if j < len(self.unpool):
                h = self.unpool[j](F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.out(h)
        return h[..., top : h.shape[-2] - bottom, left : h.shape[-1] - right].contiguous()


def build_unet2d(config: UNet2DConfig | None = None, device=None) -> UNet2D:
    """Instantiate the U-Net (``device="meta"`` counts parameters without allocating)."""
    if device is None:
        return UNet2D(config)
    with torch.device(device):
        return UNet2D(config)
