"""Multi-start FWI from posterior samples: each sample of the diffusion posterior is the start of
a multiscale FWI (:mod:`~ubdiff_phys.inversion.multiscale`), the refined models whose data
misfit is within a factor of the best are kept, and the kept ones get more full-band iterations
(the polish).

Why: the latent posterior's samples hold the long wavelengths the data ask for but stay far from the
data (their misfit is tens to hundreds of times the noise level: the velocity decoder cannot
represent the map), and FWI from any one of them stops in the local minimum nearest to it. The
samples differ in their long wavelengths, so their refinements end in different minima, and the
refined misfit tells which minima explain the data: on the held-out maps of the evaluation the
refined samples' misfit ranks their error against the truth (docs/posterior_sampling.md,
"Multi-start multiscale FWI from the posterior"). This is an estimator, not a posterior: the kept
models' spread is not a calibrated uncertainty (the posterior's own interval is).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ubdiff_phys.inversion.fwi import fwi
from ubdiff_phys.inversion.multiscale import DEFAULT_BANDS, multiscale_fwi
from ubdiff_phys.physics.misfit import misfit
from ubdiff_phys.physics.survey import Survey

__all__ = ["DEFAULT_KEEP_WITHIN", "DEFAULT_POLISH_ITERATIONS", "RefinedSamples", "refine_samples"]

#: refined models whose misfit is at most this factor times the smallest are kept
DEFAULT_KEEP_WITHIN = 1.25
#: full-band L-BFGS iterations on the kept models after the selection
DEFAULT_POLISH_ITERATIONS = 120


@dataclass(frozen=True)
class RefinedSamples:
    """Outcome of :func:`refine_samples`.

    Attributes:
        samples: (n, 1, nz, nx) float32 refined models [m/s], one per start, in the starts' order
            (the kept ones after their polish).
        misfit: (n,) float64 full-band data misfit ½‖F(v) − d‖² of each refined model.
        kept: (n,) bool, the models whose misfit after the multiscale stage was within
            ``keep_within`` of the smallest.
        mean: (1, nz, nx) mean of the kept, polished models [m/s] (the estimate).
        best: (1, nz, nx) the refined model with the smallest misfit [m/s].
        unpolished: (n, 1, nz, nx) the models after the multiscale stage, before the polish.
        start_misfit: (n,) float64 the starts' misfits, for reference.
        seconds: wall time; evaluations: batched misfit + gradient calls made.
        settings: the arguments used (JSON-serialisable).
    """

    samples: torch.Tensor
    misfit: torch.Tensor
    kept: torch.Tensor
    mean: torch.Tensor
    best: torch.Tensor
    unpolished: torch.Tensor
    start_misfit: torch.Tensor
    seconds: float
    evaluations: int
    settings: dict[str, Any] = field(default_factory=dict)


def refine_samples(
    observed: torch.Tensor,
    survey: Survey,
    starts: torch.Tensor,
    *,
    boundary: str,
    bounds: tuple[float, float],
    bands: Sequence[float | None] = DEFAULT_BANDS,
    iterations: int = 20,
    keep_within: float = DEFAULT_KEEP_WITHIN,
    polish_iterations: int = DEFAULT_POLISH_ITERATIONS,
) -> RefinedSamples:
    """Multiscale FWI from every start (batched), keep the best-fitting refinements, and polish
    them with full-band FWI.

    Args:
        observed: one set of gathers (n_sources, nt, n_receivers) or (1, …) [physical amplitude].
        survey: the modelling survey (for "pml", pin the C-PML with
            :func:`~ubdiff_phys.inversion.posterior.modelling_survey` as the posterior does).
        starts: (n, 1, nz, nx) or (n, nz, nx) starting models [m/s], e.g. posterior samples.
        boundary: boundary mode of the modelling.
        bounds: (v_min, v_max) [m/s] that the refined models stay inside.
        bands, iterations: :func:`~ubdiff_phys.inversion.multiscale.multiscale_fwi`'s (L-BFGS
            iterations per band).
        keep_within: keep the models whose misfit is ≤ this factor × the smallest (≥ 1).
        polish_iterations: full-band L-BFGS iterations on the kept models (0: none).

    Returns:
        :class:`RefinedSamples`.
    """
    if not (keep_within >= 1 and math.isfinite(keep_within)):
        raise ValueError(f"keep_within must be a finite factor >= 1, got {keep_within!r}")
    if not (isinstance(polish_iterations, int) and polish_iterations >= 0):
        raise ValueError(f"polish_iterations must be an integer >= 0, got {polish_iterations!r}")
    obs = observed[0] if observed.dim() == 4 and observed.shape[0] == 1 else observed
    if obs.dim() != 3:
        raise ValueError(f"observed must be one set of gathers (S, nt, R), got {tuple(obs.shape)}")
    v0 = starts.reshape(starts.shape[0], 1, survey.nz, survey.nx).float()
    n = v0.shape[0]
    obs_n = obs[None].expand(n, *obs.shape).contiguous().to(v0.dtype)
    t0 = time.perf_counter()
    start_misfit = misfit(v0, obs_n, survey, boundary=boundary, reduction="none")
    res = multiscale_fwi(
        obs_n, survey, v0, bands=bands, iterations=iterations, boundary=boundary, bounds=bounds
    )
    unpolished = res.velocity.float()
    f = misfit(unpolished, obs_n, survey, boundary=boundary, reduction="none")
    kept = f <= keep_within * f.min()
    v, evaluations = unpolished.clone(), res.evaluations + 2
    if polish_iterations > 0:
        idx = kept.nonzero()[:, 0]
        pol = fwi(
            obs_n[idx],
            survey,
            v[idx],
            boundary=boundary,
            iterations=polish_iterations,
            bounds=bounds,
        )
        v[idx] = pol.velocity.float()
        f = f.clone()
        f[idx] = misfit(v[idx], obs_n[idx], survey, boundary=boundary, reduction="none")
        evaluations += pol.evaluations + 1
    seconds = time.perf_counter() - t0
    settings = {
        "bands": list(bands),
        "iterations": iterations,
        "keep_within": keep_within,
        "polish_iterations": polish_iterations,
        "boundary": boundary,
        "bounds": [float(b) for b in bounds],
        "band_evaluations": res.settings["band_evaluations"],
    }
    return RefinedSamples(
        samples=v,
        misfit=f.double(),
        kept=kept,
        mean=v[kept].mean(0),
        best=v[int(f.argmin())],
        unpolished=unpolished,
        start_misfit=start_misfit.double(),
        seconds=seconds,
        evaluations=evaluations,
        settings=settings,
    )
