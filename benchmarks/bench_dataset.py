"""Benchmark: velocity-family generation (maps/s) and make-dataset throughput (samples/s).

Checks correctness first (the family stream is seeded and cut-independent; a built file's gathers
equal ``simulate`` of its velocities), then times, and appends one JSON record (device, versions,
date, machine load) to ``benchmarks/results/dataset_<device>.json`` (a list).

    PYTHONPATH=. python benchmarks/bench_dataset.py [--device cpu|cuda] [--maps 2048]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

import ubdiff_phys
from ubdiff_phys.data import FAMILIES, generate, make_dataset, open_store
from ubdiff_phys.physics import simulate
from ubdiff_phys.runtime.files import append_json_record

RESULTS = Path(__file__).resolve().parent / "results"


def check_correctness(device: str) -> None:
    for name in FAMILIES:
        whole = generate(name, 300, seed=1)
        parts = np.concatenate([generate(name, 100, seed=1, start=s) for s in (0, 100, 200)])
        assert np.array_equal(whole, parts), name
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "check.h5"
        make_dataset(
            out,
            family="flatvel-a",
            n_velocity=4,
            n_paired=2,
            n_test=0,
            seed=0,
            boundary="pml",
            device=device,
            progress=False,
        )
        with open_store(out) as st:
            row = int(st.paired_index[1])
            v = torch.from_numpy(st.velocity(row))[None].to(device)
            expected = simulate(v, boundary="pml")[0].cpu().numpy()
            np.testing.assert_array_equal(st.seismic(1), expected)


def bench_families(n: int, repeats: int) -> dict[str, float]:
    out = {}
    for name in FAMILIES:
        generate(name, 256, seed=0)  # warm-up
        best = min(
            _timed(lambda name=name, r=r: generate(name, n, seed=r + 1)) for r in range(repeats)
        )
        out[name] = n / best
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_make_dataset(device: str, boundary: str, n_velocity: int, n_paired: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        # warm-up (solver, allocator) on a tiny build
        make_dataset(
            Path(tmp) / "warm.h5",
            family="flatvel-a",
            n_velocity=2,
            n_paired=2,
            n_test=0,
            boundary=boundary,
            device=device,
            progress=False,
        )
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        s = make_dataset(
            out,
            family="flatvel-a",
            n_velocity=n_velocity,
            n_paired=n_paired,
            n_test=0,
            seed=0,
            boundary=boundary,
            device=device,
            batch=16,
            progress=False,
        )
        wall = time.perf_counter() - t0
        with h5py.File(out, "r") as f:
            assert f.attrs["complete"]
        size = out.stat().st_size
    return {
        "boundary": boundary,
        "n_velocity": n_velocity,
        "n_paired": n_paired,
        "wall_s": wall,
        "samples_per_s": (n_velocity + n_paired) / wall,
        "paired_samples_per_s": n_paired / wall,
        "velocity_maps_per_s_in_build": s.velocities_generated / s.velocity_seconds,
        "gathers_per_s_in_build": s.gathers_simulated / s.simulation_seconds,
        "file_mb": size / 1e6,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--maps", type=int, default=2048, help="maps per family timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-velocity", type=int, default=64)
    p.add_argument("--n-paired", type=int, default=16)
    p.add_argument("--note", default="", help="free text stored with the record")
    args = p.parse_args()

    check_correctness(args.device)
    load_before = os.getloadavg()
    families = bench_families(args.maps, args.repeats)
    builds = [
        bench_make_dataset(args.device, b, args.n_velocity, args.n_paired)
        for b in ("openfwi", "pml")
    ]
    record = {
        "benchmark": "dataset",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "versions": {
            "ubdiff_phys": ubdiff_phys.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "python": sys.version.split()[0],
        },
        "build_info": ubdiff_phys.build_info(),
        "family_maps_per_s": families,
        "family_maps_per_timing": args.maps,
        "make_dataset": builds,
        "note": args.note,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"dataset_{args.device}.json"
    append_json_record(path, record)
    print(f"family generation [maps/s] ({args.maps} maps, best of {args.repeats}):")
    for name, rate in families.items():
        print(f"  {name:14s} {rate:10,.0f}")
    for b in builds:
        print(
            f"make-dataset {b['n_velocity']} velocities + {b['n_paired']} paired, boundary "
            f"{b['boundary']}: {b['wall_s']:.2f} s, {b['samples_per_s']:.1f} samples/s, "
            f"{b['gathers_per_s_in_build']:.2f} gathers/s, {b['file_mb']:.1f} MB"
        )
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
