"""How far the mean coverage of N evaluation maps scatters under a scale fitted on M other maps,
read from a calibration run's progress file (each map's conformal scores; no sampling).

The interval calibration's guarantee is on average over maps exchangeable with the calibration
maps, and under one scale a sharpened posterior's per-map coverage is nearly all-or-nothing
(maps whose samples agree on a wrong model stay far below the level, the others reach
0.98–1.00). So the mean over a 12-map evaluation scatters widely around the level even when the
scale is right. This draws random
disjoint splits of the stored maps (M fit the split-conformal scale on their pooled scores, N
others are scored under it) and reports the distribution of the N-map mean coverage: mean,
standard deviation, 5th / 95th percentiles and the share of splits inside the 0.8–0.97 band. The
splits overlap, so it is a resampling estimate of the spread, not an independent one (and it is
skipped when fewer than 6 maps would fit the scale). The second estimate draws N maps' left-out
coverages (each map under the other maps' scale) with replacement.

    python research/probes/calibration_split_spread.py \\
        research/calibration_progress/flatvel_a_small_sharpened_1pct.partial.pt \\
        --eval 12 --repeats 4000 --out benchmarks/results/calibration_split_spread.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ubdiff_phys.inversion.interval_calibration import _rank_scale, scale_from_scores
from ubdiff_phys.runtime.files import append_json_record, file_sha256, run_record

BAND = (0.8, 0.97)


def split_coverages(
    scores: list[torch.Tensor], n_fit: int, n_eval: int, repeats: int, level: float, seed: int
) -> list[float]:
    """Mean coverage of ``n_eval`` maps under the scale of ``n_fit`` other maps, per random split.

    Args:
        scores: per map, its (P,) float64 scores |v_true − centre| / half-width.
        n_fit, n_eval: maps per side (n_fit + n_eval ≤ len(scores)); repeats: splits drawn.
        level: the interval's level; seed: the splits' RNG seed.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(repeats):
        order = torch.randperm(len(scores), generator=gen).tolist()
        fit = [scores[k] for k in order[:n_fit]]
        held = order[n_fit : n_fit + n_eval]
        scale = _rank_scale(torch.cat(fit), level)  # the shipped rule, without its left-out pass
        if scale is None:
            raise ValueError("a split's scale is undefined (too few finite scores)")
        out.append(sum(float((scores[k] <= scale).double().mean()) for k in held) / n_eval)
    return out


def bootstrap_means(values: list[float], n: int, repeats: int, seed: int) -> list[float]:
    """Means of ``n`` values drawn with replacement from ``values``, ``repeats`` times."""
    v = torch.tensor(values, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(values), (repeats, n), generator=gen)
    return v[idx].mean(dim=1).tolist()


def summary(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation, 5th / 95th percentiles and share inside ``BAND``."""
    v = torch.tensor(values, dtype=torch.float64)
    q = torch.quantile(v, torch.tensor([0.05, 0.95], dtype=torch.float64))
    inside = ((v >= BAND[0]) & (v <= BAND[1])).double().mean()
    return {
        "mean": round(float(v.mean()), 4),
        "sd": round(float(v.std()), 4),
        "p05": round(float(q[0]), 4),
        "p95": round(float(q[1]), 4),
        "inside_band": round(float(inside), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("progress", type=Path, help="a calibrate-interval progress file")
    p.add_argument("--eval", type=int, default=12, help="maps scored per split (12)")
    p.add_argument("--fit", type=int, help="maps that fit the scale (default: all the others)")
    p.add_argument("--repeats", type=int, default=4000)
    p.add_argument("--level", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="append the record to this JSON list")
    args = p.parse_args()
    maps = torch.load(args.progress, weights_only=True)["maps"]
    scores = [m["scores"] for m in maps]
    n_fit = len(scores) - args.eval if args.fit is None else args.fit
    if args.eval < 1 or len(scores) < 2:
        p.error(f"{len(scores)} maps stored (need 2); --eval must be >= 1")
    values = []  # the split estimate needs n_fit + n_eval maps, and a scale of >= 6 maps
    if n_fit >= 6 and n_fit + args.eval <= len(scores):
        values = split_coverages(scores, n_fit, args.eval, args.repeats, args.level, args.seed)
    per_map = [round(m["coverage"], 4) for m in maps]
    whole = scale_from_scores(scores, args.level, "predictive")
    # each map under the other maps' scale, then means of --eval of them drawn with replacement
    boot = bootstrap_means(whole.per_map_left_out, args.eval, args.repeats, args.seed)
    record = {
        "what": "mean coverage of n_eval maps under the conformal scale of n_fit other maps, "
        "random disjoint splits of a calibration run's stored maps",
        "progress": str(args.progress),
        "progress_sha256": file_sha256(args.progress),
        "n_maps": len(scores),
        "n_fit": n_fit,
        "n_eval": args.eval,
        "repeats": args.repeats,
        "level": args.level,
        "seed": args.seed,
        "per_map_coverage_before": per_map,
        "scale_all_maps": round(whole.scale, 4),
        "coverage_left_out_all_maps": whole.coverage_left_out,
        "split_mean_coverage": summary(values) if values else None,
        "left_out_bootstrap_mean_coverage": summary(boot),
        **run_record(),
    }
    s = record["split_mean_coverage"]
    print(f"{len(scores)} maps; scale {whole.scale:.3f}, left out {whole.coverage_left_out}")
    if s is not None:
        print(
            f"{args.eval}-map mean coverage under {n_fit} other maps' scale ({args.repeats} "
            f"splits): mean {s['mean']:.3f}, sd {s['sd']:.3f}, 5-95 % {s['p05']:.3f}-"
            f"{s['p95']:.3f}, inside {BAND[0]}-{BAND[1]}: {s['inside_band']:.2f}"
        )
    b = record["left_out_bootstrap_mean_coverage"]
    print(
        f"{args.eval}-map mean of the left-out coverages (bootstrap): mean {b['mean']:.3f}, sd "
        f"{b['sd']:.3f}, 5-95 % {b['p05']:.3f}-{b['p95']:.3f}, inside: {b['inside_band']:.2f}"
    )
    if args.out is not None:
        append_json_record(args.out, record)


if __name__ == "__main__":
    main()
