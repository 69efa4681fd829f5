"""Probe: the velocity-space posterior started from a deterministic inversion instead of the
latent posterior's samples.

Per held-out map (as ``examples/posterior_inversion.py`` draws it: same maps, seed and noise):

- ``fwi_linear_multiscale``: multiscale FWI from a 1-D linear start (``--linear``; no truth, no
  prior): :func:`ubdiff_phys.inversion.refine.refine_samples` with its defaults (20 L-BFGS
  iterations in each band of ``DEFAULT_BANDS``, 120 full-band polish iterations), as
  ``research/probes/posterior_multistart_probe.py`` runs it;
- ``sharpened_from_fwi``: :func:`ubdiff_phys.inversion.sharpen_samples` with its defaults
  (t_start 128 unless ``--t-start``, 20 steps × 15 L-BFGS iterations, bands, resampling) from
  ``--n-samples`` copies of that model (generator 1000 + map, as the example's sharpening): the
  prior's noise at t_start makes the copies differ, and each chain is a posterior draw under the
  velocity prior that starts from the inversion's long wavelengths.

and, for the same maps, the issue's reference points as the example computes them:

- ``fwi_smoothed_truth``: ``--fwi-iterations`` (30) L-BFGS iterations of FWI from the truth
  smoothed with sigma = 10 cells (the example's ``fwi`` row);
- ``inversionnet`` (with ``--inversionnet-steps`` > 0): the example's InversionNet trained on
  ``--train-store``'s paired rows (read from ``--inversionnet-weights`` when it exists).

Each with SSIM / MAE / relative L2 and the misfit over the noise level; for the sharpened
posterior also the samples' median misfit, the predictive interval's coverage and the seconds
(the FWI's included), and, when the velocity prior stores a calibration of the FWI start
(``calibrate-interval VELOCITY_PRIOR --sharpen --sharpen-from fwi``), the calibrated interval's
coverage. Appends a record to ``--out``. ``--references-only`` scores only the
reference rows (e.g. a longer-trained InversionNet on maps whose sharpened rows are recorded).
``--linear-candidates``: the FWI runs from each of
:data:`ubdiff_phys.inversion.fwi_start.LINEAR_CANDIDATES` (a row ``fwi_linear_<top>_<bottom>``
each) and the one with the smallest misfit is the start, as ``fwi_start(linear=candidates)``
chooses; ``--fwi-only`` stops before the sharpening. ``--save-samples DIR`` keeps each map's
sharpened samples, truth and FWI start (float16) as ``DIR/<family>_noise<level>_mapNN.pt``, so
other interval rules can be scored later without rerunning the sampler. ``--pool-top K``
(with ``--linear-candidates``): the chains start from the K candidates of smallest misfit among
those within ``--pool-max-ratio`` (2) × the best one's, split in misfit order (8 chains over 3:
3 / 3 / 2), so the sharpening's misfit resampling can choose between basins (row
``sharpened_from_pool``, with each sample's MAE); ``--fwi-cache DIR`` keeps each map's six FWIs
so a later run with other sharpening settings skips them; ``--sharpen-seed S`` draws the
sharpening's noise from seed S + map (default 1000; saved samples get ``_seedS`` in their name);
``--no-resample``: the sharpening keeps every chain (no resampling by misfit).

    PYTHONPATH=. python research/probes/sharpen_from_fwi_probe.py --checkpoint \
        runs/diffusion_curvevel_a_sharp --family curvevel-a --n-maps 3 \
        --velocity-prior runs/velocity_prior_curvevel_a_10k \
        --out benchmarks/results/sharpen_from_fwi_probe.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import (  # noqa: E402
    add_held_out_options,
    inversionnet,
    open_held_out,
    score,
)

from ubdiff_phys.inversion import PosteriorResult, fwi, sharpen_samples, smooth_velocity  # noqa: E402
from ubdiff_phys.inversion.fwi_start import LINEAR_CANDIDATES, pool_basins  # noqa: E402
from ubdiff_phys.inversion.fwi_start import pool_members as fwi_pool_members  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.inversion.prior import load_velocity_prior  # noqa: E402
from ubdiff_phys.inversion.refine import DEFAULT_POLISH_ITERATIONS, refine_samples  # noqa: E402
from ubdiff_phys.physics import misfit  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402


def probe_map(args, prior, vprior, survey, truth, clean, k: int, predict=None) -> dict:
    """One map's row (see the module docstring)."""
    lo, hi = prior.bounds
    bd = prior.boundary
    obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
    noise_misfit = 0.5 * obs.numel() * sigma**2
    t = truth[k : k + 1]
    out: dict = {"map": k, "noise": args.noise, "noise_misfit": noise_misfit}

    def record(name: str, v: torch.Tensor, seconds: float) -> None:
        f = float(misfit(v.float(), obs[None], survey, boundary=bd))
        out[name] = score(v, t, lo, hi) | {"misfit_over_noise": f / noise_misfit, "s": seconds}

    if args.fwi_iterations > 0:
        t0 = time.perf_counter()
        start = smooth_velocity(t, 10.0)
        f = fwi(
            obs[None], survey, start, boundary=bd, iterations=args.fwi_iterations, bounds=(lo, hi)
        )
        record("fwi_smoothed_truth", f.velocity.float(), time.perf_counter() - t0)
    if predict is not None:
        t0 = time.perf_counter()
        record("inversionnet", predict(obs[None]), time.perf_counter() - t0)
    if args.references_only:
        return out
    candidates = LINEAR_CANDIDATES if args.linear_candidates else [tuple(args.linear)]
    fits = fwi_candidates(args, obs, survey, (lo, hi), bd, candidates, k)
    if len(candidates) > 1:
        for fit in fits:
            top, bottom = fit["linear"]
            record(f"fwi_linear_{top:.0f}_{bottom:.0f}", fit["model"][None], fit["s"])
    best = min(fits, key=lambda x: x["misfit"])  # the smallest misfit: no truth used
    v, chosen = best["model"], best["linear"]
    fwi_seconds = sum(x["s"] for x in fits)
    record("fwi_linear_multiscale", v[None], fwi_seconds)
    out["fwi_linear_multiscale"]["linear"] = chosen
    if args.fwi_only:
        return out
    n = args.n_samples
    settings = {"method": "fwi_start", "n_samples": n, "noise_std": sigma, "boundary": bd}
    settings |= {"linear": chosen, "iterations": 20, "polish_iterations": DEFAULT_POLISH_ITERATIONS}
    if len(candidates) > 1:  # as fwi_start records them (a calibration compares them)
        settings["linear_candidates"] = [list(c) for c in candidates]
    row = "sharpened_from_fwi"
    if args.pool_top > 0:  # chains split over the best candidates (see --pool-top)
        row = "sharpened_from_pool"
        pool, sizes = pool_members(fits, args.pool_top, args.pool_max_ratio, n)
        starts = torch.cat(
            [m["model"][None].expand(c, *v.shape) for m, c in zip(pool, sizes, strict=True)]
        )
        settings |= {"method": "fwi_pool", "pool": [m["linear"] for m in pool]}
        settings |= {"pool_sizes": sizes, "pool_top": args.pool_top}
        settings["pool_max_ratio"] = args.pool_max_ratio
    else:
        starts = v[None].expand(n, *v.shape)
    row += ("_noresample" if args.no_resample else "") + (
        "" if args.sharpen_seed == 1000 else f"_seed{args.sharpen_seed}"
    )  # other sharpenings: rows of their own (summaries read the default ones)
    start = PosteriorResult(
        samples=starts.contiguous(), mean=v, std=torch.zeros_like(v),
        misfit=torch.zeros(n, dtype=torch.float64), noise_misfit=noise_misfit,
        seconds=fwi_seconds, solver_calls=0, settings=settings,
    )  # fmt: skip
    cal = vprior.fwi_sharpened_interval_calibration  # calibrate-interval --sharpen-from fwi
    if args.pool_top > 1 and vprior.fwi_pooled_interval_calibration is not None:
        cal = vprior.fwi_pooled_interval_calibration  # ... --sharpen-fwi-pool K
    res = sharpen_samples(
        start, obs, survey, prior=vprior, t_start=args.t_start, calibration=cal,
        generator=torch.Generator().manual_seed(args.sharpen_seed + k),
        resample_at=[] if args.no_resample else None,
    )  # fmt: skip
    record(row, res.mean[None], res.seconds)
    if args.save_samples is not None:  # for offline study of other interval rules
        save_samples(sample_path(args, k), {
            "samples": res.samples.half(), "truth": t[0].half(), "start": v.half(),
            "misfit": res.misfit, "noise_misfit": noise_misfit, "settings": res.settings,
        })  # fmt: skip
    out[row] |= {
        "sample_misfit_median_over_noise": float(res.misfit.median()) / noise_misfit,
        "coverage_90": res.coverage(t[0], 0.9),
        "std_mean_m_per_s": float(res.std.mean()),
        "sample_mae_m_per_s": [float((s - t[0]).abs().mean()) for s in res.samples],
    }
    if args.pool_top > 0:
        out[row]["pool"] = [[m["linear"], m["misfit"] / noise_misfit] for m in pool]
        out[row]["pool_sizes"] = sizes
        out[row]["pool_basins"] = [  # the samples each start kept, their misfit and mean's MAE
            {k: v for k, v in b.items() if k != "mean"}
            | {
                "mae_m_per_s": None
                if b["mean"] is None
                else float((b["mean"] - t[0, 0]).abs().mean())
            }
            for b in pool_basins(res) or []
        ]
    if cal is not None:
        out[row] |= {
            "coverage_90_calibrated": res.coverage(t[0], 0.9, kind="calibrated"),
            "calibration_scale": cal.scale,
            "calibration_differs_in": cal.differs_from(res.settings, noise=args.noise),
        }
    return out


