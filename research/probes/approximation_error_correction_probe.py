"""Probe: correct latent-posterior samples by the decoder's approximation error, fitted to the data.

The latent posterior's samples are decoder outputs D(z); the true map is D(z) + e with e the
decoder's approximation error (``decoder_error.json``: pixel-wise RMS e_rms, Kaipio & Somersalo).
Their data misfit is tens to hundreds of times the noise level because D cannot express the map.
This probe asks whether fitting e to the data per sample brings the posterior mean closer to the
truth. Per sample, with u a whitened correction (prior N(0, I)) and K an optional Gaussian
smoothing of ``--smooth`` cells (norm-preserving for white u):

    v = clamp(D(z_i) + e_rms ⊙ K u),   minimise ½‖F(v) − d_i‖²/σ² + ½‖u − η_i‖²

by ``--iterations`` batched L-BFGS steps (the native fused misfit + adjoint). ``--mode map``:
d_i = d, η_i = 0 (each sample's most likely correction); ``--mode rml``: d_i = d + N(0, σ²) and
η_i ~ N(0, I) (randomised maximum likelihood: an exact posterior draw of e for a linear F).

``--basis pca:K`` replaces the pixel prior by a low-rank Gaussian one: the mean and first K
principal components of v − D(E(v)) over ``--basis-maps`` fresh maps (what
``ubdiff_phys.inversion.error_basis`` ships for ``posterior_sample(error_fit=)``).

Reads the samples ``examples/posterior_inversion.py`` saved, rebuilds each map's noisy gathers as
the example did (same maps, seed, noise draw), and scores the mean of the corrected samples
against the posterior mean (SSIM on the prior's range), the samples' misfit over the noise level
½Nσ² before and after, and the 90 % predictive-interval coverage of the corrected samples.

    python examples/posterior_inversion.py --train-store data/shipped.h5 --baselines none \
        --n-maps 4 --noise 0.01 --out out/post4
    PYTHONPATH=. python research/probes/approximation_error_correction_probe.py \
        --samples out/post4/posterior_samples.npz --n-maps 4 --mode map,rml --smooth 0,3
    PYTHONPATH=. python research/probes/approximation_error_correction_probe.py \
        --samples out/post4/posterior_samples.npz --n-maps 4 --mode map,rml --basis pca:32,pca:64
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import add_held_out_options, open_held_out, score  # noqa: E402

from ubdiff_phys.data.families import generate  # noqa: E402
from ubdiff_phys.inversion import smooth_velocity  # noqa: E402
from ubdiff_phys.inversion.error_basis import estimate_error_basis  # noqa: E402
from ubdiff_phys.inversion.likelihood import NativeMisfit  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.physics import misfit  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402
from ubdiff_phys.runtime.lbfgs import batched_lbfgs  # noqa: E402
from ubdiff_phys.runtime.stats import student_t_quantile  # noqa: E402

SHIPPED_ERROR = (
    Path(__file__).resolve().parents[2] / "ubdiff_phys/assets/flatvel_a_small/decoder_error.json"
)


def smoother(sigma: float):
    """u -> K u: Gaussian smoothing of ``sigma`` cells, scaled so white noise keeps unit variance
    (2 √π σ for a 2-D Gaussian); the identity for sigma = 0."""
    if sigma <= 0:
        return lambda u: u
    gain = 2.0 * math.sqrt(math.pi) * sigma
    return lambda u: smooth_velocity(u, sigma) * gain


def pixel_correction(e: torch.Tensor, sigma: float):
    """(u -> e_rms ⊙ K u, shape of u per sample): the independent-pixel error prior."""
    k = smoother(sigma)
    return (lambda u: e * k(u)), tuple(e.shape[1:])


def pca_correction(prior, family: str, n_maps: int, k: int, seed: int):
    """(c -> ē + Σ_j s_j c_j b_j, (k,), explained share): the decoder error e = v − D(E(v)) on
    ``n_maps`` fresh ``family`` maps drawn with ``seed`` (not the evaluation's), as its mean ē
    plus its first ``k`` principal components b_j with standard deviations s_j [m/s]
    (:func:`ubdiff_phys.inversion.error_basis.estimate_error_basis`); c ~ N(0, I)."""
    v = torch.as_tensor(generate(family, n_maps, seed=seed)).float()
    v = v.reshape(n_maps, 1, prior.survey.nz, prior.survey.nx)
    basis = estimate_error_basis(prior, v, k)
    return basis.field, (k,), basis.explained


def correct(samples, obs, sigma, correction, survey, boundary, bounds, mode, iterations, gen):
    """(corrected samples (n, 1, nz, nx) float32 [m/s], objective calls) for one map;
    ``correction`` = (u -> field (n, 1, nz, nx) [m/s], shape of u per sample), u ~ N(0, I)."""
    field, ushape = correction
    n = samples.shape[0]
    data = obs[None].expand(n, *obs.shape).double()
    eta = torch.zeros(n, *ushape, dtype=torch.float64)
    if mode == "rml":
        data = data + sigma * torch.randn(data.shape, generator=gen, dtype=torch.float64)
        eta = torch.randn(eta.shape, generator=gen, dtype=torch.float64)
    data = data.float().contiguous()

    def velocity(u: torch.Tensor) -> torch.Tensor:
        return (samples + field(u)).clamp(*bounds)

    def objective(u: torch.Tensor) -> torch.Tensor:
        f = NativeMisfit.apply(velocity(u).float(), data, survey, boundary).double()
        return f / sigma**2 + 0.5 * (u - eta).flatten(1).square().sum(1)

    u, calls = batched_lbfgs(objective, eta.clone(), iterations)
    return velocity(u).float(), calls


def coverage(x: torch.Tensor, truth: torch.Tensor) -> float:
    """Share of true pixels inside the samples' 90 % Gaussian prediction interval."""
    x = x.flatten(1).double()
    n = x.shape[0]
    half = student_t_quantile(0.95, n - 1) * (x.var(0) * (1 + 1 / n)).sqrt()
    t = truth.flatten().double()
    return float(((t >= x.mean(0) - half) & (t <= x.mean(0) + half)).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap)
    ap.add_argument("--samples", type=Path, required=True)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--mode", default="map,rml", help="comma list of map, rml")
    ap.add_argument("--smooth", default="0", help="comma list of smoothing sigmas [cells]")
    ap.add_argument(
        "--basis",
        default="pixel",
        help="comma list of error priors: pixel (e_rms, with --smooth) or pca:K (the mean and K "
        "principal components of the decoder error on --basis-maps fresh maps)",
    )
    ap.add_argument("--basis-maps", type=int, default=512)
    ap.add_argument("--basis-seed", type=int, default=4321, help="seed of the basis maps")
    ap.add_argument("--decoder-error", type=Path, default=SHIPPED_ERROR)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[2]
        / "benchmarks/results/approximation_error_correction_probe.json",
    )
    args = ap.parse_args()
    prior, survey, truth, clean = open_held_out(args)
    bounds, bd = prior.bounds, prior.boundary
    npz = np.load(args.samples)
    rms = json.loads(args.decoder_error.read_text())["rms"]
    e = torch.tensor(rms, dtype=torch.float64)[None, None]
    corrections, explained = {}, {}
    for b in args.basis.split(","):
        if b == "pixel":
            for sm in args.smooth.split(","):
                corrections[f"smooth{float(sm):g}"] = pixel_correction(e, float(sm))
        else:
            k = int(b.removeprefix("pca:"))
            field, shape, explained[b] = pca_correction(
                prior, args.family, args.basis_maps, k, args.basis_seed
            )
            corrections[f"pca{k}"] = (field, shape)
    print(json.dumps({"explained": explained}), flush=True)
    settings = [(m, c) for m in args.mode.split(",") for c in corrections]
    rows = []
    for k in range(args.n_maps):
        obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
        nm = 0.5 * obs.numel() * sigma**2
        s = torch.from_numpy(npz[f"samples_{args.noise}_{k}"]).double()
        obs_n = obs[None].expand(s.shape[0], *obs.shape).contiguous()
        t = truth[k : k + 1]
        f0 = misfit(s.float(), obs_n, survey, boundary=bd, reduction="none")
        row = {
            "map": k,
            "posterior_ssim": score(s.mean(0)[None], t, *bounds)["ssim"],
            "posterior_coverage": coverage(s, t),
            "misfit_over_noise_before": float(f0.median() / nm),
        }
        for mode, name in settings:
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(100 + k)
            v, calls = correct(
                s, obs, sigma, corrections[name], survey, bd, bounds, mode, args.iterations, gen
            )
            f1 = misfit(v, obs_n, survey, boundary=bd, reduction="none")
            row[f"{mode}_{name}"] = {
                "mean_ssim": score(v.mean(0)[None], t, *bounds)["ssim"],
                "sample_ssim": float(np.mean([score(x[None], t, *bounds)["ssim"] for x in v])),
                "misfit_over_noise": float(f1.median() / nm),
                "coverage": coverage(v, t),
                "calls": calls,
                "seconds": time.perf_counter() - t0,
            }
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = [f"{m}_{c}" for m, c in settings]
    summary = {
        "posterior_ssim": float(np.mean([r["posterior_ssim"] for r in rows])),
        "posterior_coverage": float(np.mean([r["posterior_coverage"] for r in rows])),
        "misfit_over_noise_before": float(np.median([r["misfit_over_noise_before"] for r in rows])),
    }
    for key in keys:
        summary[key] = {
            m: float(np.mean([r[key][m] for r in rows]))
            for m in ("mean_ssim", "sample_ssim", "coverage", "seconds")
        } | {"misfit_over_noise": float(np.median([r[key]["misfit_over_noise"] for r in rows]))}
    print(json.dumps(summary, indent=1))
    record = {
        "what": "approximation-error correction of latent posterior samples (probe)",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": rows,
        "summary": summary,
        "explained": explained,
        **run_record(),
    }
    append_json_record(args.out, record)


if __name__ == "__main__":
    main()
