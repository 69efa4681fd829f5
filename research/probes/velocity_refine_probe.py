"""Probe: refine the latent posterior's samples with the velocity-space prior (SDEdit + physics).

The latent posterior's samples carry the long wavelengths the data ask for but can be no sharper
than UB-Diff's velocity decoder (whose reconstructions of the evaluation's FlatVel-A maps score
SSIM 0.873 against FWI's 0.905); the velocity-space prior is sharp but, started from noise, its
posterior steps cycle-skip (``benchmarks/results/posterior_method_probe.json``). Here each latent
posterior sample x (normalised) is noised to timestep ``t_start`` of the velocity prior,
√ᾱ x + √(1 − ᾱ) ε, and the velocity prior's posterior sampler runs from there to 0 with the same
data, so the sharp prior works from a start that already holds the long wavelengths.

Per map (the maps, noise and draws of examples/posterior_inversion.py): ``latent`` the latent
posterior (noise-aware, 50 steps, ``--latent-fit``), then ``velocity_<method>_<t_start>`` the
refined samples; each with the mean's SSIM / MAE / rel. L2, coverage of the 90 % prediction
interval, the samples' median misfit over the noise level, and seconds.

    PYTHONPATH=. python research/probes/velocity_refine_probe.py --maps 0,1,2 \
        --out benchmarks/results/velocity_refine_probe.json
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
from posterior_inversion import held_out_maps, score  # noqa: E402

from ubdiff_phys.diffusion.posterior import sample_posterior  # noqa: E402
from ubdiff_phys.inversion import load_prior, posterior_sample  # noqa: E402
from ubdiff_phys.inversion.likelihood import StateMisfits  # noqa: E402
from ubdiff_phys.inversion.multiscale import parse_bands  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.inversion.prior import load_velocity_prior  # noqa: E402
from ubdiff_phys.physics.misfit import misfit_and_grad  # noqa: E402
from ubdiff_phys.pipelines.generator import shipped_velocity_checkpoint  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402


def summary(v: torch.Tensor, t: torch.Tensor, lo: float, hi: float, f: torch.Tensor, noise: float):
    """Mean's score, 90 % prediction-interval coverage (t_0.95 with n − 1 dof) and misfits; the
    SSIM of the mean of the samples whose misfit is within 1.25× of the smallest (``kept``)."""
    from ubdiff_phys.runtime.stats import student_t_quantile

    n = v.shape[0]
    mean, std = v.mean(0), v.std(0)
    half = student_t_quantile(0.95, n - 1) * std * (1 + 1 / n) ** 0.5
    cov = float(((t[0] >= mean - half) & (t[0] <= mean + half)).float().mean())
    keep = f <= 1.25 * f.min()  # the multistart refinement's rule (--keep-within 1.25)
    return score(mean[None], t, lo, hi) | {
        "kept_ssim": score(v[keep].mean(0)[None], t, lo, hi)["ssim"],
        "n_kept": int(keep.sum()),
        "coverage": cov,
        "misfit_over_noise_median": float(f.median()) / noise,
        "sample_ssim": [round(score(v[i : i + 1], t, lo, hi)["ssim"], 4) for i in range(n)],
        "sample_misfit_over_noise": [round(float(x) / noise, 3) for x in f],
    }


def refine(
    vprior, x_start, obs_b, ms, boundary, sigma, method, t_start, steps, inner, gen, bands=None,
    full_from=0.6, resample_at=(), resample_ess=0.5,
):  # fmt: skip
    """Velocity-prior posterior samples from x_start (n, 1, nz, nx) normalised, noised to
    t_start (t_start ≥ T − 1: from pure noise, x_start unused); ``bands``: a band-scheduled
    likelihood; ``resample_at``: steps after which the particles are resampled by misfit.
    Returns (velocity (n, 1, nz, nx) float32, solver calls)."""
    err = vprior.denoiser_error
    sched = vprior.denoiser.schedule
    t_start = min(t_start, sched.timesteps - 1)
    ab = float(sched.alphas_cumprod[t_start])
    eps = torch.randn(x_start.shape, generator=gen, dtype=torch.float64)
    x_t = ab**0.5 * x_start + (1 - ab) ** 0.5 * eps
    misfits = StateMisfits(vprior, ms, boundary)
    opts: dict[str, Any] = {"misfit": misfits.against(obs_b), "method": method}
    if bands is not None:
        opts["step_misfit"] = misfits.scheduled(obs_b, steps, bands, full_from)
    if method == "proximal":
        opts |= {
            "data_variance": lambda t: sigma**2,
            "state_variance": lambda t: err.state_rms_at(t) ** 2,
            "inner": inner,
            "perturbed_misfit": misfits.perturbed(obs_b, sigma),
        }
        if bands is not None:
            opts["step_perturbed_misfit"] = misfits.perturbed_scheduled(
                obs_b, sigma, steps, bands, full_from
            )
    else:
        opts |= {"data_variance": lambda t: sigma**2 + err.rms_at(t) ** 2}
    opts |= {"resample_at": resample_at, "resample_ess": resample_ess}
    x = sample_posterior(vprior.denoiser, x_t, steps, generator=gen, t_start=t_start, **opts)
    return vprior.velocity(x).float(), misfits.calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", default="0,1,2")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--n-samples", type=int, default=8)
    ap.add_argument("--latent-fit", type=int, default=20)
    ap.add_argument("--t-start", default="64,128")
    ap.add_argument("--methods", default="proximal")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--n-maps", type=int, default=3)
    ap.add_argument("--bands", default=None, help="e.g. 3,4,5,6,8,10,12,full (default: full)")
    ap.add_argument("--full-band-from", type=float, default=0.6)
    ap.add_argument("--resample-at", default="", help="steps to resample the particles after")
    ap.add_argument("--resample-ess", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=None, help="JSON file to append a record to")
    ap.add_argument("--save-samples", type=Path, default=None, help="folder for per-map .pt files")
    args = ap.parse_args()
    bands = parse_bands(args.bands) if args.bands else None
    resample_at = {int(i) for i in args.resample_at.split(",") if i}
    prior = load_prior()
    vprior = load_velocity_prior(shipped_velocity_checkpoint())
    lo, hi = prior.bounds
    boundary = prior.boundary
    ms, truth, clean = held_out_maps(prior, "flatvel-a", args.n_maps, args.seed)
    rows = []
    for k in [int(x) for x in args.maps.split(",")]:
        obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
        t = truth[k : k + 1]
        noise = 0.5 * obs.numel() * sigma**2
        obs_b = obs[None].expand(args.n_samples, *obs.shape).contiguous()
        res = posterior_sample(
            obs, ms, boundary=boundary, prior=prior, n_samples=args.n_samples, noise_std=sigma,
            steps=50, latent_fit=args.latent_fit, generator=torch.Generator().manual_seed(k),
        )  # fmt: skip
        row: dict[str, Any] = {"map": k, "noise_misfit": noise}
        row["latent"] = summary(res.samples, t, lo, hi, res.misfit, noise) | {
            "seconds": res.seconds
        }
        print(json.dumps({"map": k, "latent": row["latent"]}), flush=True)
        x_start = vprior.encode(res.samples)
        for method in args.methods.split(","):
            for ts in [int(x) for x in args.t_start.split(",")]:
                t0 = time.perf_counter()
                gen = torch.Generator().manual_seed(1000 + k)
                v, calls = refine(
                    vprior, x_start, obs_b, ms, boundary, sigma, method, ts, args.steps,
                    args.inner, gen, bands, args.full_band_from, resample_at, args.resample_ess,
                )  # fmt: skip
                f, _ = misfit_and_grad(v, obs_b, ms, boundary=boundary)
                key = f"velocity_{method}_{ts}" + ("_resampled" if resample_at else "")
                row[key] = summary(v, t, lo, hi, f, noise) | {
                    "seconds": time.perf_counter() - t0,
                    "solver_calls": calls + 1,
                }
                print(json.dumps({"map": k, key: row[key]}), flush=True)
                if args.save_samples is not None:
                    args.save_samples.mkdir(parents=True, exist_ok=True)
                    torch.save(
                        {"truth": t, "latent": res.samples, "latent_misfit": res.misfit,
                         "samples": v, "misfit": f, "noise_misfit": noise},
                        args.save_samples / f"map{k}_{key}.pt",
                    )  # fmt: skip
        rows.append(row)
    if args.out is not None:
        append_json_record(
            args.out,
            {"what": __doc__.split("\n\n")[0], "rows": rows,
             "settings": {k: str(v) for k, v in vars(args).items()}, **run_record()},
        )  # fmt: skip


if __name__ == "__main__":
    main()
