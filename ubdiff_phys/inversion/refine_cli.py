"""``invert``'s multi-start FWI options (``--refine-iterations``, ``--refine-bands``,
``--keep-within``, ``--polish-iterations``): every posterior sample of a row starts a multiscale
FWI, the best-fitting refinements are kept and polished (:mod:`~ubdiff_phys.inversion.refine`)."""

from __future__ import annotations

import argparse

import torch

from ubdiff_phys.inversion.cli_common import UserError, scores
from ubdiff_phys.inversion.multiscale import DEFAULT_BANDS, parse_bands
from ubdiff_phys.inversion.posterior import PosteriorResult, modelling_survey
from ubdiff_phys.inversion.refine import (
    DEFAULT_KEEP_WITHIN,
    DEFAULT_POLISH_ITERATIONS,
    RefinedSamples,
    refine_samples,
)

__all__ = [
    "REFINED_OUTPUTS",
    "add_refine_options",
    "check_refine_options",
    "refine_row",
    "refined_report",
]

#: written besides the posterior's outputs with --refine-iterations
REFINED_OUTPUTS = ("refined.npy", "refined_mean.npy")
_BANDS = ",".join("full" if b is None else f"{b:g}" for b in DEFAULT_BANDS)


def add_refine_options(p: argparse.ArgumentParser) -> None:
    """The refinement's options (all inert while ``--refine-iterations`` is 0)."""
    r = p.add_argument_group("multi-start FWI from the posterior samples")
    r.add_argument(
        "--refine-iterations",
        type=int,
        default=0,
        help="start a multiscale FWI from every sample, this many L-BFGS iterations per band "
        "(default 0: no refinement)",
    )
    r.add_argument(
        "--refine-bands",
        default=_BANDS,
        help=f"the refinement's low-pass cut-offs in Hz, then 'full' (default {_BANDS})",
    )
    r.add_argument(
        "--keep-within",
        type=float,
        default=DEFAULT_KEEP_WITHIN,
        help="keep the refinements whose misfit is within this factor of the best "
        f"(default {DEFAULT_KEEP_WITHIN})",
    )
    r.add_argument(
        "--polish-iterations",
        type=int,
        default=DEFAULT_POLISH_ITERATIONS,
        help="full-band L-BFGS iterations on the kept refinements "
        f"(default {DEFAULT_POLISH_ITERATIONS})",
    )


def check_refine_options(args: argparse.Namespace) -> None:
    """UserError (one line, exit 2) for a bad refinement option; parses ``--refine-bands``."""
    if args.refine_iterations < 0 or args.polish_iterations < 0:
        raise UserError(
            "--refine-iterations and --polish-iterations must be >= 0, got "
            f"{args.refine_iterations} and {args.polish_iterations}"
        )
    if not 1 <= args.keep_within < float("inf"):
        raise UserError(f"--keep-within must be a finite factor >= 1, got {args.keep_within}")
    try:
        args.refine_bands = parse_bands(args.refine_bands)
    except ValueError as exc:
        raise UserError(f"--refine-bands: {exc}") from None


def refine_row(args, data, prior, obs: torch.Tensor, res: PosteriorResult) -> RefinedSamples:
    """Multi-start FWI from one row's posterior samples, on the posterior's modelling survey."""
    survey = modelling_survey(data["survey"], data["boundary"], prior.bounds[1])
    ref = refine_samples(
        obs.to(prior.device),
        survey,
        res.samples.to(prior.device),
        boundary=data["boundary"],
        bounds=prior.bounds,
        bands=args.refine_bands,
        iterations=args.refine_iterations,
        keep_within=args.keep_within,
        polish_iterations=args.polish_iterations,
    )
    print(
        f"  refined in {ref.seconds:.1f} s: best misfit {float(ref.misfit.min()):.4g} (posterior "
        f"samples' median {float(res.misfit.median()):.4g}), {int(ref.kept.sum())} kept"
    )
    return ref


def refined_report(ref: RefinedSamples, noise_misfit: float, truth, lo, hi) -> dict:
    """The ``refined`` entry of a row in ``posterior.json`` (scores against the stored map)."""
    return {
        "settings": ref.settings,
        "misfit": ref.misfit.tolist(),
        "misfit_over_noise": (ref.misfit / noise_misfit).tolist(),
        "kept": ref.kept.tolist(),
        "seconds": ref.seconds,
        "evaluations": ref.evaluations,
        "kept_mean_vs_truth": scores(ref.mean[None].cpu(), truth[None], lo, hi)[0],
        "best_vs_truth": scores(ref.best[None].cpu(), truth[None], lo, hi)[0],
    }
