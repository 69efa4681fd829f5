"""Probe: coverage of the sharpened posterior's 90 % interval with a stored calibration, from the
samples ``examples/posterior_inversion.py`` saved (``posterior_samples.npz``).

For every map of the saved run: the share of true pixels inside the predictive interval
(mean ± t · s · √(1 + 1/n)), inside the calibrated one when the prior stores a scale ``c`` of
``calibrate-interval --sharpen`` (measured on *other* maps: the store's held-out rows), and, as a
second reference that uses no stored file, inside the interval scaled by the conformal scale of
the other maps of the same run (leave one map out). With ``--pool-with`` (a ``calibrate-interval``
progress file of the same settings) it also pools the run's maps with that file's maps and
reports each map's coverage under the scale of all the others (not a shipped figure: the
evaluation maps then help set the scale). Appends a JSON record.

    python research/probes/calibrated_coverage.py out/post_flat12_sharpen/posterior_samples.npz \
        --noise 0.01 --out benchmarks/results/sharpened_interval_calibration.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import numpy as np
import torch

from ubdiff_phys.inversion import PosteriorResult, load_prior
from ubdiff_phys.inversion.interval_calibration import (
    conformal_scale,
    map_scores,
    scale_from_scores,
    stored_interval_calibration,
)
from ubdiff_phys.runtime.files import append_json_record, run_record


def result(samples: torch.Tensor) -> PosteriorResult:
    """A result holding ``samples`` (n, 1, nz, nx) [m/s] (mean, std from them)."""
    n = samples.shape[0]
    return PosteriorResult(
        samples=samples,
        mean=samples.mean(0),
        std=samples.std(0),
        misfit=torch.zeros(n, dtype=torch.float64),
        noise_misfit=1.0,
        seconds=0.0,
        solver_calls=0,
    )


def pooled_coverage(run_scores: list[torch.Tensor], progress: Path) -> dict:
    """Pool the run's per-map scores with a progress file's: the pooled scale, and the mean
    leave-one-map-out coverage (each map under the scale of all other maps) over all maps, the
    run's maps and the file's maps."""
    stored = [m["scores"] for m in torch.load(progress, weights_only=False)["maps"]]
    pooled = scale_from_scores(stored + run_scores, 0.9, "predictive")
    left_out = pooled.per_map_left_out
    n = len(stored)
    return {
        "progress": str(progress),
        "n_maps": len(left_out),
        "scale": round(pooled.scale, 4),
        "left_out_all": round(statistics.mean(left_out), 4),
        "left_out_run_maps": round(statistics.mean(left_out[n:]), 4),
        "left_out_file_maps": round(statistics.mean(left_out[:n]), 4),
        "run_maps_per_map": [round(x, 3) for x in left_out[n:]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", type=Path, help="posterior_samples.npz of the example")
    ap.add_argument("--noise", default="0.01", help="the noise level key of the saved samples")
    ap.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="interval_calibration_sharpened.json (default: the shipped prior's, if it has one)",
    )
    ap.add_argument(
        "--pool-with",
        type=Path,
        default=None,
        help="a calibrate-interval progress file (.partial.pt) to pool the run's maps with",
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON list to append a record to")
    args = ap.parse_args()
    data = np.load(args.samples)
    truth = torch.as_tensor(data["truth"]).float()
    keys = sorted(
        (k for k in data.files if k.startswith(f"samples_{args.noise}_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    results = [result(torch.as_tensor(data[k]).float()) for k in keys]
    truths = [truth[int(k.rsplit("_", 1)[1])] for k in keys]
    path = args.calibration or load_prior().sharpened_interval_calibration_path
    cal = stored_interval_calibration(path)  # None: the leave-one-out scale only
    rows = []
    for i, (res, t) in enumerate(zip(results, truths, strict=True)):
        others = [r for j, r in enumerate(results) if j != i]
        other_truths = [x for j, x in enumerate(truths) if j != i]
        loo = conformal_scale(others, other_truths, 0.9, "predictive")
        rows.append(
            {
                "map": int(keys[i].rsplit("_", 1)[1]),
                "predictive": res.coverage(t, 0.9),
                "calibrated": None
                if cal is None
                else dataclasses.replace(res, calibration=cal).coverage(t, 0.9, "calibrated"),
                "leave_one_out_scale": loo.scale,
                "leave_one_out": dataclasses.replace(res, calibration=loo).coverage(
                    t, 0.9, "calibrated"
                ),
            }
        )
    keys = ("predictive", "leave_one_out", "leave_one_out_scale") + (
        () if cal is None else ("calibrated",)
    )
    summary: dict = {k: round(statistics.mean(r[k] for r in rows), 4) for k in keys}
    for k in ("predictive", "leave_one_out") + (() if cal is None else ("calibrated",)):
        summary[f"{k}_per_map_range"] = [
            round(min(r[k] for r in rows), 4),
            round(max(r[k] for r in rows), 4),
        ]
    record = {
        "what": "coverage of the sharpened posterior's 90 % interval: predictive, calibrated "
        "with the stored scale (other maps), leave-one-map-out conformal scale",
        "samples": str(args.samples),
        "noise": args.noise,
        "calibration": None if cal is None else cal.to_dict(),
        "rows": rows,
        "summary": summary,
        "pooled": None
        if args.pool_with is None
        else pooled_coverage(
            [map_scores(r, t, 0.9, "predictive") for r, t in zip(results, truths, strict=True)],
            args.pool_with,
        ),
        **run_record(),
    }
    for r in rows:
        stored = "" if cal is None else f"  calibrated {r['calibrated']:.3f}"
        print(
            f"map {r['map']:2d}: predictive {r['predictive']:.3f}{stored}"
            f"  leave-one-out {r['leave_one_out']:.3f} (scale {r['leave_one_out_scale']:.3f})"
        )
    where = "no stored calibration" if cal is None else f"stored scale {cal.scale:.4g}"
    print(f"mean: {summary}  ({where})")
    if record["pooled"] is not None:
        print(f"pooled: {record['pooled']}")
    if args.out is not None:
        append_json_record(args.out, record)


if __name__ == "__main__":
    main()