def pool_members(fits: list[dict], top: int, max_ratio: float, n: int):
    """The ``top`` candidates of smallest misfit among those within ``max_ratio`` × the best
    one's, and how many of the ``n`` chains each starts, as ``fwi_start(pool=top)`` picks them
    (:func:`~ubdiff_phys.inversion.fwi_start.pool_members`)."""
    kept, sizes = fwi_pool_members([m["misfit"] for m in fits], top, max_ratio, n)
    return [fits[i] for i in kept], sizes


def fwi_candidates(args, obs, survey, bounds, boundary, candidates, k: int) -> list[dict]:
    """Multiscale FWI from each linear candidate (one at a time, as
    ``fwi_start(linear=candidates)`` runs them): dicts with ``linear`` [top, bottom] (m/s),
    ``model`` (1, nz, nx) [m/s], ``misfit`` ½‖F(v) − d‖² and ``s`` (seconds). With
    ``--fwi-cache DIR`` they are read from ``DIR`` when a run with the same candidates, noise
    and observed data saved them there, else computed and saved."""
    key = {"candidates": [list(c) for c in candidates], "noise": args.noise, "seed": args.seed}
    key["observed_sum"] = float(obs.double().abs().sum())
    path = None
    if args.fwi_cache is not None:
        path = args.fwi_cache / f"{args.family}_noise{args.noise:g}_map{k:02d}_fwi.pt"
        if path.exists():
            cached = torch.load(path)
            if cached["key"] == key:
                return cached["fits"]
            raise SystemExit(f"{path} holds other FWI candidates: remove it or use another folder")
    fits = []
    for top, bottom in candidates:
        lin = torch.linspace(top, bottom, survey.nz)[:, None].expand(survey.nz, survey.nx)
        t0 = time.perf_counter()
        ref = refine_samples(obs, survey, lin[None, None].contiguous(), boundary=boundary,
                             bounds=bounds)  # fmt: skip
        fits.append({"linear": [top, bottom], "model": ref.mean, "misfit": float(ref.misfit[0]),
                     "s": time.perf_counter() - t0})  # fmt: skip
    if path is not None:
        save_samples(path, {"key": key, "fits": fits})
    return fits


