"""Fused GroupNorm -> FiLM scale/shift -> SiLU, the normalisation of the latent U-Net's blocks.

``y = silu(group_norm(x; groups, weight, bias, eps) * (1 + scale) + shift)``, forward and backward
in one native kernel each (C++/OpenMP on CPU: float32/float64; CUDA: float32/float64/float16/
bfloat16 with float accumulation). The pure-PyTorch twin
:func:`~ubdiff_phys.ops.reference.group_norm_film_silu_reference` defines the semantics and is used
whenever the native path is not eligible (see :func:`native_ineligible_reason`).

Registration, two doors to the same native forward/backward functions:
- ``torch.library.custom_op`` s ``ubdiff_phys::group_norm_film_silu_forward`` / ``..._backward``
  with fake (meta) kernels and ``register_autograd``: taken while ``torch.compile`` traces
  (``torch.compiler.is_compiling()``), so ``fullgraph=True`` sees one opaque, differentiable node.
- a ``torch.autograd.Function`` (:class:`_GroupNormFiLMSiLUFunction`): taken in eager mode. The
  custom_op dispatcher costs ~55 us more per forward + backward (measured: 108 us vs 54 us at a
  tiny shape on one CPU thread, ``benchmarks/bench_unet_block.py --overhead``), as much as the
  whole eager reference at that size and several times a GPU kernel at the U-Net's shapes, so eager
  calls skip it.
Double backward (grad of grad) is not implemented by the native op; use backend="reference".
"""

# No `from __future__ import annotations`: torch.library.custom_op reads the annotations to infer
# the operator schema.
import torch
from torch import Tensor, nn

from ubdiff_phys import _native
from ubdiff_phys.ops.reference.group_norm_film_silu import group_norm_film_silu_reference

__all__ = [
    "GroupNormFiLMSiLU",
    "group_norm_film_silu",
    "is_native_eligible",
    "native_ineligible_reason",
]

BACKENDS = ("auto", "native", "reference")
NATIVE_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}

# Resolved once at import (never raises): the compiled module, or None with the reason recorded in
# ubdiff_phys.build_info(). Module-level constants keep the eligibility check traceable by dynamo.
_C = _native.native() if _native.native_available() else None
_CUDA_BUILT = bool(_C is not None and _C.cuda_built())


