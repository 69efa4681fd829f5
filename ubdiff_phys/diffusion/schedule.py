"""Noise schedules (float64): the cosine schedule of Nichol & Dhariwal (2021) used by UB-Diff.

``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2``;
``beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t)`` clipped to ``[0, max_beta]`` (specs/ubdiff.md §3:
T = 256, s = 0.008, max_beta = 0.999), and ``alphas_cumprod`` recomputed as the cumulative product
of the clipped ``1 - beta`` (so the clipping is consistent everywhere). Timesteps are integers
0 .. T-1; ``alphas_cumprod[t]`` is the signal fraction of ``x_t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["NoiseSchedule", "cosine_betas", "cosine_schedule"]


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """(T,) float64 betas of the cosine schedule."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    f = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(0.0, max_beta)


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Discrete variance-preserving schedule; every tensor is (T,) float64 on the CPU.

    Attributes:
        betas: beta_t.
        alphas: 1 - beta_t.
        alphas_cumprod: alpha_bar_t = prod_{i<=t} alpha_i.
    """

    betas: torch.Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if b.ndim != 1 or not (b > 0).all() or not (b <= 1).all():
            raise ValueError("betas must be a 1-D tensor in (0, 1]")
        object.__setattr__(self, "betas", b.detach().to("cpu", torch.float64))

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, 0)

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at integer timesteps ``t`` (any shape, any device), float64 on t's device;
        ``t = -1`` means "clean data" (alpha_bar = 1)."""
        ab = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        return ab.to(t.device)[t.long() + 1]

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar(t)
        return ab / (1 - ab)


def cosine_schedule(timesteps: int = 256, s: float = 0.008, max_beta: float = 0.999):
    """The UB-Diff schedule (defaults: specs/ubdiff.md §3)."""
    return NoiseSchedule(cosine_betas(timesteps, s, max_beta))
