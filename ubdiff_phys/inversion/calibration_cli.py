"""Measure a prior's interval calibration (:mod:`~ubdiff_phys.inversion.interval_calibration`):
posterior sampling on held-out maps with known truth, then the split-conformal scale.

    ubdiff-phys calibrate-interval CHECKPOINT --store TRAIN.h5 [--n-maps 16] [--noise 0.01]
        [--latent-fit N] [--sharpen [--sharpen-...]]
    ubdiff-phys calibrate-interval VELOCITY_PRIOR --store TRAIN.h5 --sharpen --sharpen-from fwi
        [--sharpen-fwi-linear candidates] [--sharpen-...]

The maps are the store's held-out (test) rows, simulated on the prior's survey and boundary with
Gaussian noise of ``--noise`` times each record's RMS, and sampled as ``invert --method
noise_aware`` and ``examples/posterior_inversion.py`` do; the scale is stored beside the
checkpoint (``interval_calibration.json``; refused when one exists unless ``--overwrite``).
With ``--sharpen`` every posterior is sharpened as ``invert --sharpen`` does (same options and
defaults) and the scale of the sharpened posterior's predictive interval is stored as
``interval_calibration_sharpened.json``, which ``invert --sharpen`` then uses. With
``--sharpen-from fwi`` the start is :func:`~ubdiff_phys.inversion.fwi_start` (no prior), the
CHECKPOINT is the velocity-space prior that sharpens it, and the scale is stored beside that
prior as ``interval_calibration_fwi_sharpened.json``, which ``invert --sharpen --sharpen-from fwi``
uses with the same prior. Each record also holds the coverage of every map under the scale of the
other maps (``per_map_left_out``): what the scale is likely to give on new maps.

Each finished map's scores are kept in ``<record>.partial.pt`` beside the record, or in the file
``--progress`` names (e.g. outside an installed package): a run that stops (a map costs minutes
to an hour on a CPU) is resumed by the same command, and a later run with a larger ``--n-maps``
(and ``--overwrite`` for the record) samples only the new maps. A progress file of other
settings or maps is refused unless ``--overwrite`` (then it starts over).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ubdiff_phys.data.store import open_store
from ubdiff_phys.inversion.calibration_progress import (
    CalibrationProgress,
    ProgressMismatch,
    map_fingerprint,
    progress_key,
    progress_path,
)
from ubdiff_phys.inversion.cli_common import UserError
from ubdiff_phys.inversion.fwi_start import fwi_start
from ubdiff_phys.inversion.interval_calibration import (
    IntervalCalibration,
    map_scores,
    scale_from_scores,
)
from ubdiff_phys.inversion.multiscale import parse_bands
from ubdiff_phys.inversion.posterior import PosteriorResult, modelling_survey, posterior_sample
from ubdiff_phys.inversion.posterior_cli import add_noise
from ubdiff_phys.inversion.prior import load_prior
from ubdiff_phys.inversion.prior_error_cli import store_maps
from ubdiff_phys.inversion.sharpen import sharpen_samples
from ubdiff_phys.inversion.sharpen_cli import add_sharpen_options, check_sharpen_options
from ubdiff_phys.physics.forward import simulate

__all__ = ["calibrate_interval", "progress_key", "register_calibrate_interval"]


def calibrate_interval(
    prior: Any,
    velocities: torch.Tensor,
    *,
    noise: float = 0.01,
    level: float = 0.9,
    n_samples: int = 8,
    steps: int = 50,
    trust: float | None = 1.0,
    bands: Sequence[float | None] | None = None,
    full_band_from: float = 0.6,
    latent_fit: int = 0,
    sharpen: dict[str, Any] | None = None,
    fwi: dict[str, Any] | None = None,
    seed: int = 0,
    keep_best_of: int | None = None,
    source: str = "held-out maps",
    report: Callable[[int, PosteriorResult, float], None] | None = None,
    progress: Path | None = None,
    restart_on_mismatch: bool = False,
) -> tuple[IntervalCalibration, list[PosteriorResult | None]]:
    """Sample the noise-aware posterior of every map and measure the interval's scale.

    Args:
        prior: a :class:`~ubdiff_phys.inversion.prior.LatentPrior` or ``VelocityPrior`` with a
            survey and boundary (its training data's).
        velocities: (M, 1, nz, nx) true maps [m/s] the prior did not train on.
        noise: data noise as a fraction of each record's RMS; level: the interval's level.
        n_samples, steps, trust, bands, full_band_from: :func:`~ubdiff_phys.inversion.
            posterior_sample`'s settings (a scale holds for the sampler it was measured with).
        latent_fit: ``posterior_sample``'s latent_fit (latent priors only).
        sharpen: None, or keyword arguments of :func:`~ubdiff_phys.inversion.sharpen_samples`
            (``prior``, ``t_start``, ...): every posterior is sharpened (seeded
            ``seed * 1_000_003 + k + 7``, as ``invert --sharpen`` seeds row k) and the scale is
            that of the sharpened posterior's predictive interval.
        fwi: None, or keyword arguments of :func:`~ubdiff_phys.inversion.fwi_start`
            (``linear``, ``iterations``, ``polish_iterations``): the start is FWI from a linear
            model instead of the prior's posterior (needs ``sharpen``; ``prior`` is then the
            velocity-space prior whose bounds the FWI keeps, normally ``sharpen["prior"]``).
        seed: seeds the noise (``seed * 1_000_003 + k`` for map k) and the sampler (``seed + k``).
        keep_best_of: ``posterior_sample``'s keep_best_of (latent start only; None: not used,
            and not part of the settings, so runs without it keep their progress files).
        source: what the maps are (recorded).
        report: called after each map sampled with (k, its result, its base-interval coverage).
        progress: None, or a file (:mod:`~ubdiff_phys.inversion.calibration_progress`) that keeps
            each finished map's scores: maps it already holds for these settings and these maps
            (in order) are not sampled again; the rest are added as they finish.
        restart_on_mismatch: a ``progress`` file of another run is ignored and replaced instead
            of raising :class:`~ubdiff_phys.inversion.calibration_progress.ProgressMismatch`.

    Returns:
        (the calibration, with ``source`` and ``settings`` filled (``seconds``: all maps', those
        of an earlier run included); the posterior result of each map, None for a map taken
        from ``progress``).
    """
    if prior.survey is None:
        raise ValueError("the prior records no survey: cannot simulate calibration data")
    if velocities.dim() != 4 or velocities.shape[1] != 1 or velocities.shape[0] < 1:
        raise ValueError(f"velocities must be (M, 1, nz, nx), got {tuple(velocities.shape)}")
    if fwi is not None and sharpen is None:
        raise ValueError("an FWI start is calibrated sharpened: pass sharpen")
    if fwi is not None and keep_best_of is not None:
        raise ValueError("keep_best_of selects latent posterior draws: not with an FWI start")
    key = progress_key(
        prior, noise=noise, level=level, n_samples=n_samples, steps=steps, trust=trust,
        bands=bands, full_band_from=full_band_from, latent_fit=latent_fit, sharpen=sharpen,
        fwi=fwi, seed=seed, keep_best_of=keep_best_of,
    )  # fmt: skip
    sampler, base = key["sampler"], key["base"]
    fingerprints = [map_fingerprint(velocities[k].float()) for k in range(velocities.shape[0])]
    try:
        done = CalibrationProgress.open(progress, key, fingerprints)
    except ProgressMismatch:
        if not restart_on_mismatch:
            raise
        done = CalibrationProgress.open(progress, key, fingerprints, restart=True)
    results: list[PosteriorResult | None] = [None] * len(done.maps)
    for k in range(len(done.maps), velocities.shape[0]):
        t0 = time.perf_counter()
        truth = velocities[k : k + 1].float()
        res = _one_map(prior, truth, noise, sampler, sharpen, fwi, seed, k)
        results.append(res)
        scores = map_scores(res, truth[0], level, base)
        cov = float((scores <= 1).double().mean())
        entry = {"map": fingerprints[k], "scores": scores, "settings": res.settings}
        done.add(entry | {"coverage": cov, "seconds": time.perf_counter() - t0})
        if report is not None:
            report(k, res, cov)
    cal = scale_from_scores([m["scores"] for m in done.maps], level, base)
    seconds = sum(m["seconds"] for m in done.maps)
    settings = _settings(done.maps[0]["settings"], noise, sampler, fwi, seed, seconds)
    return dataclasses.replace(cal, source=source, settings=settings), results


def _one_map(
    prior: Any,
    truth: torch.Tensor,
    noise: float,
    sampler: dict[str, Any],
    sharpen: dict[str, Any] | None,
    fwi: dict[str, Any] | None,
    seed: int,
    k: int,
) -> PosteriorResult:
    """Map ``k`` (``truth`` (1, 1, nz, nx) m/s): simulated, noised, started, sharpened."""
    msurvey = modelling_survey(prior.survey, prior.boundary, prior.bounds[1])
    clean = simulate(truth, prior.survey, boundary=prior.boundary).float()[0]
    obs, sigma = add_noise(clean, noise, seed=seed * 1_000_003 + k)
    res = _start(prior, obs, msurvey, sigma, fwi, sampler, seed + k)
    if sharpen is not None:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + k + 7)
        res = sharpen_samples(res, obs, msurvey, generator=gen, **sharpen)
    return res


def _start(
    prior: Any,
    obs: torch.Tensor,
    msurvey: Any,
    sigma: float,
    fwi: dict[str, Any] | None,
    sampler: dict[str, Any],
    seed: int,
) -> PosteriorResult:
    """One map's start: the noise-aware posterior of ``prior``, or (``fwi``) fwi_start."""
    if fwi is not None:
        return fwi_start(
            obs,
            msurvey,
            boundary=prior.boundary,
            bounds=prior.bounds,
            n_samples=sampler["n_samples"],
            noise_std=sigma,
            **fwi,
        )
    return posterior_sample(
        obs,
        msurvey,
        boundary=prior.boundary,
        prior=prior,
        noise_std=sigma,
        method="noise_aware",
        generator=torch.Generator().manual_seed(seed),
        **sampler,
    )


