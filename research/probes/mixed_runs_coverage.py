"""Probe: is a pooled posterior better because it has more samples, or because its samples come
from independent runs? For two runs of ``examples/posterior_inversion.py`` on the same maps (same
sampler, other ``--draw-seed``), each map is scored (posterior mean SSIM and MAE, the predictive
90 % interval's coverage; as ``pooled_runs_coverage.py`` scores) for: either run's n samples, the
2n pooled, and n made of n/2 drawn from each run (averaged over ``--mixes`` random draws per map,
seeded): the same sample count as one run, from two independent resampled populations. Appends a
JSON record.

    python research/probes/mixed_runs_coverage.py out/post_flat12_sharpen/posterior_samples.npz \
        out/post_flat12_sharpen_d1/posterior_samples.npz \
        --out benchmarks/results/mixed_runs_coverage.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from pooled_runs_coverage import saved_runs, scores

from ubdiff_phys.runtime.files import append_json_record, run_record


def mixed(a: torch.Tensor, b: torch.Tensor, truth: torch.Tensor, mixes: int, rng) -> dict:
    """Mean scores of ``mixes`` draws of n/2 samples of ``a`` and n/2 of ``b`` (n, 1, nz, nx)."""
    n = a.shape[0]
    runs = []
    for _ in range(mixes):
        ia = torch.as_tensor(rng.choice(n, n // 2, replace=False))
        ib = torch.as_tensor(rng.choice(n, n - n // 2, replace=False))
        runs.append(scores(torch.cat([a[ia], b[ib]]), truth))
    return {k: round(statistics.mean(r[k] for r in runs), 4) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs=2, help="posterior_samples.npz of the two runs")
    ap.add_argument("--noise", default="0.01", help="the noise level key of the saved samples")
    ap.add_argument("--mixes", type=int, default=40, help="random half/half draws per map")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append a record to")
    args = ap.parse_args()
    data, truth, keys = saved_runs(args.runs, args.noise)
    rng = np.random.default_rng(args.seed)
    rows = []
    for key in keys:
        k = int(key.rsplit("_", 1)[1])
        a, b = (torch.as_tensor(d[key]).double() for d in data)
        row = {"map": k, "run_a": scores(a, truth[k]), "run_b": scores(b, truth[k])}
        row["mixed_half_half"] = mixed(a, b, truth[k], args.mixes, rng)
        row["pooled"] = scores(torch.cat([a, b]), truth[k])
        rows.append(row)
        print(k, {c: row[c]["coverage_90"] for c in row if c != "map"})
    columns = ("run_a", "run_b", "mixed_half_half", "pooled")
    summary = {
        c: {m: round(statistics.mean(r[c][m] for r in rows), 4) for m in rows[0][c]}
        for c in columns
    }
    for c in columns:
        cov = [r[c]["coverage_90"] for r in rows]
        summary[c]["coverage_range"] = [min(cov), max(cov)]
    print(summary)
    if args.out is not None:
        record = {
            "probe": "mixed_runs_coverage",
            **run_record(),
            "runs": [str(p) for p in args.runs],
        }
        record |= {"noise": args.noise, "mixes": args.mixes, "seed": args.seed}
        append_json_record(args.out, record | {"summary": summary, "maps": rows})


if __name__ == "__main__":
    main()
