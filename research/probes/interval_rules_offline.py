"""Score interval rules offline on saved sharpened samples (``sharpen_from_fwi_probe.py
--save-samples DIR``), leaving one map out at a time.

The shipped calibration multiplies the predictive half-width h = t_{n−1} · s · √(1 + 1/n) by one
scale from held-out maps (split conformal on the pooled pixels). On CurveVel-A's FWI start the
maps it under-covers have the smallest sample spread, so this compares, with every rule fit on
the other maps only (each map's coverage is a genuine out-of-sample figure):

- ``scale``: score |v − mean| / h (the shipped rule);
- ``floor c``: score |v − mean| / (h + c), c [m/s] on a fixed grid (an additive floor: intervals
  no narrower than ~scale · c where the samples agree);
- ``floor nested``: c chosen per left-out map by the same leave-one-out on the other maps only
  (the smallest mean |coverage − level| over them), so the choice never sees the scored map;
- ``constant``: score |v − mean| (one width for every pixel; c → ∞).

Reports each rule's mean, min and max left-out coverage, maps inside 0.8–0.97, and the mean
calibrated half-width [m/s] (a wide interval covers trivially; width is its price).

    python research/probes/interval_rules_offline.py runs/probe_samples --level 0.9
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ubdiff_phys.runtime.stats import student_t_quantile

FLOORS = (0.0, 10.0, 25.0, 50.0, 100.0, 200.0)  # [m/s], fixed before any map was scored
BAND = (0.8, 0.97)


def load_map(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(|truth − mean|, predictive half-width h, samples' std) of one saved map, each (P,) float64
    [m/s], h at the 90 % level's t quantile scaled later by the rule."""
    d = torch.load(path, weights_only=False)
    x = d["samples"].double().flatten(1)  # (n, P)
    n = x.shape[0]
    s = x.std(0)
    h = student_t_quantile(0.95, n - 1) * s * math.sqrt(1 + 1 / n)
    return (d["truth"].double().flatten() - x.mean(0)).abs(), h, s


def rank_scale(scores: torch.Tensor, level: float) -> float:
    """The ⌈(N + 1)·level⌉-th smallest of N pooled scores (split conformal)."""
    k = min(math.ceil((scores.numel() + 1) * level), scores.numel())
    return float(scores.sort().values[k - 1])


def left_out(maps: list[tuple], floor: float, level: float) -> list[tuple[float, float]]:
    """Per map (coverage, mean half-width [m/s]) of the rule ``|err| / (h + floor)`` (floor inf:
    ``|err|``) fit on the other maps."""

    def score(err, h):
        return err if math.isinf(floor) else err / (h + floor)

    out = []
    for j, (err, h, _) in enumerate(maps):
        q = rank_scale(torch.cat([score(e, hh) for i, (e, hh, _) in enumerate(maps) if i != j]),
                       level)  # fmt: skip
        half = torch.full_like(h, q) if math.isinf(floor) else q * (h + floor)
        out.append((float((err <= half).double().mean()), float(half.mean())))
    return out


def nested_floor(maps: list[tuple], level: float) -> list[tuple[float, float, float]]:
    """Per map (coverage, half-width, chosen floor) with the floor chosen on the other maps."""
    out = []
    for j in range(len(maps)):
        rest = [m for i, m in enumerate(maps) if i != j]
        best = min(
            FLOORS + (math.inf,),
            key=lambda c: sum(abs(cv - level) for cv, _ in left_out(rest, c, level)),
        )
        out.append((*left_out(maps, best, level)[j], best))
    return out


def summary(name: str, rows: list) -> dict:
    """Mean/min/max coverage, band counts and mean half-width of one rule's per-map rows."""
    cov = [r[0] for r in rows]
    return {
        "rule": name,
        "coverage_mean": round(sum(cov) / len(cov), 4),
        "coverage_min": round(min(cov), 4),
        "coverage_max": round(max(cov), 4),
        "inside_band": sum(BAND[0] <= c <= BAND[1] for c in cov),
        "half_width_mean_m_per_s": round(sum(r[1] for r in rows) / len(rows), 1),
        "per_map": [round(c, 3) for c in cov],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="--save-samples folder of the probe")
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--pattern", default="*.pt")
    args = ap.parse_args()
    paths = sorted(args.folder.glob(args.pattern))
    if len(paths) < 3:
        raise SystemExit(f"need at least 3 saved maps in {args.folder}, found {len(paths)}")
    maps = [load_map(p) for p in paths]
    print("maps:", [p.stem for p in paths])
    print("std mean [m/s]:", [round(float(s.mean()), 1) for _, _, s in maps])
    results = [summary("scale", left_out(maps, 0.0, args.level))]
    results += [summary(f"floor {c:g}", left_out(maps, c, args.level)) for c in FLOORS[1:]]
    results.append(summary("constant", left_out(maps, math.inf, args.level)))
    nested = nested_floor(maps, args.level)
    results.append(summary("floor nested", nested) | {"floors": [r[2] for r in nested]})
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
