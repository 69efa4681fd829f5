"""Table: the sharpened posteriors of ``velocity_refine_probe.py`` on the FlatVel-A evaluation maps
(seed 1234, 1 % noise) against FWI from the smoothed truth on the same maps.

Reads every record of ``benchmarks/results/velocity_refine_probe.json`` with ``--n-samples 8``,
``--noise 0.01``, ``--seed 1234``, ``--inner 15``, ``--steps 20`` and the default bands, takes
each map's latent posterior, its sharpening from t = 128 without and with resampling (the last
record holding it wins), and the per-map FWI of ``posterior_multistart_probe.json``; prints a
Markdown table over the maps every row has.

    python research/probes/sharpen_table.py
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
BANDS = "3,4,5,6,8,10,12,full"


def rows_by_map(path: Path) -> dict[str, dict[int, dict]]:
    """{"latent" | "sharpened" | "resampled": {map: the probe's summary}}."""
    out: dict[str, dict[int, dict]] = {"latent": {}, "sharpened": {}, "resampled": {}}
    for rec in json.loads(path.read_text()):
        s = rec["settings"]
        same = (s["n_samples"], s["noise"], s["seed"], s["inner"], s["steps"]) == (
            "8", "0.01", "1234", "15", "20",
        )  # fmt: skip
        if not same or s.get("bands") != BANDS:
            continue
        for row in rec["rows"]:
            k = row["map"]
            out["latent"][k] = row["latent"]
            if "velocity_proximal_128" in row:
                out["sharpened"][k] = row["velocity_proximal_128"]
            if "velocity_proximal_128_resampled" in row:
                out["resampled"][k] = row["velocity_proximal_128_resampled"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", type=Path, default=RESULTS / "velocity_refine_probe.json")
    ap.add_argument("--fwi", type=Path, default=RESULTS / "posterior_multistart_probe.json")
    args = ap.parse_args()
    rows = rows_by_map(args.probe)
    fwi = {r["map"]: r["fwi"]["ssim"] for r in json.loads(args.fwi.read_text())[0]["rows"]}
    maps = sorted(set(rows["latent"]) & set(rows["sharpened"]) & set(rows["resampled"]) & set(fwi))
    print(f"maps: {maps}")
    print("| posterior | SSIM mean | median | better than FWI | MAE m/s | misfit / noise "
          "(median) | coverage 90 % | per map |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in ("latent", "sharpened", "resampled"):
        r = [rows[name][k] for k in maps]
        ssim = [x["ssim"] for x in r]
        better = sum(x["ssim"] > fwi[k] for x, k in zip(r, maps, strict=True))
        print(
            f"| {name} | {statistics.mean(ssim):.3f} | {statistics.median(ssim):.3f} | "
            f"{better} / {len(maps)} | {statistics.mean(x['mae_m_per_s'] for x in r):.0f} | "
            f"{statistics.median(x['misfit_over_noise_median'] for x in r):.1f} | "
            f"{statistics.mean(x['coverage'] for x in r):.2f} | "
            + " / ".join(f"{s:.3f}" for s in ssim) + " |"
        )  # fmt: skip
    f = [fwi[k] for k in maps]
    print(f"| FWI | {statistics.mean(f):.3f} | {statistics.median(f):.3f} | | | | | "
          + " / ".join(f"{s:.3f}" for s in f) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
