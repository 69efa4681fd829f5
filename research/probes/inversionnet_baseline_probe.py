"""Probe: how strong is the InversionNet baseline of ``examples/posterior_inversion.py``?

The example trains InversionNet (width 0.25, AdamW lr 1e-3, batches of 16) on the prior's paired
training rows (its ``--inversionnet-steps`` and ``--inversionnet-noise``) and scores it on noisy
held-out gathers. This probe trains variants ``STEPS:NOISE`` with the example's function
(``NOISE``: the largest training noise level, :class:`ubdiff_phys.data.NoisyPairedDataset`: each
training item gets Gaussian noise of a fraction drawn uniformly from [0, NOISE] of its RMS, added
in physical units before the store's log normalisation; 0: noise-free gathers) and
scores every one on the example's maps and noise (same ``--seed``, same ``add_noise`` seeds), so
its numbers sit next to the example's ``inversionnet`` rows. Appends a JSON record.

    python research/probes/inversionnet_baseline_probe.py --train-store data/shipped.h5 \
        --n-maps 12 --seeds 1234,777 --variants 500:0,2000:0,2000:0.06
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from ubdiff_phys.inversion import load_prior
from ubdiff_phys.inversion.posterior_cli import add_noise
from ubdiff_phys.runtime.files import append_json_record, run_record

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import (  # noqa: E402
    add_held_out_options,
    inversionnet,
    open_held_out,
    score,
)

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def held_out(args: argparse.Namespace, seed: int, levels: list[float]):
    """(true maps (n, 1, nz, nx) [m/s], {(level, k): noisy gathers (S, nt, R)}) of the example's
    maps and noise for map seed ``seed``."""
    args.seed = seed
    _, _, truth, clean = open_held_out(args)
    noisy = {
        (level, k): add_noise(clean[k], level, seed=seed * 1_000_003 + k)[0]
        for level in levels
        for k in range(args.n_maps)
    }
    return truth, noisy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_held_out_options(ap)
    ap.add_argument("--seeds", default=None, help="map seeds, comma-separated (default: --seed)")
    ap.add_argument("--train-store", type=Path, required=True)
    ap.add_argument("--noise", default="0.01,0.05", help="evaluation noise levels (of the RMS)")
    ap.add_argument("--variants", default="500:0,2000:0,2000:0.06", help="STEPS:MAX_NOISE,...")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "inversionnet_baseline.json")
    args = ap.parse_args()
    if not args.train_store.is_file():
        ap.exit(2, f"inversionnet_baseline_probe: error: {str(args.train_store)!r} not found\n")
    levels = [float(x) for x in args.noise.split(",")]
    variants = [(int(a), float(b)) for a, b in (v.split(":") for v in args.variants.split(","))]
    seeds = [args.seed] if args.seeds is None else [int(x) for x in args.seeds.split(",")]
    lo, hi = load_prior(args.checkpoint).bounds
    maps = {seed: held_out(args, seed, levels) for seed in seeds}
    record = (
        dict(
            what="InversionNet baselines of examples/posterior_inversion.py: training steps and "
            "training-noise augmentation, on the example's held-out maps and noise",
            family=args.family,
            seeds=seeds,
            n_maps=args.n_maps,
            train_store=str(args.train_store),
            train_seed=args.train_seed,
            variants=[],
        )
        | run_record()
    )
    for steps, max_noise in variants:
        predict, seconds = inversionnet(args.train_store, steps, args.train_seed, max_noise)
        entry = {"steps": steps, "max_train_noise": max_noise, "train_seconds": seconds}
        for seed, (truth, noisy) in maps.items():
            for level in levels:
                rows = [
                    score(predict(noisy[level, k][None]), truth[k : k + 1], lo, hi)
                    for k in range(args.n_maps)
                ]
                key = f"seed_{seed}_noise_{level}"
                entry[key] = {
                    "ssim_mean": statistics.fmean(r["ssim"] for r in rows),
                    "mae_mean": statistics.fmean(r["mae_m_per_s"] for r in rows),
                    "per_map_ssim": [r["ssim"] for r in rows],
                }
                print(
                    f"{steps} steps, train noise <= {max_noise:g}, seed {seed}, eval {level:g}: "
                    f"SSIM {entry[key]['ssim_mean']:.3f}, MAE {entry[key]['mae_mean']:.0f} m/s "
                    f"({seconds:.0f} s training)",
                    flush=True,
                )
        record["variants"].append(entry)
    append_json_record(args.out, record)


if __name__ == "__main__":
    main()
