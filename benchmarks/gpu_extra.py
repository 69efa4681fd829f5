"""CUDA checks the test suite lacks, tiny cases for compute-sanitizer, GPU benchmarks and an
Nsight Compute driver: the Python half of ``benchmarks/gpu_check.sh`` (see benchmarks/README.md).

    python3 benchmarks/gpu_extra.py checks   # correctness checks; exit 1 if any FAIL
    python3 benchmarks/gpu_extra.py san      # tiny cases of every kernel, for compute-sanitizer
    GPU_EXTRA_SAN_BIG=0 python3 benchmarks/gpu_extra.py san  # lean big cases (for racecheck)
    python3 benchmarks/gpu_extra.py bench    # batch sweep, graph replay, GroupNorm, gradient timing
    python3 benchmarks/gpu_extra.py ncu      # one launch of each kernel at B = 256 (run under ncu)
    GPU_EXTRA_DEVICE=cpu python3 benchmarks/gpu_extra.py checks   # dry run of the logic on CPU

Every check prints one line: ``PASS name info``, ``FAIL name info`` (counted: exit status 1), or
``GAP name info`` (a known limitation, reported but not counted as a failure); benchmarks print
``BENCH`` lines. ``--json PATH`` appends one record of the results to PATH; ``--smoke`` (implied on
CPU) shrinks the bench and ncu sizes. ``badargs`` and ``badrec-raw`` are the child processes that
``checks`` starts for bad arguments (an error on the device can poison the whole CUDA context).

With ``GPU_EXTRA_DEVICE=cpu`` the CUDA-only machinery has CPU stand-ins: a "captured graph" is the
function called again, a "stream" is a no-op context, and device-vs-CPU comparisons compare the CPU
with itself, so the dry run proves the logic (and the tolerances' plumbing), not the device.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings

import torch

import ubdiff_phys
from ubdiff_phys.ops import acoustic_forward, group_norm_film_silu
from ubdiff_phys.ops.acoustic_native import native_args
from ubdiff_phys.physics import Survey, misfit, misfit_and_grad, simulate
from ubdiff_phys.physics.forward import prepare_problem
from ubdiff_phys.runtime.files import append_json_record

DEV = os.environ.get("GPU_EXTRA_DEVICE", "cuda")
CUDA = DEV == "cuda"
OPS = torch.ops.ubdiff_phys
MODES = ("openfwi", "pml", "none")
RESULTS: list[dict] = []  # every PASS/FAIL/GAP line, for --json
BENCH: list[dict] = []  # every BENCH line, for --json

# A build whose CUDA backward falls back to the host warns once; the checks compare the device's
# gradient with the host's either way (bench_gradient.py records which path ran).
warnings.filterwarnings("ignore", message="ubdiff_phys: the acoustic backward has no CUDA kernel")

#: OpenFWI survey (70 x 70, 5 sources, 70 receivers, 1000 steps)
OPENFWI = Survey.openfwi()
#: unlike OpenFWI: rectangular cells, interior/deep sources, sparse receivers (tests' ODD_SURVEY)
ODD = Survey(
    nz=30, nx=45, dz=8.0, dx=12.0, dt=8e-4, nt=120, frequency=20.0,
    sources=((3, 5), (15, 40), (29, 0)),
    receivers=tuple((0, j) for j in range(0, 45, 2)) + ((29, 10), (12, 44)),
    sponge_width=30, pml_width=10,
)  # fmt: skip
#: a tiny grid for > 65,535 shots (5 sources: 14,000 models = 70,000 shots)
TINY = Survey(
    nz=6, nx=7, nt=12, sources=((1, 0), (1, 2), (1, 3), (1, 5), (2, 6)),
    receivers=((1, 1), (1, 4), (5, 6)), sponge_width=20, pml_width=3,
)  # fmt: skip
#: the gradient checks' survey (bench_gradient.check_reference)
GRAD = Survey(
    nz=13, nx=11, dz=10.0, dx=10.0, dt=0.001, nt=60, sources=((1, 2), (3, 8)),
    receivers=((1, 0), (2, 5), (1, 10), (12, 4)), frequency=25.0, sponge_width=6, pml_width=5,
)  # fmt: skip


# ---- helpers -------------------------------------------------------------------------------


def report(name: str, ok: bool | None, info: str = "", gap: bool = False) -> bool:
    """Print one result line; ``gap=True`` turns a failure into a reported known gap."""
    status = "PASS" if ok else ("GAP" if gap else "FAIL")
    print(f"{status} {name} {info}".rstrip(), flush=True)
    RESULTS.append({"name": name, "status": status, "info": info})
    return bool(ok)


def check(name: str):
    """Decorator-free guard: ``with check("name"):`` reports FAIL with the exception if the body
    raises, so one broken check never hides the others."""

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except Exception as e:  # noqa: BLE001 (a check must never stop the others)
            tb = traceback.format_exc().strip().splitlines()
            report(name, False, f"raised {type(e).__name__}: {str(e)[:300]} | {tb[-3:]}")

    return guard()


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def models(n: int, nz: int = 70, nx: int = 70, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    """(n, nz, nx) smooth models [m/s]: 1500-4000 at the top, faster with depth, at most 4400."""
    g = torch.Generator().manual_seed(seed)
    z = torch.arange(nz, dtype=torch.float64)[:, None].expand(nz, nx)
    x = torch.arange(nx, dtype=torch.float64)[None, :].expand(nz, nx)
    base = 1500 + 2500 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    grad = 20 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    tilt = 3 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    return (base + grad * z + tilt * x).clamp(max=4400).to(dtype)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


def none_pad(survey: Survey, v_max: float = 4400.0) -> int:
    """The "none" mode's default padding for ``survey`` (forward.prepare_problem)."""
    return math.ceil(v_max * survey.nt * survey.dt / (2.0 * min(survey.dx, survey.dz))) + 12


