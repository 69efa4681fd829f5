"""Benchmark of the velocity gradient (forward + adjoint backward) against deepwave 0.1.0.

1. Correctness first: the native gradient vs autograd through the pure-PyTorch reference (float64,
   tiny grid, every boundary mode), and the "pml" gradient on the OpenFWI survey vs deepwave's
   (matched conventions, its own 20-cell C-PML: the boundaries differ, so agreement is to the
   level the forward gathers agree). Exit status 1 if the reference check fails.
2. Time of forward + backward per model (OpenFWI survey: 70 x 70, 5 shots, 1000 steps) for the
   "pml" and "openfwi" modes and deepwave, all in this run.
3. Peak memory per model: each configuration runs in a child process; the growth of its peak
   resident set size over its first fwd+bwd call, divided by the batch (ours: per-thread
   checkpoint scratch + gathers; deepwave: the stored wavefield history).
4. Appends one JSON record (CPU model, threads, versions, numbers, ratios) to
   benchmarks/results/gradient_<device>.json.

    python benchmarks/bench_gradient.py [--batch 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import ubdiff_phys as up
from ubdiff_phys.physics import Survey
from ubdiff_phys.runtime.files import append_json_record

SURVEY = Survey.openfwi()
#: what is timed: simulate + autograd backward per mode, the fused misfit value-and-gradient per
#: mode, and deepwave's simulate + autograd backward (last)
LIBS = ("pml", "openfwi", "pml_misfit", "openfwi_misfit", "deepwave")


def models(n: int, seed: int = 0) -> torch.Tensor:
    """Layered models (n, 70, 70) in [1500, 4500] m/s."""
    from ubdiff_phys.data.families import generate

    return torch.as_tensor(generate("flatvel-a", n, seed=seed))[:, 0].float()


def _deepwave(v: torch.Tensor) -> torch.Tensor:
    from ubdiff_phys.physics.deepwave_peer import simulate_deepwave

    return simulate_deepwave(v, SURVEY)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def check_reference() -> dict[str, float]:
    s = Survey(
        nz=13, nx=11, dz=10.0, dx=10.0, dt=0.001, nt=60, sources=((1, 2), (3, 8)),
        receivers=((1, 0), (2, 5), (1, 10), (12, 4)), frequency=25.0, sponge_width=6,
        pml_width=5,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    v = 2000 + 1500 * torch.rand(2, 13, 11, generator=g, dtype=torch.float64)
    w = torch.randn(2, 2, 60, 4, generator=g, dtype=torch.float64)
    out = {}
    for boundary, kw in (("openfwi", {}), ("pml", {}), ("none", {"pad": 7})):
        grads = []
        for backend in ("native", "reference"):
            x = v.clone().requires_grad_()
            sim = up.physics.simulate(x, s, boundary=boundary, backend=backend, **kw)
            grads.append(torch.autograd.grad((sim * w).sum(), x)[0])
        out[boundary] = rel(grads[0], grads[1])
    return out


def check_deepwave() -> dict[str, float]:
    v = models(1, seed=1)
    w = torch.randn(1, 5, 1000, 70, generator=torch.Generator().manual_seed(1))
    ours = fwd_bwd_plain("pml", v, w)
    peer = fwd_bwd_plain("deepwave", v, w)
    cos = float((ours * peer).sum() / (ours.norm() * peer.norm()))
    gathers = rel(up.physics.simulate(v, SURVEY, boundary="pml"), _deepwave(v))
    return {"gradient_rel_l2": rel(ours, peer), "gradient_cosine": cos, "gathers_rel_l2": gathers}


def fwd_bwd_plain(lib: str, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Gradient of sum(gathers * w) (``lib`` = "pml" | "openfwi" | "deepwave"), or for
    "pml_misfit" / "openfwi_misfit" the misfit against gathers ``w`` and its gradient in one call
    (the FWI workload: value and gradient, no autograd graph)."""
    if lib.endswith("_misfit"):
        boundary = lib.removesuffix("_misfit")
        return up.physics.misfit_and_grad(v, w, SURVEY, boundary=boundary)[1]
    x = v.clone().requires_grad_()
    out = _deepwave(x) if lib == "deepwave" else up.physics.simulate(x, SURVEY, boundary=lib)
    return torch.autograd.grad((out * w).sum(), x)[0]


