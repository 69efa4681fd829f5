"""1-D U-Net denoiser on the 128-d co-latent (specs/ubdiff.md §3).

The latent z (B, 128) is a 1-channel sequence (B, 1, 128). Layout (the Unet1D layout of the
``denoising-diffusion-pytorch`` family that UB-Diff trains, written from its description):

- time embedding: sinusoidal(dim) -> Linear(dim, 4 dim) -> GELU -> Linear(4 dim, 4 dim)
  (128 -> 512 -> 512);
- init Conv1d(channels, dim, 7); levels with widths dim * dim_mults, each: 2 ResNet blocks at the
  input width, residual pre-norm linear attention, then a stride-2 Conv1d(4) downsample to the next
  width (a Conv1d(3) width change at the last level);
- middle: ResNet block, residual pre-norm full attention, ResNet block;
- up path mirrored, each ResNet block fed the concatenated skip; nearest x2 upsample + Conv1d(3);
- final ResNet block on [x, init features] and Conv1d(dim, channels, 1).

ResNet block: Conv1d(3) -> GroupNorm(8) -> FiLM (1 + scale, shift from SiLU -> Linear of the time
embedding) -> SiLU -> Conv1d(3) -> GroupNorm -> SiLU, plus a 1x1 residual when widths differ. The
GroupNorm -> FiLM -> SiLU pairs are :class:`~ubdiff_phys.ops.GroupNormFiLMSiLU` (fused native
kernel when eligible, the PyTorch reference otherwise; ``backend`` selects).
Paper config (dim 128, mults (1, 2, 2, 4)): 21,319,681 parameters (pinned by a test).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ubdiff_phys.ops.group_norm_film_silu import GroupNormFiLMSiLU
from ubdiff_phys.runtime.config import section_from_dict

__all__ = ["UNet1D", "UNet1DConfig", "build_unet1d"]


@dataclass(frozen=True)
class UNet1DConfig:
    """Attributes:
    dim: base width (128).
    dim_mults: width multipliers per level ((1, 2, 2, 4)).
    channels: sequence channels (1: the latent as a sequence).
    seq_len: sequence length (the latent size, 128); must be divisible by 2^(levels-1).
    groups: GroupNorm groups of the ResNet blocks (8).
    attn_heads, attn_dim_head: attention heads and head width (4, 32).
    backend: GroupNorm/FiLM/SiLU backend: "auto" (fused when eligible), "native", "reference".
    """

    dim: int = 128
    dim_mults: tuple[int, ...] = (1, 2, 2, 4)
    channels: int = 1
    seq_len: int = 128
    groups: int = 8
    attn_heads: int = 4
    attn_dim_head: int = 32
    backend: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim_mults", tuple(int(m) for m in self.dim_mults))
        if self.dim < 1 or not self.dim_mults or min(self.dim_mults) < 1:
            raise ValueError("unet: dim >= 1 and positive dim_mults required")
        if any((self.dim * m) % self.groups for m in self.dim_mults) or self.dim % self.groups:
            raise ValueError(f"unet: every width must be divisible by groups={self.groups}")
        if self.seq_len % 2 ** (len(self.dim_mults) - 1):
            raise ValueError(
                f"unet: seq_len {self.seq_len} must be divisible by 2^{len(self.dim_mults) - 1}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dim_mults"] = list(self.dim_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNet1DConfig:
        return section_from_dict(cls, d, "model")


def sinusoidal_embedding(t: torch.Tensor, dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) [sin | cos] features at geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(theta) / (half - 1))
    )
    arg = t.float()[:, None] * freqs[None]
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


class _ChannelNorm(nn.Module):
    """RMS-style normalisation over channels of (B, C, L) with a learned gain (C,)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.gain * x.shape[1] ** 0.5


class _ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, backend: str):
        super().__init__()
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * c_out))
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.norm1 = GroupNormFiLMSiLU(c_out, groups, backend=backend)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.norm2 = GroupNormFiLMSiLU(c_out, groups, backend=backend)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time(emb).chunk(2, dim=1)
        h = self.norm1(self.conv1(x), scale.contiguous(), shift.contiguous())
        h = self.norm2(self.conv2(h))
        return h + self.skip(x)