def problem(v: torch.Tensor, survey: Survey, mode: str, pad: int | None = None):
    return prepare_problem(v, survey, boundary=mode, pad=pad if mode == "none" else None)


def raw_forward(args: tuple) -> torch.Tensor:
    """The registered op with no Python-side argument checks (and no host syncs): capturable."""
    return OPS.acoustic_forward(*args)


def raw_misfit(args: tuple, observed: torch.Tensor, bounds=(-3.0, 3.0)) -> torch.Tensor:
    return OPS.acoustic_misfit(*args[:12], observed, *args[12:], True, bounds[0], bounds[1])


class _HostStream:
    """Stand-in for torch.cuda.Stream in the CPU dry run."""

    def wait_stream(self, other) -> None:
        pass

    def synchronize(self) -> None:
        pass


def new_stream():
    return torch.cuda.Stream() if CUDA else _HostStream()


def current_stream():
    return torch.cuda.current_stream() if CUDA else _HostStream()


def on_stream(s):
    return torch.cuda.stream(s) if CUDA else contextlib.nullcontext()


def capture(fn):
    """Capture ``fn()`` in a CUDA graph on a side stream (after a warm-up there); returns
    ``(out, replay)``: ``replay()`` re-runs the graph, which rewrites ``out``. CPU dry run: ``out``
    is ``fn()`` and ``replay`` recomputes it into ``out``."""
    if not CUDA:
        out = fn()

        def replay_host() -> None:
            out.copy_(fn())

        return out, replay_host
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # warm-up on the side stream (allocations, lazy module loading)
    side.synchronize()
    with torch.cuda.graph(graph, stream=side):
        out = fn()
    torch.cuda.current_stream().wait_stream(side)
    return out, graph.replay


def timed(fn, min_time: float = 0.3, max_reps: int = 20) -> float:
    """Seconds per call of ``fn`` (device-synchronised), after one warm-up call."""
    fn()
    sync()
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or reps >= max_reps:
            return elapsed / reps


def bench(name: str, **values) -> None:
    parts = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    print(f"BENCH {name} {parts}", flush=True)
    BENCH.append({"name": name, **values})


# ---- checks --------------------------------------------------------------------------------


def check_gathers_vs_cpu() -> None:
    """CUDA gathers == CPU gathers, every mode, float32 and float64, two geometries."""
    tol = {torch.float32: 2e-6, torch.float64: 1e-12}
    cases = [(ODD, dt) for dt in tol] + [(OPENFWI.with_(nt=200), torch.float32)]
    for survey, dtype in cases:
        v = models(3 if survey is ODD else 2, survey.nz, survey.nx, dtype=dtype, seed=21)
        for mode in MODES:
            name = f"gathers_cpu_vs_{DEV}_{mode}_{'odd' if survey is ODD else 'openfwi'}_{dtype}"
            with check(name):
                kw = {"pad": 24} if mode == "none" else {}
                cpu = simulate(v, survey, boundary=mode, **kw)
                dev = simulate(v.to(DEV), survey, boundary=mode, **kw)
                ok = dev.device.type == DEV and dev.dtype == dtype and dev.shape == cpu.shape
                ok = ok and bool(torch.isfinite(dev).all())
                r = rel(dev, cpu)
                report(name, ok and r < tol[dtype], f"rel={r:.2e} (tol {tol[dtype]:.0e})")


def check_determinism_and_fused_misfit() -> None:
    """Bitwise determinism of gathers and of the fused misfit; the fused misfit against the
    reference backend (float64, where the comparison is not limited by float32 rounding)."""
    nt = 300 if CUDA else 60
    survey = OPENFWI.with_(nt=nt)
    v = models(4).to(DEV)
    for mode in MODES:
        with check(f"determinism_{mode}"):
            a1, a2 = simulate(v, survey, boundary=mode), simulate(v, survey, boundary=mode)
            pr = problem(v, survey, mode)
            obs = a1 * 1.01 + 1e-3
            m1 = acoustic_forward(pr, observed=obs, log_bounds=(-3.0, 3.0))
            m2 = acoustic_forward(pr, observed=obs, log_bounds=(-3.0, 3.0))
            report(f"determinism_{mode}", torch.equal(a1, a2) and torch.equal(m1, m2))
        with check(f"fused_misfit_vs_reference_{mode}"):
            v64 = v[:2].double()
            pr = problem(v64, survey, mode)
            obs = simulate(v64, survey, boundary=mode) * 1.01 + 1e-3
            native = acoustic_forward(pr, observed=obs, log_bounds=(-3.0, 3.0))
            ref = acoustic_forward(pr, backend="reference", observed=obs, log_bounds=(-3.0, 3.0))
            r = rel(native, ref)
            report(f"fused_misfit_vs_reference_{mode}", r < 1e-9, f"rel={r:.2e} (float64)")


def simulate_gradients(v: torch.Tensor, survey: Survey, w: torch.Tensor, **kw) -> list:
    """d/dv sum(simulate(v) * w) on the CPU and on DEV (in that order), through autograd."""
    grads = []
    for d in ("cpu", DEV):
        x = v.to(d).requires_grad_()
        out = simulate(x, survey, **kw)
        grads.append(torch.autograd.grad((out * w.to(d)).sum(), x)[0])
    return grads


