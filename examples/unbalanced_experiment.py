"""Unbalanced-data experiment: InversionNet trained on (a) the real pairs only,
(b) UB-Diff-generated pairs, (c) generated + real, (d) "w/o opt" generated pairs, (e) the
lowest-residual half of (b), (f) (b)'s velocities with solver seismic, (g) (f) + real, (h) every
training velocity map with solver seismic, (i) real + physics-guided pairs; plus the Fréchet
distances of the samples to the real held-out maps and each generated set's residual with its
baselines.

    PYTHONPATH=. python examples/unbalanced_experiment.py --scale small --workdir WORKDIR

Presets (``configs/experiment/*.toml``): ``tiny`` (CI smoke run, < 60 s on CPU),
``small`` (2 CPU cores, about two hours with 2 InversionNet seeds), ``full`` (the issue's 24k
velocity maps + 1k pairs with the paper configs; for a GPU, use ``--device cuda``). Re-running
with the same work folder skips every step whose output exists; ``--settings`` trains InversionNet
for some settings only (a later run without it adds the others); ``--max-steps N --seeds K``
trains InversionNet for another budget (results tagged ``_stepsN`` beside the preset's). Writes
WORKDIR/results.json and WORKDIR/results.md (``results_stepsN.*`` for another budget).
"""

from __future__ import annotations

import argparse
import sys

from ubdiff_phys.pipelines.experiment import PRESETS, chosen_settings, run_experiment, with_budget


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=sorted(PRESETS), default="small")
    ap.add_argument("--workdir", required=True, help="output folder (resumable)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument(
        "--configs",
        default=None,
        help="folder with the base TOML configs (default: the copy installed with the package, "
        "else the repository's configs/)",
    )
    ap.add_argument(
        "--settings",
        default=None,
        help="comma-separated InversionNet settings to run (default: all of the preset's), "
        "e.g. real,ubdiff_resim+real,majority_solver,guided+real",
    )
    ap.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="InversionNet optimiser steps per run (default: the preset's); another budget "
        "writes inversion_<setting>_steps<N>*.json and results_steps<N>.md beside the preset's",
    )
    ap.add_argument(
        "--seeds", type=int, default=None, help="InversionNet seeds per setting (default: preset's)"
    )
    args = ap.parse_args(argv)
    try:
        _, tag = with_budget(PRESETS[args.scale], args.max_steps, args.seeds)
    except ValueError as e:
        ap.error(str(e))
    settings = None
    if args.settings is not None:
        settings = [s for s in args.settings.split(",") if s]
        try:
            chosen_settings(PRESETS[args.scale], settings)
        except ValueError as e:
            ap.error(f"--settings: {e}")
    results = run_experiment(
        args.workdir,
        args.scale,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
        configs_dir=args.configs,
        settings=settings,
        max_steps=args.max_steps,
        seeds=args.seeds,
    )
    print(f"{args.workdir}/results{tag}.md:\n")
    with open(f"{args.workdir}/results{tag}.md") as f:
        print(f.read())
    return 1 if results.get("non_finite") else 0


if __name__ == "__main__":
    sys.exit(main())
