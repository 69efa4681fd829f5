"""Probe: one posterior method on the held-out maps of examples/posterior_inversion.py (same maps,
noise and seeds), without the FWI and InversionNet baselines: the posterior mean's SSIM / MAE /
relative L2, each sample's SSIM, the 90 % coverage, the median misfit over the noise level,
seconds per sample and solver calls.

    PYTHONPATH=. python research/probes/posterior_method_probe.py \
        --checkpoint runs/velocity_diffusion_flatvel_a_alphabar/step3500.pt --method proximal \
        --maps 0 --steps 20 --inner 5 --n-samples 4 \
        --results benchmarks/results/posterior_method_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import add_held_out_options, open_held_out, score  # noqa: E402

from ubdiff_phys.diffusion.posterior import POSTERIOR_METHODS  # noqa: E402
from ubdiff_phys.inversion import posterior_sample  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap, n_samples=4)
    ap.add_argument("--maps", default="0", help="indices among the --n-maps held-out maps")
    ap.add_argument("--method", default="proximal", choices=POSTERIOR_METHODS)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--noise", type=float, default=0.01, help="fraction of each record's RMS")
    ap.add_argument("--results", type=Path, help="JSON list the record is appended to")
    args = ap.parse_args()
    prior, survey, truth, clean = open_held_out(args)
    lo, hi = prior.bounds
    rows = []
    for k in (int(m) for m in args.maps.split(",")):
        obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
        res = posterior_sample(
            obs, survey, boundary=prior.boundary, prior=prior, n_samples=args.n_samples,
            noise_std=sigma, steps=args.steps, method=args.method, inner=args.inner,
            generator=torch.Generator().manual_seed(k),
        )  # fmt: skip
        t = truth[k : k + 1]
        row = {"map": k, **score(res.mean[None], t, lo, hi)}
        row |= {
            "coverage_90": res.coverage(t[0]),
            "misfit_over_noise": float(res.misfit.median()) / res.noise_misfit,
            "seconds_per_sample": res.seconds / args.n_samples,
            "solver_calls": res.solver_calls,
            "sample_ssim": [score(v[None], t, lo, hi)["ssim"] for v in res.samples],
            "settings": res.settings,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.results is not None:
        record = {"what": __doc__.split("\n\n")[0], "rows": rows, "checkpoint": args.checkpoint}
        record["settings"] = {k: str(v) for k, v in vars(args).items()}
        append_json_record(args.results, record | run_record())


if __name__ == "__main__":
    main()
