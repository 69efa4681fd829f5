"""Probe: pool the posterior samples of several runs of ``examples/posterior_inversion.py`` on the
same maps (e.g. one without and one with ``--keep-best-of``) and score each run and the pool per
map: the posterior mean's SSIM and MAE, and the predictive 90 % interval's coverage of the truth
(mean ± t · s · √(1 + 1/n), n the number of samples pooled). Appends a JSON record.

    python research/probes/pooled_runs_coverage.py out/post_flat12_sharpen/posterior_samples.npz \
        out/post_flat12_keep16/posterior_samples.npz \
        --out benchmarks/results/pooled_runs_coverage.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from calibrated_coverage import result

from ubdiff_phys.models.metrics import ssim
from ubdiff_phys.runtime.files import append_json_record, run_record

V_RANGE = (1500.0, 4500.0)  # m/s: the range SSIM is scored on, as in the example


def scores(samples: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """SSIM and MAE [m/s] of the mean of ``samples`` (n, 1, nz, nx) against ``truth`` (1, nz, nx),
    and the predictive 90 % interval's coverage."""
    lo, hi = V_RANGE
    res = result(samples)

    def unit(x: torch.Tensor) -> torch.Tensor:
        return 2 * (x[None].float() - lo) / (hi - lo) - 1

    return {
        "ssim": round(ssim(unit(res.mean), unit(truth)), 4),
        "mae_m_per_s": round(float((res.mean - truth).abs().mean()), 1),
        "coverage_90": round(res.coverage(truth, 0.9), 4),
    }


def saved_runs(paths: list[Path], noise: str) -> tuple[list, torch.Tensor, list[str]]:
    """(the runs' loaded ``posterior_samples.npz``, the true maps (n, 1, nz, nx) float64, the
    sample keys of noise level ``noise`` in map order)."""
    data = [np.load(p) for p in paths]
    truth = torch.as_tensor(data[0]["truth"]).double()
    keys = sorted(
        (k for k in data[0].files if k.startswith(f"samples_{noise}_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    return data, truth, keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="posterior_samples.npz of each run")
    ap.add_argument("--noise", default="0.01", help="the noise level key of the saved samples")
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append a record to")
    args = ap.parse_args()
    data, truth, keys = saved_runs(args.runs, args.noise)
    rows = []
    for key in keys:
        k = int(key.rsplit("_", 1)[1])
        per_run = [torch.as_tensor(d[key]).double() for d in data]
        row = {"map": k, "runs": [scores(s, truth[k]) for s in per_run]}
        row["pooled"] = scores(torch.cat(per_run), truth[k])
        rows.append(row)
        print(k, " | ".join(f"{r['ssim']:.3f} {r['coverage_90']:.2f}" for r in row["runs"]), end="")
        print(f" | pooled {row['pooled']['ssim']:.3f} {row['pooled']['coverage_90']:.2f}")

    def mean(pick) -> dict[str, float]:
        return {m: round(statistics.mean(pick(r)[m] for r in rows), 4) for m in rows[0]["pooled"]}

    summary = {"runs": [mean(lambda r, i=i: r["runs"][i]) for i in range(len(data))]}
    summary["pooled"] = mean(lambda r: r["pooled"])
    summary["pooled_coverage_range"] = [
        min(r["pooled"]["coverage_90"] for r in rows),
        max(r["pooled"]["coverage_90"] for r in rows),
    ]
    print(summary)
    if args.out is not None:
        record = {
            "probe": "pooled_runs_coverage",
            **run_record(),
            "runs": [str(p) for p in args.runs],
            "noise": args.noise,
            "summary": summary,
            "maps": rows,
        }
        append_json_record(args.out, record)


if __name__ == "__main__":
    main()
