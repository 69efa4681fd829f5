"""Sharpening a latent posterior with the velocity-space prior: SDEdit with the likelihood.

The latent prior's samples hold the long wavelengths the data ask for but can be no sharper than
UB-Diff's velocity decoder, and stay far from the data (tens of times the noise level). The
velocity-space prior (``train-velocity-diffusion``; one ships with the package) is sharp, but its
posterior sampler started from noise splits between basins. Here each latent posterior sample
(normalised by the velocity prior) is noised to timestep ``t_start`` of the velocity prior,
√ᾱ x + √(1 − ᾱ) ε, and the velocity prior's proximal posterior sampler
(:func:`~ubdiff_phys.diffusion.posterior.sample_posterior`, perturbed data, a band-scheduled
likelihood) runs from there to 0 with the same data. Each step solves for the clean map with
``inner`` L-BFGS iterations on the data misfit (the band's) plus the velocity prior's
state-space error ρ_t, so the result is a posterior draw under the velocity prior that starts
from the latent posterior's long wavelengths. Twice on the way (by default 35 % and 60 % of the
steps) the samples are resampled by their band's data misfit
(:mod:`~ubdiff_phys.diffusion.resampling`, weights tempered to keep half the samples' effective
size): samples stuck in a basin that cannot explain the data are replaced by copies of better
ones, which the later steps' noise makes differ again.

The result's interval has no ``decoder_error`` (no decoder draws these maps); its base interval
is the predictive one. The start prior's ``calibration`` was measured for its own sampler and is
dropped; pass ``calibration=prior.sharpened_interval_calibration`` (measured with sharpening by
``calibrate-interval --sharpen``) for a ``"calibrated"`` interval: resampling by misfit narrows
the samples' spread (on 12 FlatVel-A maps the predictive interval held 0.71 of the true pixels
with it, 0.86 without).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ubdiff_phys.diffusion.posterior import sample_posterior
from ubdiff_phys.inversion.interval_calibration import IntervalCalibration
from ubdiff_phys.inversion.likelihood import StateMisfits
from ubdiff_phys.inversion.multiscale import DEFAULT_BANDS, band_schedule
from ubdiff_phys.inversion.posterior import (
    PosteriorResult,
    _denoiser_error,
    _observed,
    _stable_modelling,
)
from ubdiff_phys.inversion.prior import VelocityPrior, load_velocity_prior
from ubdiff_phys.physics.misfit import misfit_and_grad
from ubdiff_phys.physics.survey import Survey

__all__ = [
    "DEFAULT_RESAMPLE_FRACTIONS",
    "DEFAULT_SHARPEN",
    "default_resample_at",
    "sharpen_samples",
]

#: t_start, steps, inner of :func:`sharpen_samples` (measured on FlatVel-A maps at 1 % noise:
#: 5 iterations per step leave the samples at 8–33× the noise level, 15 at 2–5×)
DEFAULT_SHARPEN = {"t_start": 128, "steps": 20, "inner": 15}
#: where in the reverse steps the default sharpening resamples its samples by misfit: after the
#: step 35 % of the way (the 8 Hz band of the default schedule) and after the first full-band
#: one (60 %); measured on FlatVel-A maps against no resampling (docs/posterior_sampling.md)
DEFAULT_RESAMPLE_FRACTIONS = (0.35, 0.6)


def default_resample_at(steps: int) -> list[int]:
    """The default resampling steps for ``steps`` reverse steps: round(f · steps) for each
    fraction f of :data:`DEFAULT_RESAMPLE_FRACTIONS` (7 and 12 of 20), never the last step
    (its ancestral step adds no noise, so the copies a resampling makes there would stay equal
    and the interval would have zero width; none for fewer than 2 steps)."""
    picked = {min(round(f * steps), steps - 2) for f in DEFAULT_RESAMPLE_FRACTIONS}
    return sorted(i for i in picked if i >= 0)


def _velocity_prior(prior: VelocityPrior | None) -> VelocityPrior:
    if prior is None:
        from ubdiff_phys.pipelines.generator import shipped_velocity_checkpoint

        return load_velocity_prior(shipped_velocity_checkpoint())
    if not isinstance(prior, VelocityPrior):
        raise ValueError(f"prior must be a VelocityPrior (velocity-space model), got {prior!r}")
    return prior


def _check(
    result: PosteriorResult, vprior: VelocityPrior, t_start: int, steps: int, inner: int,
    resample_at, resample_ess: float, resample_groups: int, calibration: IntervalCalibration | None,
) -> None:  # fmt: skip
    """ValueError for arguments of :func:`sharpen_samples` that cannot run."""
    timesteps = vprior.denoiser.schedule.timesteps
    if not 0 < resample_ess <= 1:
        raise ValueError(f"resample_ess must be in (0, 1], got {resample_ess}")
    n = result.samples.shape[0]
    if not (isinstance(resample_groups, int) and resample_groups >= 1 and n % resample_groups == 0):
        raise ValueError(f"resample_groups must be a positive divisor of the {n} samples")
    if calibration is not None and calibration.base != "predictive":
        raise ValueError(
            f"a sharpened posterior's calibration must scale the predictive interval, not the "
            f"{calibration.base!r} one (measure it with `calibrate-interval --sharpen`)"
        )
    if "noise_std" not in result.settings or "boundary" not in result.settings:
        raise ValueError("result must come from posterior_sample (its settings name the noise)")
    if not (isinstance(t_start, int) and 0 < t_start < timesteps):
        raise ValueError(f"t_start must be an integer in (0, {timesteps}), got {t_start!r}")
    if not (isinstance(steps, int) and 1 <= steps <= t_start + 1):
        raise ValueError(f"steps must be an integer in [1, t_start + 1], got {steps!r}")
    if not (isinstance(inner, int) and inner >= 1):
        raise ValueError(f"inner must be an integer >= 1, got {inner!r}")
    if not all(isinstance(i, int) and 0 <= i < steps for i in resample_at):
        raise ValueError(f"resample_at must hold steps in [0, {steps}), got {resample_at!r}")


def _lineage(n: int, ancestry: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each of ``n`` final samples' start index, through the resamplings' ancestor lists."""
    lineage = torch.arange(n)
    for ancestors in ancestry:
        lineage = lineage[ancestors]
    return lineage


