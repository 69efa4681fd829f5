"""Probe: is the shipped seismic decoder's collapse a lack of information in the latent, or the
decoder's training?

1. The shipped decoder's 6-wide feature (the class token after the ViT, before the output Linear)
   across 256 training maps: its std against its mean (a constant feature = a collapsed decoder).
2. Ridge regression from the frozen shipped latent z (128) to the normalised gathers of all 4,000
   training pairs (``data/shipped_allpairs.h5``), full rank and reduced to rank k (the top-k
   directions of the fitted values; rank 6 is the capacity of the shipped output layer).
3. Any autoencoder given with ``--branch`` (same encoder, re-trained seismic branch).

Each predictor is scored on the 64 held-out pairs of ``data/shipped.h5``: normalised MSE, and in
physical units the median relative L2 against the pair's own gather and against the next pair's
(shuffled), and the diversity of its gathers next to the solver's.

    PYTHONPATH=. python research/probes/seismic_latent_linear_probe.py \
        --branch runs/ae_shipped_seismic_zero/final.pt \
        --out benchmarks/results/seismic_latent_linear_probe.json

``--no-ridge`` scores the decoders only (a minute). Needs ``data/shipped.h5`` and
``data/shipped_allpairs.h5`` (docs/shipped_checkpoint.md); streams
the 4,000 gathers in chunks (peak ~3 GB).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from ubdiff_phys.data.normalize import denormalize_seismic, normalize_seismic, normalize_velocity
from ubdiff_phys.physics.baselines import gather_diversity
from ubdiff_phys.pipelines import shipped_checkpoint
from ubdiff_phys.runtime.files import atomic_write_json, run_record
from ubdiff_phys.train.checkpoint import load_autoencoder

FAMILY = "flatvel-a"


def held_out(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(velocity [m/s] (64, 1, 70, 70), gathers (64, 5, 1000, 70)) of the store's test rows."""
    with h5py.File(path, "r") as f:
        test, paired = f["test_index"][:], f["paired_index"][:]
        rows = [int(np.flatnonzero(paired == t)[0]) for t in test]
        v = np.stack([f["velocity"][t] for t in test])
        s = np.stack([f["seismic"][r] for r in rows])
    return torch.from_numpy(v), torch.from_numpy(s)


def score(pred_n: torch.Tensor, s_true: torch.Tensor) -> dict[str, float]:
    """Normalised MSE, physical own / shuffled median relative L2 and diversity of predictions."""
    pred_n = pred_n.float().reshape(s_true.shape)
    mse = float((pred_n - normalize_seismic(s_true, FAMILY)).square().mean())
    phys = denormalize_seismic(pred_n, FAMILY)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).median())

    own, shuffled = rel(phys, s_true), rel(phys, torch.roll(s_true, -1, 0))
    return {
        "mse_normalised": mse,
        "own": own,
        "shuffled": shuffled,
        "own_over_shuffled": own / shuffled,
        "diversity": gather_diversity(phys),
    }


def feature_spread(ae, v: torch.Tensor) -> dict[str, float]:
    """Std across maps / |mean| of the paper decoder's class-token feature (its 6 channels)."""
    d = ae.dec_s
    with torch.no_grad():
        h = ae.head_s(ae.encode(normalize_velocity(v)))
        tokens = torch.cat([d.cls_token.expand(len(h), -1, -1), h[:, None, :]], dim=1)
        x = d.norm(d.blocks(tokens + d.pos_embed))[:, 0]
    return {
        "head_std_mean": float(h.std(0).mean()),
        "feature_std_mean": float(x.std(0).mean()),
        "feature_abs_mean_mean": float(x.mean(0).abs().mean()),
    }


def ridge_predictors(ae, v_te, s_te, args, record: dict) -> None:
    """Ridge regression of the normalised gathers of ``args.pairs`` on the frozen latent (full
    rank and ranks ``args.ranks``), the mean training gather and the shipped decoder's feature
    spread, scored into ``record["results"]``."""
    res = record["results"]
    with h5py.File(args.pairs, "r") as f:
        n = len(f["velocity"])
        record["feature_spread_shipped"] = feature_spread(ae, torch.from_numpy(f["velocity"][:256]))
        xtx = torch.zeros(129, 129, dtype=torch.float64)
        xts = torch.zeros(129, int(np.prod(s_te.shape[1:])), dtype=torch.float64)
        mean = torch.zeros(xts.shape[1], dtype=torch.float64)
        for i in range(0, n, 250):
            with torch.no_grad():
                z = ae.encode(normalize_velocity(torch.from_numpy(f["velocity"][i : i + 250])))
            x = torch.cat([z.double(), torch.ones(len(z), 1, dtype=torch.float64)], 1)
            s = normalize_seismic(torch.from_numpy(f["seismic"][i : i + 250]), FAMILY)
            s = s.reshape(len(z), -1).double()
            xtx += x.T @ x
            xts += x.T @ s
            mean += s.sum(0)
    record["n_train_pairs"] = n
    coef = torch.linalg.solve(xtx + args.ridge * torch.eye(129, dtype=torch.float64), xts)
    # reduced rank: the top-k right singular vectors of the fitted values X A (X^T X = L L^T)
    _, _, vh = torch.linalg.svd(torch.linalg.cholesky(xtx).T @ coef, full_matrices=False)
    with torch.no_grad():
        z_te = ae.encode(normalize_velocity(v_te))
    x_te = torch.cat([z_te.double(), torch.ones(len(z_te), 1, dtype=torch.float64)], 1)
    fitted = x_te @ coef
    centre = (xtx[-1:] / n) @ coef  # the fitted values' training mean
    res["mean training gather"] = score((mean / n).expand(len(z_te), -1), s_te)
    res["ridge, full rank"] = score(fitted, s_te)
    for k in args.ranks:
        res[f"ridge, rank {k}"] = score(centre + ((fitted - centre) @ vh[:k].T) @ vh[:k], s_te)


def decode_in_batches(ae, z: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """``ae.decode_seismic`` of ``z`` in batches (no grad)."""
    with torch.no_grad():
        return torch.cat([ae.decode_seismic(z[i : i + batch]) for i in range(0, len(z), batch)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=Path, default=Path("data/shipped_allpairs.h5"))
    ap.add_argument("--test", type=Path, default=Path("data/shipped.h5"))
    ap.add_argument("--branch", type=Path, action="append", default=[])
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 6, 8, 16])
    ap.add_argument("--ridge", type=float, default=0.1)
    ap.add_argument("--no-ridge", action="store_true", help="score the decoders only")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    ae, _ = load_autoencoder(shipped_checkpoint() / "autoencoder.pt")
    v_te, s_te = held_out(args.test)
    record: dict = {"what": __doc__.split("\n\n")[0], "ridge": args.ridge, "results": {}}
    if not args.no_ridge:
        ridge_predictors(ae, v_te, s_te, args, record)
    res = record["results"]
    with torch.no_grad():
        z_te = ae.encode(normalize_velocity(v_te))
    res["shipped decoder"] = score(decode_in_batches(ae, z_te), s_te)
    for path in args.branch:
        other, _ = load_autoencoder(path)
        res[f"re-trained branch {path}"] = score(decode_in_batches(other, z_te), s_te)
    res["solver (truth)"] = {"diversity": gather_diversity(s_te)}
    record["seconds"] = time.perf_counter() - t0
    record.update(run_record())
    atomic_write_json(args.out, record)
    for name, r in res.items():
        print(name, {k: round(v, 4) for k, v in r.items()})


if __name__ == "__main__":
    main()