def check_many_shots() -> None:
    """More than 65,535 shots (the grid's z / x limit: grid-stride loops in step and misfit)."""
    n = 14000  # x 5 sources = 70,000 shots
    v32 = models(n, TINY.nz, TINY.nx, seed=3)
    v64 = v32.double()
    for mode in MODES:
        name = f"over_65535_shots_{mode}"
        with check(name):
            dev = simulate(v32.to(DEV), TINY, boundary=mode).cpu()
            cpu = simulate(v32, TINY, boundary=mode)
            r = rel(dev, cpu)
            report(name, r < 2e-6, f"{n * TINY.n_sources} shots, rel={r:.2e}")
        name = f"over_65535_shots_misfit_{mode}"
        with check(name):
            obs = simulate(v64, TINY, boundary=mode) * 1.01
            pr_dev = problem(v64.to(DEV), TINY, mode)
            dev = acoustic_forward(pr_dev, observed=obs.to(DEV), log_bounds=(-3.0, 3.0))
            cpu = acoustic_forward(problem(v64, TINY, mode), observed=obs, log_bounds=(-3, 3))
            r = rel(dev, cpu)
            report(name, r < 1e-10, f"rel={r:.2e} (float64)")
    name = "over_65535_shots_gradient_pml"  # the backward's shot loop past the grid limit
    with check(name):
        w = torch.randn(n, TINY.n_sources, TINY.nt, TINY.n_receivers, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(4))  # fmt: skip
        grads = simulate_gradients(v64, TINY, w, boundary="pml")
        r = rel(grads[1], grads[0])
        ok = grads[1].device.type == DEV and bool(grads[0].abs().max() > 0)
        report(name, ok and r < 1e-10, f"{n * TINY.n_sources} shots, rel={r:.2e} (float64)")


def check_graph_capture() -> None:
    """The native ops captured in a CUDA graph on a side stream (a launch on any other stream,
    or a host sync, breaks the capture), replayed, and replayed again after the input changed.
    simulate() itself syncs to validate its input, so the op is what can be captured."""
    survey = OPENFWI.with_(nt=200 if CUDA else 40)
    v1, v2 = models(4, seed=7).to(DEV), models(4, seed=8).to(DEV)
    for mode in MODES:
        for kind in ("forward", "misfit"):
            if kind == "misfit" and mode != "pml":
                continue
            name = f"graph_capture_{kind}_{mode}"
            with check(name):
                pad = none_pad(survey) if mode == "none" else None
                args = native_args(problem(v1, survey, mode, pad))
                args2 = native_args(problem(v2, survey, mode, pad))
                obs = raw_forward(args2).contiguous()

                def fn(args=args, kind=kind, obs=obs):
                    return raw_forward(args) if kind == "forward" else raw_misfit(args, obs)

                eager1 = fn()
                out, replay = capture(fn)
                replay()
                sync()
                same1 = torch.equal(out, eager1)
                with torch.no_grad():  # new input in place: the graph must read it
                    for a, b in zip(args, args2, strict=True):
                        if isinstance(a, torch.Tensor):
                            a.copy_(b)
                replay()
                sync()
                eager2 = fn()
                same2 = torch.equal(out, eager2) and not torch.equal(eager1, eager2)
                report(name, same1 and same2, f"replay==eager {same1}, after new input {same2}")
    with check("graph_capture_gn_forward"):
        g = torch.Generator().manual_seed(4)
        x, sc, sh = (torch.randn(*s, generator=g).to(DEV) for s in ((8, 64, 32), (8, 64), (8, 64)))
        w, b = torch.randn(64, generator=g).to(DEV), torch.randn(64, generator=g).to(DEV)

        def gn():
            with torch.no_grad():
                return group_norm_film_silu(x, sc, sh, w, b, groups=8, backend="native")

        eager = gn()
        out, replay = capture(gn)
        replay()
        sync()
        report("graph_capture_gn_forward", torch.equal(out, eager))


def check_streams() -> None:
    """Two streams at once give the serial results bitwise: the raw op (no host syncs, so the
    two solves overlap) and simulate() (the user path)."""
    survey = OPENFWI.with_(nt=300 if CUDA else 40)
    va, vb = models(8, seed=5).to(DEV), models(8, seed=6).to(DEV)
    with check("two_streams_op"):
        args_a = native_args(problem(va, survey, "pml"))
        args_b = native_args(problem(vb, survey, "openfwi"))
        ra, rb = raw_forward(args_a), raw_forward(args_b)
        s1, s2 = new_stream(), new_stream()
        for s in (s1, s2):
            s.wait_stream(current_stream())
        with on_stream(s1):
            oa = raw_forward(args_a)
        with on_stream(s2):
            ob = raw_forward(args_b)
        sync()
        report("two_streams_op", torch.equal(oa, ra) and torch.equal(ob, rb))
    with check("two_streams_simulate"):
        ra, rb = simulate(va, survey, boundary="pml"), simulate(vb, survey, boundary="pml")
        s1, s2 = new_stream(), new_stream()
        for s in (s1, s2):
            s.wait_stream(current_stream())
        with on_stream(s1):
            oa = simulate(va, survey, boundary="pml")
        with on_stream(s2):
            ob = simulate(vb, survey, boundary="pml")
        sync()
        report("two_streams_simulate", torch.equal(oa, ra) and torch.equal(ob, rb))