def _settings(
    first: dict[str, Any],
    noise: float,
    sampler: dict[str, Any],
    fwi: dict[str, Any] | None,
    seed: int,
    seconds: float,
) -> dict[str, Any]:
    """The calibration's settings, keyed as the posterior's own (so that ``differs_from``
    compares them): the sampler's, or the FWI start's; the sharpening's as recorded in the first
    map's posterior settings ``first``."""
    settings: dict[str, Any] = {"method": "noise_aware", "noise": noise}
    if fwi is None:
        settings |= {k: sampler[k] for k in ("n_samples", "steps", "trust", "latent_fit")}
        settings |= {k: sampler[k] for k in ("keep_best_of",) if k in sampler}
        if sampler["bands"] is not None:  # as posterior_sample records them
            settings["bands"] = list(sampler["bands"])
            settings["full_band_from"] = sampler["full_band_from"]
    else:
        start = first
        starts = start.get("linear_candidates", [start["linear"]])
        settings |= {"method": "fwi_start", "n_samples": sampler["n_samples"]}
        settings |= {"linear_candidates": [list(p) for p in starts]}
        settings |= {k: start[k] for k in ("iterations", "polish_iterations")}
        settings |= {k: start[k] for k in ("pool_top", "pool_max_ratio") if k in start}
    settings |= {"seed": seed, "seconds": round(seconds, 1)}
    if "sharpen" in first:
        settings["sharpen"] = first["sharpen"]
    return settings


