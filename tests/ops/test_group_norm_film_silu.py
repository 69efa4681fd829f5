"""Fused GroupNorm -> FiLM -> SiLU: native kernels against the pure-PyTorch reference (oracle),
gradcheck in float64, fallback paths, argument errors, torch.compile, and CUDA (marked)."""

import importlib

import pytest
import torch
import torch.nn.functional as F
from helpers import rel_l2, requires_cuda

from ubdiff_phys import build_info
from ubdiff_phys.ops import GroupNormFiLMSiLU, group_norm_film_silu, is_native_eligible
from ubdiff_phys.ops.group_norm_film_silu import native_ineligible_reason
from ubdiff_phys.ops.reference import group_norm_film_silu_reference

# the submodule (ubdiff_phys.ops.group_norm_film_silu as an attribute is the function)
gnmod = importlib.import_module("ubdiff_phys.ops.group_norm_film_silu")

requires_native = pytest.mark.skipif(
    not build_info()["native"], reason=f"native module unavailable: {build_info()['native_error']}"
)


def make_inputs(shape, groups, dtype=torch.float32, device="cpu", affine=True, film=True, seed=0):
    """x (offset and scaled so that the statistics matter), scale, shift, weight, bias."""
    g = torch.Generator().manual_seed(seed)
    B, C = shape[:2]

    def rnd(*s, mul=1.0, add=0.0):
        t = torch.randn(*s, generator=g, dtype=torch.float64) * mul + add
        return t.to(dtype=dtype, device=device).requires_grad_()

    x = rnd(*shape, mul=2.0, add=3.0)
    scale = rnd(B, C, mul=0.5) if film else None
    shift = rnd(B, C, mul=0.5) if film else None
    weight = rnd(C, mul=0.5, add=1.0) if affine else None
    bias = rnd(C, mul=0.5) if affine else None
    return x, scale, shift, weight, bias


def forward_and_grads(inputs, groups, backend, grad_y=None, eps=1e-5):
    y = group_norm_film_silu(*inputs, groups=groups, eps=eps, backend=backend)
    if grad_y is None:
        grad_y = torch.randn_like(y)
    wrt = [t for t in inputs if t is not None]
    grads = torch.autograd.grad(y, wrt, grad_y)
    return y, grads, grad_y


GRAD_NAMES = ("x", "scale", "shift", "weight", "bias")

SHAPES = [
    # (shape, groups): U-Net-like, L = 1, odd L, one group, one channel per group, 2-D spatial
    ((4, 32, 128), 8),
    ((3, 16, 1), 8),
    ((2, 24, 33), 8),
    ((2, 12, 7), 1),
    ((2, 8, 5), 8),
    ((2, 16, 4, 5), 4),
]


@requires_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,groups", SHAPES)
def test_native_matches_reference_forward_and_grads(shape, groups, dtype):
    inputs = make_inputs(shape, groups, dtype)
    assert is_native_eligible(*inputs)
    y, grads, gy = forward_and_grads(inputs, groups, "native")
    y_ref, grads_ref, _ = forward_and_grads(inputs, groups, "reference", grad_y=gy)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(y, y_ref, **tol)
    assert len(grads) == 5
    for name, g, g_ref in zip(GRAD_NAMES, grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, **tol, msg=lambda m, n=name: f"grad_{n}: {m}")


@requires_native
@pytest.mark.parametrize("affine,film", [(False, True), (True, False), (False, False)])
def test_native_optional_affine_and_film(affine, film):
    inputs = make_inputs((3, 16, 9), 4, torch.float64, affine=affine, film=film)
    y, grads, gy = forward_and_grads(inputs, 4, "native")
    y_ref, grads_ref, _ = forward_and_grads(inputs, 4, "reference", grad_y=gy)
    torch.testing.assert_close(y, y_ref, rtol=1e-11, atol=1e-11)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-11, atol=1e-11)