def check_gradients() -> None:
    """The gradient on the device against the CPU gradient: autograd through simulate,
    misfit().backward(), misfit_and_grad; and determinism."""
    g = torch.Generator().manual_seed(0)
    v = 2000 + 1500 * torch.rand(2, GRAD.nz, GRAD.nx, generator=g, dtype=torch.float64)
    w = torch.randn(2, GRAD.n_sources, GRAD.nt, GRAD.n_receivers, generator=g, dtype=torch.float64)
    for mode in MODES:
        kw = {"pad": 7} if mode == "none" else {}
        name = f"gradient_cpu_vs_{DEV}_{mode}_float64"
        with check(name):
            grads = simulate_gradients(v, GRAD, w, boundary=mode, **kw)
            r = rel(grads[1], grads[0])
            ok = grads[1].device.type == DEV and r <= 1e-10
            report(name, ok, f"rel={r:.2e} (tol 1e-10)")
    obs = simulate(v * 1.03, GRAD, boundary="pml")
    with check(f"misfit_backward_cpu_vs_{DEV}"):
        grads, values = [], []
        for d in ("cpu", DEV):
            x = v.to(d).requires_grad_()
            f = misfit(x, obs.to(d), GRAD, boundary="pml", normalizer=(-3.0, 3.0))
            values.append(f.detach())
            grads.append(torch.autograd.grad(f, x)[0])
        rv, rg = rel(values[1], values[0]), rel(grads[1], grads[0])
        report(
            f"misfit_backward_cpu_vs_{DEV}",
            rv < 1e-10 and rg < 1e-10,
            f"value {rv:.2e}, grad {rg:.2e}",
        )
    for mode in ("pml", "openfwi"):
        name = f"misfit_and_grad_cpu_vs_{DEV}_{mode}"
        with check(name):
            fc, gc = misfit_and_grad(v, obs, GRAD, boundary=mode)
            fd, gd = misfit_and_grad(v.to(DEV), obs.to(DEV), GRAD, boundary=mode)
            fd2, gd2 = misfit_and_grad(v.to(DEV), obs.to(DEV), GRAD, boundary=mode)
            rv, rg = rel(fd, fc), rel(gd, gc)
            same = torch.equal(fd, fd2) and torch.equal(gd, gd2)
            ok = rv < 1e-10 and rg < 1e-10 and same and gd.device.type == DEV
            report(name, ok, f"value {rv:.2e}, grad {rg:.2e}, deterministic {same}")
    name = f"gradient_cpu_vs_{DEV}_pml_float32_openfwi_survey"
    with check(name):
        survey = OPENFWI.with_(nt=200 if CUDA else 60)
        v32 = models(2, seed=9)
        w32 = torch.randn(2, 5, survey.nt, 70, generator=g)
        grads = simulate_gradients(v32, survey, w32, boundary="pml")
        r = rel(grads[1], grads[0])
        report(name, r < 1e-5, f"rel={r:.2e} (tol 1e-5)")


def gn_case(shape, groups, dtype, grad="randn", seed=0, offset=3.0, affine=True, film=True):
    """Native GroupNorm-FiLM-SiLU forward + backward vs the float64 reference on the same
    (rounded) inputs; returns (y, grads, max relative error)."""
    g = torch.Generator().manual_seed(seed)
    B, C = shape[:2]

    def mk(*s, m=1.0, a=0.0):
        return torch.randn(*s, generator=g, dtype=torch.float64) * m + a

    x = mk(*shape, m=2, a=offset)
    sc, sh = (mk(B, C, m=0.5) if film else None for _ in range(2))
    w, b = (mk(C, m=0.5, a=1) if affine else None), (mk(C, m=0.5) if affine else None)
    ins = [None if t is None else t.to(DEV, dtype).requires_grad_() for t in (x, sc, sh, w, b)]
    y = group_norm_film_silu(*ins, groups=groups, backend="native")
    if grad == "ones":  # what y.sum().backward() hands over: a stride-0 expanded tensor
        gy = torch.ones((), device=DEV, dtype=dtype).expand_as(y)
    else:
        gy = mk(*shape).to(DEV, dtype)
    live = [t for t in ins if t is not None]
    grads = torch.autograd.grad(y, live, gy)
    ins64 = [None if t is None else t.detach().double().cpu().requires_grad_() for t in ins]
    y64 = group_norm_film_silu(*ins64, groups=groups, backend="reference")
    grads64 = torch.autograd.grad(y64, [t for t in ins64 if t is not None], gy.double().cpu())
    errs = [rel(y, y64)] + [rel(a, b) for a, b in zip(grads, grads64, strict=True)]
    return y, grads, max(errs)


def check_group_norm() -> None:
    tol = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 3e-3, torch.bfloat16: 2e-2}
    dtypes = list(tol) if CUDA else [torch.float32, torch.float64]
    for dtype in dtypes:
        name = f"gn_expanded_grad_{str(dtype).removeprefix('torch.')}"
        with check(name):
            _, _, e = gn_case((16, 128, 128), 8, dtype, grad="ones")
            report(name, e < tol[dtype], f"max_rel={e:.2e} (tol {tol[dtype]:.0e})")
    cases = [  # name, shape, groups, tolerance, options
        ("gn_big_group_N=524288", (2, 64, 1 << 16), 8, 1e-4, {}),
        ("gn_320000_blocks", (40000, 16, 4), 8, 1e-5, {}),
        ("gn_one_channel_per_group", (4, 8, 33), 8, 1e-5, {}),
        ("gn_length_1", (3, 32, 1), 4, 1e-5, {}),  # 8 per group: 2 would leave grad_x ~ 0
        ("gn_4d_input", (2, 16, 5, 7), 4, 1e-5, {}),
        ("gn_no_affine_no_film", (4, 64, 16), 8, 1e-5, {"affine": False, "film": False}),
        # float32 x - mean alone costs ~1e-4 here; E[x^2] - E[x]^2 would be off by O(1)
        ("gn_large_mean_offset_1e4", (4, 64, 256), 8, 2e-3, {"offset": 1e4}),
    ]
    for name, shape, groups, t, opts in cases:
        with check(name):
            _, _, e = gn_case(shape, groups, torch.float32, **opts)
            report(name, e < t, f"max_rel={e:.2e} (tol {t:.0e})")
    with check("gn_determinism"):
        y1, g1, _ = gn_case((64, 256, 64), 8, torch.float32, seed=1)
        y2, g2, _ = gn_case((64, 256, 64), 8, torch.float32, seed=1)
        same = torch.equal(y1, y2) and all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))
        report("gn_determinism", same)
    with check("gn_noncontiguous_native_refused"):
        x = torch.randn(4, 16, 8, device=DEV).transpose(1, 2).contiguous().transpose(1, 2)
        try:
            group_norm_film_silu(x, None, None, groups=4, backend="native")
            report("gn_noncontiguous_native_refused", False, "no error")
        except RuntimeError as e:
            auto = group_norm_film_silu(x, None, None, groups=4, backend="auto")
            ref = group_norm_film_silu(x, None, None, groups=4, backend="reference")
            ok = "not contiguous" in str(e) and torch.equal(auto, ref)
            report("gn_noncontiguous_native_refused", ok, f"{str(e)[:80]}; auto == reference")


