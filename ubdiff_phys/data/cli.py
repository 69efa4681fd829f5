"""``ubdiff-phys make-dataset``, ``import-openfwi`` and ``check-dataset`` (registered by
ubdiff_phys.cli)."""

from __future__ import annotations

import argparse
import json
import sys

from ubdiff_phys.data.build import make_dataset
from ubdiff_phys.data.families import FAMILIES
from ubdiff_phys.data.openfwi_import import import_openfwi
from ubdiff_phys.data.store import StoreError, open_store

__all__ = ["register"]


def _make_dataset(args: argparse.Namespace) -> int:
    try:
        summary = make_dataset(
            args.out,
            family=args.family,
            n_velocity=args.n_velocity,
            n_paired=args.n_paired,
            n_test=args.n_test,
            seed=args.seed,
            boundary=args.boundary,
            device=args.device,
            batch=args.batch,
            compression=None if args.compression == "none" else args.compression,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: {args.out} holds every batch committed so far; run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return 130
    except (StoreError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"make-dataset: error: {exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0


def _import_openfwi(args: argparse.Namespace) -> int:
    try:
        summary = import_openfwi(
            args.directory,
            args.out,
            family=args.family,
            split_file=args.split_file,
            compression=None if args.compression == "none" else args.compression,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"interrupted: re-run the same command to resume {args.out}", file=sys.stderr)
        return 130
    except (StoreError, ValueError, FileNotFoundError) as exc:
        print(f"import-openfwi: error: {exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0


def _check_dataset(args: argparse.Namespace) -> int:
    try:
        with open_store(args.path, allow_incomplete=True) as st:
            if args.full:
                st.verify()
            p = st.progress
            info = {
                "kind": "ubdiff_phys.check_dataset",
                "path": str(args.path),
                "full_scan": (
                    f"passed: {p.n_velocity_committed} velocity and {p.n_seismic_committed} "
                    "seismic rows finite, velocities positive and stable on the survey, "
                    "attributes consistent"
                    if args.full
                    else "not run (pass --full)"
                ),
                "family": st.family,
                "velocity": [p.n_velocity_committed, p.n_velocity],
                "seismic": [p.n_seismic_committed, p.n_seismic],
                "train": len(st.train_index),
                "test": len(st.test_index),
                "complete": p.complete,
                "boundary": st.attrs.get("boundary"),
                "solver_version": st.attrs.get("solver_version"),
                "split": st.attrs.get("split"),
            }
    except (StoreError, FileNotFoundError) as exc:
        print(f"check-dataset: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    return 0 if info["complete"] else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data commands to the ``ubdiff-phys`` parser."""
    p = subparsers.add_parser(
        "make-dataset",
        help="generate a velocity family and simulate gathers for some of it (HDF5, resumable)",
        description="Generate --n-velocity training maps (+ --n-test held-out maps) of a family, "
        "simulate gathers for --n-paired of the training maps and all test maps, and store them in "
        "one HDF5 file. Interrupted builds resume when the same command is run again.",
    )
    p.add_argument("out", help="output HDF5 file")
    p.add_argument("--family", required=True, choices=list(FAMILIES) + ["style-like"])
    p.add_argument("--n-velocity", type=int, required=True, help="training velocity maps")
    p.add_argument("--n-paired", type=int, required=True, help="training maps with gathers")
    p.add_argument("--n-test", type=int, default=None, help="held-out maps (default: n-paired)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--boundary", default="openfwi", choices=["openfwi", "pml", "none"])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch", type=int, default=32, help="models per simulation call / commit")
    p.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_make_dataset)

    p = subparsers.add_parser(
        "import-openfwi",
        help="import an OpenFWI subset folder (.npy) into one HDF5 dataset, streaming",
        description="Import data/dataN.npy + model/modelN.npy, or seisN_1_J.npy + velN_1_J.npy, "
        "one file at a time, keeping the official train/test split (or a split file's).",
    )
    p.add_argument("directory", help="OpenFWI subset folder")
    p.add_argument("out", help="output HDF5 file")
    p.add_argument(
        "--family", default=None, help="subset, e.g. flatvel-a (default: from folder name)"
    )
    p.add_argument(
        "--split-file",
        default=None,
        help="OpenFWI split list; lists the training files if its name contains 'train', "
        "else the test ('val') files",
    )
    p.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_import_openfwi)

    p = subparsers.add_parser("check-dataset", help="check a dataset file and print its summary")
    p.add_argument("path")
    p.add_argument("--full", action="store_true", help="also scan every sample for NaN/inf")
    p.set_defaults(func=_check_dataset)
