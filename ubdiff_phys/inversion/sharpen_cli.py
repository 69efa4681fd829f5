"""``invert --sharpen``: the options of :func:`~ubdiff_phys.inversion.sharpen.sharpen_samples`
(each row's posterior samples re-drawn under the velocity-space prior, started from them), and
``--sharpen-from fwi``: the sharpening started from :func:`~ubdiff_phys.inversion.fwi_start`
instead of the latent posterior's samples."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ubdiff_phys.inversion.cli_common import UserError
from ubdiff_phys.inversion.fwi_start import fwi_start, parse_linear_starts
from ubdiff_phys.inversion.interval_calibration import IntervalCalibration
from ubdiff_phys.inversion.multiscale import parse_bands
from ubdiff_phys.inversion.posterior import PosteriorResult
from ubdiff_phys.inversion.prior import load_velocity_prior
from ubdiff_phys.inversion.refine import DEFAULT_POLISH_ITERATIONS
from ubdiff_phys.inversion.sharpen import DEFAULT_SHARPEN, default_resample_at, sharpen_samples

__all__ = ["add_sharpen_options", "check_sharpen_options", "fwi_start_row", "sharpen_row"]

_BANDS = "3,4,5,6,8,10,12,full"


def add_sharpen_options(p: argparse.ArgumentParser, starts: bool = True) -> None:
    """The sharpening's options (inert without ``--sharpen``); ``starts``: also
    ``--sharpen-from`` and the FWI start's options."""
    g = p.add_argument_group("sharpening with the velocity-space prior (--sharpen)")
    g.add_argument(
        "--sharpen",
        action="store_true",
        help="re-draw every posterior sample under the velocity-space prior, started from it "
        "(noised to --sharpen-t-start; proximal steps with a band-scheduled likelihood)",
    )
    g.add_argument(
        "--sharpen-checkpoint",
        help="velocity-space prior (default: the shipped FlatVel-A one)",
    )
    for name, what in (
        ("t-start", "the velocity prior's timestep the samples are noised to"),
        ("steps", "reverse steps from there"),
        ("inner", "L-BFGS iterations per step"),
    ):
        key = name.replace("-", "_")
        g.add_argument(
            f"--sharpen-{name}",
            type=int,
            default=DEFAULT_SHARPEN[key],
            help=f"{what} (default {DEFAULT_SHARPEN[key]})",
        )
    g.add_argument(
        "--sharpen-bands",
        default=_BANDS,
        help=f"its likelihood's low-pass cut-offs in Hz, then 'full' (default {_BANDS})",
    )
    g.add_argument(
        "--sharpen-resample-at",
        default="default",
        help="steps (from 0) after which the samples are resampled by their data misfit, "
        "comma-separated; 'none': never (default: 35 %% and 60 %% of the way, 7,12 of 20)",
    )
    g.add_argument(
        "--sharpen-resample-groups",
        type=int,
        default=1,
        metavar="G",
        help="resample the samples in G equal groups, each on its own, like G independent runs "
        "(must divide --n-samples; default 1: one population; G > 1 has no stored scale "
        "unless calibrated with the same G)",
    )
    if starts:
        g.add_argument(
            "--sharpen-from",
            choices=("latent", "fwi"),
            default="latent",
            help="start from the latent posterior's samples (default) or from multiscale FWI "
            "from a linear model, no prior (fwi_start; measured better on CurveVel-A-like maps, "
            "worse on FlatVel-A-like ones); its interval calibration is stored with the velocity "
            "prior (calibrate-interval VELOCITY_PRIOR --sharpen --sharpen-from fwi)",
        )
        g.add_argument(
            "--sharpen-fwi-iterations",
            type=int,
            default=20,
            help="with --sharpen-from fwi: L-BFGS iterations per band (default 20)",
        )
        g.add_argument(
            "--sharpen-fwi-polish",
            type=int,
            default=DEFAULT_POLISH_ITERATIONS,
            help=f"with --sharpen-from fwi: full-band iterations after the bands "
            f"(default {DEFAULT_POLISH_ITERATIONS})",
        )
        g.add_argument(
            "--sharpen-fwi-linear",
            default="2000:4000",
            help="with --sharpen-from fwi: the linear starting model TOP:BOTTOM in m/s, or "
            "several comma-separated (the FWI from each, the smallest data misfit kept), or "
            "'candidates' for fwi_start.LINEAR_CANDIDATES (default 2000:4000)",
        )
        g.add_argument(
            "--sharpen-fwi-pool",
            type=int,
            default=1,
            metavar="K",
            help="with several --sharpen-fwi-linear starts: split the chains over the K best "
            "FWIs within --sharpen-fwi-pool-max-ratio x the smallest misfit, for the "
            "sharpening's misfit resampling to choose between (default 1: the best only); K > 1 "
            "uses the velocity prior's pooled-start calibration (calibrate-interval ... "
            "--sharpen-fwi-pool K) when it stores one, else the single start's, flagged",
        )
        g.add_argument(
            "--sharpen-fwi-pool-max-ratio",
            type=float,
            default=2.0,
            help="with --sharpen-fwi-pool: the largest misfit a pooled FWI may have, as a "
            "multiple of the smallest (default 2)",
        )