@requires_native
def test_film_accepts_trailing_singleton_axes_and_noncontiguous_views():
    x, scale, shift, weight, bias = make_inputs((2, 16, 8), 4, torch.float64)
    emb = torch.randn(2, 32, dtype=torch.float64, requires_grad=True)
    s, t = emb.chunk(2, dim=1)  # non-contiguous (B, C) views, as a time-embedding MLP gives them
    y = group_norm_film_silu(x, s[..., None], t, weight, bias, groups=4, backend="native")
    y_ref = group_norm_film_silu_reference(x, s, t, weight, bias, groups=4)
    torch.testing.assert_close(y, y_ref, rtol=1e-11, atol=1e-11)
    g = torch.autograd.grad(y.square().sum(), emb)[0]
    g_ref = torch.autograd.grad(y_ref.square().sum(), emb)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)


@requires_native
def test_large_offset_statistics_float32():
    # data far from zero relative to its spread (offset 1e3, std 2e-2): the shifted sums and the
    # centring before the affine map keep float32 at least as accurate as torch's own ops
    x, scale, shift, weight, bias = make_inputs((2, 16, 64), 4, torch.float64)
    args32 = [t.detach().float() for t in (x * 1e-2 + 1e3, scale, shift, weight, bias)]
    exact = group_norm_film_silu_reference(*[t.double() for t in args32], groups=4)
    native = group_norm_film_silu(*args32, groups=4, backend="native")
    torch32 = group_norm_film_silu_reference(*args32, groups=4)
    assert rel_l2(native, exact) < 1.5e-3  # float32 mean: ulp(1e3) / std ~ 3e-3
    assert rel_l2(native, exact) <= rel_l2(torch32, exact)


@requires_native
@pytest.mark.parametrize(
    "shape,groups,affine,film",
    [((2, 8, 3), 2, True, True), ((2, 4, 1), 4, True, True), ((1, 6, 5), 3, False, True)],
)
def test_gradcheck_native_float64(shape, groups, affine, film, device):
    inputs = make_inputs(shape, groups, torch.float64, device=device, affine=affine, film=film)
    present = [t for t in inputs if t is not None]

    def fn(*args):
        it = iter(args)
        full = [next(it) if t is not None else None for t in inputs]
        return group_norm_film_silu(*full, groups=groups, backend="native")

    assert torch.autograd.gradcheck(fn, present, eps=1e-6, atol=1e-7)


@requires_native
def test_custom_op_registration_opcheck_and_gradcheck():
    # the custom_op door (what torch.compile traces); eager calls take the autograd.Function door
    inputs = make_inputs((2, 8, 5), 2, torch.float64)
    op = torch.ops.ubdiff_phys.group_norm_film_silu_forward.default
    torch.library.opcheck(op, (*inputs, 2, 1e-5))
    assert torch.autograd.gradcheck(lambda *a: op(*a, 2, 1e-5)[0], inputs, atol=1e-7)
    no_affine = (*inputs[:3], None, None, 2, 1e-5)
    torch.library.opcheck(op, no_affine)


@requires_native
def test_torch_compile_fullgraph_cpu():
    inputs = make_inputs((2, 16, 8), 4, torch.float32)

    def block(x, scale, shift, weight, bias):
        return group_norm_film_silu(2 * x, scale, shift, weight, bias, groups=4).sum(-1)

    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    out = compiled(*inputs)
    ref = block(*inputs)
    torch.testing.assert_close(out, ref)
    g = torch.autograd.grad(out.sum(), inputs)
    g_ref = torch.autograd.grad(ref.sum(), inputs)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b)


# ---- fallback paths ------------------------------------------------------------------------


