"""Do more latent posterior samples reach the basin the sharpened samples miss?

The sharpened FlatVel-A posterior misses a map (covers it 0.2-0.4 before scaling) when all its
latent starts sit in one wrong basin (``sharpen_lineage_coverage.py``). This probe draws many more
latent samples on such maps (the example's sampler: noise-aware, 50 steps, ``--latent-fit``; its
maps, noise and noise draws; another seed for the latent draws) and asks, per map:

- how far each latent sample is from the truth (MAE, SSIM) and how well it fits the data (misfit
  over the added noise's misfit; the truth's own ratio is printed beside it);
- whether any of the N samples lies nearer the truth than the example's eight sharpened samples
  (``out/.../posterior_samples.npz``, ``--sharpened``);
- whether the data misfit picks the nearer ones (Spearman of misfit with MAE; the MAE of the
  best-fitting sample against the best and the median);
- the coverage of the uncalibrated 90 % prediction interval of all N samples, and of eight of them
  (mean over ``--subsets`` random eights).

    python research/probes/latent_start_spread_probe.py --maps 4,6,9,7 --n-samples 32 \\
        --sharpened out/post_flat12_sharpen/posterior_samples.npz \\
        --out benchmarks/results/latent_start_spread_probe.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import held_out_maps, score  # noqa: E402

from ubdiff_phys.inversion import load_prior, posterior_sample  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.physics import misfit  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402
from ubdiff_phys.runtime.stats import student_t_quantile  # noqa: E402


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (no ties expected)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def coverage(v: torch.Tensor, truth: torch.Tensor) -> float:
    """Fraction of true pixels inside the 90 % prediction interval of samples v (n, 1, nz, nx):
    mean ± t_0.95(n − 1) · std · √(1 + 1/n), the library's uncalibrated predictive interval."""
    n = v.shape[0]
    half = student_t_quantile(0.95, n - 1) * v.std(0) * (1 + 1 / n) ** 0.5
    m = v.mean(0)
    return float(((truth >= m - half) & (truth <= m + half)).float().mean())


def one_map(args, k, prior, survey, truth, clean, sharpened) -> dict:
    """The probe's numbers for map k (see the module docstring)."""
    lo, hi = prior.bounds
    obs, sigma = add_noise(clean[k], args.noise, seed=args.seed * 1_000_003 + k)
    noise = 0.5 * obs.numel() * sigma**2
    t = truth[k : k + 1]
    res = posterior_sample(
        obs, survey, boundary=prior.boundary, prior=prior, n_samples=args.n_samples,
        noise_std=sigma, steps=50, latent_fit=args.latent_fit,
        generator=torch.Generator().manual_seed(args.draw_seed * 1000 + k),
    )  # fmt: skip
    v = res.samples.float()
    mae = (v - t).abs().mean(dim=(1, 2, 3)).numpy()
    ssim = np.array([score(v[i : i + 1], t, lo, hi)["ssim"] for i in range(len(v))])
    fit = res.misfit.numpy() / noise
    gen = np.random.default_rng(k)
    n_sub = args.subsets if len(v) > 8 else 0
    subsets = [gen.choice(len(v), 8, replace=False) for _ in range(n_sub)]
    row = {
        "map": k,
        "truth_misfit_over_noise": float(misfit(t, obs[None], survey, boundary=prior.boundary))
        / noise,
        "seconds": res.seconds,
        "sample_mae": mae.round(1).tolist(),
        "sample_ssim": ssim.round(4).tolist(),
        "sample_misfit_over_noise": fit.round(3).tolist(),
        "mae_best": float(mae.min()),
        "mae_median": float(np.median(mae)),
        "mae_of_best_fitting": float(mae[fit.argmin()]),
        "spearman_misfit_mae": spearman(fit, mae),
        "coverage_all": coverage(v, t[0]),
        "coverage_eight_mean": (
            float(np.mean([coverage(v[s], t[0]) for s in subsets])) if len(v) > 8 else None
        ),
        "mean_all": score(v.mean(0)[None], t, lo, hi),
    }
    if sharpened is not None:
        s = torch.as_tensor(sharpened[f"samples_{args.noise}_{k}"]).float()
        smae = (s - t).abs().mean(dim=(1, 2, 3)).numpy()
        row["sharpened_mae"] = smae.round(1).tolist()
        row["latent_nearer_than_best_sharpened"] = int((mae < smae.min()).sum())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", default="4,6,9,7")
    ap.add_argument("--n-maps", type=int, default=12, help="maps drawn (the example's --n-maps)")
    ap.add_argument("--n-samples", type=int, default=32)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--latent-fit", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1234, help="the example's map and noise seed")
    ap.add_argument("--draw-seed", type=int, default=7, help="seed of the latent draws")
    ap.add_argument("--subsets", type=int, default=200)
    ap.add_argument("--sharpened", type=Path, default=None, help="the example's samples .npz")
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append the record to")
    args = ap.parse_args()
    prior = load_prior()
    survey, truth, clean = held_out_maps(prior, "flatvel-a", args.n_maps, args.seed)
    sharpened = None
    if args.sharpened is not None:
        sharpened = np.load(args.sharpened)
        if not np.allclose(sharpened["truth"], truth.numpy()):
            sys.exit("the samples file's true maps differ from these options' maps")
    rows = []
    for k in [int(x) for x in args.maps.split(",")]:
        rows.append(one_map(args, k, prior, survey, truth, clean, sharpened))
        r = rows[-1]
        print(
            json.dumps({key: val for key, val in r.items() if not key.startswith("sample_")}),
            flush=True,
        )
    if args.out is not None:
        append_json_record(
            args.out,
            {"what": __doc__.splitlines()[0],
             "settings": {k: str(v) for k, v in vars(args).items()},
             "rows": rows, **run_record()},
        )  # fmt: skip


if __name__ == "__main__":
    main()
