"""Posterior inversion with the diffusion prior, against deterministic FWI and InversionNet.

Held-out maps of the prior's family (fresh draws, a seed the training data did not use) are
simulated on the prior's survey and boundary, Gaussian noise of a fraction of each record's RMS is
added (two levels), and each record is inverted by:

- ``posterior``: :func:`ubdiff_phys.inversion.posterior_sample` (noise-aware likelihood; the
  posterior mean is scored, and the 90 % interval's coverage of the true pixels: predictive,
  widened by the prior's decoder error, and scaled by its stored calibration
  (``ubdiff-phys calibrate-interval``, on the training store's held-out rows); the prior is a
  UB-Diff checkpoint (latent model + velocity decoder) or a velocity-space model
  (``train-velocity-diffusion``), whichever ``--checkpoint`` holds;
- ``fwi``: L-BFGS FWI from the truth smoothed with sigma = 10 cells (a benchmark start that
  a field survey does not have);
- ``fwi_posterior`` and ``fwi_posterior_raw``: the same FWI started from the posterior mean
  smoothed with the same sigma, and from the posterior mean itself (a start made from the data
  alone: does the posterior give FWI what the smoothed truth gives it?);
- ``inversionnet``: InversionNet (width 0.25, 5,000 AdamW steps of 16, lr 1e-3) trained on the
  prior's training store's paired rows (the data the prior's autoencoder saw), with training-noise
  augmentation up to 6 % of each record's RMS (``--inversionnet-steps``, ``--inversionnet-noise``;
  records before this default used 500 steps without noise, a weaker baseline:
  ``research/probes/inversionnet_baseline_probe.py``); ``--inversionnet-weights FILE`` keeps the
  trained network for the next run (other map seeds or noise levels, same store and options);
- ``prior_mean``: the mean of unconditional prior samples (the trivial reference);
- with ``--refine-iterations N``: ``posterior_refined`` and ``posterior_refined_best``, multiscale
  FWI from every posterior sample (:func:`ubdiff_phys.inversion.refine.refine_samples`, N L-BFGS
  iterations per band): the mean of the refinements within its misfit factor of the best, and
  the best one;
- with ``--sharpen``: ``posterior`` is the latent posterior's samples re-drawn under the shipped
  velocity-space prior from t = 128 (:func:`ubdiff_phys.inversion.sharpen_samples`;
  ``--sharpen-checkpoint``: another velocity-space prior, e.g. the CurveVel-A one of
  ``research/curvevel_a_priors.sh``); ``--sharpen-from fwi`` starts the sharpening from multiscale
  FWI from a linear model (:func:`ubdiff_phys.inversion.fwi_start`: no prior, no truth) instead of
  the latent posterior's samples, ``--sharpen-from pooled`` from both (half the chains each,
  :func:`ubdiff_phys.inversion.pooled_start`: the sharpening's misfit resampling chooses between
  them; measured on FlatVel-A below either start alone, docs/posterior_sampling.md); both score no
  calibrated interval (the stored calibration was measured from the latent start).

Scores: SSIM (on [-1, 1]), MAE [m/s], relative L2, and the data misfit ½‖F(v) − d‖² next to the
noise level ½ N σ². Writes ``<out>/posterior_inversion.json``, ``<out>/posterior_samples.npz`` (the
true maps and every posterior sample, to re-score intervals) and appends the record to
``benchmarks/results/posterior_inversion_cpu.json``.

    python examples/posterior_inversion.py --train-store data/shipped.h5 --out out/posterior
    python examples/posterior_inversion.py --checkpoint runs/velocity_diffusion_flatvel_a \
        --train-store data/shipped.h5 --out out/posterior_velocity
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ubdiff_phys.data import NoisyPairedDataset  # noqa: E402
from ubdiff_phys.data.families import generate  # noqa: E402
from ubdiff_phys.data.store import open_store  # noqa: E402
from ubdiff_phys.diffusion.posterior import POSTERIOR_METHODS  # noqa: E402
from ubdiff_phys.diffusion.samplers import sample_ddim  # noqa: E402
from ubdiff_phys.eval import load_inversionnet, save_inversionnet  # noqa: E402
from ubdiff_phys.eval.protocol import ProtocolConfig, train_inversionnet, training_pairs  # noqa: E402
from ubdiff_phys.inversion import (  # noqa: E402
    PosteriorResult,
    fwi,
    fwi_start,
    load_prior,
    modelling_survey,
    parse_linear_starts,
    pooled_start,
    posterior_sample,
    smooth_velocity,
)
from ubdiff_phys.inversion.multiscale import parse_bands  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.inversion.prior import load_velocity_prior  # noqa: E402
from ubdiff_phys.inversion.refine import refine_samples  # noqa: E402
from ubdiff_phys.inversion.sharpen import sharpen_samples  # noqa: E402
from ubdiff_phys.models.metrics import ssim  # noqa: E402
from ubdiff_phys.physics import misfit, simulate  # noqa: E402
from ubdiff_phys.runtime.errors import UserError  # noqa: E402
from ubdiff_phys.runtime.files import (  # noqa: E402
    append_json_record,
    atomic_path,
    atomic_write_json,
    run_record,
)

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
#: posterior samples (n, 1, nz, nx) [m/s] by "samples_<noise>_<map>", written to
#: <out>/posterior_samples.npz with the true maps, so intervals can be re-scored without sampling
SAMPLES: dict[str, np.ndarray] = {}
DRAW_STRIDE = 1_000_003  # --draw-seed s shifts every posterior draw seed by s * DRAW_STRIDE
#: the interval coverages of the posterior row (None where the prior lacks what one needs)
COVERAGES = (
    "coverage_90",
    "coverage_90_quantile",
    "coverage_90_approximation",
    "coverage_90_calibrated",
)


def score(v: torch.Tensor, truth: torch.Tensor, lo: float, hi: float) -> dict[str, float]:
    """SSIM on [lo, hi] -> [-1, 1], MAE [m/s] and relative L2 of one map (1, 1, nz, nx)."""

    def n(x: torch.Tensor) -> torch.Tensor:
        return 2 * (x.float() - lo) / (hi - lo) - 1

    d = (v.double() - truth.double()).flatten()
    return {
        "ssim": ssim(n(v), n(truth)),
        "mae_m_per_s": float(d.abs().mean()),
        "rel_l2": float(d.norm() / truth.double().norm()),
    }


def held_out_maps(prior, family: str, n_maps: int, seed: int):
    """(modelling survey, true maps (n, 1, nz, nx) [m/s], their clean gathers (n, S, nt, R)) of
    ``n_maps`` fresh ``family`` maps drawn with ``seed``, simulated on the prior's survey and
    boundary."""
    survey, boundary = prior.survey, prior.boundary
    msurvey = modelling_survey(survey, boundary, prior.bounds[1])
    truth = torch.as_tensor(generate(family, n_maps, seed=seed)).float()
    truth = truth.reshape(n_maps, 1, survey.nz, survey.nx)
    return msurvey, truth, simulate(truth, survey, boundary=boundary).float()


def add_held_out_options(ap: argparse.ArgumentParser, n_samples: int = 8) -> None:
    """The options every evaluation on held-out maps shares (this example and the research
    probes): the prior, the family and number of maps, the posterior draws, the seed."""
    ap.add_argument("--checkpoint", help="prior checkpoint (default: the shipped UB-Diff one)")
    ap.add_argument("--family", default="flatvel-a")
    ap.add_argument("--n-maps", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=n_samples, help="posterior samples per map")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the maps and the noise")


def open_held_out(args: argparse.Namespace):
    """(prior, modelling survey, true maps, clean gathers) for :func:`add_held_out_options`'
    options (:func:`held_out_maps`)."""
    prior = load_prior(args.checkpoint)
    return (prior, *held_out_maps(prior, args.family, args.n_maps, args.seed))


def inversionnet(
    train_store: Path, steps: int, seed: int, noise: float = 0.0, weights: Path | None = None
):
    """(predict(seismic physical (B, S, nt, R)) -> velocity [m/s], training seconds, or None when
    read from ``weights``): InversionNet trained on the store's paired rows, with training-noise
    augmentation up to ``noise`` of each record's RMS (:class:`ubdiff_phys.data.NoisyPairedDataset`;
    0: noise-free gathers).

    ``weights``: a file for the trained network. When it exists the network is read from it
    after checking it was trained with these options on a store of this name
    and size (:func:`ubdiff_phys.eval.load_inversionnet`); otherwise it is trained and written
    there, with a resume point beside it (``<weights>.resume``, every 250 steps, removed at the
    end) from which an interrupted training continues to the same weights."""
    cfg = ProtocolConfig(
        epochs=100_000, batch=16, lr=1e-3, weight_decay=1e-4, width=0.25, max_steps=steps, seed=seed
    )
    pairs = training_pairs(train_store)
    training = {
        "store": train_store.name,
        "store_bytes": train_store.stat().st_size,
        "n_train": len(pairs),
        "noise": noise,
    }
    seconds = None
    if weights is not None and weights.exists():
        model = load_inversionnet(weights, cfg, training)[0]
    else:
        data = pairs if noise == 0 else NoisyPairedDataset.of(pairs, noise, seed=seed)
        t0 = time.perf_counter()
        resume = None if weights is None else weights.with_name(weights.name + ".resume")
        model, _, _ = train_inversionnet(
            data, cfg, progress=False, checkpoint=resume, checkpoint_every=250, identity=training
        )
        seconds = time.perf_counter() - t0
        if weights is not None:
            save_inversionnet(weights, model, cfg, training)
            resume.unlink(missing_ok=True)
    with open_store(train_store) as st:
        norm = st.normalizer
    model.eval()

    @torch.no_grad()
    def predict(s: torch.Tensor) -> torch.Tensor:
        x = norm.seismic(s.double()).float()
        return norm.velocity_inverse(model(x).double().clamp(-1, 1)).float()

    return predict, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap)
    ap.add_argument("--train-store", type=Path, required=True, help="the prior's training store")
    ap.add_argument("--noise", default="0.01,0.05", help="noise levels (fractions of the RMS)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--fwi-iterations", type=int, default=30)
    ap.add_argument(
        "--latent-fit", type=int, default=0, help="posterior_sample's latent_fit (default 0)"
    )
    ap.add_argument(
        "--error-fit", type=int, default=0, help="posterior_sample's error_fit (default 0)"
    )
    ap.add_argument(
        "--keep-best-of",
        type=int,
        default=None,
        metavar="M",
        help="posterior_sample's keep_best_of: draw M latent samples, keep the --n-samples of "
        "smallest misfit (default: draw --n-samples); the sharpening then has no stored scale",
    )
    ap.add_argument(
        "--draw-seed",
        type=int,
        default=0,
        help="offset of the posterior draws' seeds (same maps and noise; default 0: the seeds "
        "of earlier runs), for a second independent run of one sampler",
    )
    ap.add_argument("--method", default="noise_aware", choices=POSTERIOR_METHODS)
    ap.add_argument(
        "--trust", type=float, default=1.0, help="posterior_sample's trust (noise_aware; default 1)"
    )
    ap.add_argument(
        "--inner", type=int, default=5, help="L-BFGS iterations per step (--method proximal)"
    )
    ap.add_argument("--sharpen", action="store_true", help="invert --sharpen with its defaults")
    ap.add_argument(
        "--sharpen-resample-groups",
        type=int,
        default=1,
        metavar="G",
        help="with --sharpen: resample the samples by misfit in G independent groups (must "
        "divide --n-samples; default 1: one population); G > 1 has no stored scale",
    )
    ap.add_argument(
        "--sharpen-checkpoint",
        type=Path,
        default=None,
        help="with --sharpen: the velocity-space prior (default: the shipped FlatVel-A one)",
    )
    ap.add_argument(
        "--sharpen-from",
        choices=("latent", "fwi", "pooled"),
        default="latent",
        help="with --sharpen: start from the latent posterior's samples (default), from "
        "multiscale FWI from a linear model (ubdiff_phys.inversion.fwi_start) or from both, "
        "half the chains each (ubdiff_phys.inversion.pooled_start)",
    )
    ap.add_argument(
        "--fwi-linear",
        default="2000:4000",
        help="with --sharpen-from fwi|pooled: the FWI's linear starting model TOP:BOTTOM in m/s, "
        "several comma-separated (the smallest data misfit kept) or 'candidates' "
        "(fwi_start.LINEAR_CANDIDATES; default 2000:4000)",
    )
    ap.add_argument("--inversionnet-steps", type=int, default=5000)
    ap.add_argument(
        "--inversionnet-noise",
        type=float,
        default=0.06,
        help="InversionNet's training-noise augmentation: the largest noise level (fraction of "
        "each record's RMS; 0: noise-free training gathers)",
    )
    ap.add_argument(
        "--inversionnet-weights",
        type=Path,
        default=None,
        help="a file for the trained InversionNet: read when it exists (refused if trained with "
        "other options or on another store), else written after training",
    )
    ap.add_argument(
        "--refine-iterations",
        type=int,
        default=0,
        help="multiscale FWI from every posterior sample, L-BFGS iterations per band (0: none)",
    )
    ap.add_argument(
        "--bands",
        default=None,
        help="posterior_sample's band-scheduled likelihood: low-pass cut-offs in Hz, e.g. "
        "3,4,5,6,8,10,12,full (default: the full band at every step)",
    )
    ap.add_argument(
        "--full-band-from",
        type=float,
        default=0.6,
        help="with --bands: the fraction of the steps before the full band (default 0.6)",
    )
    ap.add_argument(
        "--baselines",
        choices=("all", "none"),
        default="all",
        help="none: score only the posterior and the prior mean (no FWI, no InversionNet)",
    )
    ap.add_argument("--out", type=Path, default=Path("out/posterior"))
    ap.add_argument(
        "--results",
        type=Path,
        default=RESULTS / "posterior_inversion_cpu.json",
        help="JSON list the record is appended to",
    )
    args = ap.parse_args()
    if not args.train_store.is_file():
        ap.exit(
            2, f"posterior_inversion: error: --train-store {str(args.train_store)!r} not found\n"
        )
    if args.inversionnet_steps < 1 or not 0 <= args.inversionnet_noise < 1:
        ap.exit(
            2,
            "posterior_inversion: error: --inversionnet-steps must be >= 1 and "
            "--inversionnet-noise in [0, 1)\n",
        )
    if args.sharpen_from != "latent" and not args.sharpen:
        ap.exit(
            2, f"posterior_inversion: error: --sharpen-from {args.sharpen_from} needs --sharpen\n"
        )
    w = args.inversionnet_weights
    if w is not None and not w.exists() and not w.parent.is_dir():
        ap.exit(
            2, f"posterior_inversion: error: --inversionnet-weights: no folder {str(w.parent)!r}\n"
        )
    try:
        args.fwi_linear_starts = parse_linear_starts(args.fwi_linear)
    except ValueError as exc:
        ap.exit(2, f"posterior_inversion: error: --fwi-linear: {exc}\n")
    g = args.sharpen_resample_groups
    if g < 1 or args.n_samples % g or (g > 1 and not args.sharpen):
        ap.exit(
            2,
            "posterior_inversion: error: --sharpen-resample-groups needs --sharpen and must "
            "divide --n-samples\n",
        )
    if args.keep_best_of is not None and args.keep_best_of < args.n_samples:
        ap.exit(2, "posterior_inversion: error: --keep-best-of must be >= --n-samples\n")
    levels = [float(x) for x in args.noise.split(",")]
    try:
        args.likelihood_bands = None if args.bands is None else parse_bands(args.bands)
    except ValueError as exc:
        ap.exit(2, f"posterior_inversion: error: --bands: {exc}\n")
    args.sharpen_prior = (
        load_velocity_prior(args.sharpen_checkpoint, "cpu")
        if args.sharpen and args.sharpen_checkpoint is not None
        else None
    )
    prior, msurvey, truth, clean = open_held_out(args)
    lo, hi = prior.bounds
    if any(not lo <= min(p) <= max(p) <= hi for p in args.fwi_linear_starts):
        ap.exit(
            2, f"posterior_inversion: error: --fwi-linear: outside the prior's {lo}..{hi} m/s\n"
        )
    boundary = prior.boundary
    predict, inv_seconds = None, 0.0
    if args.baselines == "all":
        try:
            predict, inv_seconds = inversionnet(
                args.train_store,
                args.inversionnet_steps,
                0,
                args.inversionnet_noise,
                args.inversionnet_weights,
            )
        except UserError as exc:
            ap.exit(2, f"posterior_inversion: error: {exc}\n")
    z = torch.randn((32, *prior.latent_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prior_mean = prior.velocity(sample_ddim(prior.denoiser, z.double(), 50)).mean(0)[None]
    kind = "velocity-space" if prior.info.get("kind") == "velocity" else "latent UB-Diff"
    rows = []
    for level in levels:
        for k in range(args.n_maps):
            rows.append(
                evaluate_one(
                    args,
                    prior,
                    truth[k : k + 1],
                    clean[k],
                    level,
                    k,
                    msurvey,
                    boundary,
                    predict,
                    prior_mean,
                    lo,
                    hi,
                )
            )
            print_row(rows[-1])
    record = {
        "what": f"posterior inversion ({args.method}, {kind} prior) vs FWI from a "
        "smoothed start vs InversionNet vs the prior mean, on held-out maps",
        "family": args.family,
        "checkpoint": prior.info.get("checkpoint"),
        "prior_kind": kind,
        "prior_step": prior.info.get("diffusion_step"),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k != "sharpen_prior"
        },
        "inversionnet_train_seconds": inv_seconds,
        "rows": rows,
        "summary": summarise(rows, levels),
        **run_record(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "posterior_samples.npz", suffix=".tmp.npz") as tmp:
        np.savez_compressed(tmp, truth=truth.numpy(), levels=np.array(levels), **SAMPLES)
    atomic_write_json(args.out / "posterior_inversion.json", record)
    append_json_record(args.results, record)
    print_summary(record["summary"])


def posterior_start(args, prior, obs, survey, boundary, sigma, bounds, k) -> PosteriorResult:
    """The posterior samples of map k before any sharpening: the latent posterior's, the FWI
    start's copies, or both pooled (``--sharpen-from``)."""
    n_fwi = {"latent": 0, "fwi": args.n_samples, "pooled": args.n_samples // 2}[args.sharpen_from]
    starts = []
    if args.sharpen_from != "fwi":
        starts.append(
            posterior_sample(
                obs,
                survey,
                boundary=boundary,
                prior=prior,
                n_samples=args.n_samples - n_fwi,
                noise_std=sigma,
                steps=args.steps,
                method=args.method,
                inner=args.inner,
                latent_fit=args.latent_fit,
                error_fit=args.error_fit,
                trust=args.trust,
                bands=args.likelihood_bands,
                full_band_from=args.full_band_from,
                keep_best_of=args.keep_best_of,
                generator=torch.Generator().manual_seed(k + DRAW_STRIDE * args.draw_seed),
            )
        )
    if n_fwi > 0:  # multiscale FWI from a linear model, no prior, no truth
        starts.append(
            fwi_start(
                obs,
                survey,
                boundary=boundary,
                bounds=bounds,
                n_samples=n_fwi,
                noise_std=sigma,
                linear=args.fwi_linear_starts,
            )  # fmt: skip
        )
    return starts[0] if len(starts) == 1 else pooled_start(*starts)


def evaluate_one(
    args, prior, truth, clean, level, k, survey, boundary, predict, prior_mean, lo, hi
) -> dict:
    """All methods on map k at noise ``level``."""
    obs, sigma = add_noise(clean, level, seed=args.seed * 1_000_003 + k)
    obs1 = obs[None]
    noise_misfit = 0.5 * obs.numel() * sigma**2
    res = posterior_start(args, prior, obs, survey, boundary, sigma, (lo, hi), k)
    if args.sharpen:  # the shipped velocity-space prior from these samples (library defaults)
        res = sharpen_samples(
            res,
            obs,
            survey,
            prior=args.sharpen_prior,
            calibration=(  # measured for the latent start only, all its draws kept, 1 group
                prior.sharpened_interval_calibration
                if args.sharpen_from == "latent"
                and args.keep_best_of is None
                and args.sharpen_resample_groups == 1
                else None
            ),
            generator=torch.Generator().manual_seed(1000 + k + DRAW_STRIDE * args.draw_seed),
            resample_groups=args.sharpen_resample_groups,
        )
    SAMPLES[f"samples_{level}_{k}"] = res.samples.numpy()
    out = {"map": k, "noise": level, "sigma": sigma, "noise_misfit": noise_misfit}
    maps = {"posterior": res.mean[None], "prior_mean": prior_mean}
    if args.refine_iterations > 0:
        ref = refine_samples(
            obs,
            survey,
            res.samples,
            boundary=boundary,
            bounds=(lo, hi),
            iterations=args.refine_iterations,
        )
        SAMPLES[f"refined_{level}_{k}"] = ref.samples.numpy()
        maps |= {"posterior_refined": ref.mean[None], "posterior_refined_best": ref.best[None]}
        out["posterior_refined"] = {
            "seconds": ref.seconds,
            "evaluations": ref.evaluations,
            "kept": int(ref.kept.sum()),
            "sample_misfit_over_noise": (ref.misfit / noise_misfit).tolist(),
        }
    if predict is not None:
        maps |= baselines(args, out, obs1, truth, res, survey, boundary, predict, lo, hi)
    for name, v in maps.items():
        out.setdefault(name, {}).update(score(v, truth, lo, hi))
        out[name]["misfit"] = float(misfit(v.float(), obs1, survey, boundary=boundary))
    out["posterior"].update(
        coverage_90=res.coverage(truth[0], 0.9),
        coverage_90_quantile=res.coverage(truth[0], 0.9, kind="quantile"),
        coverage_90_approximation=(
            None if res.decoder_error is None else res.coverage(truth[0], 0.9, kind="approximation")
        ),
        coverage_90_calibrated=(
            None if res.calibration is None else res.coverage(truth[0], 0.9, kind="calibrated")
        ),
        calibration=None if res.calibration is None else res.calibration.to_dict(),
        std_mean_m_per_s=float(res.std.mean()),
        sample_misfit_median=float(res.misfit.median()),
        seconds=res.seconds,
        seconds_per_sample=res.seconds / args.n_samples,
        solver_calls=res.solver_calls,
        seconds_per_solver_call=res.seconds / res.solver_calls,
        n_samples=args.n_samples,
        settings=res.settings,
    )
    return out


def baselines(args, out, obs1, truth, res, survey, boundary, predict, lo, hi) -> dict:
    """FWI from the smoothed truth and from the posterior mean, and InversionNet: their maps
    (1, 1, nz, nx) [m/s] by name; their seconds (and evaluations) go into ``out``."""
    t0 = time.perf_counter()
    start = smooth_velocity(truth, 10.0)
    f = fwi(obs1, survey, start, boundary=boundary, iterations=args.fwi_iterations, bounds=(lo, hi))
    out["fwi"] = {"seconds": time.perf_counter() - t0, "evaluations": f.evaluations}
    maps = {"fwi": f.velocity.float(), "fwi_start": start}
    for name, sigma_start in (("fwi_posterior", 10.0), ("fwi_posterior_raw", 0.0)):
        t0 = time.perf_counter()
        fp = fwi(
            obs1,
            survey,
            smooth_velocity(res.mean[None].float(), sigma_start),
            boundary=boundary,
            iterations=args.fwi_iterations,
            bounds=(lo, hi),
        )
        out[name] = {"seconds": time.perf_counter() - t0, "evaluations": fp.evaluations}
        maps[name] = fp.velocity.float()
    t0 = time.perf_counter()
    maps["inversionnet"] = predict(obs1)
    out["inversionnet"] = {"seconds": time.perf_counter() - t0}
    return maps


METHODS = (
    "posterior",
    "posterior_refined",
    "posterior_refined_best",
    "fwi",
    "fwi_start",
    "fwi_posterior",
    "fwi_posterior_raw",
    "inversionnet",
    "prior_mean",
)


def summarise(rows: list[dict], levels: list[float]) -> dict:
    """Mean of every score per noise level and method."""
    out = {}
    for level in levels:
        sel = [r for r in rows if r["noise"] == level]
        out[str(level)] = {
            m: {
                key: float(np.mean([r[m][key] for r in sel]))
                for key in ("ssim", "mae_m_per_s", "rel_l2", "misfit")
            }
            for m in METHODS
            if m in sel[0]
        }
        out[str(level)]["noise_misfit"] = float(np.mean([r["noise_misfit"] for r in sel]))
        for key in COVERAGES:
            values = [r["posterior"][key] for r in sel]
            out[str(level)]["posterior"][key] = None if None in values else float(np.mean(values))
        out[str(level)]["posterior"]["seconds_per_sample"] = float(
            np.mean([r["posterior"]["seconds_per_sample"] for r in sel])
        )
        out[str(level)]["posterior"]["seconds_per_solver_call"] = float(
            np.mean([r["posterior"]["seconds_per_solver_call"] for r in sel])
        )
    return out


def _approx(p: dict) -> str:
    """ ", with the decoder error 0.xx" when the prior stores one (and ", calibrated 0.xx" when
    it stores an interval calibration), else ""."""
    a, c = p.get("coverage_90_approximation"), p.get("coverage_90_calibrated")
    return ("" if a is None else f", with the decoder error {a:.2f}") + (
        "" if c is None else f", calibrated {c:.2f}"
    )


def print_row(r: dict) -> None:
    p = r["posterior"]
    print(
        f"map {r['map']} noise {r['noise']}: "
        + ", ".join(f"{m} SSIM {r[m]['ssim']:.3f}" for m in METHODS if m in r)
        + f"; coverage {p['coverage_90']:.2f} (quantiles {p['coverage_90_quantile']:.2f}"
        + _approx(p)
        + "); "
        + f"{p['seconds_per_sample']:.1f} s/sample",
        flush=True,
    )


def print_summary(summary: dict) -> None:
    print("| noise | method | SSIM | MAE m/s | rel L2 | misfit / noise level |")
    print("|---|---|---:|---:|---:|---:|")
    for level, per in summary.items():
        for m in (m for m in METHODS if m in per):
            s = per[m]
            print(
                f"| {level} | {m} | {s['ssim']:.3f} | {s['mae_m_per_s']:.0f} | "
                f"{s['rel_l2']:.3f} | {s['misfit'] / per['noise_misfit']:.1f} |"
            )
        p = per["posterior"]
        print(
            f"| {level} | posterior coverage_90 {p['coverage_90']:.2f} (sample quantiles "
            f"{p['coverage_90_quantile']:.2f}{_approx(p)}), "
            f"{p['seconds_per_sample']:.1f} s/sample, {p['seconds_per_solver_call']:.2f} "
            "s/solver call | | | | |"
        )


if __name__ == "__main__":
    main()
