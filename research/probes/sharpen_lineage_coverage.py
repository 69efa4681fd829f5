"""Does the sharpening's resampling by misfit collapse a map's samples onto few start chains, and
are those the maps the interval misses? Read from a sharpened calibration run's progress file
(each map's base coverage and ``sharpen_lineage``; no sampling).

``sharpen_samples`` resamples its chains by their band's misfit twice (by default 35 % and 60 % of
the way, each tempered to an effective size of half the chains), so the final samples may
descend from few of the latent sampler's starts. Per map this reports the number of distinct
start chains among the final samples, their effective number 1 / Σ p² (p: the share of samples
from each start), and the map's coverage of the uncalibrated predictive interval; then the mean
coverage per number of distinct starts and the Spearman rank correlation of coverage with each.
A strong positive correlation would say the interval's all-or-nothing per-map coverage comes from
the resampling (keeping more starts would widen exactly the maps it misses); a weak one, that
maps are missed whichever starts survive (every start sits in the same wrong basin).

    python research/probes/sharpen_lineage_coverage.py \\
        research/calibration_progress/flatvel_a_small_sharpened_1pct.partial.pt \\
        --out benchmarks/results/sharpen_lineage_coverage.json
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

from ubdiff_phys.runtime.files import append_json_record, file_sha256, run_record


def lineage_counts(lineage: list[int]) -> tuple[int, float]:
    """Distinct start chains among the final samples and their effective number 1 / Σ p²."""
    shares = torch.tensor(list(Counter(lineage).values()), dtype=torch.float64) / len(lineage)
    return len(shares), float(1.0 / (shares**2).sum())


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation of two equal-length lists (average ranks for ties)."""

    def ranks(x: list[float]) -> torch.Tensor:
        t = torch.tensor(x, dtype=torch.float64)
        r = torch.empty_like(t)
        order = torch.argsort(t)
        r[order] = torch.arange(len(t), dtype=torch.float64)
        for v in torch.unique(t):  # ties share their mean rank
            tied = t == v
            r[tied] = r[tied].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / ((ra**2).sum() * (rb**2).sum()).sqrt())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("progress", type=Path, help="a sharpened calibration's .partial.pt")
    ap.add_argument("--out", type=Path, default=None, help="append the record to this JSON list")
    args = ap.parse_args()
    state = torch.load(args.progress, weights_only=True)
    rows = []
    for k, m in enumerate(state["maps"]):
        lineage = m["settings"].get("sharpen_lineage")
        if lineage is None:
            raise SystemExit(f"{args.progress}: map {k} has no sharpen_lineage")
        distinct, effective = lineage_counts(list(lineage))
        cov = float(m["coverage"])
        rows.append(
            {"row": k, "map_sha256": m["map"], "distinct": distinct, "effective": effective}
        )
        rows[-1] |= {"coverage_before": cov, "lineage": list(lineage)}
    cov = [r["coverage_before"] for r in rows]
    by_distinct = {}
    for d in sorted({r["distinct"] for r in rows}):
        group = [r["coverage_before"] for r in rows if r["distinct"] == d]
        mean = sum(group) / len(group)
        by_distinct[str(d)] = {"maps": len(group), "mean_coverage": mean}
        print(f"{d} distinct starts: {len(group):2d} maps, mean coverage {mean:.3f}")
    rho_d = spearman([r["distinct"] for r in rows], cov)
    rho_e = spearman([r["effective"] for r in rows], cov)
    print(f"{len(rows)} maps; Spearman with coverage: distinct {rho_d:.3f}, effective {rho_e:.3f}")
    if args.out is not None:
        record = {"what": "sharpen lineage vs per-map coverage of the uncalibrated interval"}
        record |= run_record()
        record |= {"progress": str(args.progress), "progress_sha256": file_sha256(args.progress)}
        record |= {"key": state["key"], "maps": rows, "by_distinct": by_distinct}
        record |= {"spearman_distinct": rho_d, "spearman_effective": rho_e}
        append_json_record(args.out, record)
        print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
