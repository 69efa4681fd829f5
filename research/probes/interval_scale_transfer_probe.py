"""Probe: does an interval scale measured on one set of held-out maps hold on another?

Scores the saved output of ``examples/posterior_inversion.py`` runs (``posterior_samples.npz``:
every sample and the true maps) with each of several stored calibrations
(``interval_calibration.json`` from ``ubdiff-phys calibrate-interval``): the mean and per-map
90 % coverage of the calibrated interval, and its mean width [m/s]. No sampling: seconds.

    PYTHONPATH=. python research/probes/interval_scale_transfer_probe.py \
        --decoder-error ubdiff_phys/assets/flatvel_a_small/decoder_error.json \
        --calibration full ubdiff_phys/assets/flatvel_a_small/interval_calibration.json \
        --calibration bands /tmp/prior_bands/interval_calibration.json \
        --run full out/post_flat12_s777 --run bands out/post_flat12_s777_bands \
        --out benchmarks/results/interval_scale_transfer_probe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ubdiff_phys.inversion.decoder_error import stored_decoder_error
from ubdiff_phys.inversion.interval_calibration import IntervalCalibration
from ubdiff_phys.runtime.files import append_json_record, run_record

sys.path.insert(0, str(Path(__file__).parent))
from interval_mondrian_probe import as_result  # noqa: E402


def score(folder: Path, cal: IntervalCalibration, e: torch.Tensor) -> dict:
    """Per-map coverage of the true maps by ``cal``'s 90 % interval, and its mean width [m/s],
    for every noise level of the run in ``folder``."""
    z = np.load(folder / "posterior_samples.npz")
    truth = torch.from_numpy(z["truth"]).float()
    out = {}
    for level in z["levels"]:
        covs, widths = [], []
        for k in range(len(truth)):
            res = as_result(z[f"samples_{level}_{k}"], e)
            res = dataclasses.replace(res, calibration=cal)
            covs.append(res.coverage(truth[k], cal.level, "calibrated"))
            lo, hi = res.interval(cal.level, "calibrated")
            widths.append(float((hi - lo).mean()))
        out[str(level)] = {
            "coverage_mean": float(np.mean(covs)),
            "coverage_per_map": [round(float(c), 4) for c in covs],
            "width_mean_m_per_s": float(np.mean(widths)),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decoder-error", type=Path, required=True)
    ap.add_argument("--calibration", nargs=2, action="append", required=True, metavar=("NAME", "F"))
    ap.add_argument("--run", nargs=2, action="append", required=True, metavar=("NAME", "DIR"))
    ap.add_argument("--out", type=Path, required=True, help="JSON list the record is appended to")
    args = ap.parse_args()
    e = stored_decoder_error(args.decoder_error).tensor()  # type: ignore[union-attr]
    cals = {
        name: IntervalCalibration.from_dict(json.loads(Path(f).read_text()))
        for name, f in args.calibration
    }
    rows = {}
    for run, folder in args.run:
        for name, cal in cals.items():
            rows[f"{run} samples, {name} scale"] = r = score(Path(folder), cal, e)
            for level, s in r.items():
                print(
                    f"{run} samples, {name} scale {cal.scale:.3f}, noise {level}: coverage "
                    f"{s['coverage_mean']:.3f}, width {s['width_mean_m_per_s']:.0f} m/s"
                )
    record = {
        "what": "coverage of the calibrated 90 % interval on maps other than the calibration's",
        "calibrations": {n: dataclasses.asdict(c) for n, c in cals.items()},
        "runs": [list(r) for r in args.run],
        "rows": rows,
        **run_record(),
    }
    append_json_record(args.out, record)


if __name__ == "__main__":
    main()
