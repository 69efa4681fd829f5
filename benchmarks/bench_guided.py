"""Guided seismic: residual and time per pair against the decoder mode, by shots per guided step.

Samples the same pairs (same checkpoint, seed, batches and DDIM steps) with ``--seismic
decoder`` and with ``--seismic guided`` for each ``--shots`` value (``all``: every shot at every
guided step, the published DPS-style guide; ``k``: k of the survey's shots per guided step,
cycling through them, :func:`ubdiff_phys.pipelines.seismic_modes.guidance_shot_cycle`). It checks
first that each guided set's pairs are scored the way ``validate`` scores them (physical relative
L2 against the solver's gathers of their own velocity, with the shuffled and direct-wave
baselines), then reports each variant's median residual and seconds per pair (after one untimed
decoder batch) as ratios to the decoder mode's, measured in the same run. Appends JSON to
``benchmarks/results/guided_<dev>.json``.

    PYTHONPATH=. python benchmarks/bench_guided.py --n 32 --shots all,1
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from ubdiff_phys.physics.baselines import baselines
from ubdiff_phys.pipelines.generator import load_generator, shipped_checkpoint
from ubdiff_phys.pipelines.seismic_modes import check_guidance, generate_pairs
from ubdiff_phys.runtime.files import append_json_record, run_record


def run_mode(gen, n: int, batch: int, seed: int, **mode: Any) -> dict[str, Any]:
    """Sample n pairs in batches of ``batch`` with one seismic mode; residuals, baselines, time."""
    t0 = time.perf_counter()
    vs, ss = [], []
    for b in range(n // batch):
        v, s, _ = generate_pairs(gen, batch, seed=seed, b=b, **mode)
        vs.append(v)
        ss.append(s)
    seconds = time.perf_counter() - t0
    v, s = torch.cat(vs), torch.cat(ss)
    rel = gen.residual(v, s).rel_l2
    base = baselines(v[: min(n, 32)], s[: min(n, 32)], gen.survey, boundary=gen.boundary)
    return {
        "mode": mode,
        "median_residual": float(rel.median()),
        "p95_residual": float(rel.quantile(0.95)),
        "baselines_first32": base.to_dict(),
        "seconds_per_pair": seconds / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--n", type=int, default=32, help="pairs per mode (a multiple of --batch)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--scale", type=float, default=0.05, help="guidance scale")
    ap.add_argument("--guidance-steps", type=int, default=10)
    ap.add_argument("--shots", default="all,1", help="comma-separated: 'all' or k per step")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="JSON file (default results/guided_<dev>.json)")
    args = ap.parse_args()
    if args.n < 1 or args.batch < 1 or args.n % args.batch:
        ap.error("--n must be a positive multiple of --batch")
    shots = [None if k == "all" else int(k) for k in args.shots.split(",") if k]
    try:
        for k in shots:
            check_guidance(args.scale, args.guidance_steps, k)
    except ValueError as e:
        ap.error(str(e))
    ckpt = args.checkpoint or shipped_checkpoint()
    gen = load_generator(ckpt, device=args.device)
    common = {"steps": args.steps}
    generate_pairs(gen, args.batch, seed=args.seed + 1, b=0, seismic="decoder", **common)  # warm-up
    decoder = run_mode(gen, args.n, args.batch, args.seed, seismic="decoder", **common)
    rows = [decoder]
    for k in shots:
        guided = {"guidance_scale": args.scale, "guidance_steps": args.guidance_steps}
        r = run_mode(
            gen, args.n, args.batch, args.seed, seismic="guided", guidance_shots=k,
            **guided, **common,
        )  # fmt: skip
        r["residual_ratio"] = r["median_residual"] / decoder["median_residual"]
        r["time_ratio"] = r["seconds_per_pair"] / decoder["seconds_per_pair"]
        rows.append(r)
    for r in rows:
        mode = r["mode"]
        name = mode["seismic"] + (
            f" shots={mode.get('guidance_shots') or 'all'}" if mode["seismic"] == "guided" else ""
        )
        b = r["baselines_first32"]
        extra = (
            f"  ({r['residual_ratio']:.2f}x residual, {r['time_ratio']:.1f}x time)"
            if "time_ratio" in r
            else ""
        )
        print(
            f"{name:18s} median {r['median_residual']:.3f}  shuffled {b['shuffled']:.3f}"
            f"  direct {b['direct_wave']:.3f}  {r['seconds_per_pair']:.3f} s/pair{extra}"
        )
    record = {
        "benchmark": "guided_shots",
        "checkpoint": str(ckpt),
        "n": args.n,
        "batch": args.batch,
        "seed": args.seed,
        "ddim_steps": args.steps,
        "device": args.device,
        "rows": rows,
        **run_record(),
    }
    out = args.out or f"benchmarks/results/guided_{torch.device(args.device).type}.json"
    print(f"appended to {append_json_record(out, record)}")


if __name__ == "__main__":
    main()