def run_child(mode: str) -> tuple[int, str]:
    """Run ``gpu_extra.py MODE`` in a child process; returns (exit status, output)."""
    try:
        r = subprocess.run(
            [sys.executable, __file__, mode], capture_output=True, text=True, timeout=90
        )
    except subprocess.TimeoutExpired as e:
        return 124, f"timed out: {e.stdout or ''}{e.stderr or ''}"
    return r.returncode, r.stdout + r.stderr


def check_bad_arguments() -> None:
    """Bad arguments on the device, in child processes: each must raise a clear ValueError /
    TypeError, and the device must still compute correctly afterwards in the same process."""
    rc, out = run_child("badargs")
    lines = [ln for ln in out.splitlines() if ln.startswith(("PASS ", "FAIL "))]
    for ln in lines:
        status, name, *info = ln.split(" ", 2)
        report(f"badargs/{name}", status == "PASS", info[0] if info else "")
    if rc != 0 or not lines:
        tail = " | ".join(out.strip().splitlines()[-3:])
        report("badargs_child", False, f"child rc={rc}: {tail[:400]}")
    # The lowest door: the registered op, called directly, skips AcousticProblem.check(). The CPU
    # kernel re-validates; the CUDA entry point cannot read device memory, so its kernels guard
    # instead: an off-grid receiver records NaN (no out-of-bounds read). Either passes.
    rc, out = run_child("badrec-raw")
    result = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if result is None:
        tail = " | ".join(out.strip().splitlines()[-3:])
        report("bad_receiver_raw_op", False, f"child rc={rc}, no result: {tail[:400]}")
        return
    info = dict(kv.split("=", 1) for kv in result.split()[1:])
    raised_clearly = info.get("raised") == "ValueError"
    guarded = info.get("guarded") == "nan" and info.get("context") == "ok"
    report(
        "bad_receiver_raw_op",
        raised_clearly or guarded,
        f"torch.ops.ubdiff_phys.acoustic_forward with a receiver outside the grid: {result[7:]}"
        + ("" if raised_clearly or guarded else " (the raw op skips AcousticProblem.check(); "
           "neither an error nor a NaN trace: an unguarded out-of-bounds read?)"),
        gap=True,
    )  # fmt: skip


def checks() -> None:
    info = json.dumps(ubdiff_phys.build_info())
    print(f"gpu_extra checks on {DEV}: torch {torch.__version__}, build {info}", flush=True)
    if CUDA and not torch.cuda.is_available():
        report("cuda_available", False, "torch sees no CUDA device")
        return
    for fn in (
        check_gathers_vs_cpu,
        check_determinism_and_fused_misfit,
        check_many_shots,
        check_graph_capture,
        check_streams,
        check_gradients,
        check_group_norm,
        check_bad_arguments,
    ):
        t0 = time.perf_counter()
        fn()
        print(f"  [{fn.__name__}: {time.perf_counter() - t0:.1f} s]", flush=True)


# ---- child processes: bad arguments --------------------------------------------------------


def badargs() -> int:
    """Every bad argument must raise ValueError/TypeError before any kernel runs; afterwards the
    device must still compute correctly (the CUDA context is intact)."""
    survey = OPENFWI.with_(nt=50)
    v = models(2).to(DEV)
    other = "cpu" if CUDA else "meta"  # a device that is not the compute device
    pr = problem(v, survey, "pml")
    bad_rec = pr.receiver_rc.clone()
    bad_rec[0, 0] = 10_000_000
    bad_src = pr.source_rc.clone()
    bad_src[1, 1] = -1
    obs = torch.zeros(2, 5, 50, 70, device=DEV)
    nan_v = v.clone()
    nan_v[1, 3, 4] = float("nan")
    x = torch.randn(2, 16, 8, device=DEV)
    cases = {
        "receiver_outside_grid": lambda: acoustic_forward(
            dataclasses.replace(pr, receiver_rc=bad_rec)
        ),
        "receiver_outside_grid_misfit": lambda: acoustic_forward(
            dataclasses.replace(pr, receiver_rc=bad_rec), observed=obs
        ),
        "source_outside_grid": lambda: acoustic_forward(dataclasses.replace(pr, source_rc=bad_src)),
        "wavelet_not_1d": lambda: acoustic_forward(
            dataclasses.replace(pr, wavelet=pr.wavelet[None])
        ),
        "observed_wrong_shape": lambda: acoustic_forward(pr, observed=obs[:, :, :10]),
        "observed_on_other_device": lambda: acoustic_forward(pr, observed=obs.to(other)),
        "velocity_nan": lambda: simulate(nan_v, survey, boundary="pml"),
        "velocity_unstable": lambda: simulate(v * 3, survey, boundary="pml"),
        "velocity_float16": lambda: simulate(v.half(), survey, boundary="pml"),
        "gn_scale_on_other_device": lambda: group_norm_film_silu(
            x, torch.zeros(2, 16, device=other), None, groups=4, backend="native"
        ),
        "gn_groups_not_dividing": lambda: group_norm_film_silu(x, None, None, groups=5),
    }
    if CUDA:  # the CPU dry run has no second real device (a meta wavelet cannot be checked)
        cases["wavelet_on_other_device"] = lambda: acoustic_forward(
            dataclasses.replace(pr, wavelet=pr.wavelet.to(other))
        )
    ok_all = True
    for name, fn in cases.items():
        try:
            fn()
            sync()
            ok_all &= report(name, False, "no error raised")
        except (ValueError, TypeError) as e:
            ok_all &= report(name, True, f"{type(e).__name__}: {str(e)[:120]}")
        except Exception as e:  # noqa: BLE001
            ok_all &= report(
                name, False, f"{type(e).__name__} (expected ValueError/TypeError): {e}"
            )
    try:
        sync()
        after = simulate(v, survey, boundary="pml")
        ref = simulate(v.cpu(), survey, boundary="pml")
        r = rel(after, ref)
        ok_all &= report("context_ok_after_bad_arguments", r < 2e-6, f"rel={r:.2e}")
    except Exception as e:  # noqa: BLE001
        ok_all &= report("context_ok_after_bad_arguments", False, f"{type(e).__name__}: {e}")
    return 0 if ok_all else 1


