"""What a UB-Diff checkpoint generates, measured against its family: velocity structure and
whether the decoder's gathers collapse.

Samples ``--n`` pairs (DDIM 50, seed 0) and reports:

- layer structure of the velocity samples (:func:`ubdiff_phys.eval.layer_structure`: share of
  maps with constant rows, never decreasing with depth, the increase carried by sharp jumps, and
  all three), next to the same numbers for fresh family maps;
- the same for the autoencoder's reconstructions of those family maps (encode + decode): what the
  velocity decoder can express at best, whatever the diffusion model does;
- PCA Fréchet distance (plain [m/s]² and whitened) of samples vs family maps, next to the
  family-vs-family floor at the same sample size (mean of 3 seeds), and the same distance for the
  autoencoder's reconstructions of family maps (the decoder's share of the distance);
- with ``--train-store``: each sample's RMS distance to its nearest training map, next to the
  same for fresh family maps and for the reconstructions (a memorisation check);
- the decoder gathers' reference points on the first 64 pairs: own residual vs the shuffled
  baseline (a collapsed decoder scores the same against any velocity), the direct-wave baseline,
  and gather diversity vs the solver's gathers of the same velocities.

Writes ``<out>/checkpoint_report.json`` and appends it to
``benchmarks/results/shipped_checkpoint.json``.

    python examples/checkpoint_report.py --out out/ckpt_report         # the shipped checkpoint
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ubdiff_phys.data.families import generate  # noqa: E402
from ubdiff_phys.eval import layer_structure, pca_basis, pca_frechet, pca_frechet_floor  # noqa: E402
from ubdiff_phys.physics.baselines import baselines  # noqa: E402
from ubdiff_phys.pipelines.generator import load_generator  # noqa: E402
from ubdiff_phys.pipelines.seismic_branch import swap_seismic_branch  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, atomic_write_json, run_record  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def sample_pairs(gen, n: int, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(velocity (n, 1, nz, nx) [m/s], decoder seismic (n, S, nt, R), seconds)."""
    vs, ss = [], []
    t0 = time.perf_counter()
    for b in range(0, n, batch):
        m = min(batch, n - b)
        z = gen.sample(m, seed=0, b=b // batch, sampler="ddim", steps=50)
        v, s = gen.decode(z)
        vs.append(v.cpu())
        ss.append(s.cpu())
    return torch.cat(vs), torch.cat(ss), time.perf_counter() - t0


def reconstruct(gen, maps: np.ndarray, batch: int = 64) -> np.ndarray:
    """Family maps [m/s] (n, 1, nz, nx) through the autoencoder's encoder and velocity decoder."""
    nm, ae, out = gen.normalizer, gen.autoencoder, []
    with torch.no_grad():
        for b in range(0, len(maps), batch):
            v = torch.from_numpy(maps[b : b + batch]).float().to(gen.device)
            v_n = ae.decode_velocity(ae.encode(nm.velocity(v)))
            out.append(nm.velocity_inverse(v_n).cpu().numpy())
    return np.concatenate(out)


def frechet(samples: np.ndarray, family: str, n: int) -> dict[str, float]:
    """Samples vs fresh family maps and the family-vs-family floor, plain and whitened."""
    fit = generate(family, 512, seed=101)
    basis = pca_basis(fit, 32)
    ref = generate(family, n, seed=202)
    out = {}
    for whiten in (False, True):
        key = "whitened" if whiten else "plain_m2_per_s2"
        d = pca_frechet(basis, samples, ref, whiten=whiten)
        floor = float(
            np.mean(
                [
                    pca_frechet_floor(basis, n, family=family, seed=s, whiten=whiten)
                    for s in (303, 404, 505)
                ]
            )
        )
        out[key] = {"samples_vs_family": d, "family_floor": floor, "ratio": d / floor}
    return out


def nearest_training(maps: np.ndarray, train: np.ndarray) -> np.ndarray:
    """RMS distance [m/s] of each map (n, 1, nz, nx) to its nearest training map (N, 1, nz, nx):
    a model that memorised its training set puts its samples far closer than fresh maps."""
    a = torch.from_numpy(maps.reshape(len(maps), -1)).double()
    b = torch.from_numpy(train.reshape(len(train), -1)).double()
    d = torch.cdist(a, b).min(dim=1).values / a.shape[1] ** 0.5
    return d.numpy()


def training_maps(path: Path) -> np.ndarray:
    """The velocity maps [m/s] (N, 1, nz, nx) of a store's training rows."""
    from ubdiff_phys.data import open_store

    with open_store(path) as st:
        return np.stack([st.velocity(int(i)) for i in st.train_index])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="UB-Diff checkpoint (default: the shipped one)")
    ap.add_argument("--n", type=int, default=256, help="samples (default 256)")
    ap.add_argument("--out", type=Path, default=Path("out/checkpoint_report"))
    ap.add_argument("--results", type=Path, default=RESULTS / "shipped_checkpoint.json")
    ap.add_argument(
        "--seismic-from",
        type=Path,
        help="autoencoder checkpoint whose seismic branch replaces the checkpoint's (the rest "
        "must be identical)",
    )
    ap.add_argument(
        "--train-store",
        type=Path,
        help="the checkpoint's training store: also report each sample's distance to its "
        "nearest training map next to fresh family maps' (a memorisation check)",
    )
    args = ap.parse_args()
    if args.train_store is not None and not args.train_store.exists():
        ap.exit(2, f"checkpoint_report: error: {str(args.train_store)!r} does not exist\n")
    if args.n < 64:
        ap.exit(2, "checkpoint_report: error: --n must be >= 64\n")
    gen = load_generator(args.checkpoint, "cpu")
    if args.seismic_from:
        try:
            swap_seismic_branch(gen, args.seismic_from)
        except ValueError as exc:
            ap.exit(2, f"checkpoint_report: error: {exc}\n")
    family = str(gen.store_attrs.get("family", "flatvel-a"))
    v, s, seconds = sample_pairs(gen, args.n)
    vs = v.numpy()
    fam = generate(family, args.n, seed=606)
    k = 64
    base = baselines(v[:k], s[:k], gen.survey, boundary=gen.boundary).to_dict()
    recon = reconstruct(gen, fam)
    record = {
        "what": "UB-Diff checkpoint: velocity structure vs its family, and decoder-gather collapse",
        "checkpoint": gen.info["checkpoint"],
        "seismic_from": gen.info.get("seismic_from"),
        "diffusion_step": gen.info["diffusion_step"],
        "family": family,
        "n": args.n,
        "sample_seconds": seconds,
        "structure_samples": layer_structure(vs).summary(),
        "structure_family": layer_structure(fam).summary(),
        "structure_reconstructions": layer_structure(recon).summary(),
        "pca_frechet": frechet(vs, family, args.n),
        # the decoder's share of the distance: its reconstructions of fresh family maps
        "pca_frechet_reconstructions": frechet(recon, family, args.n),
        "decoder_gathers_first_64": base,
        "own_over_shuffled": base["own"] / base["shuffled"],
        "diversity_over_solver": base["diversity"] / base["solver_diversity"],
        **run_record(),
    }
    if args.train_store is not None:
        train = training_maps(args.train_store)
        q = {"p05": 5, "median": 50}
        record["nearest_training_m_per_s"] = {
            "store": str(args.train_store),
            "n_train": len(train),
            **{
                who: {k: float(np.percentile(nearest_training(m, train), p)) for k, p in q.items()}
                for who, m in (("samples", vs), ("family_maps", fam), ("reconstructions", recon))
            },
        }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "checkpoint_report.json", record)
    append_json_record(args.results, record)
    st, fs = record["structure_samples"], record["structure_family"]
    print(
        f"structure (samples | family): flatvel-like {st['share_flatvel_like']:.2f} | "
        f"{fs['share_flatvel_like']:.2f}; constant rows {st['share_row_std']:.2f}; "
        f"non-decreasing {st['share_max_decrease']:.2f}; jumps {st['share_jump_share']:.2f} "
        f"(median jump share {st['median_jump_share']:.2f})"
    )
    rc = record["structure_reconstructions"]
    print(
        f"autoencoder reconstructions of family maps: flatvel-like {rc['share_flatvel_like']:.2f}; "
        f"constant rows {rc['share_row_std']:.2f}; non-decreasing {rc['share_max_decrease']:.2f}; "
        f"jumps {rc['share_jump_share']:.2f} (median jump share {rc['median_jump_share']:.2f})"
    )
    for what in ("pca_frechet", "pca_frechet_reconstructions"):
        for key, f in record[what].items():
            print(
                f"{what} {key}: {f['samples_vs_family']:.4g} vs floor "
                f"{f['family_floor']:.4g} ({f['ratio']:.1f}x)"
            )
    if "nearest_training_m_per_s" in record:
        nt = record["nearest_training_m_per_s"]
        print(
            "RMS distance to the nearest training map (median, p05) [m/s]: "
            + "; ".join(f"{w} {nt[w]['median']:.0f}, {nt[w]['p05']:.0f}"
                        for w in ("samples", "family_maps", "reconstructions"))
        )  # fmt: skip
    print(
        f"decoder gathers: own {base['own']:.3f}, shuffled {base['shuffled']:.3f} "
        f"(ratio {record['own_over_shuffled']:.2f}), direct wave {base['direct_wave']:.3f}, "
        f"diversity {base['diversity']:.3f} vs solver {base['solver_diversity']:.3f}"
    )


if __name__ == "__main__":
    main()
