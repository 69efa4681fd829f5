"""Benchmark of the velocity gradient (forward + adjoint backward) against deepwave 0.1.0.

On the CPU (``--device cpu``, the default):

1. Correctness first: the native gradient vs autograd through the pure-PyTorch reference (float64,
   tiny grid, every boundary mode), and the "pml" gradient on the OpenFWI survey vs deepwave's
   (matched conventions, its own 20-cell C-PML: the boundaries differ, so agreement is to the
   level the forward gathers agree). Exit status 1 if the reference check fails.
2. Time of forward + backward per model (OpenFWI survey: 70 x 70, 5 shots, 1000 steps) for the
   "pml" and "openfwi" modes and deepwave, all in this run.
3. Peak memory per model: each configuration runs in a child process; the growth of its peak
   resident set size over its first fwd+bwd call, divided by the batch (ours: per-thread
   checkpoint scratch + gathers; deepwave: the stored wavefield history).
4. Appends one JSON record per batch (CPU model, threads, versions, numbers, ratios) to
   <results>/gradient_cpu.json.

On a GPU (``--device cuda``):

1. Correctness first: the native CPU gradient vs the reference (as above), then the CUDA gradient
   of simulate (autograd) and of the fused misfit (misfit_and_grad) against the CPU gradient of
   the same inputs on the OpenFWI survey, "pml" and "openfwi", float64 (rel. L2 at most 1e-9)
   and float32 (judged against the float64 CPU gradient: the CUDA error at most
   F32_ERROR_RATIO times the CPU float32 error, plus F32_FLOOR; the direct rel. L2 is reported).
   Exit status 1 if a check fails, after the timings are recorded.
2. Time of forward + backward per model at each ``--batch`` for both modes, simulate + backward
   and the fused misfit (then deepwave, if installed): perf_counter around device-synchronised
   calls after a tiny warm-up, the best of 2-5 calls (1 call when it takes over 2 s). A size the
   smaller batch's time projects past ``--time-budget`` is skipped and recorded as such.
3. Peak GPU memory per model: the growth of torch.cuda.max_memory_allocated over the first call
   (after reset_peak_memory_stats), divided by the batch: workspace, checkpoints, outputs.
4. Appends one JSON record (GPU and CPU model, versions, checks, numbers; ``"deepwave": null``
   when deepwave cannot be imported, as on the GPU image) to <results>/gradient_cuda-<gpu>.json.

    python benchmarks/bench_gradient.py [--batch 4 ...] [--device cpu] [--results DIR]
    python benchmarks/bench_gradient.py --device cuda --batch 16 256 --results DIR

``--no-deepwave`` skips the peer on either device (recorded as null, like a missing deepwave).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

import ubdiff_phys as up
from ubdiff_phys.physics import Survey
from ubdiff_phys.runtime.files import append_json_record

SURVEY = Survey.openfwi()
#: what is timed: simulate + autograd backward per mode, the fused misfit value-and-gradient per
#: mode, and deepwave's simulate + autograd backward (last)
LIBS = ("pml", "openfwi", "pml_misfit", "openfwi_misfit", "deepwave")
#: float32 on the device: its gradient's rel. L2 error against the float64 CPU gradient may be at
#: most this many times the float32 CPU gradient's error against it, plus F32_FLOOR. Two correct
#: float32 gradients differ by about their own rounding error (nvcc contracts into FMAs where gcc
#: need not, the summation orders differ, the CPU's depends on its vector width), so a fixed
#: CUDA-vs-CPU constant would be a guess; the float64 gradient is the oracle.
F32_ERROR_RATIO = 3.0
F32_FLOOR = 1e-6
F64_TOL = 1e-9


def models(n: int, seed: int = 0) -> torch.Tensor:
    """Layered models (n, 70, 70) in [1500, 4500] m/s."""
    from ubdiff_phys.data.families import generate

    return torch.as_tensor(generate("flatvel-a", n, seed=seed))[:, 0].float()


def use_deepwave(args) -> bool:
    """Whether to run the peer: not with --no-deepwave, nor where deepwave cannot be imported
    (it is not installed on the GPU image); says why not."""
    if args.no_deepwave:
        print("--no-deepwave: the peer is skipped (recorded as null)", flush=True)
        return False
    try:
        import deepwave  # noqa: F401
    except ImportError as e:
        print(f"deepwave cannot be imported ({e}): the peer is skipped (recorded as null)")
        return False
    return True


def _deepwave(v: torch.Tensor, survey: Survey = SURVEY) -> torch.Tensor:
    from ubdiff_phys.physics.deepwave_peer import simulate_deepwave

    return simulate_deepwave(v, survey)


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


def fwd_bwd_plain(
    lib: str, v: torch.Tensor, w: torch.Tensor, survey: Survey = SURVEY
) -> torch.Tensor:
    """Gradient of sum(gathers * w) (``lib`` = "pml" | "openfwi" | "deepwave"), or for
    "pml_misfit" / "openfwi_misfit" the misfit against gathers ``w`` and its gradient in one call
    (the FWI workload: value and gradient, no autograd graph)."""
    if lib.endswith("_misfit"):
        boundary = lib.removesuffix("_misfit")
        return up.physics.misfit_and_grad(v, w, survey, boundary=boundary)[1]
    x = v.clone().requires_grad_()
    if lib == "deepwave":
        out = _deepwave(x, survey)
    else:
        out = up.physics.simulate(x, survey, boundary=lib)
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


def _warm_up(lib: str, device: str = "cpu") -> None:
    """One fwd+bwd on a tiny grid: loads the lazily imported machinery (dispatcher, autograd,
    deepwave's extension, CUDA modules) without allocating anything of the benchmark's size."""
    tiny = Survey(
        nz=8, nx=8, dz=10.0, dx=10.0, dt=0.0001, nt=4, sources=((1, 1),), receivers=((1, 2),),
        sponge_width=3, pml_width=3,
    )  # fmt: skip
    x = torch.full((1, 8, 8), 2000.0, device=device, requires_grad=True)
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


# ---- on a GPU (--device cuda) ---------------------------------------------------------------


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def _check_inputs(survey: Survey) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """float64 inputs of the device checks: 2 FlatVel-A-like models and, per boundary, the
    weights of sum(gathers * w) and the observed gathers of a 3 % faster model."""
    v = models(2, seed=1).double()
    g = torch.Generator().manual_seed(3)
    shape = (2, survey.n_sources, survey.nt, survey.n_receivers)
    extra = {"w": torch.randn(*shape, generator=g, dtype=torch.float64)}
    for boundary in ("pml", "openfwi"):
        extra[boundary] = up.physics.simulate(v * 1.03, survey, boundary=boundary)
    return v, extra


def _gradient(kind: str, boundary: str, v: torch.Tensor, extra: dict, survey: Survey, device: str):
    """(value or None, gradient) of ``kind`` ("simulate": sum(gathers * w) by autograd;
    "misfit": misfit_and_grad) at ``v`` on ``device``, in the dtype of ``v``."""
    v = v.to(device)
    if kind == "misfit":
        obs = extra[boundary].to(device, v.dtype)
        value, grad = up.physics.misfit_and_grad(v, obs, survey, boundary=boundary)
        return value.cpu(), grad.cpu()
    w = extra["w"].to(device, v.dtype)
    x = v.clone().requires_grad_()
    out = up.physics.simulate(x, survey, boundary=boundary)
    return None, torch.autograd.grad((out * w).sum(), x)[0].cpu()


def check_device(device: str, survey: Survey) -> dict[str, dict]:
    """The device's gradient against the CPU's, same inputs: simulate + autograd and the fused
    misfit, "pml" and "openfwi", float64 and float32 (module docstring, point 1)."""
    v, extra = _check_inputs(survey)
    out = {}
    for boundary in ("pml", "openfwi"):
        for kind in ("simulate", "misfit"):
            try:
                out[f"{boundary}_{kind}"] = _check_one(kind, boundary, v, extra, survey, device)
            except Exception as e:  # noqa: BLE001 (recorded; the timings still run)
                out[f"{boundary}_{kind}"] = {"error": f"{type(e).__name__}: {e}"[:400], "ok": False}
                print(f"{device} vs cpu, {boundary} {kind}: raised {type(e).__name__}: {e}")
    return out


def _check_one(
    kind: str, boundary: str, v: torch.Tensor, extra: dict, survey: Survey, device: str
) -> dict:
    """One case of check_device: rel. L2 numbers and whether they pass."""
    f64_cpu, g64_cpu = _gradient(kind, boundary, v, extra, survey, "cpu")
    f64_dev, g64_dev = _gradient(kind, boundary, v, extra, survey, device)
    f32_cpu, g32_cpu = _gradient(kind, boundary, v.float(), extra, survey, "cpu")
    f32_dev, g32_dev = _gradient(kind, boundary, v.float(), extra, survey, device)
    r = {
        "float64_rel_l2": rel(g64_dev, g64_cpu),
        "float32_rel_l2": rel(g32_dev, g32_cpu),
        "float32_device_error": rel(g32_dev, g64_cpu),
        "float32_cpu_error": rel(g32_cpu, g64_cpu),
    }
    if kind == "misfit":
        r["float64_value_rel_l2"] = rel(f64_dev, f64_cpu)
        r["float32_value_rel_l2"] = rel(f32_dev, f32_cpu)
    f32_bound = F32_ERROR_RATIO * r["float32_cpu_error"] + F32_FLOOR
    r["ok"] = bool(
        r["float64_rel_l2"] <= F64_TOL
        and r.get("float64_value_rel_l2", 0.0) <= F64_TOL
        and r["float32_device_error"] <= f32_bound
        and bool(torch.isfinite(g32_dev).all())
    )
    print(
        f"{device} vs cpu, {boundary} {kind}: "
        + ", ".join(f"{k} {x:.2e}" if isinstance(x, float) else f"{k} {x}" for k, x in r.items()),
        flush=True,
    )
    return r


def backward_warnings(device: str) -> list[str]:
    """The warnings one small gradient on ``device`` raises (e.g. a backward that falls back to
    the host says so): recorded, since they say which path the timings measured."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for lib in ("pml", "pml_misfit"):
            _warm_up(lib, device)
        if device == "cuda":
            torch.cuda.synchronize()
    return sorted({str(w.message)[:300] for w in caught})


def time_device(
    lib: str, batch: int, device: str, survey: Survey, min_time: float, max_calls: int = 5
) -> dict:
    """Seconds per model of forward + backward at ``batch`` on ``device`` and the peak memory
    growth of the first call (CUDA only; None on the CPU)."""
    v = layered(batch).to(device)
    g = torch.Generator(device=device).manual_seed(2)
    shape = (batch, survey.n_sources, survey.nt, survey.n_receivers)
    w = torch.randn(*shape, generator=g, device=device)
    peak = None
    sync(device)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    runs: list[float] = []
    while len(runs) < max_calls:
        t = time.perf_counter()
        fwd_bwd_plain(lib, v, w, survey)
        sync(device)
        runs.append(time.perf_counter() - t)
        if device == "cuda" and len(runs) == 1:
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        if sum(runs) >= min_time and (len(runs) >= 2 or runs[0] >= 2.0):
            break
    best = min(runs)
    return {
        "seconds_per_model": best / batch,
        "models_per_s": batch / best,
        "peak_growth_mb_per_model": None if peak is None else peak / batch,
        "peak_growth_mb": peak,
        "runs": runs,
    }


def projected_seconds(per_model: float, batch: int, min_time: float) -> float:
    """What time_device at ``batch`` should take, from a smaller batch's seconds per model."""
    call = per_model * batch
    return call if call >= 2.0 else call * min(5, max(2, -(-min_time // max(call, 1e-9))))


def bench_device(args, device: str, survey: Survey, t_start: float, peer: bool) -> dict[str, dict]:
    """Time every library at every batch (smallest first), skipping what the time budget
    cannot hold; returns {lib: {batch: result or {"skipped": why}}}."""
    libs = ["pml", "pml_misfit", "openfwi", "openfwi_misfit"] + (["deepwave"] if peer else [])
    results: dict[str, dict] = {}
    for lib in libs:
        _warm_up(lib, device)
        results[lib] = {}
        per_model = None
        for b in sorted(set(args.batch)):
            left = args.time_budget - (time.perf_counter() - t_start)
            est = None if per_model is None else projected_seconds(per_model, b, args.min_time)
            if left <= 0 or (est is not None and est > left):
                why = f"time budget: {max(left, 0):.0f} s left" + (
                    "" if est is None else f", projected {est:.0f} s"
                )
                results[lib][str(b)] = {"skipped": why}
                print(f"{lib:15s} B={b:<5d} skipped ({why})", flush=True)
                continue
            try:
                r = time_device(lib, b, device, survey, args.min_time)
            except torch.cuda.OutOfMemoryError as e:
                results[lib][str(b)] = {"skipped": f"out of memory: {str(e)[:200]}"}
                print(f"{lib:15s} B={b:<5d} skipped (out of memory)", flush=True)
                torch.cuda.empty_cache()
                continue
            except Exception as e:  # noqa: BLE001 (recorded: the other sizes still run)
                results[lib][str(b)] = {"error": f"{type(e).__name__}: {e}"[:400]}
                print(f"{lib:15s} B={b:<5d} raised {type(e).__name__}: {e}", flush=True)
                break
            per_model = r["seconds_per_model"]
            results[lib][str(b)] = r
            mem = r["peak_growth_mb_per_model"]
            print(
                f"{lib:15s} B={b:<5d} {per_model * 1e3:9.2f} ms/model fwd+bwd "
                f"{r['models_per_s']:8.1f} models/s, peak GPU memory "
                f"{'-' if mem is None else f'{mem:.1f} MB/model'}, "
                f"{len(r['runs'])} calls",
                flush=True,
            )
    return results


def main_device(args) -> int:
    """The GPU benchmark (module docstring, "On a GPU"); ``--emulate-cuda`` runs it on the CPU."""
    t_start = time.perf_counter()
    device = "cpu" if args.emulate_cuda else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("bench_gradient: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    survey = SURVEY.with_(nt=args.nt) if args.nt else SURVEY
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (cuda path emulated on cpu)"
    print(f"bench_gradient on {device}: {gpu}; CPU {cpu_name()}", flush=True)
    seen = backward_warnings(device)
    print("backward warnings:", seen or "none", flush=True)
    ref = check_reference()
    print("native vs reference gradient on the CPU (rel L2):", ref, flush=True)
    checks = check_device(device, survey)
    passed = max(ref.values()) <= 1e-8 and all(c["ok"] for c in checks.values())
    print(
        f"checks {'passed' if passed else 'FAILED'} ({time.perf_counter() - t_start:.1f} s)",
        flush=True,
    )
    results = bench_device(args, device, survey, t_start, use_deepwave(args))
    dw = results.pop("deepwave", None)
    record = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": "cuda" if device == "cuda" else "cpu (cuda path emulated)",
        "gpu": gpu,
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "batches": sorted(set(args.batch)),
        "versions": {
            "ubdiff_phys": up.__version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        },
        "build": up.build_info(),
        "survey": f"openfwi 70x70, 5 shots, {survey.nt} steps, 70 receivers",
        "backward_warnings": seen,
        "check_reference_rel_l2": ref,
        "check_device_vs_cpu": checks,
        "checks_passed": passed,
        "results": results,
        "deepwave": dw,
        "time_budget_s": args.time_budget,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    path = args.out / (
        f"gradient_cuda-{slug}.json" if device == "cuda" else "gradient_emulated.json"
    )
    append_json_record(path, record, indent=1)
    print(f"appended to {path}")
    if not passed:
        print("FAIL: the device gradient disagrees with the CPU's (see above)", file=sys.stderr)
    return 0 if passed else 1


# ---- entry point ------------------------------------------------------------------------------


def main_cpu(args) -> int:
    """The CPU benchmark (module docstring, "On the CPU"): one record per batch."""
    ref = check_reference()
    print("native vs reference gradient (rel L2):", ref, flush=True)
    if max(ref.values()) > 1e-8:
        print("FAIL: the native gradient disagrees with the reference", file=sys.stderr)
        return 1
    libs = LIBS
    if use_deepwave(args):
        peer = check_deepwave()
        print("pml vs deepwave:", peer, flush=True)
    else:
        peer, libs = None, LIBS[:-1]
    for batch in args.batch:
        results = {lib: measure(lib, batch, args.repeats) for lib in libs}
        for lib, r in results.items():
            print(
                f"{lib:9s} {r['seconds_per_model']:.3f} s/model fwd+bwd, "
                f"{r['peak_growth_mb_per_model']:.1f} MB/model peak growth",
                flush=True,
            )
        ratios = {}
        if peer is not None:
            dw = results["deepwave"]
            ratios = {
                f"{lib}_speedup_vs_deepwave": dw["seconds_per_model"]
                / results[lib]["seconds_per_model"]
                for lib in LIBS[:-1]
            }
            ratios.update({
                f"{lib}_memory_fraction_of_deepwave": results[lib]["peak_growth_mb_per_model"]
                / max(dw["peak_growth_mb_per_model"], 1e-9)
                for lib in LIBS[:-1]
            })  # fmt: skip
            print("ratios:", json.dumps(ratios, indent=1))
        else:
            results["deepwave"] = None
        record = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": "cpu",
            "cpu": cpu_name(),
            "threads": torch.get_num_threads(),
            "batch": batch,
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=None,
        help="models per call, one or more (default: 4 on the CPU, 16 256 on cuda)",
    )
    ap.add_argument("--repeats", type=int, default=2, help="CPU: child processes per measurement")
    ap.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        help="cuda: seconds of calls per measurement (2-5 calls)",
    )
    ap.add_argument(
        "--time-budget",
        type=float,
        default=70.0,
        help="cuda: seconds for the whole run; sizes projected past it are skipped",
    )
    ap.add_argument(
        "--results",
        "--out",
        dest="out",
        type=Path,
        default=Path(__file__).parent / "results",
        help="folder of the JSON results (default benchmarks/results)",
    )
    ap.add_argument("--no-deepwave", action="store_true", help="skip the peer (recorded as null)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    # plumbing tests on a machine without a GPU: the cuda path on the CPU, and fewer time steps
    ap.add_argument("--emulate-cuda", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--nt", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.batch is None:
        args.batch = [16, 256] if args.device == "cuda" else [4]
    if args.child:
        child(args.child, args.batch[0])
        return 0
    if args.device == "cuda":
        return main_device(args)
    return main_cpu(args)


if __name__ == "__main__":
    sys.exit(main())
