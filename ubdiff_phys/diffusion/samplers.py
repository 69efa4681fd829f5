"""Samplers for a v-prediction model, one signature:

    sample_x(model, z, steps, *, generator=None, callback=None) -> x0

``model(x_t, t) -> v`` with ``model.schedule`` (:class:`~ubdiff_phys.diffusion.VDenoiser`); ``z``
the starting noise x_T (B, ...); ``steps`` the number of network evaluations. The state is kept in
float64 (the network runs in its own dtype); per-step noise is drawn in float64 on the CPU from
``generator`` and moved to z's device, so a seed gives the same samples on any device up to the
network's arithmetic. ``callback({"i", "t", "x", "x0"})`` is called after every step.

Timesteps: ``steps`` integers evenly spaced over T-1 .. 0 (all of them when steps = T); after the
last one the state is the clean estimate.

- :func:`sample_ddpm`: ancestral sampling (Ho et al. 2020; the paper's sampler with steps = T):
  x0 is predicted and clamped to ``clip`` ([-1, 1]), then x_s ~ q(x_s | x_t, x0), the Gaussian
  posterior between consecutive selected timesteps t > s (with alpha = ab_t / ab_s; for
  consecutive integer timesteps this is exactly the DDPM posterior with beta_t).
- :func:`sample_ddim`: DDIM (Song et al. 2021): x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2)
  eps + sigma noise with eps recomputed from the clamped x0, sigma = eta sqrt((1-ab_s)/(1-ab_t))
  sqrt(1 - ab_t/ab_s); eta = 0 (default) is deterministic given z.

A ``guide`` corrects x0 before the step. DDIM can then carry the correction two ways
(``guide_noise``): "recompute" derives eps from the current state and the corrected x0, so the
step stays consistent with x_t and only a fraction of the correction, sqrt(ab_s) - sqrt(1 - ab_s)
sqrt(ab_t / (1 - ab_t)), reaches x_s (about 0.3 near the end of a 50-step schedule); "keep" uses
the network's own eps (from the uncorrected, clamped x0), so x_s = sqrt(ab_s) x0' + ... carries all
of it, as manifold-preserving guidance does (He et al. 2024: an x0 update re-noised with the
predicted noise). Without a guide the two are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ubdiff_phys.diffusion.targets import x0_from_v

__all__ = [
    "GUIDE_NOISE",
    "SAMPLERS",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_latents",
    "timestep_sequence",
]

Callback = Callable[[dict[str, Any]], None]
#: ``guide(x0, i, t) -> x0``: a correction of the predicted clean sample at step i (timestep t);
#: the samplers run under ``torch.no_grad``, so a guide that differentiates enables grad itself
Guide = Callable[[torch.Tensor, int, int], torch.Tensor]
#: how DDIM carries a guide's correction (module docstring)
GUIDE_NOISE = ("recompute", "keep")


def timestep_sequence(timesteps: int, steps: int) -> list[int]:
    """``steps`` distinct integer timesteps from T-1 down to 0 (evenly spaced)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in [1, {timesteps}], got {steps}")
    seq = np.unique(np.round(np.linspace(0, timesteps - 1, steps)).astype(np.int64))
    if len(seq) != steps:  # cannot happen for steps <= T, kept as a guard
        raise AssertionError("timestep spacing collapsed")
    return [int(t) for t in seq[::-1]]


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    n = torch.randn(like.shape, generator=generator, dtype=torch.float64, device="cpu")
    return n.to(like.device)


def _predict_x0(model, x: torch.Tensor, t: int, ab_t: float, clip: float | None):
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    v = model(x, tt).to(torch.float64)
    x0 = x0_from_v(x, torch.tensor(ab_t, dtype=torch.float64, device=x.device), v)
    return x0.clamp(-clip, clip) if clip is not None else x0


def _steps(sched, steps: int | None):
    """(i, t, s, ᾱ_t, ᾱ_s) of each sampler step: the current timestep t, the next one s (-1 after
    the last step, where ᾱ_s = 1)."""
    ab_all = sched.alphas_cumprod.tolist()
    seq = timestep_sequence(sched.timesteps, steps or sched.timesteps)
    for i, t in enumerate(seq):
        s = seq[i + 1] if i + 1 < len(seq) else -1
        yield i, t, s, ab_all[t], (ab_all[s] if s >= 0 else 1.0)


