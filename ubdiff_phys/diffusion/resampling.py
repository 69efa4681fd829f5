"""Misfit resampling of a posterior sampler's particles (sequential Monte Carlo's selection step).

A batch of posterior chains is a population of particles. When some of them sit in a basin that
cannot explain the data (a cycle-skipped layer, say), their misfit stays far above the others'
while the sampler goes on; under the Gaussian likelihood exp(−f/σ²) their weight against the
best particle is exp(−Δf/σ²), which for ~10⁵ data values at 1 % noise is zero to any precision.
Resampling replaces them by copies of the better-fitting particles, and the sampler's later
ancestral steps (fresh noise per particle) make the copies differ again.

The exact weights would keep only the best particle, so the likelihood is tempered: the weights
are w_i ∝ exp(−β (f_i − min f)) with the largest β ≤ 1/σ² whose effective sample size
(Σw)²/Σw² is at least ``ess_fraction`` · n (adaptive tempering, as in adaptive SMC samplers).
With similar misfits every particle survives; a particle far above the rest is dropped.
Systematic resampling draws the copies (one uniform number, low variance).

With ``groups`` > 1 (:func:`grouped_resample`) the population is split into that many equal,
contiguous groups, each tempered and resampled on its own, so that a particle is only ever
replaced by a copy of one in its own group: the groups stay independent populations (like
independent runs), which keeps more distinct basins than one population of the same size.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "effective_sample_size",
    "grouped_resample",
    "systematic_resample",
    "tempered_weights",
]


def effective_sample_size(weights: torch.Tensor) -> float:
    """(Σw)² / Σw² of non-negative weights (n,): n for equal weights, 1 for a single one."""
    w = weights.double()
    return float(w.sum() ** 2 / w.square().sum())


def tempered_weights(
    misfit: torch.Tensor, beta_max: float, ess_fraction: float = 0.5
) -> tuple[torch.Tensor, float]:
    """(normalised weights (n,) float64, β) for misfits ``misfit`` (n,) (negative log-likelihood
    per unit β, e.g. ½‖G(x) − y‖²): w ∝ exp(−β (f − min f)), β the largest value in [0,
    ``beta_max``] with an effective sample size ≥ ``ess_fraction`` · n (found by bisection on
    log β to a relative 1e-6). Non-finite misfits get weight 0 (all non-finite: equal weights)."""
    if not (0.0 < ess_fraction <= 1.0):
        raise ValueError(f"ess_fraction must be in (0, 1], got {ess_fraction}")
    if not (beta_max > 0 and math.isfinite(beta_max)):
        raise ValueError(f"beta_max must be positive and finite, got {beta_max}")
    f = misfit.detach().double().cpu()
    ok = torch.isfinite(f)
    n = f.numel()
    if not bool(ok.any()):
        return torch.full((n,), 1.0 / n, dtype=torch.float64), 0.0
    d = torch.where(ok, f - f[ok].min(), torch.zeros_like(f))

    def weights(beta: float) -> torch.Tensor:
        w = torch.where(ok, torch.exp(-beta * d), torch.zeros_like(d))
        return w / w.sum()

    target = ess_fraction * n
    if effective_sample_size(weights(beta_max)) >= target:
        return weights(beta_max), beta_max
    spread = float(d[ok].max())
    if spread == 0.0:  # every finite particle equal: the rest were dropped above
        return weights(beta_max), beta_max
    lo, hi = math.log(beta_max) - 60.0, math.log(beta_max)  # ESS(lo) ≈ #finite for any sane f
    lo = min(lo, math.log(1e-12 / spread))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if effective_sample_size(weights(math.exp(mid))) >= target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-6:
            break
    beta = math.exp(lo)
    return weights(beta), beta


def systematic_resample(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Indices (n,) long, sorted, of n draws from normalised ``weights`` (n,) by systematic
    resampling: particle i is copied ⌊n w_i⌋ or ⌈n w_i⌉ times (one uniform draw)."""
    w = weights.double().cpu()
    n = w.numel()
    u = (torch.rand((), generator=generator, dtype=torch.float64) + torch.arange(n)) / n
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0
    return torch.searchsorted(cdf, u, right=True).clamp(max=n - 1)


def grouped_resample(
    misfit: torch.Tensor,
    beta_max: float,
    ess_fraction: float,
    groups: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Ancestor indices (n,) long of the particles with misfits ``misfit`` (n,) resampled within
    ``groups`` equal, contiguous groups: group j (indices j·m … (j+1)·m − 1, m = n / groups) gets
    :func:`tempered_weights` of its own misfits (β ≤ ``beta_max``, effective size ≥
    ``ess_fraction`` · m) and its own :func:`systematic_resample` (one uniform draw per group,
    groups in order), offset back to the batch. ``groups=1`` is exactly the population-wide
    resampling (same weights, same draw). ValueError unless ``groups`` divides n."""
    n = misfit.numel()
    if not (isinstance(groups, int) and groups >= 1 and n % groups == 0):
        raise ValueError(
            f"groups must be a positive integer dividing the {n} particles, got {groups!r}"
        )
    m = n // groups
    parts = []
    for j in range(groups):
        w, _ = tempered_weights(misfit[j * m : (j + 1) * m], beta_max, ess_fraction)
        parts.append(systematic_resample(w, generator) + j * m)
    return torch.cat(parts)
