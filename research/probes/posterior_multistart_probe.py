"""Probe: multi-start multiscale FWI from the posterior samples of examples/posterior_inversion.py
against FWI from the smoothed truth, on the same held-out maps, noise and draws.

Reads the samples the example saved (``<out>/posterior_samples.npz``), rebuilds each map's noisy
gathers exactly as the example did (same maps, seed and noise draw), and scores per map:

- ``posterior``: the posterior mean (as in the example's table);
- ``refined_kept`` / ``refined_best`` / ``refined_all``: :func:`ubdiff_phys.inversion.refine.
  refine_samples` from the samples (multiscale FWI, ``--iterations`` per band, then
  ``--polish-iterations`` full-band ones on the kept): the mean of the kept refinements (misfit
  within ``--keep-within`` of the best), the best one, the mean of all; ``refined_unpolished``
  the mean of the kept ones before their polish;
- ``fwi``: FWI from the truth smoothed with sigma = 10 cells, ``--fwi-iterations`` (the table's
  baseline, 30); ``fwi_matched``: the same start with as many iterations as one kept refinement
  uses (bands × iterations + polish), so the oracle start gets the same budget;
  ``fwi_linear_multiscale``: the same refinement from one 1-D linear start (``--linear``, no
  truth, no prior), the deterministic method a survey without a prior would run.

Each with SSIM / MAE / relative L2 and the misfit over the noise level; per map also the Spearman
correlation between the refined samples' misfits and their SSIMs. Appends a record to ``--out``.

    PYTHONPATH=. python research/probes/posterior_multistart_probe.py \
        --samples out/post_flat12_cal/posterior_samples.npz --n-maps 12 \
        --out benchmarks/results/posterior_multistart_probe.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import add_held_out_options, open_held_out, score  # noqa: E402

from ubdiff_phys.inversion import fwi, smooth_velocity  # noqa: E402
from ubdiff_phys.inversion.multiscale import DEFAULT_BANDS  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.inversion.refine import (  # noqa: E402
    DEFAULT_KEEP_WITHIN,
    DEFAULT_POLISH_ITERATIONS,
    refine_samples,
)
from ubdiff_phys.physics import misfit  # noqa: E402
from ubdiff_phys.runtime.files import (  # noqa: E402
    append_json_record,
    atomic_write_text,
    run_record,
)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (no ties expected)."""
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def one_map(args, k, prior, survey, truth, clean, samples) -> dict:
    """Every method on map k (see the module docstring)."""
    lo, hi = prior.bounds
    bd = prior.boundary
    obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
    obs1 = obs[None]
    noise_misfit = 0.5 * obs.numel() * sigma**2
    t = truth[k : k + 1]
    out: dict = {"map": k, "noise": args.noise, "noise_misfit": noise_misfit}

    def record(name: str, v: torch.Tensor, seconds: float) -> None:
        f = float(misfit(v.float(), obs1, survey, boundary=bd))
        out[name] = score(v, t, lo, hi) | {"misfit_over_noise": f / noise_misfit, "s": seconds}

    record("posterior", samples.mean(0, keepdim=True), 0.0)
    kw = dict(boundary=bd, bounds=(lo, hi), iterations=args.iterations)
    kw |= dict(keep_within=args.keep_within, polish_iterations=args.polish_iterations)
    ref = refine_samples(obs, survey, samples, **kw)
    for name, v in (("refined_kept", ref.mean), ("refined_best", ref.best)):
        record(name, v[None], ref.seconds)
    record("refined_all", ref.samples.mean(0, keepdim=True), ref.seconds)
    record("refined_unpolished", ref.unpolished[ref.kept].mean(0, keepdim=True), ref.seconds)
    n = len(ref.samples)
    ssims = [score(ref.samples[i : i + 1], t, lo, hi)["ssim"] for i in range(n)]
    # the selection's evidence: after the multiscale stage (before any polish), does a lower
    # misfit mean a map closer to the truth?
    stage = ref.unpolished
    stage_misfit = misfit(stage, obs1.expand(n, -1, -1, -1), survey, boundary=bd, reduction="none")
    stage_ssim = [score(stage[i : i + 1], t, lo, hi)["ssim"] for i in range(n)]
    out["refined_samples"] = {
        "misfit_over_noise": (ref.misfit / noise_misfit).tolist(),
        "start_misfit_over_noise": (ref.start_misfit / noise_misfit).tolist(),
        "sample_ssim": ssims,
        "kept": ref.kept.tolist(),
        "unpolished_misfit_over_noise": (stage_misfit / noise_misfit).tolist(),
        "unpolished_ssim": stage_ssim,
        "spearman_misfit_ssim": spearman(stage_misfit.tolist(), stage_ssim),
        "evaluations": ref.evaluations,
    }
    start = smooth_velocity(t, 10.0)
    budget = len(DEFAULT_BANDS) * args.iterations + args.polish_iterations
    for name, its in (("fwi", args.fwi_iterations), ("fwi_matched", budget)):
        t0 = time.perf_counter()
        v = fwi(obs1, survey, start, boundary=bd, iterations=its, bounds=(lo, hi)).velocity
        record(name, v, time.perf_counter() - t0)
    top, bottom = args.linear
    lin = torch.linspace(top, bottom, survey.nz)[:, None].expand(survey.nz, survey.nx)
    t0 = time.perf_counter()
    v = refine_samples(obs, survey, lin[None, None].contiguous(), **kw).mean[None]
    record("fwi_linear_multiscale", v, time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap)
    ap.add_argument("--samples", type=Path, required=True, help="the example's samples .npz")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--iterations", type=int, default=20, help="L-BFGS iterations per band")
    ap.add_argument("--keep-within", type=float, default=DEFAULT_KEEP_WITHIN)
    ap.add_argument("--polish-iterations", type=int, default=DEFAULT_POLISH_ITERATIONS)
    ap.add_argument("--fwi-iterations", type=int, default=30)
    ap.add_argument("--linear", type=float, nargs=2, default=(2000.0, 4000.0), metavar="M/S")
    ap.add_argument("--maps", default=None, help="comma-separated map indices (default all)")
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append the record to")
    args = ap.parse_args()
    prior, survey, truth, clean = open_held_out(args)
    saved = np.load(args.samples)
    if not np.allclose(saved["truth"], truth.numpy()):
        sys.exit("the samples file's true maps differ from these options' maps")
    maps = range(args.n_maps) if args.maps is None else [int(m) for m in args.maps.split(",")]
    # rows finished so far survive an interruption: a rerun with the same options resumes
    partial = None if args.out is None else args.out.with_suffix(".partial.json")
    settings = json.loads(
        json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    )
    done = {}
    if partial is not None and partial.exists():
        saved_partial = json.loads(partial.read_text())
        if saved_partial["settings"] == settings:
            done = {r["map"]: r for r in saved_partial["rows"]}
    rows = []
    for k in maps:
        if k in done:
            rows.append(done[k])
            continue
        samples = torch.as_tensor(saved[f"samples_{args.noise}_{k}"]).float()
        rows.append(one_map(args, k, prior, survey, truth, clean, samples))
        r = rows[-1]
        names = [n for n in r if isinstance(r[n], dict) and "ssim" in r[n]]
        print(k, {n: round(r[n]["ssim"], 3) for n in names}, flush=True)
        if partial is not None:
            atomic_write_text(partial, json.dumps({"settings": settings, "rows": rows}))
    names = [n for n in rows[0] if isinstance(rows[0][n], dict) and "ssim" in rows[0][n]]
    summary = {
        n: {
            key: float(np.mean([r[n][key] for r in rows]))
            for key in ("ssim", "mae_m_per_s", "rel_l2", "misfit_over_noise", "s")
        }
        for n in names
    }
    summary["spearman_misfit_ssim_mean"] = float(
        np.mean([r["refined_samples"]["spearman_misfit_ssim"] for r in rows])
    )
    for n in names:
        print(f"{n:24s} " + " ".join(f"{k} {v:.4g}" for k, v in summary[n].items()))
    record = {
        "what": "multi-start multiscale FWI from posterior samples vs FWI from the smoothed truth",
        "family": args.family,
        "checkpoint": prior.info.get("checkpoint"),
        "settings": settings,
        "bands": list(DEFAULT_BANDS),
        "rows": rows,
        "summary": summary,
        **run_record(),
    }
    if args.out is not None:
        append_json_record(args.out, record)
        partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