def sharpen_samples(
    result: PosteriorResult,
    observed: torch.Tensor,
    survey: Survey,
    *,
    prior: VelocityPrior | None = None,
    t_start: int = DEFAULT_SHARPEN["t_start"],
    steps: int = DEFAULT_SHARPEN["steps"],
    inner: int = DEFAULT_SHARPEN["inner"],
    bands: Sequence[float | None] | None = DEFAULT_BANDS,
    full_band_from: float = 0.6,
    resample_at: Sequence[int] | None = None,
    resample_ess: float = 0.5,
    calibration: IntervalCalibration | None = None,
    generator: torch.Generator | None = None,
    resample_groups: int = 1,
) -> PosteriorResult:
    """Posterior samples under the velocity-space prior, started from ``result``'s samples.

    Args:
        result: a :func:`~ubdiff_phys.inversion.posterior_sample` result (any prior) for
            ``observed``; its noise level and boundary are used.
        observed: (S, nt, R) or (1, S, nt, R) observed gathers.
        survey: the survey of ``observed`` (modelled as ``posterior_sample`` does).
        prior: the velocity-space prior (None: the shipped FlatVel-A one); its stored
            state-space error ρ_t is used, else one is estimated from 16 of its samples.
        t_start: the velocity prior's timestep the samples are noised to (higher: more freedom,
            less of the start kept).
        steps: reverse steps from ``t_start`` to 0; inner: L-BFGS iterations per step.
        bands, full_band_from: the band-scheduled likelihood (None: the full band throughout).
        resample_at, resample_ess: steps (0 … steps − 1) after which the samples are resampled
            by their band's misfit, tempered to an effective sample size ≥ ``resample_ess`` · n
            (:mod:`~ubdiff_phys.diffusion.resampling`; None: :func:`default_resample_at`;
            empty: never).
        calibration: the interval scale measured for this start and sharpening (a prior's
            ``sharpened_interval_calibration``; its base must be "predictive"), kept on the
            result for ``interval(kind="calibrated")``; None: the result has none.
        generator: noise of the sampler (float64, CPU).
        resample_groups: resample as this many equal groups, each on its own, like independent
            runs (it must divide the samples; recorded when > 1). 4 + 4 samples of two 8-sample
            runs covered 0.905 on 12 FlatVel-A maps at 1 %, either run's 8 0.69 / 0.77 (docs).

    Returns:
        a :class:`~ubdiff_phys.inversion.PosteriorResult` whose ``settings`` add ``sharpen``
        (the arguments and the velocity prior's ρ_t source) and ``sharpen_lineage`` (for each
        sample, the index of the start sample in ``result`` its chain descends from through the
        resamplings) and whose seconds and solver calls include ``result``'s.
    """
    vprior = _velocity_prior(prior)
    if resample_at is None:
        resample_at = default_resample_at(steps) if isinstance(steps, int) and steps > 0 else []
    _check(
        result, vprior, t_start, steps, inner, resample_at, resample_ess, resample_groups,
        calibration,
    )  # fmt: skip
    if bands is not None:
        band_schedule(steps, bands, full_band_from)  # ValueError for bad bands
    noise_std, boundary = float(result.settings["noise_std"]), str(result.settings["boundary"])
    survey = _stable_modelling(survey, boundary, vprior.bounds[1])
    obs = _observed(observed, survey)
    t0 = time.perf_counter()
    err, source = _denoiser_error(vprior, survey, boundary, 0, "proximal")
    n = result.samples.shape[0]
    obs_b = obs.to(vprior.device).expand(n, *obs.shape).contiguous()
    ab = float(vprior.denoiser.schedule.alphas_cumprod[t_start])
    eps = torch.randn(result.samples.shape, generator=generator, dtype=torch.float64)
    x_t = ab**0.5 * vprior.encode(result.samples) + (1 - ab) ** 0.5 * eps.to(vprior.device)
    misfits = StateMisfits(vprior, survey, boundary)
    options: dict[str, Any] = {"perturbed_misfit": misfits.perturbed(obs_b, noise_std)}
    if bands is not None:
        options["step_misfit"] = misfits.scheduled(obs_b, steps, bands, full_band_from)
        options["step_perturbed_misfit"] = misfits.perturbed_scheduled(
            obs_b, noise_std, steps, bands, full_band_from
        )
    ancestry: list[torch.Tensor] = []
    x = sample_posterior(
        vprior.denoiser, x_t, steps, misfit=misfits.against(obs_b), method="proximal",
        data_variance=lambda t: noise_std**2, state_variance=lambda t: err.state_rms_at(t) ** 2,
        inner=inner, generator=generator, t_start=t_start, resample_at=set(resample_at),
        resample_ess=resample_ess, ancestry=ancestry, resample_groups=resample_groups, **options,
    )  # fmt: skip
    lineage = _lineage(n, ancestry)
    v = vprior.velocity(x).float()  # x is detached
    f, _ = misfit_and_grad(v, obs_b, survey, boundary=boundary)
    sharpen = {"t_start": t_start, "steps": steps, "inner": inner, "state_error": source}
    sharpen |= {"bands": None if bands is None else list(bands), "full_band_from": full_band_from}
    sharpen |= {"resample_at": sorted(resample_at), "resample_ess": resample_ess}
    sharpen |= {"resample_groups": resample_groups} if resample_groups != 1 else {}
    return replace(
        result,
        samples=v.cpu(),
        mean=v.mean(0).cpu(),
        std=v.std(0).cpu() if n > 1 else torch.zeros_like(v[0]).cpu(),
        misfit=f.cpu(),
        seconds=result.seconds + time.perf_counter() - t0,
        solver_calls=result.solver_calls + misfits.calls + 1,
        settings=result.settings | {"sharpen": sharpen, "sharpen_lineage": lineage.tolist()},
        decoder_error=None,
        calibration=calibration,
    )