@pytest.fixture
def native_forbidden(monkeypatch):
    """Make any call into the native op fail, to prove a path took the reference."""

    def boom(*args, **kwargs):
        raise AssertionError("the native op was called")

    monkeypatch.setattr(gnmod, "_forward_op", boom)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fallback_unsupported_dtype_on_cpu(dtype, native_forbidden):
    inputs = make_inputs((2, 8, 6), 2, dtype)
    reason = native_ineligible_reason(*inputs)
    assert reason is not None and str(dtype) in reason
    y = group_norm_film_silu(*inputs, groups=2)
    torch.testing.assert_close(y, group_norm_film_silu_reference(*inputs, groups=2))
    with pytest.raises(RuntimeError, match="backend='native'"):
        group_norm_film_silu(*inputs, groups=2, backend="native")


def test_fallback_noncontiguous_x(native_forbidden):
    x, scale, shift, weight, bias = make_inputs((2, 6, 8), 2, torch.float64)
    xt = x.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert not xt.is_contiguous()
    assert native_ineligible_reason(xt) == "x is not contiguous"
    y = group_norm_film_silu(xt, scale, shift, weight, bias, groups=2)
    torch.testing.assert_close(
        y, group_norm_film_silu_reference(xt, scale, shift, weight, bias, groups=2)
    )
    y.sum().backward()  # the reference path is differentiable
    assert xt.grad is not None


def test_fallback_mixed_dtypes(native_forbidden):
    x, scale, shift, weight, bias = make_inputs((2, 6, 8), 2, torch.float32)
    reason = native_ineligible_reason(x, scale.double(), shift, weight, bias)
    assert reason is not None and reason.startswith("scale")
    group_norm_film_silu(x, scale.double(), shift, weight, bias, groups=2)


def test_fallback_no_native_build(monkeypatch, native_forbidden):
    monkeypatch.setattr(gnmod, "_C", None)
    inputs = make_inputs((2, 8, 6), 2, torch.float32)
    assert "native module is unavailable" in native_ineligible_reason(*inputs)
    y = group_norm_film_silu(*inputs, groups=2)
    torch.testing.assert_close(y, group_norm_film_silu_reference(*inputs, groups=2))
    with pytest.raises(RuntimeError, match="unavailable"):
        group_norm_film_silu(*inputs, groups=2, backend="native")


def test_fallback_empty_input(native_forbidden):
    x = torch.empty(0, 8, 5)
    assert native_ineligible_reason(x) == "x is empty"
    assert group_norm_film_silu(x, None, None, groups=2).shape == (0, 8, 5)


def test_backend_reference_never_calls_native(native_forbidden):
    inputs = make_inputs((2, 8, 6), 2, torch.float32)
    group_norm_film_silu(*inputs, groups=2, backend="reference")


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(groups=3), ValueError, r"channels \(8\) must be divisible by groups \(3\)"),
        (dict(groups=0), ValueError, "positive int"),
        (dict(groups=2.0), ValueError, "positive int"),
        (dict(groups=2, backend="fast"), ValueError, "backend must be one of"),
        (dict(groups=2, eps=-1.0), ValueError, "eps"),
        (dict(groups=2, scale=torch.zeros(2, 7)), ValueError, r"scale must have shape \(B, C\)"),
        (dict(groups=2, shift=torch.zeros(3, 8)), ValueError, r"shift must have shape"),
        (dict(groups=2, scale=torch.zeros(2, 8, 2)), ValueError, r"scale must have shape"),
        (dict(groups=2, weight=torch.ones(4)), ValueError, r"weight must have shape \(C,\)"),
        (dict(groups=2, bias=torch.ones(8, 1)), ValueError, r"bias must have shape \(C,\)"),
        (dict(groups=2, x=torch.zeros(8)), ValueError, r"\(B, C, \*spatial\)"),
        (dict(groups=2, x=torch.zeros(2, 8, 3, dtype=torch.int64)), TypeError, "floating"),
        (dict(groups=2, weight=[1.0] * 8), TypeError, "weight must be a tensor"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, exc, match):
    args = dict(x=torch.zeros(2, 8, 3), scale=None, shift=None)
    args.update(kwargs)
    x, scale, shift = args.pop("x"), args.pop("scale"), args.pop("shift")
    with pytest.raises(exc, match=match):
        group_norm_film_silu(x, scale, shift, **args)