def _dtype_enum(dtype: torch.dtype):
    return {
        torch.float32: _C.GnDType.float32,
        torch.float64: _C.GnDType.float64,
        torch.float16: _C.GnDType.float16,
        torch.bfloat16: _C.GnDType.bfloat16,
    }[dtype]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _ptr(t: Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _params(x, scale, shift, weight, bias, groups, eps):
    p = _C.GroupNormFiLMSiLUParams()
    p.batch, p.channels = x.shape[0], x.shape[1]
    p.length = x.numel() // (x.shape[0] * x.shape[1])
    p.groups, p.eps = groups, eps
    p.dtype = _dtype_enum(x.dtype)
    p.x, p.scale, p.shift = x.data_ptr(), _ptr(scale), _ptr(shift)
    p.weight, p.bias = _ptr(weight), _ptr(bias)
    return p


def _launch(p, device: torch.device, cpu_fn, cuda_fn) -> None:
    if device.type == "cpu":
        cpu_fn(p)
        return
    if device.index == torch.cuda.current_device():
        p.stream = torch.cuda.current_stream(device).cuda_stream
        cuda_fn(p)
        return
    with torch.cuda.device(device):
        p.stream = torch.cuda.current_stream(device).cuda_stream
        cuda_fn(p)


def _native_forward(
    x: Tensor,
    scale: Tensor | None,
    shift: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    groups: int,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Native forward: (y, mean, rstd); mean/rstd (B, G) in float32 (float64 for float64 x)."""
    x = x.contiguous()
    scale, shift, weight, bias = map(_contiguous, (scale, shift, weight, bias))
    acc = _acc_dtype(x.dtype)
    y = torch.empty_like(x)
    mean = torch.empty(x.shape[0], groups, dtype=acc, device=x.device)
    rstd = torch.empty(x.shape[0], groups, dtype=acc, device=x.device)
    p = _params(x, scale, shift, weight, bias, groups, eps)
    p.y, p.mean, p.rstd = y.data_ptr(), mean.data_ptr(), rstd.data_ptr()
    _launch(p, x.device, _C.group_norm_film_silu_forward_cpu, _C.group_norm_film_silu_forward_cuda)
    return y, mean, rstd


_forward_op = torch.library.custom_op(
    "ubdiff_phys::group_norm_film_silu_forward", _native_forward, mutates_args=()
)


@_forward_op.register_fake
def _forward_fake(x, scale, shift, weight, bias, groups, eps):
    acc = _acc_dtype(x.dtype)
    stats = (x.shape[0], groups)
    return torch.empty_like(x), x.new_empty(stats, dtype=acc), x.new_empty(stats, dtype=acc)


def _native_backward(
    grad_y: Tensor,
    x: Tensor,
    scale: Tensor | None,
    shift: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    mean: Tensor,
    rstd: Tensor,
    groups: int,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Native backward: grad_x, grad_scale, grad_shift, grad_weight, grad_bias (a missing input's
    grad is an empty tensor)."""
    x, grad_y = x.contiguous(), grad_y.contiguous()
    scale, shift, weight, bias = map(_contiguous, (scale, shift, weight, bias))
    B, C = x.shape[0], x.shape[1]
    grad_x = torch.empty_like(x)

    def grad_like(t: Tensor | None) -> Tensor:
        return x.new_empty(0) if t is None else x.new_empty(t.shape)

    grads = [grad_like(t) for t in (scale, shift, weight, bias)]
    p = _params(x, scale, shift, weight, bias, groups, eps)
    p.mean, p.rstd = mean.data_ptr(), rstd.data_ptr()
    p.grad_y, p.grad_x = grad_y.data_ptr(), grad_x.data_ptr()
    present = [t is not None for t in (scale, shift, weight, bias)]
    p.grad_scale, p.grad_shift, p.grad_weight, p.grad_bias = (
        g.data_ptr() if ok else 0 for g, ok in zip(grads, present, strict=True)
    )
    workspace = None
    if present[2] or present[3]:
        workspace = torch.empty(2 * B * C, dtype=mean.dtype, device=x.device)
        p.workspace = workspace.data_ptr()
    _launch(
        p, x.device, _C.group_norm_film_silu_backward_cpu, _C.group_norm_film_silu_backward_cuda
    )
    return (grad_x, *grads)


_backward_op = torch.library.custom_op(
    "ubdiff_phys::group_norm_film_silu_backward", _native_backward, mutates_args=()
)


@_backward_op.register_fake
def _backward_fake(grad_y, x, scale, shift, weight, bias, mean, rstd, groups, eps):
    def grad_like(t):
        return x.new_empty(0) if t is None else x.new_empty(t.shape)

    return (torch.empty_like(x), *(grad_like(t) for t in (scale, shift, weight, bias)))


def _setup_context(ctx, inputs, output):
    x, scale, shift, weight, bias, groups, eps = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, scale, shift, weight, bias, mean, rstd)
    ctx.groups, ctx.eps = groups, eps
    ctx.mark_non_differentiable(mean, rstd)


def _grads(ctx, grad_y, backward_fn):
    x, scale, shift, weight, bias, mean, rstd = ctx.saved_tensors
    grad_x, *grads = backward_fn(
        grad_y, x, scale, shift, weight, bias, mean, rstd, ctx.groups, ctx.eps
    )
    # an input that was None gets None (the native backward returned an empty tensor for it)
    inputs = (scale, shift, weight, bias)
    grads = [None if t is None else g for g, t in zip(grads, inputs, strict=True)]
    return (grad_x, *grads, None, None)


def _backward(ctx, grad_y, _grad_mean, _grad_rstd):
    return _grads(ctx, grad_y, _backward_op)


_forward_op.register_autograd(_backward, setup_context=_setup_context)


class _GroupNormFiLMSiLUFunction(torch.autograd.Function):
    """The eager-mode door: the same native forward/backward without the custom_op dispatcher."""

    @staticmethod
    def forward(ctx, x, scale, shift, weight, bias, groups, eps):
        y, mean, rstd = _native_forward(x, scale, shift, weight, bias, groups, eps)
        ctx.save_for_backward(x, scale, shift, weight, bias, mean, rstd)
        ctx.groups, ctx.eps = groups, eps
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        return _grads(ctx, grad_y, _native_backward)


def native_ineligible_reason(
    x: Tensor,
    scale: Tensor | None = None,
    shift: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
) -> str | None:
    """Why the native kernels cannot take these (already shape-checked) arguments, or None.

    The native path needs: the compiled module (``ubdiff_phys.build_info()["native"]``); x on the
    CPU (float32/float64) or on CUDA with a CUDA build (float32/float64/float16/bfloat16); x
    contiguous and not empty; every other tensor of x's dtype and device (they are small and are
    made contiguous internally).
    """
    if _C is None:
        return f"the native module is unavailable ({_native.build_info()['native_error']})"
    device = x.device.type
    if device not in NATIVE_DTYPES:
        return f"no native kernels for device type {device!r}"
    if device == "cuda" and not _CUDA_BUILT:
        return "this build of ubdiff_phys has no CUDA kernels"
    if x.dtype not in NATIVE_DTYPES[device]:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in NATIVE_DTYPES[device])
        return f"dtype {x.dtype} is not supported on {device} (native: {allowed})"
    for name, t in (("scale", scale), ("shift", shift), ("weight", weight), ("bias", bias)):
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            return f"{name} has dtype {t.dtype} on {t.device}, x has {x.dtype} on {x.device}"
    if not x.is_contiguous():
        return "x is not contiguous"
    if x.numel() == 0:
        return "x is empty"
    return None


