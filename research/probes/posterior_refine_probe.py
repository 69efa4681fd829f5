"""Probe: what limits the latent posterior, and does velocity-space FWI refinement of each
posterior sample (started from the sample) close the gap to FWI from the smoothed truth?

Per map (same maps, noise and sampler settings as examples/posterior_inversion.py):
``decoder_bound`` is the autoencoder's reconstruction of the true map (encode, decode): no latent
can be expected to fit the data much better; ``posterior`` the noise-aware posterior mean;
``refined_K`` the mean of the samples after K L-BFGS FWI iterations each; ``latent_refined_K``
the mean after K L-BFGS iterations on each sample's final latent (its own data misfit, through the
velocity decoder and the adjoint; then clamped to the sampler's latent range [-1, 1]); ``fwi`` FWI
from the truth smoothed with sigma = 10 cells (30 iterations).

    PYTHONPATH=. python research/probes/posterior_refine_probe.py --maps 0,1 --noise 0.01 \
        --out benchmarks/results/posterior_refine_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import add_held_out_options, open_held_out, score  # noqa: E402

from ubdiff_phys.inversion import (  # noqa: E402
    fwi,
    posterior_sample,
    smooth_velocity,
)
from ubdiff_phys.inversion.likelihood import NativeMisfit
from ubdiff_phys.inversion.posterior import fit_latents  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.physics import misfit  # noqa: E402
from ubdiff_phys.runtime.files import atomic_write_json, run_record  # noqa: E402


def _summary(v, t, lo, hi, n) -> dict[str, Any]:
    """Score of the mean of samples v (n, 1, nz, nx) and the coverage of its 90 % prediction
    interval (Student's t with n - 1 = 7 degrees of freedom)."""
    mean, std = v.mean(0), v.std(0)
    half = 1.895 * std * (1 + 1 / n) ** 0.5  # t_0.95, 7 dof
    cov = float(((t[0] >= mean - half) & (t[0] <= mean + half)).float().mean())
    return score(mean[None], t, lo, hi) | {
        "coverage": cov,
        "sample_ssim": [score(v[i : i + 1], t, lo, hi)["ssim"] for i in range(len(v))],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    add_held_out_options(ap)
    ap.add_argument("--maps", default="0,1")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--iterations", default="10,30", help="FWI refinements ('' for none)")
    ap.add_argument("--latent-iterations", default="", help="latent refinements ('' for none)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = ap.parse_args()
    prior, ms, truth, clean = open_held_out(args)
    lo, hi = prior.bounds
    boundary = prior.boundary
    with torch.no_grad():
        recon = prior.velocity(prior.encode(truth)).float()
    out: list[dict[str, Any]] = []
    for k in [int(x) for x in args.maps.split(",")]:
        obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
        t = truth[k : k + 1]
        last: dict[str, Any] = {}
        res = posterior_sample(
            obs,
            ms,
            boundary=boundary,
            prior=prior,
            n_samples=args.n_samples,
            noise_std=sigma,
            steps=50,
            generator=torch.Generator().manual_seed(k),
            callback=last.update,
        )
        row: dict[str, Any] = {"map": k, "noise_misfit": 0.5 * obs.numel() * sigma**2}
        row["decoder_bound"] = score(recon[k : k + 1], t, lo, hi) | {
            "misfit": float(misfit(recon[k : k + 1], obs[None], ms, boundary=boundary))
        }
        row["posterior"] = score(res.mean[None], t, lo, hi) | {
            "coverage": res.coverage(t[0]),
            "misfit_median": float(res.misfit.median()),
            "seconds": res.seconds,
        }
        obs_b = obs[None].expand(args.n_samples, *obs.shape).contiguous()
        for it in [int(x) for x in args.iterations.split(",") if x]:
            t0 = time.perf_counter()
            f = fwi(obs_b, ms, res.samples, boundary=boundary, iterations=it, bounds=(lo, hi))
            v = f.velocity.float()
            row[f"refined_{it}"] = _summary(v, t, lo, hi, args.n_samples) | {
                "misfit_median": float(f.history[-1].median()),
                "mean_misfit": float(misfit(v.mean(0)[None], obs[None], ms, boundary=boundary)),
                "seconds": time.perf_counter() - t0,
                "evaluations": f.evaluations,
            }
        for it in [int(x) for x in args.latent_iterations.split(",") if x]:
            t0 = time.perf_counter()

            def data_misfit(z: torch.Tensor, obs_b: torch.Tensor = obs_b) -> torch.Tensor:
                return NativeMisfit.apply(prior.velocity(z), obs_b, ms, boundary)

            z1 = fit_latents(data_misfit, last["x"], it)
            with torch.no_grad():
                v, f1 = prior.velocity(z1).float().cpu(), data_misfit(z1)
            row[f"latent_refined_{it}"] = _summary(v, t, lo, hi, args.n_samples) | {
                "misfit_median": float(f1.median()),
                "seconds": time.perf_counter() - t0,
            }
        t0 = time.perf_counter()
        f = fwi(
            obs[None],
            ms,
            smooth_velocity(t, 10.0),
            boundary=boundary,
            iterations=30,
            bounds=(lo, hi),
        )
        row["fwi"] = score(f.velocity.float(), t, lo, hi) | {
            "seconds": time.perf_counter() - t0,
            "misfit": float(f.history[-1][0]),
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    if args.out is not None:
        atomic_write_json(
            args.out,
            {
                "what": __doc__.split("\n\n")[0],
                "rows": out,
                "settings": {k: str(v) for k, v in vars(args).items()},
                **run_record(),
            },
        )


if __name__ == "__main__":
    main()
