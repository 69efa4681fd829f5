"""Summarise the calibrated coverage of the sharpened-from-FWI posterior over probe records.

Reads the JSON list written by ``sharpen_from_fwi_probe.py``, keeps, for each map of the chosen
family and noise level, the latest row that has ``coverage_90_calibrated`` (the stored FWI-start
calibration applied to maps it never saw), and prints each map's calibrated and uncalibrated 90 %
coverage, SSIM and seconds, then their means, the spread and how many maps fall in the 0.8–0.97
band. ``--row sharpened_from_pool`` summarises the pooled-start rows (``--pool-top``) instead;
``--against ROW`` also prints, for the maps that have both, the other row's MAE, SSIM and
coverage next to them and the mean of each over those maps. Nothing is recomputed: this only
reads the records.

    python research/probes/summarize_calibrated_coverage.py --family curvevel-a --noise 0.01 \
        benchmarks/results/sharpen_from_fwi_probe.json
    python research/probes/summarize_calibrated_coverage.py --row sharpened_from_pool \
        --against sharpened_from_fwi benchmarks/results/sharpen_from_fwi_probe.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

BAND = (0.8, 0.97)


def latest_calibrated_rows(
    records: list[dict], family: str, noise: float, name: str = "sharpened_from_fwi"
) -> dict[int, dict]:
    """Return ``{map index: row}`` of the latest calibrated sharpened row per map.

    A row qualifies when its record's settings name ``family`` and ``noise`` and its ``name``
    entry (``sharpened_from_fwi`` or ``sharpened_from_pool``) carries
    ``coverage_90_calibrated``; later records win.
    """
    rows: dict[int, dict] = {}
    for i, record in enumerate(records):
        settings = record.get("settings", {})
        if settings.get("family") != family or settings.get("noise") != noise:
            continue
        for row in record.get("rows", []):
            sharpened = row.get(name, {})
            if sharpened.get("coverage_90_calibrated") is None:
                continue
            rows[int(row["map"])] = {"record": i, **sharpened}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path, help="JSON list written by sharpen_from_fwi_probe.py")
    ap.add_argument("--family", default="curvevel-a")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--row", default="sharpened_from_fwi", help="which sharpened row to read")
    ap.add_argument("--against", default=None, help="a second row to compare map by map")
    args = ap.parse_args()
    records = json.loads(args.records.read_text())
    rows = latest_calibrated_rows(records, args.family, args.noise, args.row)
    if not rows:
        raise SystemExit(f"no calibrated {args.row} rows for {args.family} at noise {args.noise}")
    print(f"{args.row}:")
    print("map record  calibrated  uncalibrated  ssim   MAE m/s  seconds  scale")
    for m in sorted(rows):
        r = rows[m]
        print(
            f"{m:3d} {r['record']:6d}  {r['coverage_90_calibrated']:10.3f}"
            f"  {r['coverage_90']:12.3f}  {r['ssim']:.3f}  {r['mae_m_per_s']:7.1f}  {r['s']:7.0f}"
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
    if args.against is not None:
        compare(rows, latest_calibrated_rows(records, args.family, args.noise, args.against))


def compare(rows: dict[int, dict], other: dict[int, dict]) -> None:
    """Print, for the maps in both ``rows`` and ``other``, each one's MAE (m/s), SSIM and
    uncalibrated / calibrated 90 % coverage side by side (``other`` first), then the means."""
    maps = sorted(set(rows) & set(other))
    if not maps:
        raise SystemExit("no map has both rows")
    keys = ("mae_m_per_s", "ssim", "coverage_90", "coverage_90_calibrated")
    print("map  MAE m/s (other -> this)  SSIM          coverage         calibrated")
    for m in maps:
        print(f"{m:3d}" + "".join(f"  {other[m][k]:7.3f} -> {rows[m][k]:7.3f}" for k in keys))
    means = [(statistics.mean(other[m][k] for m in maps), statistics.mean(rows[m][k] for m in maps))
             for k in keys]  # fmt: skip
    print(f"{len(maps)} maps, means: " + ", ".join(f"{k} {a:.3f} -> {b:.3f}" for k, (a, b) in
                                                  zip(keys, means, strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()