@torch.no_grad()
def sample_ddpm(
    model,
    z: torch.Tensor,
    steps: int | None = None,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    clip: float | None = 1.0,
    guide: Guide | None = None,
    guide_noise: str = "recompute",
) -> torch.Tensor:
    """Ancestral DDPM from noise ``z``; ``steps=None`` means all T (the paper). Returns x0 in
    float64. ``guide(x0, i, t) -> x0``: corrects the predicted clean sample before each step;
    ``guide_noise``: as for :func:`sample_ddim` (the posterior mean c0 x0 + ct x_t is DDIM's
    step with sigma^2 the posterior variance; "keep" adds the correction's share that the
    recomputed noise takes away, so the mean moves by sqrt(ab_s) times it)."""
    _check_guide_noise(guide_noise)
    x = z.to(torch.float64)
    for i, t, s, ab_t, ab_s in _steps(model.schedule, steps):
        x0 = _predict_x0(model, x, t, ab_t, clip)
        alpha = ab_t / ab_s
        beta = 1.0 - alpha
        var = beta * (1.0 - ab_s) / (1.0 - ab_t)
        mean = 0.0
        if guide is not None:
            x0_net, x0 = x0, guide(x0, i, t)
            if guide_noise == "keep":
                keep = max(1.0 - ab_s - var, 0.0) ** 0.5 * (ab_t / (1.0 - ab_t)) ** 0.5
                mean = keep * (x0 - x0_net)
        c0 = ab_s**0.5 * beta / (1.0 - ab_t)
        ct = alpha**0.5 * (1.0 - ab_s) / (1.0 - ab_t)
        mean = mean + c0 * x0 + ct * x
        x = mean + var**0.5 * _noise(x, generator) if s >= 0 else mean
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0})
    return x


def _check_guide_noise(guide_noise: str) -> None:
    if guide_noise not in GUIDE_NOISE:
        raise ValueError(f"guide_noise must be one of {GUIDE_NOISE}, got {guide_noise!r}")


@torch.no_grad()
def sample_ddim(
    model,
    z: torch.Tensor,
    steps: int | None = 50,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    eta: float = 0.0,
    clip: float | None = 1.0,
    guide: Guide | None = None,
    guide_noise: str = "recompute",
) -> torch.Tensor:
    """DDIM from noise ``z`` in ``steps`` evaluations (default 50); returns x0 in float64.
    ``guide(x0, i, t) -> x0``: corrects the predicted clean sample before each step;
    ``guide_noise``: "recompute" (the noise direction recomputed from the corrected x0) or
    "keep" (the network's noise direction kept: the whole correction reaches the next state);
    see the module docstring."""
    _check_guide_noise(guide_noise)
    x = z.to(torch.float64)
    for i, t, s, ab_t, ab_s in _steps(model.schedule, steps):
        x0 = _predict_x0(model, x, t, ab_t, clip)
        eps = (x - ab_t**0.5 * x0) / (1.0 - ab_t) ** 0.5
        if guide is not None:
            x0 = guide(x0, i, t)
            if guide_noise == "recompute":
                eps = (x - ab_t**0.5 * x0) / (1.0 - ab_t) ** 0.5
        if s < 0:
            x = x0
        else:
            sigma = eta * ((1 - ab_s) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_s) ** 0.5
            x = ab_s**0.5 * x0 + max(1 - ab_s - sigma**2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * _noise(x, generator)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0})
    return x


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim}


def sample(
    model,
    shape: tuple[int, ...],
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    callback: Callback | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Draw z ~ N(0, I) of ``shape`` from ``generator`` (float64, CPU, then ``device``) and run
    ``SAMPLERS[sampler]``; ``steps=None``: T for DDPM, 50 for DDIM."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    z = torch.randn(shape, generator=generator, dtype=torch.float64, device="cpu").to(device)
    if steps is None:
        steps = model.schedule.timesteps if sampler == "ddpm" else 50
        steps = min(steps, model.schedule.timesteps)
    return SAMPLERS[sampler](model, z, steps, generator=generator, callback=callback, **kwargs)


def sample_latents(
    denoiser,
    n: int,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    **kwargs: Any,
) -> torch.Tensor:
    """n co-latents (n, latent_dim) float32 from a :class:`~ubdiff_phys.diffusion.VDenoiser` over
    the 1-D U-Net: :func:`sample` of shape (n, 1, seq_len), flattened; ``steps`` is capped at T
    (``None``: T for DDPM, 50 for DDIM)."""
    if steps is not None:
        steps = min(steps, denoiser.schedule.timesteps)
    shape = (n, 1, denoiser.net.config.seq_len)
    x0 = sample(
        denoiser, shape, sampler=sampler, steps=steps, generator=generator, device=device, **kwargs
    )
    return x0.reshape(n, -1).float()
