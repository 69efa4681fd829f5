"""The native adjoint of ``simulate`` and ``misfit`` against oracles: autograd through the
pure-PyTorch reference (float64, every boundary mode), gradcheck, the dot-product test of the
linearised operator (forward-mode through the reference), finite differences of the misfit."""

from __future__ import annotations

import pytest
import torch
from helpers import requires_cuda, tiny_survey

import ubdiff_phys as up
from ubdiff_phys.ops import acoustic_native
from ubdiff_phys.ops.acoustic import acoustic_forward
from ubdiff_phys.physics import Survey
from ubdiff_phys.physics.forward import prepare_problem

BOUNDARY_KW = {"openfwi": {}, "pml": {}, "none": {"pad": 7}}


def random_velocity(survey: Survey, b: int = 2, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return 2000 + 1500 * torch.rand(b, survey.nz, survey.nx, generator=g, dtype=dtype)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
def test_native_gradient_matches_autograd_through_reference(boundary: str) -> None:
    s = tiny_survey()
    v = random_velocity(s).requires_grad_()
    weights = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    kw = BOUNDARY_KW[boundary]
    (g_native,) = torch.autograd.grad(
        (up.physics.simulate(v, s, boundary=boundary, **kw) * weights).sum(), v
    )
    ref = up.physics.simulate(v, s, boundary=boundary, backend="reference", **kw)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), v)
    assert rel(g_native, g_ref) <= 1e-8


@pytest.mark.parametrize("nx", [30, 38, 43])
def test_pml_gradient_matches_reference_with_an_interior(nx: int) -> None:
    """Grids wide enough for a C-PML-free interior between the x-strips (which the kernels cut at
    multiples of 8 columns, widening the strips into the model): padded widths 40, 48, 53."""
    s = tiny_survey(nx=nx, nt=50)
    v = random_velocity(s, seed=nx).requires_grad_()
    weights = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    (g_native,) = torch.autograd.grad(
        (up.physics.simulate(v, s, boundary="pml") * weights).sum(), v
    )
    ref = up.physics.simulate(v, s, boundary="pml", backend="reference")
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), v)
    assert rel(g_native, g_ref) <= 1e-8


@pytest.mark.parametrize("every", [1, 7, 60, 1000])
def test_checkpoint_interval_does_not_change_the_gradient(every: int) -> None:
    s = tiny_survey()
    v = random_velocity(s, seed=1)
    args = acoustic_native.native_args(prepare_problem(v, s, boundary="pml"))
    grad_out = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    auto = acoustic_native._call_native(args, kind="backward", grad=grad_out)
    chosen = acoustic_native._call_native(
        args, kind="backward", grad=grad_out, checkpoint_every=every
    )
    torch.testing.assert_close(chosen, auto, rtol=0, atol=0)  # exact recomputation


@pytest.mark.parametrize("every", [1, 7, 60, 1000])
@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
def test_states_stored_by_the_forward_give_the_same_gradient(boundary: str, every: int) -> None:
    """The forward for a gradient keeps its states; the backward restarting from them agrees with
    the backward that re-runs the forward itself (the stored states come from the forward kernel,
    the re-run from the backward's own stepping: equal to float64 rounding)."""
    s = tiny_survey()
    v = random_velocity(s, seed=2)
    args = acoustic_native.native_args(
        prepare_problem(v, s, boundary=boundary, **BOUNDARY_KW[boundary])
    )
    grad_out = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    gathers, states = acoustic_native._call_native(
        args, kind="forward_ckpt", checkpoint_every=every
    )
    assert states.numel() == acoustic_native.checkpoint_numel(args, every)
    torch.testing.assert_close(gathers, acoustic_native._call_native(args, kind="forward"))
    stored = acoustic_native._call_native(
        args, kind="backward", grad=grad_out, checkpoints=states, checkpoint_every=every
    )
    recomputed = acoustic_native._call_native(args, kind="backward", grad=grad_out)
    assert rel(stored, recomputed) <= 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gathers_for_a_gradient_match_the_plain_forward(dtype: torch.dtype) -> None:
    """simulate() with requires_grad runs the CPU forward that keeps its states: same kernel, so
    the same gathers; its backward matches the backward that keeps nothing."""
    s = tiny_survey(nz=21, nx=17, nt=80)
    v = random_velocity(s, seed=3, dtype=dtype)
    for boundary in ("openfwi", "pml"):
        plain = up.physics.simulate(v, s, boundary=boundary)
        x = v.clone().requires_grad_()
        assert acoustic_native.keeps_states(
            acoustic_native.native_args(prepare_problem(x, s, boundary=boundary))
        )
        sim = up.physics.simulate(x, s, boundary=boundary)
        torch.testing.assert_close(sim.detach(), plain, rtol=0, atol=0)
        weights = torch.randn_like(plain)
        (g,) = torch.autograd.grad((sim * weights).sum(), x)
        args = acoustic_native.native_args(prepare_problem(x.detach(), s, boundary=boundary))
        vdt2 = args[0].clone().requires_grad_()
        out = torch.ops.ubdiff_phys.acoustic_forward(vdt2, *args[1:])  # keeps no states
        (g_vdt2,) = torch.autograd.grad((out * weights).sum(), vdt2)
        (g_ref,) = torch.autograd.grad(
            (up.physics.simulate(x, s, boundary=boundary) * weights).sum(), x
        )
        torch.testing.assert_close(g, g_ref, rtol=0, atol=0)  # deterministic
        assert g_vdt2.abs().sum() > 0


