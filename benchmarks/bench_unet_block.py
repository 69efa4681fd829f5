"""Benchmark: fused GroupNorm -> FiLM -> SiLU vs eager PyTorch vs torch.compile, forward + backward,
at the latent U-Net's real shapes (specs/ubdiff.md section 3: dim 128, dim_mults (1, 2, 2, 4),
GroupNorm(8), sequence length 128 halving per level).

For every shape it first checks that the fused native op agrees with the reference (output and all
five grads), then times forward + backward (torch.autograd.grad w.r.t. x, scale, shift, gamma, beta)
of (a) the fused native op, (b) the eager reference (F.group_norm, mul/add, F.silu) and (c)
torch.compile of the reference, with torch.utils.benchmark (num_threads = torch.get_num_threads(),
so OpenMP is not pinned to one thread). It reports the time, the effective memory throughput of the
fused op (x, y, grad_y, grad_x: 5 tensors of B C L elements) and the ratios, then appends a JSON
record with the device and versions to benchmarks/results/unet_block_<device>.json.

``--resnet`` also times a U-Net ResNet block (conv3 -> norm/FiLM/SiLU -> conv3 -> norm/SiLU ->
+ 1x1 residual) built on each variant, to show the share of the block the fused op saves.
``--overhead`` times the per-call cost of the two doors to the native kernels (the
torch.library.custom_op that torch.compile traces, the autograd.Function that eager calls take) and
of the public wrapper, at a tiny shape on one thread.

    python benchmarks/bench_unet_block.py                  # CPU, all shapes
    python benchmarks/bench_unet_block.py --device cuda    # GPU; --dtype bfloat16 / float16
    python benchmarks/bench_unet_block.py --batch 16 --no-compile --resnet --overhead
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import os
import platform
import sys
from pathlib import Path

import torch
import torch.utils.benchmark as tbench

import ubdiff_phys
from ubdiff_phys.ops import group_norm_film_silu, is_native_eligible
from ubdiff_phys.ops.reference import group_norm_film_silu_reference
from ubdiff_phys.runtime.files import append_json_record

gnmod = importlib.import_module("ubdiff_phys.ops.group_norm_film_silu")

GROUPS = 8
# (channels, length) of the U-Net's levels: dim 128 * (1, 2, 2, 4), L = 128 / 2^level
LEVELS = [(128, 128), (256, 64), (256, 32), (512, 16)]
RESULTS = Path(__file__).resolve().parent / "results"


def make_inputs(B, C, L, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, mul=1.0, add=0.0):
        t = torch.randn(*shape, generator=g) * mul + add
        return t.to(dtype=dtype, device=device).requires_grad_()

    x = rnd(B, C, L, mul=2.0, add=0.5)
    return x, rnd(B, C, mul=0.3), rnd(B, C, mul=0.3), rnd(C, mul=0.2, add=1.0), rnd(C, mul=0.2)


def fused(x, scale, shift, weight, bias):
    return group_norm_film_silu(x, scale, shift, weight, bias, groups=GROUPS, backend="native")


def eager(x, scale, shift, weight, bias):
    return group_norm_film_silu_reference(x, scale, shift, weight, bias, groups=GROUPS)


def fwd_bwd(fn, inputs, grad_y):
    """One forward + backward: grads w.r.t. all inputs (no .grad accumulation)."""
    return torch.autograd.grad(fn(*inputs), inputs, grad_y)


def timeit(stmt_fn, min_run_time, label, sub_label, description):
    timer = tbench.Timer(
        stmt="f()",
        globals={"f": stmt_fn},
        num_threads=torch.get_num_threads(),
        label=label,
        sub_label=sub_label,
        description=description,
    )
    return timer.blocked_autorange(min_run_time=min_run_time)


def check_agreement(inputs, grad_y):
    """Native vs reference (reference in float64 for reduced precision) before timing."""
    dtype = inputs[0].dtype
    y = fused(*inputs)
    grads = torch.autograd.grad(y, inputs, grad_y)
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    y_ref = eager(*ref_inputs)
    grads_ref = torch.autograd.grad(y_ref, ref_inputs, grad_y.double())
    y_ref = y_ref.detach()
    worst = 0.0
    for a, b in zip((y, *grads), (y_ref, *grads_ref), strict=True):
        err = float((a.detach().double() - b).norm() / b.norm().clamp_min(1e-30))
        worst = max(worst, err)
    bound = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}
    if worst > bound[dtype]:
        raise SystemExit(f"fused op disagrees with the reference: rel. L2 {worst:.2e}")
    return worst


def _custom_op_door(x, scale, shift, weight, bias):
    """The custom_op that torch.compile traces, called directly in eager mode."""
    return gnmod._forward_op(x, scale, shift, weight, bias, GROUPS, 1e-5)[0]


def _function_door(x, scale, shift, weight, bias):
    """The autograd.Function that eager calls take, without the public wrapper's checks."""
    return gnmod._GroupNormFiLMSiLUFunction.apply(x, scale, shift, weight, bias, GROUPS, 1e-5)


