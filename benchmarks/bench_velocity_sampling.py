"""Sampling time of the shipped velocity-space model (the main job's default generator) with the
U-Net's feature maps in the default memory format and in channels-last (``UNet2D.channels_last``,
on by default on the CPU).

Checks first that both layouts give the same maps (same seed: max abs difference in normalised
units), then times DDIM sampling of ``--n`` maps per repeat, the two layouts interleaved repeat
by repeat (a shared machine's slow spells then fall on both), and reports seconds per map and
their ratio. Appends JSON to ``benchmarks/results/velocity_sampling_<device>.json``.

    PYTHONPATH=. python benchmarks/bench_velocity_sampling.py --n 64 --steps 50 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import torch

from ubdiff_phys.pipelines.generator import load_generator, shipped_velocity_checkpoint
from ubdiff_phys.runtime.files import append_json_record, run_record


def sample_maps(gen, n: int, steps: int, channels_last: bool) -> tuple[torch.Tensor, float]:
    """(normalised maps (n, 1, nz, nx), seconds) of DDIM sampling with the given layout."""
    gen.denoiser.net.channels_last = channels_last
    t0 = time.perf_counter()
    x = gen.sample(n, seed=0, b=0, steps=steps)
    return x, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="maps per repeat (the main job's batch)")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="JSON file (default results/velocity_sampling_)")
    args = ap.parse_args()
    if args.n < 1 or args.steps < 1 or args.repeats < 1:
        ap.error("--n, --steps and --repeats must be >= 1")
    gen = load_generator(shipped_velocity_checkpoint(), device=args.device)
    x0, _ = sample_maps(gen, 8, 3, False)
    x1, _ = sample_maps(gen, 8, 3, True)
    max_diff = float((x1 - x0).abs().max())
    print(f"check: the two layouts' maps differ by at most {max_diff:.2e} (normalised units)")
    seconds = {"default": [], "channels_last": []}
    for _ in range(args.repeats):
        for name in seconds:
            _, s = sample_maps(gen, args.n, args.steps, name == "channels_last")
            seconds[name].append(s)
    best = {k: min(v) / args.n for k, v in seconds.items()}
    ratio = best["default"] / best["channels_last"]
    for k, v in best.items():
        print(f"{k:14s} {v:.4f} s per map ({args.steps} DDIM steps, batch {args.n})")
    print(f"channels-last is {ratio:.2f}x faster")
    gen.denoiser.net.channels_last = True
    record = {
        "benchmark": "velocity_sampling_layout",
        "checkpoint": str(shipped_velocity_checkpoint()),
        "n": args.n,
        "ddim_steps": args.steps,
        "device": args.device,
        "check_max_abs_diff": max_diff,
        "seconds": seconds,
        "seconds_per_map": best,
        "speedup_channels_last": ratio,
        **run_record(),
    }
    dev = torch.device(args.device).type
    out = args.out or f"benchmarks/results/velocity_sampling_{dev}.json"
    print(f"appended to {append_json_record(out, record)}")


if __name__ == "__main__":
    main()
