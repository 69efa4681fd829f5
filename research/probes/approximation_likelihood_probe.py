"""Probe: the decoder's approximation error in the *likelihood* (Bayesian approximation error):
does adding its data-space variance e_d² to the noise-aware likelihood (σ_d² + r_t² + e_d²)
improve the posterior mean or its calibration?

e_d is the RMS per data value of F(D(E(v))) − F(v) over ``--n-error-maps`` held-out rows of the
prior's training store (the gathers the decoder's best reconstruction misses). The posterior
runs on the same maps, noise and draws as examples/posterior_inversion.py, so its baseline
(without e_d) is that example's record (``--baselines none`` is enough).

    PYTHONPATH=. python research/probes/approximation_likelihood_probe.py \
        --train-store data/shipped.h5 --out benchmarks/results/approximation_likelihood_probe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import add_held_out_options, open_held_out, score  # noqa: E402

from ubdiff_phys.data.store import open_store  # noqa: E402
from ubdiff_phys.inversion import posterior_sample  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.physics import simulate  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402


@torch.no_grad()
def data_approximation_rms(prior, store: Path, n_maps: int, survey, boundary) -> float:
    """RMS per data value of F(D(E(v))) − F(v) over the store's first ``n_maps`` test rows."""
    with open_store(store) as st:
        rows = st.test_index[:n_maps]
        v = np.stack([st.velocity(int(r)) for r in rows])
    v = torch.from_numpy(v).float().reshape(len(rows), 1, survey.nz, survey.nx)
    rec = prior.velocity(prior.encode(v)).float()
    d = simulate(rec, survey, boundary=boundary).double() - simulate(v, survey, boundary=boundary)
    return math.sqrt(float(d.square().mean()))


def main() -> None:
    ap = argparse.ArgumentParser()
    add_held_out_options(ap)
    ap.add_argument("--train-store", type=Path, required=True)
    ap.add_argument("--noise", default="0.01,0.05")
    ap.add_argument("--n-error-maps", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True, help="JSON list to append the record to")
    args = ap.parse_args()
    prior, survey, truth, clean = open_held_out(args)
    lo, hi = prior.bounds
    e_d = data_approximation_rms(prior, args.train_store, args.n_error_maps, survey, prior.boundary)
    err = prior.denoiser_error
    widened = dataclasses.replace(err, rms=[math.sqrt(r * r + e_d * e_d) for r in err.rms])
    print(f"e_d = {e_d:.4g} per data value (r_0 = {err.rms[0]:.4g}, r_T = {err.rms[-1]:.4g})")
    rows: list[dict[str, Any]] = []
    for level in [float(x) for x in args.noise.split(",")]:
        for k in range(args.n_maps):
            obs, sigma = add_noise(clean[k], level, seed=args.seed * 1_000_003 + k)
            t0 = time.perf_counter()
            res = posterior_sample(
                obs,
                survey,
                boundary=prior.boundary,
                prior=prior,
                n_samples=args.n_samples,
                noise_std=sigma,
                denoiser_error=widened,
                generator=torch.Generator().manual_seed(k),
            )
            row = {"map": k, "noise": level, "sigma": sigma, "e_d_over_sigma": e_d / sigma}
            row |= score(res.mean[None], truth[k : k + 1], lo, hi)
            row |= {
                "coverage_90": res.coverage(truth[k], 0.9),
                "coverage_90_approximation": res.coverage(truth[k], 0.9, kind="approximation"),
                "misfit_over_noise": float(res.misfit.median()) / res.noise_misfit,
                "std_mean_m_per_s": float(res.std.mean()),
                "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            print({k2: round(v, 4) if isinstance(v, float) else v for k2, v in row.items()})
    summary = {
        str(level): {
            key: float(np.mean([r[key] for r in rows if r["noise"] == level]))
            for key in ("ssim", "mae_m_per_s", "coverage_90", "coverage_90_approximation")
        }
        for level in {r["noise"] for r in rows}
    }
    print(summary)
    record = {
        "what": "noise-aware posterior with the decoder's data-space approximation error e_d "
        "added to the likelihood variance",
        "checkpoint": prior.info.get("checkpoint"),
        "e_d": e_d,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
        "summary": summary,
        **run_record(),
    }
    append_json_record(args.out, record)


if __name__ == "__main__":
    main()
