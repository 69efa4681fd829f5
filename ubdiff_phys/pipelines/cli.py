"""``ubdiff-phys validate``: physics residual of every pair in a dataset file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ubdiff_phys.validate.pairs import validate_store

__all__ = ["register"]


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
        args.out.write_text(summary.to_json() + "\n")
        print(f"wrote {args.out}")
    return 0


def _resimulate(args: argparse.Namespace) -> int:
    from ubdiff_phys.validate.resimulate import resimulate_store

    res = resimulate_store(
        args.pairs,
        args.out,
        device=args.device,
        batch=args.batch,
        compression=None if args.compression == "none" else args.compression,
        progress=not args.quiet,
    )
    rate = f" ({res['models_per_s']:.1f} models/s)" if res["models_per_s"] else ""
    print(f"wrote {res['out']}: {res['n']} pairs, {res['simulated']} simulated now{rate}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
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
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_resimulate)