def test_states_kept_only_where_they_are_small() -> None:
    """On the OpenFWI survey (B = 4, float32) the C-PML grid's states are kept (1.2 MB a shot),
    the 310 x 310 sponge grid's are not (6.3 MB a shot): its backward recomputes them."""
    s = Survey.openfwi()
    v = torch.full((4, s.nz, s.nx), 3000.0, requires_grad=True)
    kept = {
        b: acoustic_native.keeps_states(
            acoustic_native.native_args(prepare_problem(v, s, boundary=b))
        )
        for b in ("pml", "openfwi")
    }
    assert kept == {"pml": True, "openfwi": False}
    with torch.no_grad():
        args = acoustic_native.native_args(prepare_problem(v, s, boundary="pml"))
        assert not acoustic_native.keeps_states(args)


@pytest.mark.parametrize("boundary", ["none", "pml"])
def test_gradcheck_tiny(boundary: str) -> None:
    """Finite differences see the boundary profiles move with the velocity (the OpenFWI sponge
    with v_min, the C-PML with v_max), the gradient holds them fixed as the reference does: so the
    C-PML is pinned to a fixed velocity and "openfwi" is covered by the reference comparison."""
    s = Survey(
        nz=6,
        nx=5,
        dz=10.0,
        dx=10.0,
        dt=0.001,
        nt=25,
        sources=((1, 2),),
        receivers=((1, 0), (4, 4)),
        frequency=25.0,
        sponge_width=4,
        pml_width=3,
        pml_max_velocity=4000.0,
    )
    v = random_velocity(s, b=1, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: up.physics.simulate(x, s, boundary=boundary, **BOUNDARY_KW[boundary]),
        (v,),
        eps=1e-3,
        atol=1e-7,
    )


@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
def test_dot_product_of_the_linearised_operator(boundary: str) -> None:
    """<J dv, g> with J dv by forward mode through the reference == <dv, J^T g> natively."""
    s = tiny_survey()
    v = random_velocity(s, seed=3)
    dv = torch.randn_like(v)
    g = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    kw = BOUNDARY_KW[boundary]

    def f(x):
        return up.physics.simulate(x, s, boundary=boundary, backend="reference", **kw)

    _, jdv = torch.func.jvp(f, (v,), (dv,))
    vg = v.clone().requires_grad_()
    (jtg,) = torch.autograd.grad(
        (up.physics.simulate(vg, s, boundary=boundary, **kw) * g).sum(), vg
    )
    lhs, rhs = float((jdv * g).sum()), float((dv * jtg).sum())
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


