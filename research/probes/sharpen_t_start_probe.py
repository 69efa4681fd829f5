"""Probe: how far back the sharpening starts (``t_start`` of
:func:`ubdiff_phys.inversion.sharpen_samples`) on held-out maps, everything else as the example.

Per map: the latent posterior exactly as ``examples/posterior_inversion.py --latent-fit 20``
draws it (8 samples, 50 noise-aware steps, generator seeded with the map index), then the
sharpening with the velocity-space prior ``--velocity-prior`` from ``--t-start`` (20 reverse
steps and 15 L-BFGS iterations each, the default bands and resampling; generator 1000 + map),
scored as the example scores its posterior mean: SSIM / MAE / relative L2, the mean's and the
samples' median misfit over the noise level, the predictive interval's coverage, and the mean's
MAE per 10-row depth band. With the default ``t_start`` (128) the rows equal the example's
``--sharpen`` rows for the same maps; a larger one lets the velocity prior move the latent
samples' long wavelengths further (t_start must be below the prior's timesteps, 256 for the
velocity priors of this project).

    PYTHONPATH=. python research/probes/sharpen_t_start_probe.py --checkpoint \
        runs/diffusion_curvevel_a_sharp --family curvevel-a --n-maps 3 --t-start 200 \
        --velocity-prior runs/velocity_prior_curvevel_a_10k \
        --out benchmarks/results/sharpen_t_start_probe.json
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
from posterior_inversion import add_held_out_options, open_held_out, score  # noqa: E402

from ubdiff_phys.inversion import posterior_sample  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.inversion.prior import load_velocity_prior  # noqa: E402
from ubdiff_phys.inversion.sharpen import sharpen_samples  # noqa: E402
from ubdiff_phys.physics import misfit  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402


def probe_map(args, prior, vprior, survey, truth, clean, k: int) -> dict:
    """One map's row (see the module docstring)."""
    lo, hi = prior.bounds
    obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
    noise_misfit = 0.5 * obs.numel() * sigma**2
    t0 = time.perf_counter()
    res = posterior_sample(
        obs, survey, boundary=prior.boundary, prior=prior, n_samples=args.n_samples,
        noise_std=sigma, steps=50, latent_fit=20, generator=torch.Generator().manual_seed(k),
    )  # fmt: skip
    res = sharpen_samples(
        res, obs, survey, prior=vprior, t_start=args.t_start, steps=args.sharpen_steps,
        generator=torch.Generator().manual_seed(1000 + k),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    t = truth[k : k + 1]
    f = float(misfit(res.mean[None].float(), obs[None], survey, boundary=prior.boundary))
    err = (res.mean - t[0]).abs()[0]
    return {
        "map": k,
        **score(res.mean[None], t, lo, hi),
        "misfit_over_noise": f / noise_misfit,
        "sample_misfit_median_over_noise": float(res.misfit.median()) / noise_misfit,
        "coverage_90": res.coverage(t[0], 0.9),
        "seconds": seconds,
        "depth_mae": [float(err[i : i + 10].mean()) for i in range(0, err.shape[0], 10)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--velocity-prior", type=Path, required=True)
    ap.add_argument("--t-start", type=int, default=128)
    ap.add_argument("--sharpen-steps", type=int, default=20)
    ap.add_argument("--maps", default=None, help="comma-separated map indices (default all)")
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append the record to")
    args = ap.parse_args()
    prior, survey, truth, clean = open_held_out(args)
    vprior = load_velocity_prior(args.velocity_prior, "cpu")
    maps = range(args.n_maps) if args.maps is None else [int(m) for m in args.maps.split(",")]
    rows = []
    for k in maps:
        rows.append(probe_map(args, prior, vprior, survey, truth, clean, k))
        print(json.dumps(rows[-1]), flush=True)
    record = {
        "what": "sharpening from another t_start, latent stage and scoring as the example's",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
        **run_record(),
    }
    if args.out is not None:
        append_json_record(args.out, record)


if __name__ == "__main__":
    main()
