"""Guided seismic: residual, velocity change and time per pair against the decoder mode.

Samples the same pairs (same checkpoint, seed, batches and DDIM steps) with ``--seismic
decoder`` and with ``--seismic guided`` for each combination of ``--noise`` (how the sampler
carries the correction: ``keep``, ``recompute``), ``--scale``, ``--guidance-steps``, ``--gradient``
(what the misfit's gradient passes through: ``full``, ``no_refine``), ``--refine-every`` (with
``no_refine``: guided steps between fresh refinement corrections) and ``--shots`` (``all``:
every shot at every guided step, the published DPS-style guide; ``k``: k of the survey's shots per
guided step, cycling through them,
:func:`ubdiff_phys.pipelines.seismic_modes.guidance_shot_cycle`).
Beside the residuals it reports what guidance did to the velocity maps: their median relative
change from the decoder mode's maps of the same seeds and the FlatVel-A layer tests. It checks
first that each guided set's pairs are scored the way ``validate`` scores them (physical relative
L2 against the solver's gathers of their own velocity, with the shuffled and direct-wave
baselines), then reports each variant's median residual and seconds per pair (after one untimed
decoder batch; the modes interleaved batch by batch, so that a shared machine's slow spells fall
on all of them) as ratios to the decoder mode's, measured in the same run. Appends JSON to
``benchmarks/results/guided_<dev>.json``.

    PYTHONPATH=. python benchmarks/bench_guided.py --n 32 --shots all,1
    PYTHONPATH=. python benchmarks/bench_guided.py --n 64 --shots 1 --noise keep,recompute \
        --scale 0.02,0.05
    PYTHONPATH=. python benchmarks/bench_guided.py --n 64 --shots 1 --gradient full,no_refine \
        --guidance-steps 10,11,12
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import torch

from ubdiff_phys.eval.structure import layer_structure
from ubdiff_phys.physics.baselines import baselines
from ubdiff_phys.pipelines.generator import load_generator, shipped_checkpoint
from ubdiff_phys.pipelines.seismic_modes import (
    DEFAULT_GUIDANCE_GRADIENT,
    DEFAULT_GUIDANCE_NOISE,
    DEFAULT_GUIDANCE_REFINE_EVERY,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_GUIDANCE_STEPS,
    check_guidance,
    generate_pairs,
)
from ubdiff_phys.runtime.files import append_json_record, run_record


def run_modes(gen, modes: list[dict[str, Any]], n: int, batch: int, seed: int) -> list[dict]:
    """Sample n pairs in batches of ``batch`` with each seismic mode, the modes interleaved batch
    by batch (a shared machine's slow spells then fall on every mode alike); per mode: residuals,
    baselines, seconds per pair."""
    seconds = [0.0] * len(modes)
    vs: list[list[torch.Tensor]] = [[] for _ in modes]
    ss: list[list[torch.Tensor]] = [[] for _ in modes]
    for b in range(n // batch):
        for k, mode in enumerate(modes):
            t0 = time.perf_counter()
            v, s, _ = generate_pairs(gen, batch, seed=seed, b=b, **mode)
            seconds[k] += time.perf_counter() - t0
            vs[k].append(v)
            ss[k].append(s)
    rows = []
    v_first = torch.cat(vs[0])
    for k, mode in enumerate(modes):
        v, s = torch.cat(vs[k]), torch.cat(ss[k])
        rel = gen.residual(v, s).rel_l2
        base = baselines(v[: min(n, 32)], s[: min(n, 32)], gen.survey, boundary=gen.boundary)
        moved = (v - v_first).flatten(1).norm(dim=1) / v_first.flatten(1).norm(dim=1)
        rows.append(
            {
                "mode": mode,
                "median_residual": float(rel.median()),
                "p95_residual": float(rel.quantile(0.95)),
                "baselines_first32": base.to_dict(),
                "seconds_per_pair": seconds[k] / n,
                # how far the velocity maps moved from the first mode's (same seeds), and how
                # much of their layering they keep (FlatVel-A tests; decoder mode as reference)
                "velocity_change_median": float(moved.median()),
                "velocity_structure": layer_structure(v[:, 0]).summary(),
            }
        )
    return rows


def mode_name(mode: dict[str, Any]) -> str:
    """A row's label: the mode and, for guided, its settings (``/k``: refine_every)."""
    if mode["seismic"] != "guided":
        return mode["seismic"]
    gradient = mode["guidance_gradient"]
    if gradient == "no_refine":
        gradient += f"/{mode['guidance_refine_every']}"
    return (
        f"guided {mode['guidance_scale']} shots={mode.get('guidance_shots') or 'all'}"
        f" {mode['guidance_noise']} {gradient} x{mode['guidance_steps']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--n", type=int, default=32, help="pairs per mode (a multiple of --batch)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument(
        "--scale", default=str(DEFAULT_GUIDANCE_SCALE), help="comma-separated guidance scales"
    )
    ap.add_argument(
        "--guidance-steps",
        default=str(DEFAULT_GUIDANCE_STEPS),
        help="comma-separated guided steps",
    )
    ap.add_argument(
        "--gradient",
        default=DEFAULT_GUIDANCE_GRADIENT,
        help="comma-separated guidance_gradient: full, no_refine",
    )
    ap.add_argument(
        "--refine-every",
        default=str(DEFAULT_GUIDANCE_REFINE_EVERY),
        help="comma-separated guidance_refine_every (no_refine only)",
    )
    ap.add_argument("--shots", default="all,1", help="comma-separated: 'all' or k per step")
    ap.add_argument(
        "--noise",
        default=DEFAULT_GUIDANCE_NOISE,
        help="comma-separated guidance_noise: keep, recompute",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="JSON file (default results/guided_<dev>.json)")
    args = ap.parse_args()
    if args.n < 1 or args.batch < 1 or args.n % args.batch:
        ap.error("--n must be a positive multiple of --batch")
    shots = [None if k == "all" else int(k) for k in args.shots.split(",") if k]
    noises = [w for w in args.noise.split(",") if w]
    gradients = [g for g in args.gradient.split(",") if g]
    try:
        scales = [float(a) for a in args.scale.split(",") if a]
        g_steps = [int(m) for m in args.guidance_steps.split(",") if m]
        everies = [int(e) for e in args.refine_every.split(",") if e]
        variants = [
            v
            for v in itertools.product(noises, scales, shots, gradients, g_steps, everies)
            if v[3] == "no_refine" or v[5] == everies[0]  # refine_every: no_refine only
        ]
        for w, a, k, g, m, e in variants:
            check_guidance(a, m, k, w, g, e)
    except ValueError as e:
        ap.error(str(e))
    ckpt = args.checkpoint or shipped_checkpoint()
    gen = load_generator(ckpt, device=args.device)
    common = {"steps": args.steps}
    generate_pairs(gen, args.batch, seed=args.seed + 1, b=0, seismic="decoder", **common)  # warm-up
    modes = [{"seismic": "decoder", **common}]
    modes += [
        {
            "seismic": "guided",
            "guidance_shots": k,
            "guidance_noise": w,
            "guidance_scale": a,
            "guidance_steps": m,
            "guidance_gradient": g,
            "guidance_refine_every": e,
            **common,
        }
        for w, a, k, g, m, e in variants
    ]
    rows = run_modes(gen, modes, args.n, args.batch, args.seed)
    decoder = rows[0]
    for r in rows[1:]:
        r["residual_ratio"] = r["median_residual"] / decoder["median_residual"]
        r["time_ratio"] = r["seconds_per_pair"] / decoder["seconds_per_pair"]
    for r in rows:
        name = mode_name(r["mode"])
        b = r["baselines_first32"]
        extra = (
            f"  ({r['residual_ratio']:.2f}x residual, {r['time_ratio']:.1f}x time)"
            if "time_ratio" in r
            else ""
        )
        print(
            f"{name:46s} median {r['median_residual']:.3f}  shuffled {b['shuffled']:.3f}"
            f"  direct {b['direct_wave']:.3f}  diversity {b['diversity']:.3f}"
            f"  v moved {r['velocity_change_median']:.3f}"
            f"  flatvel-like {r['velocity_structure']['share_flatvel_like']:.2f}"
            f"  {r['seconds_per_pair']:.3f} s/pair{extra}"
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