def sample_path(args, k: int) -> Path:
    """Where ``--save-samples`` keeps map ``k``'s samples."""
    tag = "" if args.sharpen_seed == 1000 else f"_seed{args.sharpen_seed}"
    tag += "_noresample" if args.no_resample else ""
    return args.save_samples / f"{args.family}_noise{args.noise:g}_map{k:02d}{tag}.pt"


def save_samples(path: Path, payload: dict) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically (a temporary name, then a rename);
    refuses to replace an existing file (it may hold another run's samples)."""
    if path.exists():
        raise SystemExit(f"{path} exists: remove it or choose another --save-samples folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--velocity-prior", type=Path, required=True)
    ap.add_argument("--linear", type=float, nargs=2, default=(2000.0, 4000.0), metavar="M/S")
    ap.add_argument(
        "--t-start", type=int, default=128, help="the sharpening's t_start (default 128, its own)"
    )
    ap.add_argument(
        "--fwi-iterations", type=int, default=30, help="the smoothed-truth FWI's (0: no such row)"
    )
    ap.add_argument("--train-store", type=Path, default=None, help="InversionNet's paired rows")
    ap.add_argument("--inversionnet-steps", type=int, default=0, help="0: no InversionNet row")
    ap.add_argument("--inversionnet-noise", type=float, default=0.0)
    ap.add_argument("--inversionnet-weights", type=Path, default=None)
    ap.add_argument(
        "--references-only",
        action="store_true",
        help="score only the reference rows (FWI from the smoothed truth, InversionNet)",
    )
    ap.add_argument(
        "--linear-candidates",
        action="store_true",
        help="the FWI start from each of fwi_start.LINEAR_CANDIDATES, the smallest misfit kept",
    )
    ap.add_argument("--fwi-only", action="store_true", help="no sharpening")
    ap.add_argument(
        "--pool-top",
        type=int,
        default=0,
        help="start the chains from the K best FWI candidates (within --pool-max-ratio of the "
        "best misfit), split in misfit order; 0: the best one only",
    )
    ap.add_argument("--pool-max-ratio", type=float, default=2.0)
    ap.add_argument(
        "--no-resample",
        action="store_true",
        help="the sharpening never resamples its chains by misfit (each pooled start keeps its "
        "chains)",
    )
    ap.add_argument(
        "--sharpen-seed",
        type=int,
        default=1000,
        help="the sharpening's generator seed is this + the map index (default 1000: the "
        "records before this option)",
    )
    ap.add_argument(
        "--fwi-cache", type=Path, default=None, help="folder to keep/reuse each map's candidates"
    )
    ap.add_argument("--maps", default=None, help="comma-separated map indices (default all)")
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append the record to")
    ap.add_argument(
        "--save-samples",
        type=Path,
        default=None,
        help="folder for each map's sharpened samples, truth and FWI start (float16, .pt)",
    )
    args = ap.parse_args()
    maps = range(args.n_maps) if args.maps is None else [int(m) for m in args.maps.split(",")]
    if args.save_samples is not None:  # before any expensive work: never replace a saved map
        taken = [p for k in maps if (p := sample_path(args, k)).exists()]
        if taken:
            print(f"error: {taken[0]} exists: remove it or choose another --save-samples folder",
                  file=sys.stderr)  # fmt: skip
            raise SystemExit(2)
    prior, survey, truth, clean = open_held_out(args)
    vprior = load_velocity_prior(args.velocity_prior, "cpu")
    predict = None
    if args.inversionnet_steps > 0:
        predict, _ = inversionnet(
            args.train_store, args.inversionnet_steps, 0, args.inversionnet_noise,
            args.inversionnet_weights,
        )  # fmt: skip
    rows = []
    for k in maps:
        rows.append(probe_map(args, prior, vprior, survey, truth, clean, k, predict))
        print(json.dumps(rows[-1]), flush=True)
    record = {
        "what": "the reference rows (FWI from the smoothed truth, InversionNet) only"
        if args.references_only
        else "multiscale FWI from linear starts (no sharpening)"
        if args.fwi_only
        else "the velocity-space posterior started from multiscale FWI from a linear start",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
        **run_record(),
    }
    if args.out is not None:
        append_json_record(args.out, record)


if __name__ == "__main__":
    main()