def badrec_raw() -> int:
    """The registered op called directly with a receiver far outside the grid; prints one
    ``RESULT raised=... guarded=... context=... message=...`` line (guarded: with no error
    raised, whether that receiver's trace is all NaN and every other trace finite)."""
    survey = OPENFWI.with_(nt=50)
    v = models(2).to(DEV)
    pr = problem(v, survey, "pml")
    bad = pr.receiver_rc.clone()
    bad[0, 0] = 10_000_000
    raised, msg, guarded = "none", "", "-"
    try:
        out = raw_forward(native_args(dataclasses.replace(pr, receiver_rc=bad)))
        sync()
        nan_trace = bool(torch.isnan(out[..., 0]).all())
        guarded = "nan" if nan_trace and bool(torch.isfinite(out[..., 1:]).all()) else "no"
    except Exception as e:  # noqa: BLE001
        raised, msg = type(e).__name__, str(e).splitlines()[0][:120]
    try:
        sync()
        r = rel(simulate(v, survey, boundary="pml"), simulate(v.cpu(), survey, boundary="pml"))
        context = "ok" if r < 2e-6 else f"wrong_results(rel={r:.1e})"
    except Exception as e:  # noqa: BLE001
        context = f"broken({type(e).__name__})"
    print(
        f"RESULT raised={raised} guarded={guarded} context={context} "
        f"message={msg.replace(' ', '_')}",
        flush=True,
    )
    return 0


# ---- tiny cases for compute-sanitizer --------------------------------------------------------


#: GPU_EXTRA_SAN_BIG=0 (gpu_check.sh sets it for racecheck only): the lean big cases, see san()
SAN_BIG = os.environ.get("GPU_EXTRA_SAN_BIG", "1") != "0"


def san() -> int:
    """Every kernel on tiny, odd-sized problems (both dtypes, every mode, forward, fused misfit
    with and without normalisation, the gradient, > 65,535 shots, all GroupNorm variants).

    With GPU_EXTRA_SAN_BIG=0 the big cases shrink to what racecheck can use: racecheck looks for
    shared-memory hazards only, and its cost grows with every block it watches (on an H200 the
    full run outlasted 150 s, stopped after the > 65,535-shot case, in the GroupNorm cases).
    Past 65,535 shots, what racecheck can newly see is a block's second trip round a grid-stride
    loop over shots that reuses its shared memory: misfit_kernel's, the solver's one kernel with
    shared memory, reached by one time step in one mode ("pml"). The gradient at nt = 2 stays
    (cheap: the backward's kernels use no shared memory today, and would be watched if they
    did). The 72,000-block GroupNorm case has no grid-stride loop (one block per (batch, group),
    up to 2^31 - 1 blocks), so it adds nothing the small shapes do not check for races and is
    left out. memcheck and initcheck keep the full big cases (every mode, nt = 3)."""
    t0 = time.perf_counter()

    def done(what: str) -> None:
        sync()
        print(f"san: {what} [{time.perf_counter() - t0:.1f} s]", flush=True)

    odd = ODD.with_(nt=15)
    openfwi = OPENFWI.with_(nt=6)
    for dtype in (torch.float32, torch.float64):
        for survey in (odd, openfwi):
            v = models(2, survey.nz, survey.nx, dtype=dtype).to(DEV)
            for mode in MODES:
                kw = {"pad": 7} if mode == "none" else {}
                out = simulate(v, survey, boundary=mode, **kw)
                pr = problem(v, survey, mode, kw.get("pad"))
                acoustic_forward(pr, observed=out, log_bounds=(-2.0, 2.0))
                acoustic_forward(pr, observed=out)
        done(f"forward + fused misfit, {dtype}")
    # the gradient on the device (autograd through simulate and misfit, and the fused
    # value-and-gradient)
    small = GRAD.with_(nt=12)
    g = torch.Generator().manual_seed(0)  # 2000-3500 m/s: stable under GRAD's narrow sponge
    v = (2000 + 1500 * torch.rand(2, small.nz, small.nx, generator=g, dtype=torch.float64)).to(DEV)
    for mode in MODES:
        kw = {"pad": 5} if mode == "none" else {}
        x = v.clone().requires_grad_()
        simulate(x, small, boundary=mode, **kw).square().sum().backward()
        obs = simulate(v * 1.02, small, boundary=mode, **kw)
        misfit(v.clone().requires_grad_(), obs, small, boundary=mode).backward()
        if mode != "none":
            misfit_and_grad(v, obs, small, boundary=mode, normalizer=(-2.0, 2.0))
    done("gradients")
    # > 65,535 shots (grid-stride loops): every mode, forward + fused misfit at nt = 3 and the
    # "pml" gradient; lean (GPU_EXTRA_SAN_BIG=0): "pml" only, nt = 1 for the fused misfit
    # against zeros (one step_kernel + one misfit_kernel launch), nt = 2 for the gradient
    many = TINY.with_(nt=3 if SAN_BIG else 1)
    v = models(13108, many.nz, many.nx, seed=3).to(DEV)  # 65,540 shots
    for mode in MODES if SAN_BIG else ("pml",):
        pr = problem(v, many, mode)
        if SAN_BIG:
            out = simulate(v, many, boundary=mode)
        else:
            out = torch.zeros(13108, many.n_sources, many.nt, many.n_receivers, device=DEV)
        acoustic_forward(pr, observed=out, log_bounds=(-2.0, 2.0))
    grad_survey = many if SAN_BIG else many.with_(nt=2)
    x = v.clone().requires_grad_()
    simulate(x, grad_survey, boundary="pml").square().sum().backward()
    done(f"> 65,535 shots ({'full' if SAN_BIG else 'lean: GPU_EXTRA_SAN_BIG=0'})")
    dtypes = (torch.float32, torch.float64)
    if CUDA:
        dtypes += (torch.float16, torch.bfloat16)
    gn_shapes = [((3, 16, 1), 8), ((2, 24, 33), 4), ((2, 64, 40), 8)]
    if SAN_BIG:
        gn_shapes.append(((9000, 8, 2), 8))  # 72,000 blocks
    for dtype in dtypes:
        for shape, groups in gn_shapes:
            B, C = shape[:2]
            x = torch.randn(*shape, device=DEV, dtype=dtype, requires_grad=True)
            p = [
                torch.randn(*s, device=DEV, dtype=dtype, requires_grad=True)
                for s in ((B, C), (B, C), (C,), (C,))
            ]
            y = group_norm_film_silu(x, *p, groups=groups, backend="native")
            torch.autograd.grad(y, (x, *p), torch.randn_like(y))
            y = group_norm_film_silu(x, None, None, groups=groups, backend="native")
            torch.autograd.grad(y, (x,), torch.randn_like(y))
            y = group_norm_film_silu(x, p[0], None, p[2], None, groups=groups, backend="native")
            torch.autograd.grad(y, (x, p[0], p[2]), torch.ones_like(y))
    done("group norm; san cases done")
    return 0


