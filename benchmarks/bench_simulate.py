"""Benchmark of ``ubdiff_phys.physics.simulate`` against deepwave 0.1.0 (specs/physics.md §5-6).

1. Correctness first: native vs the pure-PyTorch reference (both modes), and the "pml" mode vs
   deepwave run with matched conventions; the script stops with exit status 1 if either disagrees.
2. Timing (torch.utils.benchmark, warm-up and device synchronisation included) of the forward per
   model (5 shots x 1000 steps on the OpenFWI survey) for the "openfwi" and "pml" modes and for
   deepwave (4th order, 20-cell C-PML, dt not halved), all in this run on this device.
3. Appends one JSON record (device, versions, threads, numbers, ratios) to
   benchmarks/results/simulate_<device>.json.

    python benchmarks/bench_simulate.py                 # CPU, batch 16
    python benchmarks/bench_simulate.py --device cuda   # GPU, batch 256
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
from pathlib import Path

import torch
import torch.utils.benchmark as tb

import ubdiff_phys
from ubdiff_phys.physics import Survey, simulate
from ubdiff_phys.runtime.files import append_json_record

SURVEY = Survey.openfwi()
# FLOP per interior cell update of the kernel (difference-form 4th-order Laplacian: 10 per axis,
# + 1 to sum the axes, + 4 for the leapfrog update); the absorbing layers cost more per cell.
FLOP_PER_CELL_UPDATE = 25
FP32_PEAK_TFLOPS = {"H100 80GB HBM3": 66.9, "H100 PCIe": 51.2, "H200": 66.9, "H100": 66.9}


def random_models(n: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Random layered models (n, 70, 70) in [1500, 4500] m/s with a lateral tilt."""
    g = torch.Generator().manual_seed(seed)
    z = torch.arange(70.0)[:, None]
    x = torch.arange(70.0)[None, :]
    out = torch.empty(n, 70, 70)
    for k in range(n):
        layers = int(torch.randint(3, 8, (1,), generator=g))
        vel = torch.sort(1500 + 3000 * torch.rand(layers, generator=g)).values
        depth = torch.sort(torch.rand(layers - 1, generator=g)).values * 70
        tilt = (torch.rand(1, generator=g) - 0.5) * 0.4
        m = torch.full((70, 70), float(vel[0]))
        for i in range(layers - 1):
            m = torch.where(z >= depth[i] + tilt * (x - 35), vel[i + 1], m)
        out[k] = m
    return out.to(dtype)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


def check_agreement(device: str, have_deepwave: bool) -> dict:
    v = random_models(2, seed=1).to(device)
    short = SURVEY.with_(nt=200)
    checks = {}
    for boundary in ("openfwi", "pml"):
        native = simulate(v, short, boundary=boundary)
        reference = simulate(v, short, boundary=boundary, backend="reference")
        checks[f"native_vs_reference_{boundary}"] = rel_l2(native, reference)
    if have_deepwave:
        from ubdiff_phys.physics.deepwave_peer import simulate_deepwave

        v64 = v[:1].double()
        checks["pml_vs_deepwave"] = rel_l2(
            simulate(v64, SURVEY, boundary="pml"), simulate_deepwave(v64, SURVEY)
        )
    limits = {
        "native_vs_reference_openfwi": 1e-5,
        "native_vs_reference_pml": 1e-5,
        "pml_vs_deepwave": 2e-3,
    }
    failed = {k: x for k, x in checks.items() if not x <= limits[k]}
    for k, x in checks.items():
        print(f"check {k:<32} rel L2 {x:.2e} (limit {limits[k]:.0e})")
    if failed:
        print(f"DISAGREEMENT, not timing: {failed}", file=sys.stderr)
        sys.exit(1)
    return checks


def seconds_per_call(fn, min_run_time: float) -> float:
    fn()  # warm-up (allocations, deepwave's first-call set-up)
    # Timer defaults to one thread, which would also pin the OpenMP kernels (and deepwave) to one
    timer = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def device_description(device: str) -> dict:
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return {
            "device": f"cuda: {props.name}",
            "gpu": props.name,
            "sm_count": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
        }
    cpu = platform.processor() or "cpu"
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
    except (OSError, AttributeError):
        pass
    return {
        "device": f"cpu: {cpu}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=None, help="models per call (16 CPU, 256 GPU)")
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--no-deepwave", action="store_true", help="skip the peer")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device")
    batch = args.batch or (256 if args.device == "cuda" else 16)
    try:
        import deepwave

        have_deepwave = not args.no_deepwave
    except ImportError:
        deepwave, have_deepwave = None, False

    checks = check_agreement(args.device, have_deepwave)
    v = random_models(batch, seed=2).to(args.device)
    results = {}
    for name in ("openfwi", "pml"):
        sec = seconds_per_call(lambda b=name: simulate(v, SURVEY, boundary=b), args.min_time)
        results[name] = sec / batch
    if have_deepwave:
        from ubdiff_phys.physics.deepwave_peer import simulate_deepwave

        n_dw = batch if args.device == "cuda" else min(batch, 4)
        sec = seconds_per_call(lambda: simulate_deepwave(v[:n_dw], SURVEY), args.min_time)
        results["deepwave_pml20"] = sec / n_dw

    pads = {"openfwi": SURVEY.sponge_width, "pml": SURVEY.pml_width, "deepwave_pml20": 20}
    record = {
        "benchmark": "simulate forward, OpenFWI survey (70x70, 5 shots, 1000 steps), float32",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **device_description(args.device),
        "batch": batch,
        "versions": {
            "ubdiff_phys": ubdiff_phys.__version__,
            "torch": torch.__version__,
            "deepwave": getattr(deepwave, "__version__", None),
            "python": platform.python_version(),
        },
        "build": ubdiff_phys.build_info(),
        "checks_rel_l2": checks,
        "per_model": {},
    }
    for name, sec in results.items():
        n_pad = 70 + 2 * pads[name]
        cells = 5 * 1000 * n_pad * n_pad
        entry = {
            "ms": 1000 * sec,
            "models_per_s": 1 / sec,
            "padded_grid": f"{n_pad}x{n_pad}",
            "cell_updates_per_s": cells / sec,
        }
        if args.device == "cuda":
            peak = next(
                (p for k, p in FP32_PEAK_TFLOPS.items() if k in record.get("gpu", "")), None
            )
            gflops = cells * FLOP_PER_CELL_UPDATE / sec / 1e9
            entry["gflop_per_s_interior_count"] = gflops
            entry["fraction_of_fp32_peak"] = gflops / (1000 * peak) if peak else None
        record["per_model"][name] = entry
    if "deepwave_pml20" in results:
        record["speedup_vs_deepwave"] = {
            k: results["deepwave_pml20"] / results[k] for k in ("openfwi", "pml")
        }
    for name, e in record["per_model"].items():
        print(
            f"{name:<16} {e['ms']:9.2f} ms/model  {e['models_per_s']:9.1f} models/s  "
            f"{e['cell_updates_per_s'] / 1e9:7.2f} G cell-updates/s ({e['padded_grid']})"
        )
    if "speedup_vs_deepwave" in record:
        print(
            "speed-up vs deepwave:",
            {k: round(x, 2) for k, x in record["speedup_vs_deepwave"].items()},
        )

    args.results.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", record["device"].lower()).strip("-")
    path = args.results / f"simulate_{slug}.json"
    append_json_record(path, record)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
