"""Probe: can a seismic decoder on UB-Diff's frozen latent beat the mean training gather?

Uses a finished unbalanced experiment (``examples/unbalanced_experiment.py``): the frozen encoder
of ``WORKDIR/ae_ubdiff/final.pt`` gives the latents of the store's paired training maps and of
its held-out maps; only the seismic head and decoder (``head_s``, ``dec_s``) are trained, with the
step-2 loss (L1 + MSE on normalised seismic), for each decoder variant below. The held-out MAE is
reported next to that of the mean training gather, a predictor that ignores the velocity.

    PYTHONPATH=. python research/probes/seismic_decoder_probe.py --workdir out/unbalanced_medium \
        --out benchmarks/results/seismic_decoder_probe.json

Holds the normalised gathers of the paired and held-out rows in memory (1,200 pairs: ~1.7 GB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ubdiff_phys.data import open_store
from ubdiff_phys.models import build_autoencoder
from ubdiff_phys.train.checkpoint import load_autoencoder

VARIANTS = [  # (name, AutoencoderConfig changes, lr)
    ("paper head 6 (experiment)", {}, 1e-3),
    ("paper head 6, lr 1e-4", {}, 1e-4),
    ("paper head 32", {"seismic_head_dim": 32}, 1e-3),
    ("token decoder", {"seismic_decoder": "token", "seismic_head_dim": 64}, 1e-3),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ae, cfg = load_autoencoder(args.workdir / "ae_ubdiff" / "final.pt")
    with open_store(args.workdir / "data.h5") as st:
        nz = st.normalizer
        train = st.train_index[st.seismic_row[st.train_index] >= 0]

        def load(rows):
            v = torch.stack([nz.velocity(torch.from_numpy(st.velocity(int(r)))).float()
                             for r in rows])  # fmt: skip
            s = torch.stack([nz.seismic(torch.from_numpy(st.seismic_of(int(r)))).float()
                             for r in rows])  # fmt: skip
            return v, s

        v_tr, s_tr = load(train)
        v_te, s_te = load(st.test_index)
    with torch.no_grad():
        z_tr, z_te = ae.encode(v_tr), ae.encode(v_te)
    baseline = float((s_te - s_tr.mean(0, keepdim=True)).abs().mean())
    print(f"mean training gather: held-out MAE {baseline:.5f}", flush=True)
    results = []
    for name, changes, lr in VARIANTS:
        torch.manual_seed(0)
        model = build_autoencoder(dataclasses.replace(cfg.model, **changes))
        params = torch.nn.ModuleList([model.head_s, model.dec_s])
        opt = torch.optim.AdamW(params.parameters(), lr=lr, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            params.train()
            perm = torch.randperm(len(z_tr), generator=gen)
            for i in range(0, len(perm) - args.batch + 1, args.batch):
                idx = perm[i : i + args.batch]
                pred = model.decode_seismic(z_tr[idx])
                loss = F.l1_loss(pred, s_tr[idx]) + F.mse_loss(pred, s_tr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        params.eval()
        with torch.no_grad():
            err = [(model.decode_seismic(z_te[i : i + 50]) - s_te[i : i + 50]).abs().mean((1, 2, 3))
                   for i in range(0, len(z_te), 50)]  # fmt: skip
        mae = float(torch.cat(err).mean())
        rec = {
            "name": name,
            "changes": changes,
            "lr": lr,
            "epochs": args.epochs,
            "params": sum(p.numel() for p in params.parameters()),
            "heldout_mae": mae,
            "vs_mean_gather": mae / baseline,
            "seconds": time.perf_counter() - t0,
        }
        print(json.dumps(rec), flush=True)
        results.append(rec)
    args.out.write_text(
        json.dumps(
            {
                "workdir": str(args.workdir),
                "mean_gather_heldout_mae": baseline,
                "n_train": len(z_tr),
                "n_test": len(z_te),
                "results": results,
            },
            indent=2,
        )  # fmt: skip
        + "\n"
    )


if __name__ == "__main__":
    main()
