"""Summarise the calibrated coverage of the sharpened-from-FWI posterior over probe records.

Reads the JSON list written by ``sharpen_from_fwi_probe.py``, keeps, for each map of the chosen
family and noise level, the latest row that has ``coverage_90_calibrated`` (the stored FWI-start
calibration applied to maps it never saw), and prints each map's calibrated and uncalibrated 90 %
coverage, SSIM and seconds, then their means, the spread and how many maps fall in the 0.8–0.97
band. Nothing is recomputed: this only reads the records.

    python research/probes/summarize_calibrated_coverage.py --family curvevel-a --noise 0.01 \
        benchmarks/results/sharpen_from_fwi_probe.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

BAND = (0.8, 0.97)


def latest_calibrated_rows(records: list[dict], family: str, noise: float) -> dict[int, dict]:
    """Return ``{map index: row}`` of the latest calibrated sharpened row per map.

    A row qualifies when its record's settings name ``family`` and ``noise`` and its
    ``sharpened_from_fwi`` entry carries ``coverage_90_calibrated``; later records win.
    """
    rows: dict[int, dict] = {}
    for i, record in enumerate(records):
        settings = record.get("settings", {})
        if settings.get("family") != family or settings.get("noise") != noise:
            continue
        for row in record.get("rows", []):
            sharpened = row.get("sharpened_from_fwi", {})
            if sharpened.get("coverage_90_calibrated") is None:
                continue
            rows[int(row["map"])] = {"record": i, **sharpened}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path, help="JSON list written by sharpen_from_fwi_probe.py")
    ap.add_argument("--family", default="curvevel-a")
    ap.add_argument("--noise", type=float, default=0.01)
    args = ap.parse_args()
    rows = latest_calibrated_rows(json.loads(args.records.read_text()), args.family, args.noise)
    if not rows:
        raise SystemExit(f"no calibrated rows for {args.family} at noise {args.noise}")
    print("map record  calibrated  uncalibrated  ssim   seconds  scale")
    for m in sorted(rows):
        r = rows[m]
        print(
            f"{m:3d} {r['record']:6d}  {r['coverage_90_calibrated']:10.3f}"
            f"  {r['coverage_90']:12.3f}  {r['ssim']:.3f}  {r['s']:7.0f}"
            f"  {r['calibration_scale']:.3f}"
        )
    cal = [rows[m]["coverage_90_calibrated"] for m in sorted(rows)]
    unc = [rows[m]["coverage_90"] for m in sorted(rows)]
    ssim = [rows[m]["ssim"] for m in sorted(rows)]
    inside = sum(BAND[0] <= c <= BAND[1] for c in cal)
    print(
        f"{len(rows)} maps: calibrated mean {statistics.mean(cal):.3f} (min {min(cal):.3f},"
        f" max {max(cal):.3f}, median {statistics.median(cal):.3f});"
        f" uncalibrated mean {statistics.mean(unc):.3f}; SSIM mean {statistics.mean(ssim):.3f};"
        f" maps inside {BAND[0]}-{BAND[1]}: {inside}, above: {sum(c > BAND[1] for c in cal)},"
        f" below: {sum(c < BAND[0] for c in cal)}"
    )


if __name__ == "__main__":
    main()