# ---- benchmarks ----------------------------------------------------------------------------


def bench_all(smoke: bool) -> int:
    survey = OPENFWI.with_(nt=50) if smoke else OPENFWI
    pads = {"openfwi": survey.sponge_width, "pml": survey.pml_width, "none": none_pad(survey)}
    bytes_per_cell = {"openfwi": 12.5, "pml": 23.5, "none": 12.5}  # streaming lower bounds (fp32)
    # "none" at B = 256 (13 s on an H200, as many cell-updates/s as B = 16) and "pml" at B = 64
    # are left out to make room for the gradient at B = 256 (below)
    sweep = {"pml": (1, 16, 256, 1024), "openfwi": (16, 64, 256), "none": (16,)}
    if smoke:
        sweep = {"pml": (1, 2), "openfwi": (2,), "none": (1,)}
    for mode, batches in sweep.items():
        for B in batches:
            args = native_args(problem(models(B, seed=B).to(DEV), survey, mode, pads["none"]))
            n_pad = 70 + 2 * pads[mode]
            cells = B * survey.n_sources * survey.nt * n_pad * n_pad
            sec = timed(lambda args=args: raw_forward(args), min_time=0.5, max_reps=10)
            bench(
                f"forward_{mode}", batch=B, ms_per_call=sec * 1e3, models_per_s=B / sec,
                gcell_per_s=cells / sec / 1e9,
                tb_per_s_lower_bound=cells * bytes_per_cell[mode] / sec / 1e12,
                padded_grid=f"{n_pad}x{n_pad}",
            )  # fmt: skip
            if B <= 16:  # launch overhead: the same call replayed from a CUDA graph
                out, replay = capture(lambda args=args: raw_forward(args))
                gsec = timed(replay, min_time=0.3, max_reps=10)
                bench(
                    f"forward_{mode}_graph", batch=B, ms_per_call=gsec * 1e3, models_per_s=B / gsec
                )
            del args
            if CUDA:
                torch.cuda.empty_cache()
    # the gradient on the device and on the host, same batch: simulate + autograd backward, and
    # the fused misfit's value and gradient
    nb = 1 if smoke else 4
    per_model: dict[tuple[str, str, str], float] = {}
    v = models(nb, seed=11)
    w = torch.randn(nb, 5, survey.nt, 70, generator=torch.Generator().manual_seed(2))
    for mode in ("pml", "openfwi"):
        for d in dict.fromkeys(("cpu", DEV)):
            vd, wd = v.to(d), w.to(d)

            def fwd_bwd(vd=vd, wd=wd, mode=mode):
                x = vd.clone().requires_grad_()
                torch.autograd.grad((simulate(x, survey, boundary=mode) * wd).sum(), x)

            def fused(vd=vd, wd=wd, mode=mode):
                misfit_and_grad(vd, wd, survey, boundary=mode)

            for what, fn in (("simulate_backward", fwd_bwd), ("misfit_and_grad", fused)):
                sec = timed(fn, min_time=0.0, max_reps=1)
                per_model[what, mode, d] = sec / nb
                bench(
                    f"gradient_{what}_{mode}_{d}", batch=nb, s_per_model=sec / nb,
                    models_per_s=nb / sec,
                )  # fmt: skip
    bench_gradient_big(survey, per_model, 2 if smoke else 256)
    # GroupNorm-FiLM-SiLU at the U-Net's level shapes, forward + backward
    gn_shapes = ((4, 32, 16),) if smoke else ((256, 128, 128), (256, 512, 16))
    gn_dtypes = (torch.float32, torch.bfloat16) if CUDA else (torch.float32,)
    for dtype in gn_dtypes:
        for B, C, L in gn_shapes:
            x = torch.randn(B, C, L, device=DEV, dtype=dtype, requires_grad=True)
            sc, sh = (torch.randn(B, C, device=DEV, dtype=dtype) for _ in range(2))
            w_, b_ = (torch.randn(C, device=DEV, dtype=dtype, requires_grad=True) for _ in range(2))
            gy = torch.randn_like(x)

            def fb(backend, x=x, sc=sc, sh=sh, w_=w_, b_=b_, gy=gy):
                y = group_norm_film_silu(x, sc, sh, w_, b_, groups=8, backend=backend)
                torch.autograd.grad(y, (x, w_, b_), gy)

            tn = timed(lambda fb=fb: fb("native"), min_time=0.3, max_reps=50)
            tr = timed(lambda fb=fb: fb("reference"), min_time=0.3, max_reps=50)
            mb = x.numel() * x.element_size() * 6 / 1e6  # x, y fwd + x, gy, gx bwd + x reread
            bench(
                f"gn_fwd_bwd_{str(dtype).removeprefix('torch.')}", shape=f"{B}x{C}x{L}",
                native_us=tn * 1e6, reference_us=tr * 1e6, speedup=tr / tn,
                native_tb_per_s=mb / tn / 1e6,
            )  # fmt: skip
    return 0