def layered(n: int) -> torch.Tensor:
    """Simple layered models (n, 70, 70) [m/s] made with few temporaries (memory child)."""
    z = torch.arange(70.0)[None, :, None]
    steps = torch.linspace(15.0, 55.0, n)[:, None, None]
    return (2000.0 + 800.0 * (z > steps) + 900.0 * (z > steps + 12)).expand(n, 70, 70).clone()


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _warm_up(lib: str) -> None:
    """One fwd+bwd on a tiny grid: loads the lazily imported machinery (dispatcher, autograd,
    deepwave's extension) without allocating anything of the benchmark's size."""
    tiny = Survey(
        nz=8, nx=8, dz=10.0, dx=10.0, dt=0.0001, nt=4, sources=((1, 1),), receivers=((1, 2),),
        sponge_width=3, pml_width=3,
    )  # fmt: skip
    x = torch.full((1, 8, 8), 2000.0, requires_grad=True)
    if lib == "deepwave":
        from ubdiff_phys.physics.deepwave_peer import simulate_deepwave

        out = simulate_deepwave(x, tiny, pml_width=3)
    else:
        out = up.physics.simulate(x, tiny, boundary=lib.removesuffix("_misfit"))
    out.sum().backward()


def child(lib: str, batch: int) -> None:
    """Run in this process and print JSON: the peak resident-set growth of the first fwd+bwd call
    (the high-water mark is reset just before it via /proc/self/clear_refs, so it counts exactly
    what the call touches: scratch, saved tensors, outputs), then the time of a second call."""
    v = layered(batch)
    w = torch.randn(batch, 5, 1000, 70, generator=torch.Generator().manual_seed(2))
    _warm_up(lib)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status_kb("VmRSS")
    fwd_bwd_plain(lib, v, w)
    peak = _status_kb("VmHWM")
    t = time.perf_counter()
    fwd_bwd_plain(lib, v, w)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_growth_mb": (peak - base) / 1024}))


def measure(lib: str, batch: int, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        r = subprocess.run(
            [sys.executable, __file__, "--child", lib, "--batch", str(batch)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    best = min(r["seconds"] for r in runs)
    mem = max(r["peak_growth_mb"] for r in runs)
    return {
        "seconds_per_model": best / batch,
        "models_per_s": batch / best,
        "peak_growth_mb_per_model": mem / batch,
        "runs": runs,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.batch)
        return 0
    ref = check_reference()
    print("native vs reference gradient (rel L2):", ref, flush=True)
    if max(ref.values()) > 1e-8:
        print("FAIL: the native gradient disagrees with the reference", file=sys.stderr)
        return 1
    peer = check_deepwave()
    print("pml vs deepwave:", peer, flush=True)
    results = {lib: measure(lib, args.batch, args.repeats) for lib in LIBS}
    for lib, r in results.items():
        print(f"{lib:9s} {r['seconds_per_model']:.3f} s/model fwd+bwd, "
              f"{r['peak_growth_mb_per_model']:.1f} MB/model peak growth", flush=True)  # fmt: skip
    dw = results["deepwave"]
    ratios = {
        f"{lib}_speedup_vs_deepwave": dw["seconds_per_model"] / results[lib]["seconds_per_model"]
        for lib in LIBS[:-1]
    }
    ratios.update({
        f"{lib}_memory_fraction_of_deepwave": results[lib]["peak_growth_mb_per_model"]
        / max(dw["peak_growth_mb_per_model"], 1e-9)
        for lib in LIBS[:-1]
    })  # fmt: skip
    print("ratios:", json.dumps(ratios, indent=1))
    record = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": "cpu",
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "versions": {"ubdiff_phys": up.__version__, "torch": torch.__version__},
        "survey": "openfwi 70x70, 5 shots, 1000 steps, 70 receivers",
        "check_reference_rel_l2": ref,
        "check_deepwave": peer,
        "results": results,
        "ratios": ratios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gradient_cpu.json"
    append_json_record(path, record, indent=1)
    print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
