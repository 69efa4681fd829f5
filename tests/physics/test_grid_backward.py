"""The grid-parallel backward (the CUDA adjoint's schedule and per-cell code): on every machine its
host twin against the CPU adjoint (itself tested against autograd through the reference, a
gradcheck and the dot-product test in test_physics_gradient.py); on a GPU the CUDA kernel against
the CPU adjoint, visibly skipped elsewhere."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import requires_cuda, tiny_survey

import ubdiff_phys as up
from ubdiff_phys.ops import acoustic_grid
from ubdiff_phys.ops.acoustic_grid import grid_backward
from ubdiff_phys.ops.acoustic_native import _call_native, native_args
from ubdiff_phys.physics import Survey
from ubdiff_phys.physics.forward import prepare_problem

BOUNDARY_KW = {"openfwi": {}, "pml": {}, "none": {"pad": 7}}


def survey(nt: int = 60) -> Survey:
    """The gradient tests' tiny odd survey, with a receiver repeated and dx != dz."""
    return tiny_survey(nt=nt, dx=12.0, repeat_receiver=True)


def velocity(s: Survey, b: int = 3, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2000 + 1500 * torch.rand(b, s.nz, s.nx, generator=g, dtype=dtype)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


def problem_args(v: torch.Tensor, s: Survey, boundary: str) -> tuple:
    return native_args(prepare_problem(v, s, boundary=boundary, **BOUNDARY_KW[boundary]))


def float32_oracle(args64: tuple, g64: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The float64 CPU gradient (the truth for float32 runs) and the CPU float32 gradient's error
    against it: float32 kernels are held to a multiple of that error (their rounding differs from
    the CPU's: FMA contraction and summation order), not to a guessed constant."""
    truth = _call_native(args64, kind="backward", grad=g64)
    args32 = tuple(
        a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args64
    )
    cpu32 = _call_native(args32, kind="backward", grad=g64.float())
    return truth, rel(cpu32, truth)


def backward_case(boundary: str) -> tuple[Survey, tuple, torch.Tensor, torch.Tensor]:
    """(survey, float64 problem args, gathers' gradient, the CPU adjoint's gradient)."""
    s = survey()
    args = problem_args(velocity(s), s, boundary)
    g = torch.randn(3, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    return s, args, g, _call_native(args, kind="backward", grad=g)


@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
def test_host_twin_matches_cpu_adjoint(boundary: str) -> None:
    s, args, g, cpu = backward_case(boundary)
    twin = grid_backward(args, grad=g, host=True)
    assert twin.dtype == torch.float64 and twin.shape == cpu.shape
    assert rel(twin, cpu) <= 1e-12
    # float32 (measured: 9.8e-7 against the float64 truth; the CPU's float32: 8.3e-7)
    truth, cpu_err = float32_oracle(args, g)
    args32 = problem_args(velocity(s).float(), s, boundary)
    twin32 = grid_backward(args32, grad=g.float(), host=True)
    assert twin32.dtype == torch.float32
    assert rel(twin32, truth) <= 3 * cpu_err + 1e-7


@pytest.mark.parametrize("boundary", ["openfwi", "pml"])
@pytest.mark.parametrize("bounds", [None, (-0.5, 1.5)])
def test_host_twin_misfit_backward_and_sums(boundary: str, bounds) -> None:
    s = survey()
    observed = up.physics.simulate(velocity(s, seed=1), s, boundary=boundary)
    args = problem_args(velocity(s, seed=2), s, boundary)
    weights = torch.rand(3, s.n_sources, 4, dtype=torch.float64)
    cpu_sums = torch.zeros(3, s.n_sources, 4, dtype=torch.float64)
    cpu = _call_native(
        args, kind="misfit_backward", observed=observed, bounds=bounds, grad=weights, sums=cpu_sums
    )
    sums = torch.zeros_like(cpu_sums)
    twin = grid_backward(args, observed=observed, bounds=bounds, grad=weights, sums=sums, host=True)
    assert rel(twin, cpu) <= 1e-12
    torch.testing.assert_close(sums, cpu_sums, rtol=1e-12, atol=0)


def test_host_twin_chunks_give_the_same_gradient() -> None:
    s = survey()
    args = problem_args(velocity(s, b=5), s, "pml")
    g = torch.randn(5, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    whole = grid_backward(args, grad=g, host=True)
    per_model = acoustic_grid.grid_workspace_elems(up._native.native(), args, 1, False) * 8
    chunked = grid_backward(args, grad=g, host=True, max_bytes=2 * per_model)
    assert torch.equal(whole, chunked)


def test_host_twin_checkpoint_interval_longer_than_a_segment() -> None:
    # nt not a multiple of k (a short last segment), and fewer steps than one segment
    for nt in (61, 5):
        s = survey(nt=nt)
        args = problem_args(velocity(s), s, "pml")
        g = torch.randn(3, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
        cpu = _call_native(args, kind="backward", grad=g)
        assert float(cpu.abs().max()) > 0
        assert rel(grid_backward(args, grad=g, host=True), cpu) <= 1e-12


def test_no_shot_or_no_step_gives_a_zero_gradient() -> None:
    """Degenerate problems (only the raw op can pass them): both backwards write zeros."""
    s = survey()
    base = list(problem_args(velocity(s), s, "pml"))
    no_shot, no_step = list(base), list(base)
    no_shot[9] = base[9][:0]
    no_step[11] = base[11][:0]
    for args, shots, nt in ((no_shot, 0, s.nt), (no_step, s.n_sources, 0)):
        g = torch.zeros(3, shots, nt, s.n_receivers, dtype=torch.float64)
        for out in (
            grid_backward(tuple(args), grad=g, host=True),
            _call_native(tuple(args), kind="backward", grad=g),
        ):
            assert out.shape == (3, s.nz, s.nx) and not out.any()


def test_workspace_size_formula() -> None:
    """The workspace holds what the header comment of acoustic_adjoint_grid.h lists."""
    s = survey()
    C = up._native.native()
    for boundary, n_state, buffers, n_adj in (("pml", 6, 8, 12), ("openfwi", 2, 2, 3)):
        args = problem_args(velocity(s, b=1), s, boundary)
        pad = args[12]
        nz, nx = s.nz + 2 * pad, s.nx + 2 * pad
        field = s.n_sources * (nz + 4) * (nx + 4)
        k = math.ceil(math.sqrt(s.nt * n_state))
        n_ckpt = -(-s.nt // k)
        per_step = s.n_sources * nz * nx
        expect = (buffers + n_ckpt * n_state + n_adj) * field + (k + 1) * per_step
        assert acoustic_grid.grid_workspace_elems(C, args, 1, False) == expect
        samples = s.n_sources * s.nt * s.n_receivers
        assert acoustic_grid.grid_workspace_elems(C, args, 1, True) == expect + 2 * samples


# ---- on a GPU ---------------------------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
def test_cuda_backward_matches_cpu(boundary: str) -> None:
    s, args, g, cpu = backward_case(boundary)
    gpu_args = tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)
    gpu = grid_backward(gpu_args, grad=g.cuda())
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float64
    assert rel(gpu, cpu) <= 1e-12
    assert torch.equal(grid_backward(gpu_args, grad=g.cuda()), gpu)  # no atomics: deterministic
    truth, cpu_err = float32_oracle(args, g)
    args32 = problem_args(velocity(s).float().cuda(), s, boundary)
    gpu32 = grid_backward(args32, grad=g.float().cuda())
    assert gpu32.dtype == torch.float32
    assert rel(gpu32, truth) <= 3 * cpu_err + 1e-7, (rel(gpu32, truth), cpu_err)


@requires_cuda
@pytest.mark.parametrize("bounds", [None, (-0.5, 1.5)])
def test_cuda_misfit_value_and_grad_matches_cpu(bounds) -> None:
    s = survey()
    observed = up.physics.simulate(velocity(s, seed=1), s, boundary="pml")
    v = velocity(s, seed=2)
    f_cpu, g_cpu = up.physics.misfit_and_grad(v, observed, s, boundary="pml", normalizer=bounds)
    f_gpu, g_gpu = up.physics.misfit_and_grad(
        v.cuda(), observed.cuda(), s, boundary="pml", normalizer=bounds
    )
    torch.testing.assert_close(f_gpu.cpu(), f_cpu, rtol=1e-12, atol=0)
    assert rel(g_gpu, g_cpu) <= 1e-12


@requires_cuda
def test_cuda_autograd_through_simulate_on_the_openfwi_survey() -> None:
    s = Survey.openfwi()
    v = velocity(s, b=2, seed=7, dtype=torch.float32)
    w = torch.randn(2, s.n_sources, s.nt, s.n_receivers)
    grads = []
    for x in (v.double(), v, v.cuda()):
        x = x.clone().requires_grad_()
        (g,) = torch.autograd.grad((up.physics.simulate(x, s) * w.to(x)).sum(), x)
        grads.append(g)
    truth, cpu32, gpu32 = grads
    # float32 over 1000 steps: the CPU's float32 gradient is ~1e-5 from the float64 one (measured
    # with the host twin of the CUDA code: 1.0e-5 vs 9.9e-6 for the CPU adjoint)
    assert rel(gpu32, truth) <= 3 * rel(cpu32, truth) + 1e-7


@requires_cuda
def test_cuda_backward_chunks_give_the_same_gradient() -> None:
    s = survey()
    args = tuple(
        a.cuda() if isinstance(a, torch.Tensor) else a
        for a in problem_args(velocity(s, b=5), s, "pml")
    )
    g = torch.randn(5, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64, device="cuda")
    whole = grid_backward(args, grad=g)
    per_model = acoustic_grid.grid_workspace_elems(up._native.native(), args, 1, False) * 8
    assert torch.equal(grid_backward(args, grad=g, max_bytes=2 * per_model), whole)
