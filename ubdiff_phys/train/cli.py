"""``ubdiff-phys train-ae CONFIG.toml`` (two-step autoencoder training),
``ubdiff-phys train-diffusion CONFIG.toml`` (latent diffusion) and
``ubdiff-phys train-velocity-diffusion CONFIG.toml`` (diffusion on the velocity maps themselves),
all also under torchrun; ``ubdiff-phys export-velocity-diffusion RUN OUT.pt`` (a slim file of one
set of a velocity run's weights)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

from ubdiff_phys.diffusion.checkpoint import checkpoint_file, is_velocity_checkpoint
from ubdiff_phys.diffusion.config import load_diffusion_config, load_velocity_diffusion_config
from ubdiff_phys.runtime.config import tomllib
from ubdiff_phys.runtime.errors import UserError
from ubdiff_phys.train.config import load_config
from ubdiff_phys.train.diffusion import train_diffusion
from ubdiff_phys.train.loop import train_autoencoder
from ubdiff_phys.train.velocity_diffusion import (
    export_velocity_checkpoint,
    train_velocity_diffusion,
)

__all__ = [
    "export_velocity_diffusion_main",
    "register",
    "train_ae_main",
    "train_diffusion_main",
    "train_velocity_diffusion_main",
]


def _is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _forget_run(out_dir: str, names: tuple[str, ...], pattern: str | None = None) -> None:
    """``--restart``: remove a run's resume point and logs (rank 0 only)."""
    if not _is_rank0():
        return
    for name in names:
        (Path(out_dir) / name).unlink(missing_ok=True)
    for p in Path(out_dir).glob(pattern) if pattern else ():
        p.unlink()


def _load(loader, path: str):
    """A config through ``loader``; a missing file, TOML syntax or a bad value is a UserError."""
    if not Path(path).is_file():
        raise UserError(f"config {path!r} is not a file")
    try:
        return loader(path)
    except (ValueError, TypeError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"config {path!r}: {exc}") from None


def train_ae_main(args: argparse.Namespace) -> int:
    cfg = _load(load_config, args.config)
    if args.out_dir:
        cfg = cfg.replace(run=replace(cfg.run, out_dir=args.out_dir))
    if args.store:
        cfg = cfg.replace(data=replace(cfg.data, store=args.store))
    if args.no_progress:
        cfg = cfg.replace(run=replace(cfg.run, progress=False))
    if args.restart:
        _forget_run(cfg.run.out_dir, ("last.pt", "metrics.jsonl"), "best_*.pt")
    summary = train_autoencoder(cfg, resume=not args.restart)
    print(json.dumps(summary))
    return 0


def _train_diffusion_kind(cfg, args: argparse.Namespace, data_key: str, train) -> int:
    """The shared tail of the two diffusion commands: CLI overrides, --restart, train, report."""
    if args.out_dir:
        cfg = cfg.with_("run", out_dir=args.out_dir)
    if getattr(args, data_key):
        cfg = cfg.with_("data", **{data_key: getattr(args, data_key)})
    if args.no_progress:
        cfg = cfg.with_("run", progress=False)
    if data_key == "store" and not Path(cfg.data.store).is_file():
        raise UserError(f"data.store {cfg.data.store!r} is not a file")
    if args.restart:
        _forget_run(cfg.run.out_dir, ("last.pt", "final.pt", "metrics.jsonl"))
    summary = train(cfg, resume=not args.restart)
    if _is_rank0():
        print(json.dumps(summary))
    return 0


def train_diffusion_main(args: argparse.Namespace) -> int:
    cfg = _load(load_diffusion_config, args.config)
    return _train_diffusion_kind(cfg, args, "autoencoder", train_diffusion)


def train_velocity_diffusion_main(args: argparse.Namespace) -> int:
    cfg = _load(load_velocity_diffusion_config, args.config)
    return _train_diffusion_kind(cfg, args, "store", train_velocity_diffusion)


def export_velocity_diffusion_main(args: argparse.Namespace) -> int:
    if not checkpoint_file(args.run).is_file():
        raise UserError(f"{args.run!r} holds no velocity diffusion checkpoint")
    if Path(args.out).exists() and not args.overwrite:
        raise UserError(f"{args.out!r} exists; pass --overwrite to replace it")
    for src in (args.run, *args.average):
        if not checkpoint_file(src).is_file() or not is_velocity_checkpoint(src):
            raise UserError(f"{src!r} is not a velocity diffusion checkpoint")
    info = export_velocity_checkpoint(
        args.run, args.out, weights=args.weights, dtype=args.dtype, average=args.average
    )
    print(json.dumps(info))
    return 0


def _run_options(p: argparse.ArgumentParser, example: str, override: str) -> None:
    p.add_argument("config", help=f"TOML config (see configs/{example})")
    p.add_argument("--out-dir", help="override run.out_dir")
    p.add_argument(f"--{override}", help=f"override data.{override}")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


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
    _run_options(p, "ae_tiny.toml", "store")
    p.set_defaults(func=train_ae_main)

    d = subparsers.add_parser(
        "train-diffusion",
        help="train the latent diffusion U-Net on co-latents of a trained autoencoder",
        description=(
            "Encodes the autoencoder's majority rows once into a latent cache (resumable), then "
            "trains the v-prediction U-Net. Resumes from <run.out_dir>/last.pt when present. "
            "Multi-process: torchrun --nproc_per_node N -m ubdiff_phys.cli train-diffusion CFG"
        ),
    )
    _run_options(d, "diffusion_tiny.toml", "autoencoder")
    d.set_defaults(func=train_diffusion_main)

    vd = subparsers.add_parser(
        "train-velocity-diffusion",
        help="train a diffusion model on the velocity maps themselves (a velocity-space prior)",
        description=(
            "Trains a 2-D U-Net denoiser on the normalised training velocity maps of a store "
            "(no autoencoder). Resumes from <run.out_dir>/last.pt when present. Multi-process: "
            "torchrun --nproc_per_node N -m ubdiff_phys.cli train-velocity-diffusion CFG"
        ),
    )
    _run_options(vd, "velocity_diffusion_flatvel_a.toml", "store")
    vd.set_defaults(func=train_velocity_diffusion_main)

    ex = subparsers.add_parser(
        "export-velocity-diffusion",
        help="write one set of a velocity diffusion run's weights as a slim checkpoint file",
        description=(
            "Writes the EMA (or raw) weights of a train-velocity-diffusion run, with its config "
            "and store attributes but no optimiser state, as one file that `sample`, `invert` "
            "and `load_prior` read like the run itself."
        ),
    )
    ex.add_argument("run", help="run directory (its final.pt, else last.pt) or checkpoint file")
    ex.add_argument("out", help="the file to write")
    ex.add_argument("--weights", choices=("ema", "model"), default="ema")
    ex.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="storage precision of the weights (float16: half the size; loaded as float32)",
    )
    ex.add_argument(
        "--average",
        nargs="+",
        default=[],
        metavar="CKPT",
        help="other checkpoints of the same run whose weights are averaged with RUN's, uniformly "
        "(post-hoc averaging over a longer window than the EMA); RUN's config and step are kept",
    )
    ex.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    ex.set_defaults(func=export_velocity_diffusion_main)