class _LinearAttention(nn.Module):
    """Softmax-kernel linear attention (features softmaxed for q, positions for k), pre-norm and
    residual."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.norm = _ChannelNorm(dim)
        self.qkv = nn.Conv1d(dim, 3 * hidden, 1, bias=False)
        self.out = nn.Sequential(nn.Conv1d(hidden, dim, 1), _ChannelNorm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, -1, n).unbind(1)
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, n)
        return x + self.out(out)


class _Attention(nn.Module):
    """Full multi-head self-attention over the sequence, pre-norm and residual."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.norm = _ChannelNorm(dim)
        self.qkv = nn.Conv1d(dim, 3 * hidden, 1, bias=False)
        self.out = nn.Conv1d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n = x.shape
        q, k, v = (
            self.qkv(self.norm(x)).reshape(b, 3, self.heads, -1, n).transpose(-1, -2).unbind(1)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (b, h, n, d)
        return x + self.out(out.transpose(-1, -2).reshape(b, -1, n))


class _Upsample(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(c_in, c_out, 3, 1, 1)
        )


class UNet1D(nn.Module):
    """``forward(x, t) -> prediction``: x (B, channels, seq_len), t (B,) integer timesteps."""

    def __init__(self, config: UNet1DConfig | None = None):
        super().__init__()
        cfg = self.config = config or UNet1DConfig()
        dim, time_dim, g, be = cfg.dim, cfg.dim * 4, cfg.groups, cfg.backend
        heads, dh = cfg.attn_heads, cfg.attn_dim_head
        self.init_conv = nn.Conv1d(cfg.channels, dim, 7, padding=3)
        self.time_mlp = nn.Sequential(
            nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim)
        )
        widths = [dim, *(dim * m for m in cfg.dim_mults)]
        pairs = list(itertools.pairwise(widths))
        self.downs = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.downs.append(
                nn.ModuleList(
                    [
                        _ResnetBlock(c_in, c_in, time_dim, g, be),
                        _ResnetBlock(c_in, c_in, time_dim, g, be),
                        _LinearAttention(c_in, heads, dh),
                        nn.Conv1d(c_in, c_out, 3, padding=1)
                        if last
                        else nn.Conv1d(c_in, c_out, 4, 2, 1),
                    ]
                )
            )
        mid = widths[-1]
        self.mid1 = _ResnetBlock(mid, mid, time_dim, g, be)
        self.mid_attn = _Attention(mid, heads, dh)
        self.mid2 = _ResnetBlock(mid, mid, time_dim, g, be)
        self.ups = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(reversed(pairs)):
            last = i == len(pairs) - 1
            self.ups.append(
                nn.ModuleList(
                    [
                        _ResnetBlock(c_out + c_in, c_out, time_dim, g, be),
                        _ResnetBlock(c_out + c_in, c_out, time_dim, g, be),
                        _LinearAttention(c_out, heads, dh),
                        nn.Conv1d(c_out, c_in, 3, padding=1) if last else _Upsample(c_out, c_in),
                    ]
                )
            )
        self.final_block = _ResnetBlock(2 * dim, dim, time_dim, g, be)
        self.final_conv = nn.Conv1d(dim, cfg.channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.config.dim).to(x.dtype))
        x = self.init_conv(x)
        x_init = x
        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, emb)
            skips.append(x)
            x = attn(block2(x, emb))
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid_attn(self.mid1(x, emb)), emb)
        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat([x, skips.pop()], dim=1), emb)
            x = block2(torch.cat([x, skips.pop()], dim=1), emb)
            x = up(attn(x))
        x = self.final_block(torch.cat([x, x_init], dim=1), emb)
        return self.final_conv(x)


def build_unet1d(config: UNet1DConfig | None = None, device=None) -> UNet1D:
    """Instantiate the U-Net (``device="meta"`` counts parameters without allocating)."""
    if device is None:
        return UNet1D(config)
    with torch.device(device):
        return UNet1D(config)