def measure_overhead(device, min_run_time):
    """Per-call cost of custom_op dispatch vs autograd.Function, at a tiny shape, one thread."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inputs = make_inputs(2, 16, 4, torch.float32, device)
        gy = torch.randn(2, 16, 4, device=device)
        out = {}
        variants = {
            "public API (checks + autograd.Function)": lambda: fwd_bwd(fused, inputs, gy),
            "autograd.Function alone": lambda: fwd_bwd(_function_door, inputs, gy),
            "custom_op (torch.library) alone": lambda: fwd_bwd(_custom_op_door, inputs, gy),
            "eager reference": lambda: fwd_bwd(eager, inputs, gy),
        }
        for name, fn in variants.items():
            fn()
            m = timeit(fn, min_run_time, "overhead", "B=2 C=16 L=4", name)
            out[name] = m.median * 1e6
        with torch.no_grad():
            direct = [t.detach() for t in inputs]
            m = timeit(
                lambda: gnmod._native_forward(*direct, GROUPS, 1e-5), min_run_time, "", "", ""
            )
            out["native forward only, no autograd"] = m.median * 1e6
    finally:
        torch.set_num_threads(saved)
    return out


class ResnetBlock(torch.nn.Module):
    """A U-Net ResNet block: conv3 -> norm + FiLM + SiLU -> conv3 -> norm + SiLU -> + residual."""

    def __init__(self, c_in, c_out, norm):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(c_in, c_out, 3, padding=1)
        self.conv2 = torch.nn.Conv1d(c_out, c_out, 3, padding=1)
        self.res = torch.nn.Conv1d(c_in, c_out, 1) if c_in != c_out else torch.nn.Identity()
        self.g1 = torch.nn.Parameter(torch.ones(c_out))
        self.b1 = torch.nn.Parameter(torch.zeros(c_out))
        self.g2 = torch.nn.Parameter(torch.ones(c_out))
        self.b2 = torch.nn.Parameter(torch.zeros(c_out))
        self.norm = norm

    def forward(self, x, scale, shift):
        h = self.norm(self.conv1(x), scale, shift, self.g1, self.b1)
        h = self.norm(self.conv2(h), None, None, self.g2, self.b2)
        return h + self.res(x)


def bench_resnet(B, C, L, dtype, device, min_run_time):
    torch.manual_seed(0)
    block = ResnetBlock(C, C, fused).to(device=device, dtype=dtype)
    x = torch.randn(B, C, L, device=device, dtype=dtype, requires_grad=True)
    scale = torch.randn(B, C, device=device, dtype=dtype, requires_grad=True)
    shift = torch.randn(B, C, device=device, dtype=dtype, requires_grad=True)
    gy = torch.randn(B, C, L, device=device, dtype=dtype)
    params = [x, scale, shift, *block.parameters()]
    out = {}
    for name, norm in (("fused", fused), ("eager", eager)):
        block.norm = norm

        def step():
            return torch.autograd.grad(block(x, scale, shift), params, gy)

        step()
        out[name] = timeit(step, min_run_time, "resnet", f"{B}x{C}x{L}", name).median * 1e6
    return out


def versions(device):
    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "ubdiff_phys": ubdiff_phys.__version__,
        "build": ubdiff_phys.build_info(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if "model name" in ln)
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to build)")
    ap.add_argument("--resnet", action="store_true", help="also time a U-Net ResNet block")
    ap.add_argument("--overhead", action="store_true", help="custom_op vs autograd.Function")
    ap.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    ap.add_argument("--note", default="", help="free text stored with the record")
    args = ap.parse_args(argv)
    device, dtype = args.device, getattr(torch, args.dtype)
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to PyTorch")

    compiled = None
    if not args.no_compile:
        compiled = torch.compile(eager, dynamic=False)

    rows = []
    print(f"{device} {args.dtype}, {torch.get_num_threads()} threads; times are fwd+bwd medians")
    header = f"{'B':>4} {'C':>4} {'L':>4} | {'fused us':>9} {'eager us':>9} {'compile us':>10}"
    header += f" | {'eager/fused':>11} {'compile/fused':>13} | {'fused GB/s':>10}  max rel.err"
    print(header)
    for B in args.batch:
        for C, L in LEVELS:
            inputs = make_inputs(B, C, L, dtype, device)
            if not is_native_eligible(*inputs):
                reason = gnmod.native_ineligible_reason(*inputs)
                raise SystemExit(f"native op not eligible: {reason}")
            gy = torch.randn(B, C, L, generator=torch.Generator().manual_seed(1))
            gy = gy.to(dtype=dtype, device=device)
            err = check_agreement(inputs, gy)
            shape = f"{B}x{C}x{L}"
            times = {}
            variants = {"fused": fused, "eager": eager}
            if compiled is not None:
                variants["compile"] = compiled
            for name, fn in variants.items():
                fwd_bwd(fn, inputs, gy)  # warm-up (and compilation)
                step = functools.partial(fwd_bwd, fn, inputs, gy)
                m = timeit(step, args.min_run_time, "", shape, name)
                times[name] = m.median * 1e6
            nbytes = 5 * x_numel(inputs) * inputs[0].element_size()
            row = {
                "batch": B,
                "channels": C,
                "length": L,
                "groups": GROUPS,
                "dtype": args.dtype,
                "fwd_bwd_us": times,
                "eager_over_fused": times["eager"] / times["fused"],
                "fused_GBps": nbytes / (times["fused"] * 1e-6) / 1e9,
                "max_rel_err": err,
            }
            if "compile" in times:
                row["compile_over_fused"] = times["compile"] / times["fused"]
            if args.resnet:
                rt = bench_resnet(B, C, L, dtype, device, args.min_run_time)
                row["resnet_block_fwd_bwd_us"] = rt
                row["resnet_eager_over_fused"] = rt["eager"] / rt["fused"]
            rows.append(row)
            comp = times.get("compile", float("nan"))
            line = f"{B:>4} {C:>4} {L:>4} | {times['fused']:>9.1f} {times['eager']:>9.1f} "
            line += f"{comp:>10.1f} | {row['eager_over_fused']:>11.2f} "
            line += f"{comp / times['fused']:>13.2f} | {row['fused_GBps']:>10.2f}  {err:.1e}"
            if args.resnet:
                line += f"  resnet: fused {rt['fused']:.0f} us, eager {rt['eager']:.0f} us"
                line += f" ({row['resnet_eager_over_fused']:.2f}x)"
            print(line, flush=True)

    record = {
        "benchmark": "unet_block (GroupNorm -> FiLM -> SiLU, fwd+bwd)",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "versions": versions(device),
        "min_run_time_s": args.min_run_time,
        "note": args.note,
        "rows": rows,
    }
    ratios = [r["eager_over_fused"] for r in rows]
    record["geomean_eager_over_fused"] = geomean(ratios)
    if compiled is not None:
        record["geomean_compile_over_fused"] = geomean([r["compile_over_fused"] for r in rows])
    print(f"geomean eager/fused: {record['geomean_eager_over_fused']:.2f}", end="")
    if compiled is not None:
        print(f", compile/fused: {record['geomean_compile_over_fused']:.2f}", end="")
    print()
    if args.overhead:
        record["overhead_us"] = measure_overhead(device, args.min_run_time)
        for name, us in record["overhead_us"].items():
            print(f"overhead, B=2 C=16 L=4, 1 thread: {name:<40} {us:8.1f} us")
    if not args.no_save:
        append_record(RESULTS / f"unet_block_{device}.json", record)


def x_numel(inputs):
    return inputs[0].numel()


def geomean(values):
    return float(torch.tensor(values, dtype=torch.float64).log().mean().exp())


def append_record(path: Path, record: dict) -> None:
    """Append to a JSON list, written atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    append_json_record(path, record, indent=1)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
