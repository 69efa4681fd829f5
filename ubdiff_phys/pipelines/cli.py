"""``ubdiff-phys sample`` (generated pairs into a store), ``ubdiff-phys validate`` (physics
residual of every pair in a dataset file) and ``ubdiff-phys resimulate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ubdiff_phys.pipelines.resimulate import ROW_CHOICES, resimulate_store
from ubdiff_phys.pipelines.sample import generate_store
from ubdiff_phys.pipelines.seismic_modes import (
    SEISMIC_MODES,
    add_guidance_options,
    guidance_options,
)
from ubdiff_phys.pipelines.validate import validate_store
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.files import atomic_write_text

__all__ = ["register", "sample_main"]


def sample_main(args: argparse.Namespace) -> int:
    device = None if args.device == "auto" else args.device
    device = resolve_device(device)
    try:
        summary = _sample(args, device)
    except FileExistsError as exc:
        print(f"sample: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _sample(args: argparse.Namespace, device) -> dict:
    return generate_store(
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
        seismic=args.seismic,
        **guidance_options(args),
        overwrite=args.overwrite,
    )


def _validate(args: argparse.Namespace) -> int:
    summary = validate_store(
        args.pairs,
        threshold=args.threshold,
        keep_quantile=args.keep_quantile,
        device=args.device,
        batch=args.batch,
        progress=not args.quiet,
    )
    print(summary.describe())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, summary.to_json() + "\n")
        print(f"wrote {args.out}")
    return 0


def _resimulate(args: argparse.Namespace) -> int:
    res = resimulate_store(
        args.pairs,
        args.out,
        device=args.device,
        batch=args.batch,
        compression=None if args.compression == "none" else args.compression,
        progress=not args.quiet,
        rows=args.rows,
    )
    rate = f" ({res['models_per_s']:.1f} models/s)" if res["models_per_s"] else ""
    print(f"wrote {res['out']}: {res['n']} pairs, {res['simulated']} simulated now{rate}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
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
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OUT that this job did not make",
    )
    s.add_argument(
        "--seismic",
        choices=SEISMIC_MODES,
        default="solver",
        help="where the gathers come from: the solver (simulated from the generated velocity: "
        "exact pairs; default), the decoder (UB-Diff as published) or guided (the decoder, with "
        "solver guidance on the predicted clean latent during sampling)",
    )
    add_guidance_options(s)
    s.set_defaults(func=sample_main)

    p = subparsers.add_parser(
        "validate",
        help="physics residual of every (velocity, seismic) pair in a dataset file",
        description="Simulate each pair's velocity with the survey and boundary mode recorded in "
        "the file and compare with its seismic: relative L2 in physical and normalised units "
        "(real pairs give ~0).",
    )
    p.add_argument("pairs", type=Path, help="dataset file with paired seismic (HDF5)")
    crit = p.add_mutually_exclusive_group()
    crit.add_argument("--threshold", type=float, help="keep pairs with residual <= this")
    crit.add_argument("--keep-quantile", type=float, help="keep this fraction (lowest residual)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch", type=int, default=32, help="pairs per solver call")
    p.add_argument("--out", type=Path, help="write the summary (with every residual) as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_validate)

    r = subparsers.add_parser(
        "resimulate",
        help="replace the seismic of a pairs file by the solver's (physically consistent pairs)",
        description="Copy the paired velocity maps of a dataset file (e.g. generated pairs) to a "
        "new file and simulate their seismic with the survey and boundary mode the file records. "
        "Resumable.",
    )
    r.add_argument("pairs", type=Path, help="dataset file with paired rows (HDF5)")
    r.add_argument("out", type=Path, help="new dataset file")
    r.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    r.add_argument("--batch", type=int, default=32, help="models per solver call")
    r.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip")
    r.add_argument(
        "--rows",
        choices=ROW_CHOICES,
        default="paired",
        help="paired: the rows with seismic (default); train: every training velocity map, "
        "with or without seismic (a real store's maps all as pairs)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_resimulate)