def bench_gradient_big(survey: Survey, per_model: dict, big: int, limit_s: float = 10.0) -> None:
    """The "pml" gradient on the device at B = ``big`` (256: forward + backward models/s at that
    batch is a goal), one call of each kind after the small batch's warm-up. Run only when the
    small batch's seconds per model project both calls to at most ``limit_s`` (an adjoint that
    falls back to the host would take ~20 s at B = 256 and blow the bench stage's time)."""
    kinds = ("simulate_backward", "misfit_and_grad")
    projected = big * sum(per_model[k, "pml", DEV] for k in kinds)
    if projected > limit_s:
        for what in kinds:
            bench(
                f"gradient_{what}_pml_{DEV}", batch=big,
                skipped=f"projected_{projected:.0f}s_over_{limit_s:.0f}s",
            )  # fmt: skip
        return
    v = models(big, seed=12).to(DEV)
    w = torch.randn(big, survey.n_sources, survey.nt, survey.n_receivers, device=DEV)
    for what in kinds:
        sync()
        t = time.perf_counter()
        if what == "simulate_backward":
            x = v.clone().requires_grad_()
            torch.autograd.grad((simulate(x, survey, boundary="pml") * w).sum(), x)
        else:
            misfit_and_grad(v, w, survey, boundary="pml")
        sync()
        sec = time.perf_counter() - t
        bench(
            f"gradient_{what}_pml_{DEV}", batch=big, s_per_model=sec / big, models_per_s=big / sec
        )
    del v, w
    if CUDA:
        torch.cuda.empty_cache()


# ---- Nsight Compute driver -----------------------------------------------------------------


def ncu(smoke: bool) -> int:
    """One time step (one step_kernel + one record_kernel launch) per mode at B = 256 on the
    OpenFWI survey ("none" padded as for 1000 steps), then GroupNorm forward + backward at
    (256, 128, 128). Profile with: ncu --kernel-name-base demangled -k regex:ubd:: ..."""
    B = 2 if smoke else 256
    one_step = OPENFWI.with_(nt=1)
    v = models(B).to(DEV)
    for mode in MODES:
        args = native_args(problem(v, one_step, mode, none_pad(OPENFWI)))
        sync()
        raw_forward(args)
        sync()
        print(f"ncu: {mode} B={B}", flush=True)
        del args
    shape = (4, 32, 16) if smoke else (256, 128, 128)
    x = torch.randn(*shape, device=DEV, requires_grad=True)
    sc, sh = (
        torch.randn(shape[0], shape[1], device=DEV),
        torch.randn(shape[0], shape[1], device=DEV),
    )
    w = torch.randn(shape[1], device=DEV, requires_grad=True)
    gy = torch.randn_like(x)
    sync()
    y = group_norm_film_silu(x, sc, sh, w, None, groups=8, backend="native")
    torch.autograd.grad(y, (x, w), gy)
    sync()
    print(f"ncu: group norm {shape}")
    return 0


# ---- entry point ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["checks", "san", "bench", "ncu", "badargs", "badrec-raw"])
    ap.add_argument("--json", help="append one record of the results to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="small bench/ncu sizes (implied on CPU)")
    args = ap.parse_args()
    smoke = args.smoke or not CUDA
    t0 = time.time()
    rc = {
        "checks": lambda: checks() or 0,
        "san": san,
        "bench": lambda: bench_all(smoke),
        "ncu": lambda: ncu(smoke),
        "badargs": badargs,
        "badrec-raw": badrec_raw,
    }[args.mode]()
    seconds = time.time() - t0
    if args.mode == "checks":
        counts = {s: sum(r["status"] == s for r in RESULTS) for s in ("PASS", "FAIL", "GAP")}
        failed = [r["name"] for r in RESULTS if r["status"] == "FAIL"]
        print(f"SUMMARY checks on {DEV}: {counts['PASS']} passed, {counts['FAIL']} failed, "
              f"{counts['GAP']} known gaps; failed: {failed}", flush=True)  # fmt: skip
        rc = 1 if failed else 0
    if args.json and args.mode in ("checks", "bench"):
        record = {
            "mode": args.mode,
            "device": torch.cuda.get_device_name(0) if CUDA else f"cpu ({platform.processor()})",
            "smoke": smoke,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(seconds, 1),
            "versions": {"ubdiff_phys": ubdiff_phys.__version__, "torch": torch.__version__},
            "build": ubdiff_phys.build_info(),
            "results": RESULTS,
            "bench": BENCH,
        }
        append_json_record(args.json, record)
    print(f"[{args.mode} on {DEV}: {seconds:.1f} s]", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
