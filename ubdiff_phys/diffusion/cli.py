"""``ubdiff-phys train-diffusion CONFIG.toml`` and ``ubdiff-phys sample --checkpoint DIR --n N
OUT.h5``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

__all__ = ["register", "sample_main", "train_diffusion_main"]


def train_diffusion_main(args: argparse.Namespace) -> int:
    from ubdiff_phys.diffusion.config import load_diffusion_config
    from ubdiff_phys.diffusion.train import train_diffusion

    cfg = load_diffusion_config(args.config)
    if args.out_dir:
        cfg = cfg.with_("run", out_dir=args.out_dir)
    if args.autoencoder:
        cfg = cfg.with_("data", autoencoder=args.autoencoder)
    if args.no_progress:
        cfg = cfg.with_("run", progress=False)
    if args.restart and int(os.environ.get("RANK", "0")) == 0:
        for name in ("last.pt", "final.pt", "metrics.jsonl"):
            (Path(cfg.run.out_dir) / name).unlink(missing_ok=True)
    summary = train_diffusion(cfg, resume=not args.restart)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


def sample_main(args: argparse.Namespace) -> int:
    from ubdiff_phys.diffusion.generate import generate_store

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    summary = generate_store(
        args.checkpoint,
        args.out,
        args.n,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
        device=device,
        batch=args.batch,
        weights="ema" if args.ema else "model",
        autoencoder=args.autoencoder,
        progress=not args.no_progress,
        eta=args.eta,
    )
    print(json.dumps(summary))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-diffusion",
        help="train the latent diffusion U-Net on co-latents of a trained autoencoder",
        description=(
            "Encodes the autoencoder's majority rows once into a latent cache (resumable), then "
            "trains the v-prediction U-Net. Resumes from <run.out_dir>/last.pt when present. "
            "Multi-process: torchrun --nproc_per_node N -m ubdiff_phys.cli train-diffusion CFG"
        ),
    )
    p.add_argument("config", help="TOML config (see configs/diffusion_tiny.toml)")
    p.add_argument("--out-dir", help="override run.out_dir")
    p.add_argument("--autoencoder", help="override data.autoencoder")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=train_diffusion_main)

    s = subparsers.add_parser(
        "sample",
        help="generate (velocity, seismic) pairs into a dataset store",
        description=(
            "Samples co-latents with the diffusion model, decodes them with its autoencoder to "
            "physical units and writes OUT.h5 in the dataset store format (every row paired), "
            "with the survey and normalisation attributes of the training data. Resumable."
        ),
    )
    s.add_argument("out", help="output store (.h5)")
    s.add_argument("--checkpoint", required=True, help="diffusion run directory or checkpoint")
    s.add_argument("--n", type=int, required=True, help="number of pairs")
    s.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm")
    s.add_argument(
        "--steps", type=int, default=None, help="network evaluations (default: T for ddpm, 50 ddim)"
    )
    s.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    s.add_argument("--batch", type=int, default=64, help="pairs per batch")
    s.add_argument("--ema", action="store_true", help="use the EMA weights (default: raw)")
    s.add_argument("--autoencoder", help="autoencoder checkpoint (default: the one trained on)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=sample_main)