def is_native_eligible(
    x: Tensor,
    scale: Tensor | None = None,
    shift: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
) -> bool:
    """True when backend="auto" takes the native kernels (see :func:`native_ineligible_reason`)."""
    return native_ineligible_reason(x, scale, shift, weight, bias) is None


def _film_arg(name: str, t: Tensor | None, x: Tensor) -> Tensor | None:
    """Check a FiLM tensor: shape (B, C) or (B, C, 1, ..., 1); returns it as (B, C)."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a tensor or None, got {type(t).__name__}")
    B, C = x.shape[0], x.shape[1]
    if t.dim() < 2 or tuple(t.shape[:2]) != (B, C) or any(s != 1 for s in t.shape[2:]):
        raise ValueError(
            f"{name} must have shape (B, C) = ({B}, {C}) (or (B, C, 1, ...)) to match x of shape "
            f"{tuple(x.shape)}, got {tuple(t.shape)}"
        )
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    return t.reshape(B, C) if t.dim() > 2 else t


def _check_args(x, scale, shift, weight, bias, groups, eps, backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (B, C, *spatial), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    C = x.shape[1]
    if C % groups != 0:
        raise ValueError(f"channels ({C}) must be divisible by groups ({groups})")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a tensor or None, got {type(t).__name__}")
        if tuple(t.shape) != (C,):
            raise ValueError(f"{name} must have shape (C,) = ({C},), got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    return _film_arg("scale", scale, x), _film_arg("shift", shift, x)


def group_norm_film_silu(
    x: Tensor,
    scale: Tensor | None,
    shift: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    groups: int,
    eps: float = 1e-5,
    backend: str = "auto",
) -> Tensor:
    """``silu(group_norm(x) * (1 + scale) + shift)``, fused.

    Args:
        x: features, shape (B, C, *spatial) (the latent U-Net: (B, C, L)); spatial axes are
            flattened to one axis L.
        scale: FiLM scale from the time embedding, shape (B, C) (or (B, C, 1, ...)), broadcast
            over the spatial axes; the normalised x is multiplied by ``1 + scale``. None: none.
        shift: FiLM shift, shape like ``scale``. None: none.
        weight: GroupNorm gamma, shape (C,), or None (no affine).
        bias: GroupNorm beta, shape (C,), or None.
        groups: number of groups G; C must be divisible by G.
        eps: added to the biased per-group variance.
        backend: "auto" (native when :func:`is_native_eligible`, else the reference), "native"
            (raise if not eligible) or "reference" (pure PyTorch).

    Returns:
        y, shape and dtype of x. Differentiable w.r.t. x, scale, shift, weight and bias.
    """
    scale, shift = _check_args(x, scale, shift, weight, bias, groups, eps, backend)
    if backend != "reference":
        reason = native_ineligible_reason(x, scale, shift, weight, bias)
        if reason is None:
            if torch.compiler.is_compiling():
                return _forward_op(x, scale, shift, weight, bias, groups, float(eps))[0]
            fn = _GroupNormFiLMSiLUFunction
            return fn.apply(x, scale, shift, weight, bias, groups, float(eps))
        if backend == "native":
            raise RuntimeError(
                f"group_norm_film_silu: backend='native' cannot run these inputs: {reason}. "
                "Use backend='auto' to fall back to the reference implementation."
            )
    return group_norm_film_silu_reference(
        x, scale, shift, weight, bias, groups=groups, eps=float(eps)
    )


class GroupNormFiLMSiLU(nn.Module):
    """GroupNorm(groups, channels) -> optional FiLM (1 + scale, shift) -> SiLU, fused.

    Args:
        channels: C.
        groups: G (C divisible by G); the latent U-Net uses 8.
        eps: GroupNorm epsilon.
        affine: learn a per-channel gamma (init 1) and beta (init 0), as nn.GroupNorm.
        backend: see :func:`group_norm_film_silu`.

    ``forward(x, scale=None, shift=None)``: x (B, C, *spatial); scale, shift (B, C) or
    (B, C, 1, ...) or None.
    """

    def __init__(
        self,
        channels: int,
        groups: int = 8,
        eps: float = 1e-5,
        affine: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if groups <= 0 or channels % groups != 0:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.channels, self.groups, self.eps, self.backend = channels, groups, eps, backend
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(
        self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None
    ) -> Tensor:
        return group_norm_film_silu(
            x,
            scale,
            shift,
            self.weight,
            self.bias,
            groups=self.groups,
            eps=self.eps,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, groups={self.groups}, eps={self.eps}, "
            f"affine={self.weight is not None}, backend={self.backend!r}"
        )