def register_calibrate_interval(sub: argparse._SubParsersAction) -> None:
    """``ubdiff-phys calibrate-interval CHECKPOINT --store TRAIN.h5``."""
    p = sub.add_parser(
        "calibrate-interval",
        help="measure the scale that makes a prior's 90 %% posterior interval hold the true "
        "map on held-out maps (split conformal)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="UB-Diff checkpoint folder or diffusion run")
    p.add_argument("--store", type=Path, required=True, help="the prior's training store (HDF5)")
    p.add_argument("--n-maps", type=int, default=16, help="held-out rows used (default 16)")
    p.add_argument("--skip", type=int, default=0, help="held-out rows skipped first (default 0)")
    p.add_argument("--noise", type=float, default=0.01, help="fraction of the RMS (default 0.01)")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--n-samples", type=int, default=8, help="posterior samples per map (8)")
    p.add_argument("--steps", type=int, default=50, help="reverse-diffusion steps (default 50)")
    p.add_argument(
        "--bands",
        help="the sampler's band-scheduled likelihood (as invert --bands), e.g. "
        "3,4,5,6,8,10,12,full",
    )
    p.add_argument("--full-band-from", type=float, default=0.6, help="with --bands (0.6)")
    p.add_argument(
        "--latent-fit", type=int, default=0, help="posterior_sample's latent_fit (default 0)"
    )
    p.add_argument(
        "--keep-best-of",
        type=int,
        default=None,
        metavar="M",
        help="posterior_sample's keep_best_of: draw M per map, keep the --n-samples of smallest "
        "misfit (as invert --keep-best-of; latent start only)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--progress",
        type=Path,
        help="the file that keeps each finished map's scores, so that the run resumes "
        "(default: <record>.partial.pt beside the record)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a stored calibration (and a progress file of other settings)",
    )
    add_sharpen_options(p)
    p.set_defaults(func=_calibrate, device="cpu")


def _check(args: argparse.Namespace) -> None:
    if args.n_maps < 1 or args.skip < 0 or args.n_samples < 2 or args.steps < 1:
        raise UserError("--n-maps and --steps must be >= 1, --n-samples >= 2, --skip >= 0")
    if args.latent_fit < 0:
        raise UserError(f"--latent-fit must be >= 0, got {args.latent_fit}")
    if args.keep_best_of is not None and args.keep_best_of < args.n_samples:
        raise UserError(f"--keep-best-of must be >= --n-samples, got {args.keep_best_of}")
    if args.keep_best_of is not None and args.sharpen_from == "fwi":
        raise UserError("--keep-best-of selects latent posterior draws: not with an FWI start")
    if not 0 < args.level < 1:
        raise UserError(f"--level must be in (0, 1), got {args.level}")
    if not 0 < args.noise < float("inf"):
        raise UserError(f"--noise must be positive and finite, got {args.noise}")
    if not args.store.is_file():
        raise UserError(f"--store {str(args.store)!r} not found")
    if args.progress is not None and not args.progress.parent.is_dir():
        raise UserError(f"--progress: folder {str(args.progress.parent)!r} not found")
    if not 0 <= args.full_band_from <= 1:
        raise UserError(f"--full-band-from must be in [0, 1], got {args.full_band_from}")
    if args.sharpen_from == "fwi":  # the only prior is the one that sharpens: CHECKPOINT
        if args.sharpen_checkpoint not in (None, args.checkpoint):
            raise UserError(
                "with --sharpen-from fwi the CHECKPOINT is the velocity-space prior that "
                "sharpens: drop --sharpen-checkpoint"
            )
        args.sharpen_checkpoint = args.checkpoint
    try:
        args.likelihood_bands = None if args.bands is None else parse_bands(args.bands)
    except ValueError as exc:
        raise UserError(f"--bands: {exc}") from None
    check_sharpen_options(args)


def _sharpen_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    """``calibrate_interval``'s ``sharpen`` from the options (None without ``--sharpen``)."""
    if not args.sharpen:
        return None
    kwargs = {
        "prior": args.sharpen_prior,
        "t_start": args.sharpen_t_start,
        "steps": args.sharpen_steps,
        "inner": args.sharpen_inner,
        "bands": args.sharpen_band_list,
        "resample_at": args.sharpen_resample_list,
    }
    if args.sharpen_resample_groups != 1:  # only when used: earlier progress keys stay valid
        kwargs["resample_groups"] = args.sharpen_resample_groups
    return kwargs


def _fwi_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    """``calibrate_interval``'s ``fwi`` from the options (None unless ``--sharpen-from fwi``)."""
    if args.sharpen_from != "fwi":
        return None
    fwi = {
        "linear": args.sharpen_fwi_linear_starts,
        "iterations": args.sharpen_fwi_iterations,
        "polish_iterations": args.sharpen_fwi_polish,
    }
    if args.sharpen_fwi_pool > 1:  # absent for the single start: earlier progress files match
        fwi |= {"pool": args.sharpen_fwi_pool, "pool_max_ratio": args.sharpen_fwi_pool_max_ratio}
    return fwi


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`calibrate_interval`'s (and :func:`progress_key`'s) settings from the checked
    options of ``calibrate-interval`` (the sampler's trust stays 1, as ``invert`` samples)."""
    return {
        "noise": args.noise,
        "level": args.level,
        "n_samples": args.n_samples,
        "steps": args.steps,
        "trust": 1.0,
        "bands": args.likelihood_bands,
        "full_band_from": args.full_band_from,
        "latent_fit": args.latent_fit,
        "keep_best_of": args.keep_best_of,
        "sharpen": _sharpen_kwargs(args),
        "fwi": _fwi_kwargs(args),
        "seed": args.seed,
    }


def _calibrate(args: argparse.Namespace) -> int:
    _check(args)
    fwi = args.sharpen_from == "fwi"
    try:
        prior = args.sharpen_prior if fwi else load_prior(args.checkpoint)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"cannot load the prior: {exc}") from None
    path = prior.interval_calibration_path
    if args.sharpen:
        path = prior.sharpened_interval_calibration_path
    pooled = fwi and args.sharpen_fwi_pool > 1  # pooled chains keep a scale of their own
    if fwi:
        path = prior.fwi_sharpened_interval_calibration_path
    if pooled:
        path = prior.fwi_pooled_interval_calibration_path
    if path.exists() and not args.overwrite:
        raise UserError(f"{path} exists: pass --overwrite to replace it")
    partial = progress_path(path) if args.progress is None else args.progress
    if partial.resolve() == path.resolve():
        raise UserError(f"--progress {str(partial)!r} is the calibration record itself")
    with open_store(args.store) as st:
        rows = st.test_index[args.skip : args.skip + args.n_maps]
        if len(rows) < args.n_maps:
            raise UserError(
                f"{str(args.store)!r} has {len(st.test_index)} held-out rows, fewer than "
                f"--skip + --n-maps = {args.skip + args.n_maps}"
            )
        v = store_maps(st, rows)

    def report(k: int, res: PosteriorResult, cov: float) -> None:
        print(f"calibrate-interval: map {k + 1}/{args.n_maps}: base coverage {cov:.3f}", flush=True)

    if partial.is_file():
        print(f"calibrate-interval: maps finished earlier are taken from {partial}", flush=True)
    source = f"held-out store rows {args.skip}..{args.skip + args.n_maps - 1} of {args.store.name}"
    try:
        cal, _ = calibrate_interval(
            prior,
            v,
            **run_settings(args),
            source=source,
            report=report,
            progress=partial,
            restart_on_mismatch=args.overwrite,
        )
    except ProgressMismatch as exc:
        raise UserError(f"{exc}: pass --overwrite to start over") from None
    except ValueError as exc:  # e.g. too few pixels with a finite score: nothing is written
        raise UserError(str(exc)) from None
    prior.save_interval_calibration(cal, sharpened=args.sharpen, fwi_start=fwi, pooled=pooled)
    held = ""
    if cal.coverage_left_out is not None:
        held = f"; {cal.coverage_left_out:.3f} on each map under the other maps' scale"
    print(
        f"calibrate-interval: wrote {path}: scale {cal.scale:.4g} on "
        f"the {cal.base} interval (its coverage on these maps {cal.coverage_before:.3f} -> "
        f"{cal.level}{held})"
    )
    return 0