@pytest.mark.parametrize("normalised", [False, True])
def test_misfit_value_and_gradient(normalised: bool) -> None:
    # the C-PML profile pinned to a fixed velocity, so that it does not move with v_max under the
    # finite difference (the gradient holds the boundary profiles fixed)
    s = tiny_survey(pml_max_velocity=4000.0)
    v_true = random_velocity(s, seed=4)
    observed = up.physics.simulate(v_true, s, boundary="pml")
    v = random_velocity(s, seed=5).requires_grad_()
    bounds = (-0.5, 1.5) if normalised else None
    f = up.physics.misfit(v, observed, s, boundary="pml", normalizer=bounds, reduction="none")
    sim = up.physics.simulate(v.detach(), s, boundary="pml", backend="reference")
    if normalised:
        n = up.ops.reference.acoustic.openfwi_normalise
        expect = 0.5 * (n(sim, *bounds) - n(observed, *bounds)).square().sum(dim=(1, 2, 3))
    else:
        expect = 0.5 * (sim - observed).square().sum(dim=(1, 2, 3))
    torch.testing.assert_close(f.detach(), expect, rtol=1e-12, atol=0)
    # gradient vs a central finite difference along a random direction
    (grad,) = torch.autograd.grad(f.sum(), v)
    d = torch.randn_like(v)
    h = 1e-3
    fp = up.physics.misfit(v.detach() + h * d, observed, s, boundary="pml", normalizer=bounds)
    fm = up.physics.misfit(v.detach() - h * d, observed, s, boundary="pml", normalizer=bounds)
    fd = float(fp - fm) / (2 * h)
    assert abs(float((grad * d).sum()) - fd) <= 1e-6 * abs(fd)
    # the fused value-and-gradient call agrees with autograd
    f2, g2 = up.physics.misfit_and_grad(v.detach(), observed, s, boundary="pml", normalizer=bounds)
    torch.testing.assert_close(f2, f.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(g2, grad, rtol=1e-10, atol=0)


def test_float32_gradient_close_to_float64() -> None:
    s = tiny_survey()
    v = random_velocity(s, seed=6)
    w = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    grads = []
    for dtype in (torch.float64, torch.float32):
        x = v.to(dtype).requires_grad_()
        (g,) = torch.autograd.grad((up.physics.simulate(x, s) * w.to(dtype)).sum(), x)
        grads.append(g.double())
    assert rel(grads[1], grads[0]) < 1e-4


def test_reference_misfit_backend_matches() -> None:
    s = tiny_survey()
    obs = up.physics.simulate(random_velocity(s, seed=7), s)
    v = random_velocity(s, seed=8).requires_grad_()
    pr = prepare_problem(v, s, boundary="openfwi")
    sums = acoustic_forward(pr, observed=obs)
    (g,) = torch.autograd.grad(sums[..., 0].sum(), v)
    pr = prepare_problem(v, s, boundary="openfwi")
    sums_r = acoustic_forward(pr, observed=obs, backend="reference")
    (g_r,) = torch.autograd.grad(sums_r[..., 0].sum(), v)
    assert rel(g, g_r) <= 1e-8


def test_opcheck_and_compile() -> None:
    s = tiny_survey(nt=20)
    v = random_velocity(s, seed=9)
    args = list(acoustic_native.native_args(prepare_problem(v, s, boundary="pml")))
    args[0] = args[0].clone().requires_grad_()
    torch.library.opcheck(torch.ops.ubdiff_phys.acoustic_forward.default, tuple(args))

    def f(vdt2):
        return torch.ops.ubdiff_phys.acoustic_forward(vdt2, *args[1:]).square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    (g_c,) = torch.autograd.grad(compiled(args[0]), args[0])
    (g_e,) = torch.autograd.grad(f(args[0]), args[0])
    torch.testing.assert_close(g_c, g_e)
    # the forward that keeps its states for the backward (what simulate() runs under autograd)
    every = acoustic_native.checkpoint_interval(tuple(args))
    torch.library.opcheck(
        torch.ops.ubdiff_phys.acoustic_forward_checkpointed.default, (*args, every)
    )

    def g(vdt2):
        out, _ = torch.ops.ubdiff_phys.acoustic_forward_checkpointed(vdt2, *args[1:], every)
        return out.square().sum()

    (g_c,) = torch.autograd.grad(
        torch.compile(g, fullgraph=True, backend="aot_eager")(args[0]), args[0]
    )
    torch.testing.assert_close(g_c, g_e)  # the same gradient as the op that keeps no states


def test_misfit_rejects_bad_observed() -> None:
    s = tiny_survey()
    v = random_velocity(s)
    good = torch.zeros(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    with pytest.raises(ValueError, match="shape"):
        up.physics.misfit(v, good[:, :1], s)
    bad = good.clone()
    bad[0, 0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        up.physics.misfit(v, bad, s)
    with pytest.raises(ValueError, match="reduction"):
        up.physics.misfit(v, good, s, reduction="max")
    with pytest.raises(ValueError, match="log bounds"):
        up.physics.misfit(v, good, s, normalizer=(0.0, float("inf")))


@requires_cuda
def test_cuda_gradient_matches_cpu() -> None:
    s = tiny_survey()
    v = random_velocity(s)
    w = torch.randn(2, s.n_sources, s.nt, s.n_receivers, dtype=torch.float64)
    grads = []
    for device in ("cpu", "cuda"):
        x = v.to(device).requires_grad_()
        (g,) = torch.autograd.grad((up.physics.simulate(x, s) * w.to(device)).sum(), x)
        grads.append(g.cpu())
    assert rel(grads[1], grads[0]) <= 1e-10
