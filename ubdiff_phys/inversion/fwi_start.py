"""A deterministic start for the velocity-space posterior: multiscale FWI from a 1-D linear model.

:func:`~ubdiff_phys.inversion.sharpen_samples` runs the velocity prior's posterior sampler from
``t_start`` down, starting from a :class:`~ubdiff_phys.inversion.PosteriorResult`'s samples; the
start fixes the long wavelengths the sampler keeps. From the latent posterior's samples this is the
prior's guess, which on some maps lies in a wrong basin no step of the sharpening leaves (CurveVel-A
maps whose deep layers the latent samples put 600–1,000 m/s too slow). Here the start is the data's
own: multiscale FWI (:func:`~ubdiff_phys.inversion.refine.refine_samples`, bands 3 … 12 Hz then the
full band, 20 L-BFGS iterations each, 120 full-band polish iterations) from a model increasing
linearly with depth, no prior and no truth. Its ``n_samples`` copies are the start; the prior's
noise at ``t_start`` makes the chains differ. Measured (docs/posterior_sampling.md, "Sharpening from
FWI"): on three CurveVel-A maps at 1 % noise the sharpened posterior mean from this start scores
SSIM 0.879 against 0.738 from the latent samples, but on three FlatVel-A maps 0.881 against 0.958:
neither start is better everywhere. :func:`pooled_start` puts several starts in one population of
chains for the sharpening's misfit resampling to choose between; ``fwi_start(..., pool=K)`` does so
with its own candidates: the chains split over the K best FWIs within ``pool_max_ratio`` × the best
misfit (:func:`pool_members`), because the smallest misfit alone often keeps a wrong basin (9 of 12
CurveVel-A probe maps at 1 % noise: a second candidate within 1.2× of the best misfit, their MAEs
2–5× apart). Measured on those 12 maps (docs/posterior_sampling.md, "Pooled FWI starts"):
uncalibrated coverage 0.59 → 0.74, but MAE 152 → 148 m/s and SSIM 0.842 → 0.834: the resampling
cannot tell the basins apart, so it is off by default.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ubdiff_phys.inversion.posterior import (
    PosteriorResult,
    _noise_std,
    _observed,
    _stable_modelling,
)
from ubdiff_phys.inversion.refine import DEFAULT_POLISH_ITERATIONS, refine_samples
from ubdiff_phys.physics.survey import Survey

__all__ = [
    "DEFAULT_LINEAR_START",
    "LINEAR_CANDIDATES",
    "fwi_start",
    "linear_model",
    "parse_linear_starts",
    "pool_basins",
    "pool_members",
    "pooled_start",
]

#: (top, bottom) [m/s] of the linear start: the probes' choice for the OpenFWI families
DEFAULT_LINEAR_START = (2000.0, 4000.0)
#: candidate linear starts (top, bottom) [m/s] for ``fwi_start(linear=LINEAR_CANDIDATES)``, which
#: keeps the FWI with the smallest data misfit; fixed before any was run on the evaluation maps
LINEAR_CANDIDATES = (
    (2000.0, 4000.0),
    (1500.0, 3500.0),
    (2500.0, 4500.0),
    (1500.0, 4500.0),
    (2000.0, 3000.0),
    (3000.0, 3000.0),
)


def linear_model(survey: Survey, top: float, bottom: float) -> torch.Tensor:
    """(1, 1, nz, nx) float32 model [m/s] rising linearly from ``top`` (row 0) to ``bottom``
    (the last row), constant along each row."""
    col = torch.linspace(top, bottom, survey.nz, dtype=torch.float32)
    return col[:, None].expand(survey.nz, survey.nx)[None, None].contiguous()


def fwi_start(
    observed: torch.Tensor,
    survey: Survey,
    *,
    boundary: str,
    bounds: tuple[float, float],
    n_samples: int = 8,
    noise_std: float | None = None,
    linear: tuple[float, float] | Sequence[tuple[float, float]] = DEFAULT_LINEAR_START,
    iterations: int = 20,
    polish_iterations: int = DEFAULT_POLISH_ITERATIONS,
    pool: int = 1,
    pool_max_ratio: float = 2.0,
) -> PosteriorResult:
    """Multiscale FWI from a linear model, as a start for
    :func:`~ubdiff_phys.inversion.sharpen_samples`.

    Args:
        observed: (S, nt, R) or (1, S, nt, R) observed gathers [physical amplitude].
        survey: their geometry (modelled as ``posterior_sample`` does: the C-PML pinned at
            ``bounds[1]`` for "pml").
        boundary: modelling boundary; bounds: (v_min, v_max) [m/s] the FWI stays inside (the
            velocity prior's ``bounds``).
        n_samples: copies of the inverted model in the result (the sharpening's chains).
        noise_std: σ_d [amplitude] recorded for the sharpening; None: 1 % of the RMS of
            ``observed``.
        linear: (top, bottom) [m/s] of the starting model, inside ``bounds``; or a sequence of
            such pairs (e.g. :data:`LINEAR_CANDIDATES`): the FWI runs from each (one at a time:
            a batched L-BFGS would share its line search) and the one with the smallest
            full-band misfit is kept. No truth is used: the data choose the start.
        iterations, polish_iterations: L-BFGS iterations per band and full-band ones after
            (:func:`~ubdiff_phys.inversion.refine.refine_samples`).
        pool: with several candidates, split the chains over the ``pool`` best FWIs whose
            misfit is at most ``pool_max_ratio`` × the smallest (:func:`pool_members`; 1: all
            chains from the best, as without it). The sharpening's misfit resampling then
            chooses between their basins.

    Returns:
        a :class:`~ubdiff_phys.inversion.PosteriorResult` whose ``samples`` are ``n_samples``
        copies of the inverted model (``std`` zero), ``misfit`` its misfit, ``settings``
        ``{"method": "fwi_start", "n_samples", "noise_std", "boundary", "linear" (the kept start),
        "iterations", "polish_iterations"}`` (with several candidates also
        ``"linear_candidates"`` and each one's ``"candidate_misfits"`` ½‖F(v) − d‖²) and no
        interval calibration: sharpen it before reading an interval. With ``pool`` > 1 the
        samples are the pooled FWIs' copies in misfit order (``mean`` / ``std`` theirs, each
        sample's own ``misfit``) and ``settings`` also hold ``"pool_top"``, ``"pool_max_ratio"``,
        ``"pool"`` (the starts kept, best first) and ``"pool_sizes"`` (chains each).
    """
    lo, hi = (float(b) for b in bounds)
    candidates = _linear_candidates(linear, lo, hi)
    _check_counts(n_samples, iterations, pool, pool_max_ratio)
    survey = _stable_modelling(survey, boundary, hi)
    obs = _observed(observed, survey)
    noise_std = _noise_std(obs, noise_std)
    t0 = time.perf_counter()
    refined = [
        refine_samples(
            obs,
            survey,
            linear_model(survey, top, bottom),
            boundary=boundary,
            bounds=(lo, hi),
            iterations=iterations,
            polish_iterations=polish_iterations,
        )  # fmt: skip
        for top, bottom in candidates
    ]
    misfits = [float(r.misfit[0]) for r in refined]
    kept, sizes = pool_members(misfits, pool, pool_max_ratio, n_samples)
    best = kept[0]
    v = refined[best].samples[0]
    settings = {
        "method": "fwi_start",
        "n_samples": n_samples,
        "noise_std": noise_std,
        "boundary": boundary,
        "linear": list(candidates[best]),
        "iterations": iterations,
        "polish_iterations": polish_iterations,
    }
    if len(candidates) > 1:
        settings["linear_candidates"] = [list(c) for c in candidates]
        settings["candidate_misfits"] = misfits
    if pool > 1:
        settings |= {"pool_top": pool, "pool_max_ratio": float(pool_max_ratio)}
        settings |= {"pool": [list(candidates[i]) for i in kept], "pool_sizes": sizes}
    members = list(zip(kept, sizes, strict=True))
    samples = torch.cat([refined[i].samples[:1].expand(c, *v.shape) for i, c in members])
    return PosteriorResult(
        samples=samples.contiguous(),
        mean=v.clone() if len(kept) == 1 else samples.mean(0),
        std=torch.zeros_like(v) if len(kept) == 1 else samples.std(0),
        misfit=torch.cat([refined[i].misfit[:1].expand(c) for i, c in members]),
        noise_misfit=0.5 * obs.numel() * noise_std**2,
        seconds=time.perf_counter() - t0,
        solver_calls=sum(r.evaluations for r in refined),
        settings=settings,
    )


def pool_members(
    misfits: Sequence[float], top: int, max_ratio: float, n: int
) -> tuple[list[int], list[int]]:
    """Which candidate FWIs the ``n`` chains start from, and how many chains each.

    The candidates are ranked by misfit; those above ``max_ratio`` × the smallest are dropped
    and at most ``min(top, n)`` kept. The chains are split as evenly as possible, the better
    candidates first (8 over 3: 3, 3, 2).

    Returns:
        (indices into ``misfits``, best first; chains per index), the chains summing to ``n``.
    """
    order = sorted(range(len(misfits)), key=misfits.__getitem__)
    best = misfits[order[0]]
    kept = [i for i in order if misfits[i] <= max_ratio * best][: min(top, n)]
    return kept, [n // len(kept) + (j < n % len(kept)) for j in range(len(kept))]


def pool_basins(result: PosteriorResult) -> list[dict] | None:
    """Which pooled FWI start each sample of a sharpened pooled result descends from.

    The sharpening's misfit resampling copies some chains and drops others, so the starts'
    shares of the final samples are the data's choice between their basins (chance where the
    misfits are close: docs/posterior_sampling.md, "Pooled FWI starts").

    Args:
        result: :func:`fwi_start` with ``pool`` > 1, then
            :func:`~ubdiff_phys.inversion.sharpen_samples` (its ``settings`` hold ``"pool"``,
            ``"pool_sizes"`` and ``"sharpen_lineage"``).

    Returns:
        one dict per pooled start, best first: ``"linear"`` (top, bottom) [m/s], ``"chains"``
        started from it, ``"samples"`` descending from it, their ``"misfit_median_over_noise"``
        (the samples' data misfit / the noise level; None without samples) and ``"mean"`` (nz,
        nx) velocity [m/s] of its samples (None without samples); None for a result that was
        not pooled or not sharpened.
    """
    settings = result.settings
    if "pool" not in settings or "sharpen_lineage" not in settings:
        return None
    start_of_chain = torch.repeat_interleave(
        torch.arange(len(settings["pool_sizes"])), torch.tensor(settings["pool_sizes"])
    )
    start = start_of_chain[torch.tensor(settings["sharpen_lineage"])]
    basins = []
    members = zip(settings["pool"], settings["pool_sizes"], strict=True)
    for j, (linear, chains) in enumerate(members):
        mine = start == j
        k = int(mine.sum())
        fit = float(result.misfit[mine].median()) / result.noise_misfit if k else None
        mean = result.samples[mine].float().mean(0)[0] if k else None
        basins.append({"linear": list(linear), "chains": int(chains), "samples": k})
        basins[-1] |= {"misfit_median_over_noise": fit, "mean": mean}
    return basins


def parse_linear_starts(text: str) -> tuple[tuple[float, float], ...]:
    """The linear starts of a command-line option: ``"candidates"`` for
    :data:`LINEAR_CANDIDATES`, else comma-separated ``TOP:BOTTOM`` pairs [m/s]
    (``"2000:4000"``, ``"2000:4000,2000:3000"``); ValueError for anything else."""
    if text.strip().lower() == "candidates":
        return LINEAR_CANDIDATES
    try:
        pairs = tuple(
            (float(a), float(b))
            for a, b in (item.split(":") for item in text.split(","))  # ValueError on a bad pair
        )
    except ValueError:
        raise ValueError(
            f"expected 'candidates' or TOP:BOTTOM pairs in m/s, comma-separated, got {text!r}"
        ) from None
    return pairs


def _check_counts(n_samples: int, iterations: int, pool: int, pool_max_ratio: float) -> None:
    """ValueError unless ``fwi_start``'s counts are integers >= 1 and the pool ratio >= 1."""
    for name, value in (("n_samples", n_samples), ("iterations", iterations), ("pool", pool)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not pool_max_ratio >= 1.0:
        raise ValueError(f"pool_max_ratio must be >= 1, got {pool_max_ratio!r}")


def _linear_candidates(linear, lo: float, hi: float) -> list[tuple[float, float]]:
    """``fwi_start``'s ``linear`` as a list of (top, bottom) pairs [m/s] inside [lo, hi]
    (ValueError otherwise)."""
    pairs = [linear] if len(linear) == 2 and not isinstance(linear[0], Sequence) else linear
    out = []
    for pair in pairs:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"a linear start is a (top, bottom) pair [m/s], got {pair!r}")
        top, bottom = (float(x) for x in pair)
        if not (lo <= top <= hi and lo <= bottom <= hi):
            raise ValueError(f"linear start {pair!r} must lie inside bounds {(lo, hi)!r} [m/s]")
        out.append((top, bottom))
    if not out:
        raise ValueError("linear must hold at least one (top, bottom) pair")
    return out


def pooled_start(*starts: PosteriorResult) -> PosteriorResult:
    """One population of sharpening chains from several starts for the same observed data.

    :func:`~ubdiff_phys.inversion.sharpen_samples` resamples its chains by their data misfit
    (tempered to half the effective sample size) during the reverse steps, so chains started in a
    basin that cannot explain the data are replaced by copies of those that can: pooling the latent
    posterior's samples with :func:`fwi_start`'s copies lets the data choose the start per map, at
    the cost of the chains each start gets. Measured (docs/posterior_sampling.md): on three
    FlatVel-A maps at 1 % noise the sharpened mean from the latent posterior pooled with the FWI
    start (4 + 4 chains) scores SSIM 0.872, below either start alone (0.958 latent, 0.881 FWI):
    where both starts fit the data near the noise level the misfit cannot choose between them.

    Args:
        starts: two or more results for the same data (same ``noise_std`` and ``boundary`` in
            their settings, same ``noise_misfit``), samples (n_i, 1, nz, nx) [m/s].

    Returns:
        a :class:`~ubdiff_phys.inversion.PosteriorResult` whose ``samples`` are the starts'
        samples in order (Σ n_i of them), ``mean`` / ``std`` / ``misfit`` those of the pool,
        ``seconds`` and ``solver_calls`` the sums, ``settings`` ``{"method": "pooled",
        "noise_std", "boundary", "starts": [each start's settings], "sizes": [n_i]}`` and no
        decoder error or calibration.
    """
    if len(starts) < 2:
        raise ValueError(f"pooled_start needs at least two starts, got {len(starts)}")
    first = starts[0]
    for s in starts[1:]:
        for key in ("noise_std", "boundary"):
            if s.settings.get(key) != first.settings.get(key):
                raise ValueError(
                    f"starts disagree on {key}: {first.settings.get(key)!r} and "
                    f"{s.settings.get(key)!r} (pool starts for the same data and modelling)"
                )
        if s.samples.shape[1:] != first.samples.shape[1:]:
            raise ValueError(
                f"starts disagree on the model shape: {tuple(first.samples.shape[1:])} and "
                f"{tuple(s.samples.shape[1:])}"
            )
        if abs(s.noise_misfit - first.noise_misfit) > 1e-9 * abs(first.noise_misfit):
            raise ValueError("starts disagree on noise_misfit: they were made for other data")
    v = torch.cat([s.samples.float() for s in starts])
    return PosteriorResult(
        samples=v,
        mean=v.mean(0),
        std=v.std(0),
        misfit=torch.cat([s.misfit.double() for s in starts]),
        noise_misfit=first.noise_misfit,
        seconds=sum(s.seconds for s in starts),
        solver_calls=sum(s.solver_calls for s in starts),
        settings={
            "method": "pooled",
            "noise_std": first.settings["noise_std"],
            "boundary": first.settings["boundary"],
            "starts": [s.settings for s in starts],
            "sizes": [int(s.samples.shape[0]) for s in starts],
        },
    )