@requires_native
def test_native_entry_points_check_their_arguments():
    C = gnmod._C
    x = torch.zeros(2, 6, 3)
    p = C.GroupNormFiLMSiLUParams()
    p.batch, p.channels, p.length, p.groups = 2, 6, 3, 4
    p.x = x.data_ptr()
    with pytest.raises(ValueError, match="not divisible by groups"):
        C.group_norm_film_silu_forward_cpu(p)
    p.groups = 3
    with pytest.raises(ValueError, match="x, mean and rstd are needed"):
        C.group_norm_film_silu_forward_cpu(p)
    p.dtype = C.GnDType.float16
    p.y = p.mean = p.rstd = x.data_ptr()
    with pytest.raises(ValueError, match="float32 or float64"):
        C.group_norm_film_silu_forward_cpu(p)
    if not build_info()["cuda"]:
        with pytest.raises(RuntimeError, match="no CUDA kernels"):
            C.group_norm_film_silu_forward_cuda(p)


# ---- nn.Module -----------------------------------------------------------------------------


def test_module_matches_groupnorm_film_silu():
    torch.manual_seed(0)
    mod = GroupNormFiLMSiLU(16, groups=4)
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.uniform_(-0.5, 0.5)
    gn = torch.nn.GroupNorm(4, 16)
    gn.load_state_dict(mod.state_dict())
    x, scale, shift = torch.randn(3, 16, 10), torch.randn(3, 16, 1), torch.randn(3, 16, 1)
    torch.testing.assert_close(mod(x, scale, shift), F.silu(gn(x) * (1 + scale) + shift))
    torch.testing.assert_close(mod(x), F.silu(gn(x)))
    assert "groups=4" in repr(mod)
    bare = GroupNormFiLMSiLU(16, groups=4, affine=False)
    assert bare.weight is None and len(list(bare.parameters())) == 0
    with pytest.raises(ValueError, match="divisible"):
        GroupNormFiLMSiLU(10, groups=4)


# ---- CUDA ----------------------------------------------------------------------------------

CUDA_TOL = {
    # relative L2 error bounds vs the reference evaluated in float64 on the same (rounded) inputs
    torch.float32: 1e-5,
    torch.float64: 1e-12,
    torch.float16: 2e-3,
    torch.bfloat16: 1.5e-2,
}


@requires_cuda
@pytest.mark.parametrize("dtype", list(CUDA_TOL))
@pytest.mark.parametrize(
    "shape,groups",
    [((16, 128, 128), 8), ((8, 512, 16), 8), ((4, 256, 32), 8), ((3, 64, 1), 8), ((2, 24, 33), 4)],
)
def test_cuda_matches_reference(shape, groups, dtype):
    inputs = make_inputs(shape, groups, dtype, device="cuda")
    assert is_native_eligible(*inputs)
    y, grads, gy = forward_and_grads(inputs, groups, "native")
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]
    y_ref, grads_ref, _ = forward_and_grads(inputs64, groups, "reference", grad_y=gy.double())
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    assert rel_l2(y.detach(), y_ref.detach()) < CUDA_TOL[dtype]
    for name, g, g_ref in zip(GRAD_NAMES, grads, grads_ref, strict=True):
        assert rel_l2(g, g_ref) < CUDA_TOL[dtype], name


@requires_cuda
def test_cuda_without_affine_and_film_and_on_a_side_stream():
    inputs = make_inputs((4, 64, 16), 8, torch.float32, device="cuda", affine=False, film=False)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y, grads, gy = forward_and_grads(inputs, 8, "native")
    torch.cuda.synchronize()
    y_ref, grads_ref, _ = forward_and_grads(inputs, 8, "reference", grad_y=gy)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], grads_ref[0], rtol=1e-4, atol=1e-5)
