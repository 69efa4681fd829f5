"""v-parameterisation identities and the UB-Diff training loss (pure functions).

With ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps`` (ab = alpha_bar_t), the velocity target is
``v = sqrt(ab) eps - sqrt(1 - ab) x0`` (Salimans & Ho 2022), and since (sqrt(ab), sqrt(1-ab)) is a
unit vector, ``x0 = sqrt(ab) x_t - sqrt(1 - ab) v`` and ``eps = sqrt(1 - ab) x_t + sqrt(ab) v``.

Loss (specs/ubdiff.md §3): per-sample mean squared error of the predicted v, weighted by
``snr / (snr + 1)`` which equals ``alpha_bar_t`` exactly (snr = ab / (1 - ab)); optionally the
Min-SNR variant ``min(snr, gamma) / (snr + 1)`` (``min_snr_gamma > 0``; 0 = off, the spec's
weight). ``weighting="uniform"`` weighs every timestep's v-MSE by 1 instead. t is drawn uniformly
from {0, ..., T-1}.
"""

from __future__ import annotations

import torch

from ubdiff_phys.diffusion.schedule import NoiseSchedule

__all__ = [
    "WEIGHTINGS",
    "diffusion_loss",
    "eps_from_v",
    "loss_weight",
    "q_sample",
    "v_target",
    "x0_from_v",
]


#: loss weightings over timesteps (:func:`loss_weight`)
WEIGHTINGS = ("alpha_bar", "uniform")


def _bcast(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim))


def q_sample(x0: torch.Tensor, ab: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t from clean ``x0`` (B, ...), ``ab`` = alpha_bar_t (B,), noise ``eps`` (B, ...)."""
    ab = _bcast(ab, x0).to(x0.dtype)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def v_target(x0: torch.Tensor, ab: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """v = sqrt(ab) eps - sqrt(1 - ab) x0."""
    ab = _bcast(ab, x0).to(x0.dtype)
    return ab.sqrt() * eps - (1 - ab).sqrt() * x0


def x0_from_v(x_t: torch.Tensor, ab: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """x0 = sqrt(ab) x_t - sqrt(1 - ab) v."""
    ab = _bcast(ab, x_t).to(x_t.dtype)
    return ab.sqrt() * x_t - (1 - ab).sqrt() * v


def eps_from_v(x_t: torch.Tensor, ab: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """eps = sqrt(1 - ab) x_t + sqrt(ab) v."""
    ab = _bcast(ab, x_t).to(x_t.dtype)
    return (1 - ab).sqrt() * x_t + ab.sqrt() * v


def loss_weight(
    ab: torch.Tensor, min_snr_gamma: float = 0.0, weighting: str = "alpha_bar"
) -> torch.Tensor:
    """snr / (snr + 1) (= ab), or min(snr, gamma) / (snr + 1) with ``min_snr_gamma > 0``; ones
    with ``weighting="uniform"``."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "uniform":
        return torch.ones_like(ab)
    if min_snr_gamma <= 0:
        return ab
    snr = ab / (1 - ab)
    return snr.clamp(max=min_snr_gamma) / (snr + 1)


def diffusion_loss(
    net,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    t: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    min_snr_gamma: float = 0.0,
    weighting: str = "alpha_bar",
) -> torch.Tensor:
    """Weighted v-prediction loss of ``net(x_t, t) -> v`` on a clean batch ``x0`` (B, ...).

    ``t`` (B,) int64 and ``eps`` default to draws from ``generator`` (uniform t, standard normal
    noise). Returns the scalar mean over the batch of ``w(t) * mean((v_pred - v)^2)``.
    """
    b = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.timesteps, (b,), generator=generator, device="cpu")
        t = t.to(x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu")
        eps = eps.to(x0.device)
    ab = schedule.alpha_bar(t)
    x_t = q_sample(x0, ab, eps)
    target = v_target(x0, ab, eps)
    pred = net(x_t, t)
    per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (per_sample * loss_weight(ab, min_snr_gamma, weighting).to(per_sample)).mean()
