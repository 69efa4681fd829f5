"""``ubdiff-phys invert --method dps|noise_aware|proximal``: posterior samples of velocity for
observed gathers with a diffusion prior: a UB-Diff checkpoint (default: the shipped one) or a
velocity-space model.

    ubdiff-phys invert OBSERVED.h5 --method noise_aware --n-samples 16 --out DIR [--rows 0,1]

Writes into DIR: ``samples.npy`` (rows, n, 1, nz, nx), ``mean.npy`` and ``std.npy`` (rows, 1, nz,
nx) [m/s]; ``interval_90.npy`` (rows, 2, 1, nz, nx): the lower and upper bounds [m/s] of the
90 % interval meant to hold the true map (:func:`best_interval_kind`; named in the JSON);
``posterior.json`` (settings, each sample's data misfit next to the noise level,
seconds per sample and per solver call, and, against the stored velocity: the mean's SSIM / MAE /
relative L2 and the share of true pixels inside the 90 % posterior interval, and inside the
interval widened by the prior's decoder error, and inside the interval scaled by its stored
calibration (``ubdiff-phys calibrate-interval``), when it stores them); ``figure.png``
(truth, mean, std, two samples, the misfits). With ``--refine-iterations N`` every sample also
starts a multiscale FWI (:mod:`~ubdiff_phys.inversion.refine_cli`: N L-BFGS iterations per band
of ``--refine-bands``; the refinements whose misfit is within ``--keep-within`` of the best kept
and polished with ``--polish-iterations`` full-band ones), adding ``refined.npy`` (rows, n, 1, nz,
nx), ``refined_mean.npy`` (rows, 1, nz, nx: the mean of the kept ones) and a ``refined`` entry per
row in ``posterior.json``. With ``--bands 3,4,5,6,8,10,12,full`` (any posterior method) the
sampler's likelihood uses low-passed data and wavelet early, the cut-offs spread over the first
``--full-band-from`` of the steps (:mod:`~ubdiff_phys.inversion.likelihood`). Files are written
under temporary names and renamed; existing outputs are refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.inversion.cli_common import UserError, check_outputs, load_observed, scores
from ubdiff_phys.inversion.fwi_start import pool_basins
from ubdiff_phys.inversion.interval_calibration import IntervalCalibration
from ubdiff_phys.inversion.multiscale import parse_bands
from ubdiff_phys.inversion.posterior import PosteriorResult, posterior_sample
from ubdiff_phys.inversion.prior import LatentPrior, load_prior
from ubdiff_phys.inversion.refine import RefinedSamples
from ubdiff_phys.inversion.refine_cli import (
    REFINED_OUTPUTS,
    add_refine_options,
    check_refine_options,
    refine_row,
    refined_report,
)
from ubdiff_phys.inversion.sharpen_cli import (
    add_sharpen_options,
    check_sharpen_options,
    fwi_start_row,
    sharpen_row,
)
from ubdiff_phys.runtime.files import atomic_path, atomic_save_figure, atomic_write_json

__all__ = [
    "OUTPUTS",
    "add_noise",
    "add_posterior_options",
    "run_posterior",
]

OUTPUTS = ("samples.npy", "mean.npy", "std.npy", "interval_90.npy", "posterior.json", "figure.png")


def best_interval_kind(res: PosteriorResult) -> str:
    """The interval meant to hold the true map that ``res`` supports: "calibrated" when the
    prior stores a calibration for level 0.9, else "approximation" when it stores a decoder
    error, else "predictive"."""
    if res.calibration is not None and abs(res.calibration.level - 0.9) < 1e-9:
        return "calibrated"
    return "predictive" if res.decoder_error is None else "approximation"


def add_posterior_options(p: argparse.ArgumentParser) -> None:
    """The options of the posterior methods (ignored by ``--method fwi``; ``--device`` is the
    command's own)."""
    g = p.add_argument_group("posterior sampling (--method dps, noise_aware or proximal)")
    g.add_argument(
        "--checkpoint",
        help="UB-Diff checkpoint or velocity-space run (default: the shipped UB-Diff one)",
    )
    g.add_argument("--n-samples", type=int, default=16, help="posterior samples per row")
    g.add_argument("--steps", type=int, default=50, help="reverse-diffusion steps")
    g.add_argument("--step-size", type=float, default=1.0, help="DPS step size (dps only)")
    g.add_argument(
        "--inner",
        type=int,
        default=5,
        help="L-BFGS iterations per step, each about one solver call (proximal only)",
    )
    g.add_argument(
        "--noise-std",
        type=float,
        help="data noise standard deviation [amplitude]; default: the added noise (--add-noise), "
        "else 1 %% of each row's RMS",
    )
    g.add_argument(
        "--add-noise",
        type=float,
        default=0.0,
        help="add Gaussian noise of this fraction of each row's RMS to its gathers (a benchmark "
        "setting; default 0)",
    )
    g.add_argument(
        "--latent-fit",
        type=int,
        default=0,
        help="L-BFGS iterations of a data fit on each sample's final latent (default 0: none)",
    )
    g.add_argument(
        "--keep-best-of",
        type=int,
        default=None,
        metavar="M",
        help="draw M samples per row and keep the --n-samples of smallest data misfit, as "
        "starts for --sharpen that more often hold a draw in the data's basin (default: draw "
        "--n-samples; a stored interval scale measured without it is flagged)",
    )
    g.add_argument(
        "--error-fit",
        type=int,
        default=0,
        help="L-BFGS iterations fitting each sample's decoder error to the data under the "
        "prior's stored error basis (`prior-error --basis-maps`), drawn by randomised maximum "
        "likelihood (default 0: none; 40 measured)",
    )
    g.add_argument(
        "--full-band-from",
        type=float,
        default=0.6,
        help="with --bands (a posterior method: a band-scheduled likelihood, the cut-offs spread "
        "over the first steps): the fraction of the steps before the full band (default 0.6)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the sampler and the added noise")
    add_refine_options(p)
    add_sharpen_options(p)


def add_noise(observed: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, float]:
    """(gathers + N(0, σ²), σ) with σ = ``fraction`` × RMS of ``observed``."""
    sigma = fraction * float(observed.double().square().mean().sqrt())
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(observed.shape, generator=g, dtype=torch.float64) * sigma
    return (observed.double() + noise).to(observed.dtype), sigma


def _check_args(args: argparse.Namespace) -> None:
    if args.n_samples < 1 or args.steps < 1:
        raise UserError("--n-samples and --steps must be >= 1")
    if args.inner < 0:
        raise UserError("--inner must be >= 0")
    if args.latent_fit < 0 or args.error_fit < 0:
        raise UserError("--latent-fit and --error-fit must be >= 0")
    if args.keep_best_of is not None and args.keep_best_of < args.n_samples:
        raise UserError(
            f"--keep-best-of must be >= --n-samples ({args.n_samples}), got {args.keep_best_of}"
        )
    if not 0 <= args.add_noise < float("inf"):
        raise UserError(f"--add-noise must be finite and >= 0, got {args.add_noise}")
    if args.noise_std is not None and not 0 < args.noise_std < float("inf"):
        raise UserError(f"--noise-std must be positive and finite, got {args.noise_std}")
    if not 0 <= args.step_size < float("inf"):
        raise UserError(f"--step-size must be finite and >= 0, got {args.step_size}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    args.likelihood_bands = _likelihood_bands(args)
    check_refine_options(args)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    check_sharpen_options(args)


def _likelihood_bands(args: argparse.Namespace) -> tuple[float | None, ...] | None:
    """``--bands`` for a posterior method: the band-scheduled likelihood's cut-offs (None
    without it); UserError for a bad list or a --full-band-from outside [0, 1]."""
    if args.bands is None:
        return None
    if not 0 <= args.full_band_from <= 1:
        raise UserError(f"--full-band-from must be in [0, 1], got {args.full_band_from}")
    try:
        return parse_bands(args.bands)
    except ValueError as exc:
        raise UserError(f"--bands: {exc}") from None


def _load_prior(args: argparse.Namespace) -> LatentPrior:
    try:
        prior = load_prior(args.checkpoint, args.device)
    except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"cannot load the prior: {exc}") from None
    if args.steps > prior.denoiser.schedule.timesteps:
        raise UserError(f"--steps must be <= {prior.denoiser.schedule.timesteps} for this prior")
    if args.error_fit and prior.error_basis is None:
        raise UserError(
            "--error-fit: this prior has no decoder-error basis; measure one with `ubdiff-phys "
            "prior-error CHECKPOINT --store TRAIN.h5 --decoder-only`"
        )
    return prior


def run_posterior(args: argparse.Namespace) -> int:
    """Sample the posterior of every requested row and write the outputs; 2 on a user error."""
    try:
        _check_args(args)
        check_outputs(args.out, _outputs(args), args.overwrite)
        data = load_observed(args)
        prior = _load_prior(args)
    except UserError as exc:
        print(f"invert: error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results: list[PosteriorResult] = []
    refined: list[RefinedSamples] = []
    for k, row in enumerate(data["rows"]):
        obs = data["observed"][k]
        sigma = args.noise_std
        if args.add_noise > 0:
            obs, added = add_noise(obs, args.add_noise, args.seed * 1_000_003 + row)
            sigma = sigma or added
        try:
            if args.sharpen and args.sharpen_from == "fwi":
                res = fwi_start_row(args, data, obs, sigma)
            else:
                res = _sample_row(args, data, prior, obs, sigma, row)
            if args.sharpen:
                cal = _sharpened_calibration(args, prior)
                res = sharpen_row(args, data, obs, res, row, cal)
        except ValueError as exc:  # e.g. a survey the prior's velocities are unstable on
            print(f"invert: error: {exc}", file=sys.stderr)
            return 2
        print(
            f"row {row}: {args.n_samples} samples in {res.seconds:.1f} s, median misfit "
            f"{float(res.misfit.median()):.4g} (noise level {res.noise_misfit:.4g})"
            + _basins_line(res)
        )
        results.append(res)
        if args.refine_iterations > 0:
            refined.append(refine_row(args, data, prior, obs, res))
    _note_calibration(results[0], _noise_fraction(args))
    _write(args, data, prior, results, refined)
    print(f"invert: wrote {', '.join(_outputs(args))} to {args.out}")
    return 0


def _sample_row(
    args: argparse.Namespace,
    data: dict[str, Any],
    prior: LatentPrior,
    obs: torch.Tensor,
    sigma: float | None,
    row: int,
) -> PosteriorResult:
    """The latent posterior's samples for one row's gathers ``obs`` (seeded per row)."""
    return posterior_sample(
        obs.to(prior.device),
        data["survey"],
        boundary=data["boundary"],
        prior=prior,
        n_samples=args.n_samples,
        method=args.method,
        noise_std=sigma,
        steps=args.steps,
        step_size=args.step_size,
        inner=args.inner,
        latent_fit=args.latent_fit,
        error_fit=args.error_fit,
        bands=args.likelihood_bands,
        full_band_from=args.full_band_from,
        keep_best_of=args.keep_best_of,
        generator=torch.Generator().manual_seed(args.seed * 1_000_003 + row),
    )


def _outputs(args: argparse.Namespace) -> tuple[str, ...]:
    return OUTPUTS + (REFINED_OUTPUTS if args.refine_iterations > 0 else ())


def _sharpened_calibration(args: argparse.Namespace, prior: Any) -> IntervalCalibration | None:
    """The stored calibration of this start and sharpening: the start prior's sharpened one,
    or the velocity prior's FWI-start one (pooled chains: its pooled-start one when it stores
    one, else the single start's, which ``calibration_differs_in`` then flags)."""
    if args.sharpen_from == "latent":
        return prior.sharpened_interval_calibration
    vprior = args.sharpen_prior
    if args.sharpen_fwi_pool > 1 and vprior.fwi_pooled_interval_calibration is not None:
        return vprior.fwi_pooled_interval_calibration
    return vprior.fwi_sharpened_interval_calibration


def _basins_line(res: PosteriorResult) -> str:
    """``"; samples per pooled start: 2000:4000 5, 1500:3500 3"`` for pooled chains, else ""."""
    basins = pool_basins(res)
    if basins is None:
        return ""
    parts = (f"{b['linear'][0]:g}:{b['linear'][1]:g} {b['samples']}" for b in basins)
    return "; samples per pooled start: " + ", ".join(parts)


def _noise_fraction(args: argparse.Namespace) -> float | None:
    """The data noise as a fraction of the RMS where this run knows it (--add-noise)."""
    return args.add_noise if args.add_noise > 0 else None


def _note_calibration(res: PosteriorResult, noise: float | None = None) -> None:
    """One line when the prior's interval calibration was measured with other settings
    (``noise``: this run's noise fraction, when known)."""
    cal = res.calibration
    diff = {} if cal is None else cal.differs_from(res.settings, noise=noise)
    if diff:
        pairs = ", ".join(f"{k} {a} (this run: {b})" for k, (a, b) in diff.items())
        cmd = "calibrate-interval --sharpen" if "sharpen" in res.settings else "calibrate-interval"
        print(
            f"invert: note: the prior's interval calibration was measured with {pairs}; "
            f"`ubdiff-phys {cmd} --overwrite` with these settings measures it for them"
        )


def _row_report(
    res: PosteriorResult, truth: torch.Tensor, lo: float, hi: float, noise: float | None = None
) -> dict:
    n = res.samples.shape[0]
    cal = res.calibration
    return {
        "settings": res.settings,
        "misfit": res.misfit.tolist(),
        "misfit_median": float(res.misfit.median()),
        "noise_misfit": res.noise_misfit,
        "seconds": res.seconds,
        "seconds_per_sample": res.seconds / n,
        "solver_calls": res.solver_calls,
        "seconds_per_solver_call": res.seconds / res.solver_calls,
        "mean_vs_truth": scores(res.mean[None], truth[None], lo, hi)[0],
        "samples_vs_truth_median_ssim": float(
            np.median([s["ssim"] for s in scores(res.samples, truth.expand(n, -1, -1, -1), lo, hi)])
        ),
        "coverage_90": res.coverage(truth, 0.9),
        "coverage_90_quantile": res.coverage(truth, 0.9, kind="quantile"),
        "coverage_90_approximation": (
            None if res.decoder_error is None else res.coverage(truth, 0.9, kind="approximation")
        ),
        "coverage_90_calibrated": (
            None if res.calibration is None else res.coverage(truth, 0.9, kind="calibrated")
        ),
        "calibration_differs_in": (
            None if cal is None else cal.differs_from(res.settings, noise=noise)
        ),
        "std_mean_m_per_s": float(res.std.mean()),
        "pool_basins": _basins_json(res),
    }


def _basins_json(res: PosteriorResult) -> list[dict] | None:
    """:func:`~ubdiff_phys.inversion.fwi_start.pool_basins` without the mean maps (those are
    the samples' own, in ``posterior_samples.npz``), or None for unpooled chains."""
    basins = pool_basins(res)
    return None if basins is None else [{k: v for k, v in b.items() if k != "mean"} for b in basins]


def _write(
    args,
    data: dict[str, Any],
    prior: LatentPrior,
    results: list[PosteriorResult],
    refined: list[RefinedSamples],
) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        "samples.npy": torch.stack([r.samples for r in results]),
        "mean.npy": torch.stack([r.mean for r in results]),
        "std.npy": torch.stack([r.std for r in results]),
        "interval_90.npy": torch.stack(
            [torch.stack(r.interval(0.9, best_interval_kind(r))) for r in results]
        ),
    }
    if refined:
        arrays["refined.npy"] = torch.stack([r.samples.cpu() for r in refined])
        arrays["refined_mean.npy"] = torch.stack([r.mean.cpu() for r in refined])
    for name, arr in arrays.items():
        with atomic_path(out / name, suffix=".tmp.npy") as tmp:
            np.save(tmp, arr.numpy())
    lo, hi = prior.bounds
    report = {
        "kind": "ubdiff_phys.invert.posterior",
        "method": args.method,
        "observed": str(args.observed),
        "checkpoint": prior.info.get("checkpoint"),
        "rows": data["rows"],
        "added_noise_fraction": args.add_noise,
        "truth_is_stored_velocity": True,
        "interval_90_kind": best_interval_kind(results[0]),
        "interval_calibration": (
            None if results[0].calibration is None else results[0].calibration.to_dict()
        ),
        "per_row": [
            _row_report(r, data["truth"][k], lo, hi, _noise_fraction(args))
            for k, r in enumerate(results)
        ],
    }
    for k, ref in enumerate(refined):
        noise = results[k].noise_misfit
        report["per_row"][k]["refined"] = refined_report(ref, noise, data["truth"][k], lo, hi)
    atomic_write_json(out / "posterior.json", report)
    _figure(out / "figure.png", data["truth"], results, lo, hi, data["rows"])


def _figure(
    path: Path, truth: torch.Tensor, results: list[PosteriorResult], lo, hi, rows: list[int]
) -> None:
    """Per row (the file's row numbers ``rows``): truth, mean, two samples, std, misfits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(n, 6, figsize=(19, 3.2 * n), squeeze=False)
    for b, res in enumerate(results):
        panels = [("truth", truth[b, 0]), ("posterior mean", res.mean[0])]
        panels += [(f"sample {k}", res.samples[k, 0]) for k in range(min(2, len(res.samples)))]
        for c, (title, img) in enumerate(panels):
            im = axes[b, c].imshow(img.numpy(), vmin=lo, vmax=hi, cmap="viridis")
            axes[b, c].set_title(f"row {rows[b]}: {title}")
        fig.colorbar(im, ax=axes[b, len(panels) - 1], label="m/s")
        sd = axes[b, 4].imshow(res.std[0].numpy(), cmap="magma")
        axes[b, 4].set_title("posterior std")
        fig.colorbar(sd, ax=axes[b, 4], label="m/s")
        ax = axes[b, 5]
        ax.bar(range(len(res.misfit)), res.misfit.numpy())
        ax.axhline(res.noise_misfit, color="k", ls="--", label="noise level")
        ax.set_yscale("log")
        ax.set_xlabel("sample")
        ax.set_title("data misfit")
        ax.legend()
        for a in axes[b, :5]:
            a.axis("off")
    fig.tight_layout()
    atomic_save_figure(fig, path)