def _resample_steps(text: str, steps: int) -> list[int]:
    """The steps of ``--sharpen-resample-at`` (UserError unless integers in [0, steps))."""
    if text.strip().lower() in ("", "none"):
        return []
    if text.strip().lower() == "default":
        return default_resample_at(steps) if steps >= 1 else []
    try:
        out = [int(x) for x in text.split(",")]
    except ValueError:
        out = [-1]
    if not all(0 <= i < steps for i in out):
        raise UserError(
            f"--sharpen-resample-at must be 'none' or steps in [0, {steps}), got {text!r}"
        )
    return out


def check_sharpen_options(args: argparse.Namespace) -> None:
    """Load the velocity prior into ``args.sharpen_prior`` and parse the bands; UserError for
    a mistake (before any sampling)."""
    args.sharpen_prior = None
    start = getattr(args, "sharpen_from", "latent")
    if start != "latent" and not args.sharpen:
        raise UserError(f"--sharpen-from {start} needs --sharpen")
    if start == "fwi" and (args.sharpen_fwi_iterations < 1 or args.sharpen_fwi_polish < 0):
        raise UserError("--sharpen-fwi-iterations must be >= 1 and --sharpen-fwi-polish >= 0")
    if start == "fwi" and (args.sharpen_fwi_pool < 1 or not args.sharpen_fwi_pool_max_ratio >= 1):
        raise UserError("--sharpen-fwi-pool must be >= 1 and --sharpen-fwi-pool-max-ratio >= 1")
    if start == "fwi":
        try:
            args.sharpen_fwi_linear_starts = parse_linear_starts(args.sharpen_fwi_linear)
        except ValueError as exc:
            raise UserError(f"--sharpen-fwi-linear: {exc}") from None
    if not args.sharpen:
        return
    try:
        args.sharpen_band_list = parse_bands(args.sharpen_bands)
    except ValueError as exc:
        raise UserError(f"--sharpen-bands: {exc}") from None
    args.sharpen_resample_list = _resample_steps(args.sharpen_resample_at, args.sharpen_steps)
    groups = args.sharpen_resample_groups
    if groups < 1 or args.n_samples % groups:
        raise UserError(
            f"--sharpen-resample-groups must be >= 1 and divide --n-samples ({args.n_samples}), "
            f"got {groups}"
        )
    try:
        if args.sharpen_checkpoint is None:
            from ubdiff_phys.pipelines.generator import shipped_velocity_checkpoint

            args.sharpen_checkpoint = str(shipped_velocity_checkpoint())
        prior = load_velocity_prior(args.sharpen_checkpoint, args.device)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise UserError(
            f"--sharpen-checkpoint: cannot load a velocity-space prior: {exc}"
        ) from None
    t_max = prior.denoiser.schedule.timesteps - 1
    if not 0 < args.sharpen_t_start <= t_max:
        raise UserError(f"--sharpen-t-start must be in [1, {t_max}], got {args.sharpen_t_start}")
    if not 1 <= args.sharpen_steps <= args.sharpen_t_start + 1 or args.sharpen_inner < 1:
        raise UserError(
            "--sharpen-steps must be in [1, --sharpen-t-start + 1], --sharpen-inner >= 1"
        )
    if start == "fwi":
        lo, hi = prior.bounds
        bad = [p for p in args.sharpen_fwi_linear_starts if not lo <= min(p) <= max(p) <= hi]
        if bad:
            raise UserError(
                f"--sharpen-fwi-linear: {bad[0][0]:g}:{bad[0][1]:g} m/s lies outside the "
                f"velocity prior's bounds {lo:g}..{hi:g} m/s"
            )
    args.sharpen_prior = prior


def sharpen_row(
    args: argparse.Namespace,
    data: dict[str, Any],
    obs: torch.Tensor,
    res: PosteriorResult,
    row: int,
    calibration: IntervalCalibration | None = None,
) -> PosteriorResult:
    """``res`` sharpened as the options say (seeded per row like the sampler), with the start
    prior's ``calibration`` of the sharpened interval (None: none)."""
    return sharpen_samples(
        res,
        obs.to(args.sharpen_prior.device),
        data["survey"],
        prior=args.sharpen_prior,
        t_start=args.sharpen_t_start,
        steps=args.sharpen_steps,
        inner=args.sharpen_inner,
        bands=args.sharpen_band_list,
        resample_at=args.sharpen_resample_list,
        resample_groups=args.sharpen_resample_groups,
        calibration=calibration,
        generator=torch.Generator().manual_seed(args.seed * 1_000_003 + row + 7),
    )


def fwi_start_row(
    args: argparse.Namespace, data: dict[str, Any], obs: torch.Tensor, sigma: float | None
) -> PosteriorResult:
    """``--sharpen-from fwi``: ``args.n_samples`` copies of multiscale FWI from a linear model
    (:func:`~ubdiff_phys.inversion.fwi_start`, inside the velocity prior's bounds) for the
    row's gathers ``obs`` with noise level ``sigma`` (None: 1 % of their RMS)."""
    return fwi_start(
        obs.to(args.sharpen_prior.device),
        data["survey"],
        boundary=data["boundary"],
        bounds=args.sharpen_prior.bounds,
        n_samples=args.n_samples,
        noise_std=sigma,
        linear=args.sharpen_fwi_linear_starts,
        iterations=args.sharpen_fwi_iterations,
        polish_iterations=args.sharpen_fwi_polish,
        pool=args.sharpen_fwi_pool,
        pool_max_ratio=args.sharpen_fwi_pool_max_ratio,
    )
