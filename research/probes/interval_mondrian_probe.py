"""Probe: does a calibration scale per data-misfit bin (Mondrian conformal) hold single maps
better than one pooled scale?

Works on the saved output of ``examples/posterior_inversion.py`` (``posterior_samples.npz``
and ``posterior_inversion.json``: every sample, the true maps, each map's misfit), leave one map
out: the other maps give (a) one scale for the ``approximation`` interval
(:func:`~ubdiff_phys.inversion.interval_calibration.conformal_scale`) and (b) a scale from only
the maps on the same side of the others' median misfit / noise level; each is scored on the left-
out map. No sampling: seconds.

    PYTHONPATH=. python research/probes/interval_mondrian_probe.py \
        --run flatvel-a out/post_flat12_cal ubdiff_phys/assets/flatvel_a_small/decoder_error.json \
        --run curvevel-a out/post_curve12_cal \
            runs/diffusion_curvevel_a_velocity.decoder_error.json \
        --out benchmarks/results/interval_mondrian_probe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from ubdiff_phys.inversion import PosteriorResult
from ubdiff_phys.inversion.decoder_error import stored_decoder_error
from ubdiff_phys.inversion.interval_calibration import conformal_scale
from ubdiff_phys.runtime.files import append_json_record, run_record


def as_result(samples: np.ndarray, e: torch.Tensor) -> PosteriorResult:
    """Samples (n, 1, nz, nx) [m/s] with the decoder error e -> a result to score."""
    s = torch.from_numpy(samples).float()
    z = torch.zeros(len(s), dtype=torch.float64)
    return PosteriorResult(s, s.mean(0), s.std(0), z, 1.0, 0.0, 0, decoder_error=e)


def leave_one_out(results, truths, ratio: np.ndarray) -> dict[str, list[float]]:
    """Coverage of each left-out map with the pooled and the per-misfit-bin scale."""
    pooled, binned = [], []
    n = len(results)
    for k in range(n):
        others = [j for j in range(n) if j != k]
        thr = float(np.median(ratio[others]))
        same = [j for j in others if (ratio[j] > thr) == (ratio[k] > thr)]
        for chosen, out in ((others, pooled), (same, binned)):
            cal = conformal_scale(
                [results[j] for j in chosen], [truths[j] for j in chosen], 0.9, "approximation"
            )
            res = dataclasses.replace(results[k], calibration=cal)
            out.append(res.coverage(truths[k], 0.9, "calibrated"))
    return {"pooled": pooled, "misfit_bins": binned}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs=3, action="append", required=True, metavar=("NAME", "DIR", "E"))
    ap.add_argument("--out", type=Path, required=True, help="JSON list the record is appended to")
    args = ap.parse_args()
    rows = {}
    for name, folder, dec in args.run:
        e = stored_decoder_error(Path(dec)).tensor()  # type: ignore[union-attr]
        z = np.load(Path(folder) / "posterior_samples.npz")
        rec = json.loads((Path(folder) / "posterior_inversion.json").read_text())
        truth = torch.from_numpy(z["truth"]).float()
        for level in sorted({r["noise"] for r in rec["rows"]}):
            sel = [r for r in rec["rows"] if r["noise"] == level]
            ratio = np.array(
                [r["posterior"]["sample_misfit_median"] / r["noise_misfit"] for r in sel]
            )
            results = [as_result(z[f"samples_{level}_{r['map']}"], e) for r in sel]
            cov = leave_one_out(results, [truth[r["map"]] for r in sel], ratio)
            summary = {}
            for key, v in cov.items():
                a = np.array(v)
                summary[key] = {
                    "mean": a.mean(),
                    "min": a.min(),
                    "in_band": int(((a >= 0.8) & (a <= 0.97)).sum()),
                }
                print(
                    f"{name} {level}: {key} mean {a.mean():.3f} min {a.min():.2f} "
                    f"in 0.8-0.97 {summary[key]['in_band']}/{len(a)}"
                )
            rows[f"{name} {level}"] = {
                "coverage": cov,
                "summary": summary,
                "misfit_ratio": ratio.tolist(),
            }
    record = {
        "what": "leave-one-map-out coverage of the calibrated 90 % interval: one pooled scale vs a "
        "scale per misfit bin (above / below the other maps' median misfit / noise level)",
        "runs": [list(r) for r in args.run],
        "rows": rows,
        **run_record(),
    }
    append_json_record(args.out, record)


if __name__ == "__main__":
    main()
