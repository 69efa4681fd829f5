"""``ubdiff-phys invert``: velocity from observed gathers in a dataset file.

    ubdiff-phys invert OBSERVED.h5 --method fwi --out DIR [--rows 0,1] [--iterations 50]
        [--bands 3,4,5,6,8,10,12,full]

Reads the gathers of the chosen paired rows (with the file's survey and boundary mode), inverts
them, and writes into DIR: ``inverted.npy`` and ``initial.npy`` (B, 1, nz, nx) [m/s],
``fwi.json`` (settings, per-model misfit history, timings, and SSIM/MAE against the stored
velocity, which is the truth for files made by ``make-dataset``), and ``figure.png`` (truth,
initial, inverted, misfit history). ``--bands`` runs multiscale FWI instead: ``--iterations`` in
each low-pass band in turn (:mod:`~ubdiff_phys.inversion.multiscale`). Every file is written under
a temporary name and renamed when complete; existing outputs are refused unless ``--overwrite``.

    ubdiff-phys invert OBSERVED.h5 --method noise_aware|dps|proximal --n-samples 16 --out DIR

samples the posterior with a UB-Diff prior instead (see :mod:`.posterior_cli` for its outputs).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ubdiff_phys.diffusion.posterior import POSTERIOR_METHODS
from ubdiff_phys.inversion.calibration_cli import register_calibrate_interval
from ubdiff_phys.inversion.cli_common import (
    UserError,
    check_outputs,
    load_observed,
    parse_bounds,
    scores,
)
from ubdiff_phys.inversion.fwi import OPTIMIZERS, fwi, smooth_velocity
from ubdiff_phys.inversion.multiscale import multiscale_fwi, parse_bands
from ubdiff_phys.inversion.posterior_cli import add_posterior_options, run_posterior
from ubdiff_phys.inversion.prior_error_cli import register_prior_error
from ubdiff_phys.physics.forward import BOUNDARIES
from ubdiff_phys.physics.misfit import misfit
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.files import atomic_path, atomic_save_figure, atomic_write_json

__all__ = ["register"]

METHODS = ("fwi", *POSTERIOR_METHODS)
OUTPUTS = ("inverted.npy", "initial.npy", "fwi.json", "figure.png")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "invert",
        help="invert observed gathers of a dataset file for velocity (FWI or posterior sampling)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("observed", type=Path, help="dataset file (.h5) with paired seismic rows")
    p.add_argument("--method", choices=METHODS, default="fwi")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--rows", default="0", help="paired (seismic) rows, e.g. 0,3,7 (default 0)")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    p.add_argument("--boundary", choices=BOUNDARIES, help="default: the file's boundary mode")
    p.add_argument("--bounds", default="1500,4500", help="v_min,v_max in m/s")
    p.add_argument(
        "--init",
        default="smoothed",
        help="starting model: 'smoothed' (the stored velocity smoothed with --smooth-sigma: a "
        "benchmark setting, it uses the truth), 'linear:V_TOP,V_BOTTOM' (1-D linear in depth), "
        "or a .npy file of shape (B, nz, nx) or (nz, nx)",
    )
    p.add_argument("--smooth-sigma", type=float, default=10.0, help="cells (default 10)")
    p.add_argument("--normalised", action="store_true", help="misfit in normalised units")
    p.add_argument(
        "--bands",
        help="multiscale FWI: low-pass cut-offs in Hz, increasing, then 'full' (e.g. "
        "3,4,5,6,8,10,12,full); --iterations in each band (default: the full band only). With "
        "--method dps or noise_aware: the posterior sampler's band-scheduled likelihood "
        "(see --full-band-from)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, help="OpenMP threads (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    add_posterior_options(p)
    p.set_defaults(func=_run)
    register_prior_error(sub)
    register_calibrate_interval(sub)


def _initial(args: argparse.Namespace, truth: torch.Tensor) -> torch.Tensor:
    spec: str = args.init
    if spec == "smoothed":
        if not args.smooth_sigma >= 0:
            raise UserError(f"--smooth-sigma must be >= 0, got {args.smooth_sigma}")
        return smooth_velocity(truth, args.smooth_sigma)
    if spec.startswith("linear:"):
        try:
            top, bottom = (float(x) for x in spec[len("linear:") :].split(","))
        except ValueError:
            raise UserError(f"--init linear:V_TOP,V_BOTTOM, got {spec!r}") from None
        nz = truth.shape[-2]
        col = torch.linspace(top, bottom, nz, dtype=truth.dtype)[:, None]
        return col.expand(truth.shape).clone()
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--init {spec!r}: not 'smoothed', 'linear:A,B' or an existing .npy file")
    v = torch.from_numpy(np.load(path)).to(truth.dtype)
    if v.dim() == 2:
        v = v.expand(truth.shape[0], *v.shape)
    if v.dim() == 3:
        v = v[:, None]
    if tuple(v.shape) != tuple(truth.shape):
        raise UserError(f"--init {spec!r} has shape {tuple(v.shape)}, expected {truth.shape}")
    return v.contiguous()


def _figure(
    path: Path, truth, initial, inverted, history, lo: float, hi: float, rows: list[int]
) -> None:
    """Per row (the file's row numbers ``rows``): truth, start, inverted model, misfit history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = truth.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(14, 3.2 * n), squeeze=False)
    for b in range(n):
        for c, (title, img) in enumerate(
            (("truth", truth), ("initial", initial), ("inverted", inverted))
        ):
            ax = axes[b, c]
            im = ax.imshow(img[b, 0].numpy(), vmin=lo, vmax=hi, cmap="viridis")
            ax.set_title(f"row {rows[b]}: {title}")
            ax.axis("off")
        fig.colorbar(im, ax=axes[b, 2], label="m/s")
        ax = axes[b, 3]
        ax.semilogy(history[:, b].numpy())
        ax.set_xlabel("evaluation")
        ax.set_title("data misfit")
    fig.tight_layout()
    atomic_save_figure(fig, path)


def _run(args: argparse.Namespace) -> int:
    if args.method != "fwi":
        return run_posterior(args)
    try:
        for flag, used in (
            ("--sharpen", args.sharpen),
            ("--sharpen-from", args.sharpen_from != "latent"),
            ("--refine-iterations", args.refine_iterations > 0),
        ):
            if used:
                raise UserError(f"{flag} needs a posterior --method ({', '.join(METHODS[1:])})")
        if args.iterations < 1:
            raise UserError(f"--iterations must be >= 1, got {args.iterations}")
        if args.threads is not None and args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        lo, hi = parse_bounds(args.bounds)
        bands = _bands(args)
        check_outputs(args.out, OUTPUTS, args.overwrite)
        device = resolve_device(args.device)
        data = load_observed(args)
        v0 = _initial(args, data["truth"])
    except UserError as exc:
        print(f"invert: error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    extra = {} if bands is None else {"bands": bands}
    try:
        result = (fwi if bands is None else multiscale_fwi)(
            data["observed"].to(device),
            data["survey"],
            v0.to(device),
            boundary=data["boundary"],
            iterations=args.iterations,
            optimizer=args.optimizer,
            bounds=(lo, hi),
            normalizer=data["normalizer"],
            callback=lambda k, v, f: print(f"evaluation {k}: misfit {f.sum().item():.4g}"),
            **extra,
        )
    except ValueError as exc:  # e.g. bounds beyond the stability limit of the survey
        print(f"invert: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    result = dataclasses.replace(result, velocity=result.velocity.cpu())
    ends = None if bands is None else _full_band_misfits(data, v0, result.velocity, hi, device)
    _write(args, data, v0, result, seconds, lo, hi, ends)
    print(f"invert: wrote {', '.join(OUTPUTS)} to {args.out} in {seconds:.1f} s")
    return 0


def _bands(args: argparse.Namespace) -> tuple[float | None, ...] | None:
    """The parsed ``--bands`` (None without it); UserError for a bad list or with
    ``--normalised`` (the normalised misfit does not commute with the low-pass filter)."""
    if args.bands is None:
        return None
    if args.normalised:
        raise UserError("--bands needs the physical misfit: drop --normalised")
    try:
        return parse_bands(args.bands)
    except ValueError as exc:
        raise UserError(f"--bands: {exc}") from None


def _full_band_misfits(data, v0, velocity, hi: float, device) -> tuple[list, list]:
    """(B,) full-band misfits ½‖F(v) − d‖² of the start and of the result, on the survey FWI
    used (the C-PML pinned to ``hi``): a multiscale history's rows are each band's own misfit of
    low-passed data, so its first and last rows are not comparable."""
    survey = data["survey"]
    if data["boundary"] == "pml" and survey.pml_max_velocity is None:
        survey = survey.with_(pml_max_velocity=hi)
    obs = data["observed"].to(device)
    return tuple(
        misfit(v.to(device), obs, survey, boundary=data["boundary"], reduction="none")
        .double()
        .cpu()
        .tolist()
        for v in (v0, velocity)
    )


def _write(args, data, v0, result, seconds: float, lo: float, hi: float, ends=None) -> None:
    """Writes the outputs; ``ends``: the full-band (initial, final) misfits of a multiscale run."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in (("inverted.npy", result.velocity), ("initial.npy", v0)):
        with atomic_path(out / name, suffix=".tmp.npy") as tmp:
            np.save(tmp, arr.cpu().numpy())
    truth = data["truth"]
    report = {
        "kind": "ubdiff_phys.invert",
        "method": args.method,
        "observed": str(args.observed),
        "rows": data["rows"],
        "settings": result.settings,
        "init": args.init if args.init != "smoothed" else f"smoothed:{args.smooth_sigma}",
        "evaluations": result.evaluations,
        "seconds": seconds,
        "seconds_per_evaluation": seconds / max(result.evaluations, 1),
        "misfit_initial": result.history[0].tolist() if ends is None else ends[0],
        "misfit_final": result.history[-1].tolist() if ends is None else ends[1],
        "misfit_history": result.history.T.tolist(),
        "truth_is_stored_velocity": True,
        "initial_vs_truth": scores(v0, truth, lo, hi),
        "inverted_vs_truth": scores(result.velocity.float(), truth, lo, hi),
    }
    atomic_write_json(out / "fwi.json", report)
    v = result.velocity.float()
    _figure(out / "figure.png", truth, v0, v, result.history, lo, hi, data["rows"])
