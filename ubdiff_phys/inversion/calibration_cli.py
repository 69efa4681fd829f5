"""Measure a prior's interval calibration (:mod:`~ubdiff_phys.inversion.interval_calibration`):
posterior sampling on held-out maps with known truth, then the split-conformal scale.

    ubdiff-phys calibrate-interval CHECKPOINT --store TRAIN.h5 [--n-maps 16] [--noise 0.01]
        [--latent-fit N] [--sharpen [--sharpen-...]]

The maps are the store's held-out (test) rows, simulated on the prior's survey and boundary with
Gaussian noise of ``--noise`` times each record's RMS, and sampled as ``invert --method
noise_aware`` and ``examples/posterior_inversion.py`` do; the scale is stored beside the
checkpoint (``interval_calibration.json``; refused when one exists unless ``--overwrite``).
With ``--sharpen`` every posterior is sharpened as ``invert --sharpen`` does (same options and
defaults) and the scale of the sharpened posterior's predictive interval is stored as
``interval_calibration_sharpened.json``, which ``invert --sharpen`` then uses.
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
from ubdiff_phys.inversion.cli_common import UserError
from ubdiff_phys.inversion.interval_calibration import IntervalCalibration, conformal_scale
from ubdiff_phys.inversion.multiscale import parse_bands
from ubdiff_phys.inversion.posterior import PosteriorResult, modelling_survey, posterior_sample
from ubdiff_phys.inversion.posterior_cli import add_noise
from ubdiff_phys.inversion.prior import load_prior
from ubdiff_phys.inversion.prior_error_cli import store_maps
from ubdiff_phys.inversion.sharpen import sharpen_samples
from ubdiff_phys.inversion.sharpen_cli import add_sharpen_options, check_sharpen_options
from ubdiff_phys.physics.forward import simulate

__all__ = ["calibrate_interval", "register_calibrate_interval"]


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
    seed: int = 0,
    source: str = "held-out maps",
    report: Callable[[int, PosteriorResult, float], None] | None = None,
) -> tuple[IntervalCalibration, list[PosteriorResult]]:
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
        seed: seeds the noise (``seed * 1_000_003 + k`` for map k) and the sampler (``seed + k``).
        source: what the maps are (recorded).
        report: called after each map with (k, its result, its base-interval coverage).

    Returns:
        (the calibration, with ``source`` and ``settings`` filled; the posterior results).
    """
    if prior.survey is None:
        raise ValueError("the prior records no survey: cannot simulate calibration data")
    if velocities.dim() != 4 or velocities.shape[1] != 1 or velocities.shape[0] < 1:
        raise ValueError(f"velocities must be (M, 1, nz, nx), got {tuple(velocities.shape)}")
    base = "predictive" if prior.decoder_error is None or sharpen else "approximation"
    msurvey = modelling_survey(prior.survey, prior.boundary, prior.bounds[1])
    results, truths = [], []
    t0 = time.perf_counter()
    for k in range(velocities.shape[0]):
        truth = velocities[k : k + 1].float()
        clean = simulate(truth, prior.survey, boundary=prior.boundary).float()[0]
        obs, sigma = add_noise(clean, noise, seed=seed * 1_000_003 + k)
        res = posterior_sample(
            obs,
            msurvey,
            boundary=prior.boundary,
            prior=prior,
            n_samples=n_samples,
            noise_std=sigma,
            steps=steps,
            method="noise_aware",
            trust=trust,
            bands=bands,
            full_band_from=full_band_from,
            latent_fit=latent_fit,
            generator=torch.Generator().manual_seed(seed + k),
        )
        if sharpen is not None:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + k + 7)
            res = sharpen_samples(res, obs, msurvey, generator=gen, **sharpen)
        results.append(res)
        truths.append(truth[0])
        if report is not None:
            report(k, res, res.coverage(truth[0], level, kind=base))
    cal = conformal_scale(results, truths, level, base)
    settings = {"method": "noise_aware", "noise": noise, "n_samples": n_samples, "steps": steps}
    settings |= {"trust": trust, "seed": seed, "seconds": round(time.perf_counter() - t0, 1)}
    settings |= {"latent_fit": latent_fit}
    if sharpen is not None:  # as sharpen_samples records it
        settings["sharpen"] = results[0].settings["sharpen"]
    if bands is not None:  # as posterior_sample records them, so that differs_from compares
        settings |= {"bands": list(bands), "full_band_from": full_band_from}
    return dataclasses.replace(cal, source=source, settings=settings), results


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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a stored calibration")
    add_sharpen_options(p, starts=False)
    p.set_defaults(func=_calibrate, device="cpu")


def _check(args: argparse.Namespace) -> None:
    if args.n_maps < 1 or args.skip < 0 or args.n_samples < 2 or args.steps < 1:
        raise UserError("--n-maps and --steps must be >= 1, --n-samples >= 2, --skip >= 0")
    if args.latent_fit < 0:
        raise UserError(f"--latent-fit must be >= 0, got {args.latent_fit}")
    if not 0 < args.level < 1:
        raise UserError(f"--level must be in (0, 1), got {args.level}")
    if not 0 < args.noise < float("inf"):
        raise UserError(f"--noise must be positive and finite, got {args.noise}")
    if not args.store.is_file():
        raise UserError(f"--store {str(args.store)!r} not found")
    if not 0 <= args.full_band_from <= 1:
        raise UserError(f"--full-band-from must be in [0, 1], got {args.full_band_from}")
    try:
        args.likelihood_bands = None if args.bands is None else parse_bands(args.bands)
    except ValueError as exc:
        raise UserError(f"--bands: {exc}") from None
    check_sharpen_options(args)


def _sharpen_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    """``calibrate_interval``'s ``sharpen`` from the options (None without ``--sharpen``)."""
    if not args.sharpen:
        return None
    return {
        "prior": args.sharpen_prior,
        "t_start": args.sharpen_t_start,
        "steps": args.sharpen_steps,
        "inner": args.sharpen_inner,
        "bands": args.sharpen_band_list,
        "resample_at": args.sharpen_resample_list,
    }


def _calibrate(args: argparse.Namespace) -> int:
    _check(args)
    try:
        prior = load_prior(args.checkpoint)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"cannot load the prior: {exc}") from None
    path = prior.interval_calibration_path
    if args.sharpen:
        path = prior.sharpened_interval_calibration_path
    if path.exists() and not args.overwrite:
        raise UserError(f"{path} exists: pass --overwrite to replace it")
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

    source = f"held-out store rows {args.skip}..{args.skip + args.n_maps - 1} of {args.store.name}"
    try:
        cal, _ = calibrate_interval(
            prior,
            v,
            noise=args.noise,
            level=args.level,
            n_samples=args.n_samples,
            steps=args.steps,
            bands=args.likelihood_bands,
            full_band_from=args.full_band_from,
            latent_fit=args.latent_fit,
            sharpen=_sharpen_kwargs(args),
            seed=args.seed,
            source=source,
            report=report,
        )
    except ValueError as exc:  # e.g. too few pixels with a finite score: nothing is written
        raise UserError(str(exc)) from None
    prior.save_interval_calibration(cal, sharpened=args.sharpen)
    print(
        f"calibrate-interval: wrote {path}: scale {cal.scale:.4g} on "
        f"the {cal.base} interval (its coverage on these maps {cal.coverage_before:.3f} -> "
        f"{cal.level})"
    )
    return 0
