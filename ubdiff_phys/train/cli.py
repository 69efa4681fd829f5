"""``ubdiff-phys train-ae CONFIG.toml``: two-step autoencoder training (also under torchrun)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

__all__ = ["register", "train_ae_main"]


def train_ae_main(args: argparse.Namespace) -> int:
    from ubdiff_phys.train.config import load_config
    from ubdiff_phys.train.loop import train_autoencoder

    cfg = load_config(args.config)
    if args.out_dir:
        cfg = cfg.replace(run=replace(cfg.run, out_dir=args.out_dir))
    if args.store:
        cfg = cfg.replace(data=replace(cfg.data, store=args.store))
    if args.no_progress:
        cfg = cfg.replace(run=replace(cfg.run, progress=False))
    if args.restart:
        import os

        if int(os.environ.get("RANK", "0")) == 0:
            for name in ("last.pt", "metrics.jsonl"):
                (Path(cfg.run.out_dir) / name).unlink(missing_ok=True)
            for p in Path(cfg.run.out_dir).glob("best_*.pt"):
                p.unlink()
    summary = train_autoencoder(cfg, resume=not args.restart)
    print(json.dumps(summary))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-ae",
        help="train the 1-in-2-out autoencoder (step 1 on majority data, step 2 on pairs)",
        description=(
            "Two-step unbalanced autoencoder training from a TOML config. Resumes from "
            "<run.out_dir>/last.pt when present. Multi-process: "
            "torchrun --nproc_per_node N -m ubdiff_phys.cli train-ae CONFIG.toml"
        ),
    )
    p.add_argument("config", help="TOML config (see configs/ae_tiny.toml)")
    p.add_argument("--out-dir", help="override run.out_dir")
    p.add_argument("--store", help="override data.store")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=train_ae_main)
