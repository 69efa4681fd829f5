"""The native acoustic op registered with ``torch.library``: forward, fused misfit, and their
adjoint-state backwards (csrc/cpu/acoustic_adjoint_cpu.cpp).

Four ``torch.library.custom_op`` s, each with a fake (meta) kernel, so ``torch.compile`` traces
through them and ``torch.library.opcheck`` can test them:

- ``ubdiff_phys::acoustic_forward`` -> gathers (B, S, nt, R), differentiable in ``vdt2``;
- ``ubdiff_phys::acoustic_misfit`` -> per-shot misfit sums (B, S, 4) float64 (see
  :func:`~ubdiff_phys.ops.reference.acoustic.misfit_sums_reference`), accumulated in the time loop
  (no gathers materialised), differentiable in ``vdt2``;
- ``ubdiff_phys::acoustic_backward`` / ``ubdiff_phys::acoustic_misfit_backward``: the gradients
  with respect to ``vdt2`` = (v dt)^2, by the adjoint-state method with checkpointing.

One marshalling helper (:func:`_call_native`) fills the native parameter struct for all of them.
The backward has a CPU kernel only so far: CUDA tensors are copied to the host for it (with a
one-time warning), which gives correct gradients on a GPU machine at CPU speed.
"""

import warnings

import torch

from ubdiff_phys._native import native

__all__ = ["misfit_value_and_grad", "native_args"]

Tensor = torch.Tensor
_warned_cuda_backward = False


def native_args(problem) -> tuple:
    """The op arguments of an :class:`~ubdiff_phys.ops.problem.AcousticProblem`, in schema order:
    ``(vdt2, kx, kz, ax, bx, dbx, az, bz, dbz, source_rc, receiver_rc, wavelet, pad, cpml, wrap,
    dx, dz)``; tensors contiguous, in the compute dtype and on the compute device."""
    vdt2 = problem.vdt2.contiguous()
    dtype, device = vdt2.dtype, vdt2.device

    def conv(t: Tensor | None, want: torch.dtype = dtype) -> Tensor | None:
        return None if t is None else t.to(device=device, dtype=want).contiguous()

    pr = problem
    return (
        vdt2,
        *(conv(t) for t in (pr.kx, pr.kz, pr.ax, pr.bx, pr.dbx, pr.az, pr.bz, pr.dbz)),
        conv(pr.source_rc, torch.int64),
        conv(pr.receiver_rc, torch.int64),
        conv(pr.wavelet),
        int(pr.pad),
        pr.boundary == "cpml",
        bool(pr.wrap),
        float(pr.dx),
        float(pr.dz),
    )


def _call_native(
    args: tuple,
    *,
    kind: str,
    observed=None,
    bounds=None,
    grad=None,
    sums=None,
    checkpoint_every: int = 0,
) -> Tensor:
    """Fill the native parameter struct and run one entry point.

    Args:
        args: :func:`native_args` tuple.
        kind: "forward" (gathers), "misfit" (sums), "backward" (``grad`` = dJ/dgathers) or
            "misfit_backward" (``grad`` = dJ/dsums (B, S, 4) float64).
        observed: (B, S, nt, R) for the misfit kinds; bounds: (lo, hi) log bounds or None.
        sums: "misfit_backward" on CPU only: a (B, S, 4) float64 tensor that also receives the
            misfit sums (value and gradient in one call).
        checkpoint_every: backward only: steps between stored states (0: sqrt(nt * fields)).

    Returns:
        gathers (B, S, nt, R) | sums (B, S, 4) float64 | grad_vdt2 (B, nzm, nxm).
    """
    C = native()
    vdt2, kx, kz, ax, bx, dbx, az, bz, dbz, src, rec, wavelet, pad, cpml, wrap, dx, dz = args
    dtype, device = vdt2.dtype, vdt2.device
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"native acoustic op supports float32/float64, got {dtype}")
    n_models, nzm, nxm = vdt2.shape
    n_shots, n_rec, nt = src.shape[0], rec.shape[0], wavelet.shape[0]
    backward = kind in ("backward", "misfit_backward")
    if backward and device.type == "cuda":
        return _cuda_backward_on_host(args, kind=kind, observed=observed, bounds=bounds, grad=grad)
    keep: list[Tensor] = []

    def ptr(t: Tensor | None, want: torch.dtype = dtype) -> int:
        if t is None:
            return 0
        t = t.to(device=device, dtype=want).contiguous()
        keep.append(t)
        return t.data_ptr()

    if kind == "forward":
        result = torch.empty(n_models, n_shots, nt, n_rec, dtype=dtype, device=device)
    elif kind == "misfit":
        result = torch.zeros(n_models, n_shots, 4, dtype=torch.float64, device=device)
    else:
        result = torch.zeros_like(vdt2)
    if result.numel() == 0 or (not backward and nt * n_rec == 0):
        return result
    p = C.AcousticForwardParams()
    p.n_models, p.n_shots, p.nt = n_models, n_shots, nt
    p.nzm, p.nxm, p.pad, p.n_receivers = nzm, nxm, pad, n_rec
    p.boundary = C.Boundary.cpml if cpml else C.Boundary.sponge
    p.dtype = C.DType.float32 if dtype == torch.float32 else C.DType.float64
    p.wrap = wrap
    p.rdx2, p.rdz2, p.rdx, p.rdz = 1.0 / dx**2, 1.0 / dz**2, 1.0 / dx, 1.0 / dz
    p.vdt2 = ptr(vdt2)
    p.kx, p.kz = ptr(kx), ptr(kz)
    p.ax, p.bx, p.dbx = ptr(ax), ptr(bx), ptr(dbx)
    p.az, p.bz, p.dbz = ptr(az), ptr(bz), ptr(dbz)
    p.source_rc, p.receiver_rc = ptr(src, torch.int64), ptr(rec, torch.int64)
    p.wavelet = ptr(wavelet)
    p.checkpoint_every = int(checkpoint_every)
    if observed is not None:
        p.observed = ptr(observed)
        p.normalise = bounds is not None
        if bounds is not None:
            p.norm_lo, p.norm_hi = float(bounds[0]), float(bounds[1])
    if kind == "forward":
        p.out = result.data_ptr()
    elif kind == "misfit":
        p.misfit = result.data_ptr()
    elif kind == "backward":
        p.grad_out, p.grad_vdt2 = ptr(grad), result.data_ptr()
    else:
        p.grad_misfit, p.grad_vdt2 = ptr(grad, torch.float64), result.data_ptr()
        if sums is not None:
            p.misfit = sums.data_ptr()
    if device.type == "cpu":
        (C.acoustic_backward_cpu if backward else C.acoustic_forward_cpu)(p)
    elif device.type == "cuda":
        workspace = torch.zeros(C.acoustic_forward_workspace_elems(p), dtype=dtype, device=device)
        keep.append(workspace)
        p.workspace = workspace.data_ptr()
        with torch.cuda.device(device):
            p.stream = torch.cuda.current_stream(device).cuda_stream
            C.acoustic_forward_cuda(p)
    else:
        raise ValueError(f"native acoustic op runs on cpu or cuda tensors, got device {device}")
    return result


def _cuda_backward_on_host(args: tuple, **kw) -> Tensor:
    """The CPU adjoint for CUDA tensors (no CUDA adjoint kernel yet): copy, run, copy back."""
    global _warned_cuda_backward
    if not _warned_cuda_backward:
        warnings.warn(
            "ubdiff_phys: the acoustic backward has no CUDA kernel yet; it runs on the CPU "
            "(inputs copied to the host), correct but at CPU speed",
            stacklevel=3,
        )
        _warned_cuda_backward = True
    device = args[0].device
    host = tuple(a.cpu() if isinstance(a, Tensor) else a for a in args)
    kw = {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in kw.items()}
    return _call_native(host, **kw).to(device)


# The op schemas, written once: the prepared problem, then the scalars of the geometry.
_PROBLEM = (
    "Tensor vdt2, Tensor? kx, Tensor? kz, Tensor? ax, Tensor? bx, Tensor? dbx, Tensor? az, "
    "Tensor? bz, Tensor? dbz, Tensor source_rc, Tensor receiver_rc, Tensor wavelet"
)
_SCALARS = "int pad, bool cpml, bool wrap, float dx, float dz"
_NORM = "bool normalise, float lo, float hi"
_N_PROBLEM = 12  # tensors (or None) of _PROBLEM


def _op(name: str, schema: str):
    return torch.library.custom_op(f"ubdiff_phys::{name}", mutates_args=(), schema=schema)


@_op("acoustic_forward", f"({_PROBLEM}, {_SCALARS}) -> Tensor")
def _forward_op(*args):
    return _call_native(args, kind="forward")


@_forward_op.register_fake
def _(*args):
    vdt2, src, rec, wavelet = args[0], args[9], args[10], args[11]
    return vdt2.new_empty((vdt2.shape[0], src.shape[0], wavelet.shape[0], rec.shape[0]))


@_op("acoustic_backward", f"(Tensor grad_out, {_PROBLEM}, {_SCALARS}) -> Tensor")
def _backward_op(grad_out, *args):
    return _call_native(args, kind="backward", grad=grad_out)


@_backward_op.register_fake
def _(grad_out, vdt2, *rest):
    return torch.empty_like(vdt2)


def _misfit_args(args: tuple) -> tuple[tuple, Tensor, tuple[float, float] | None]:
    """(problem args, observed, bounds) of the misfit ops' flat arguments."""
    problem = args[:_N_PROBLEM] + args[_N_PROBLEM + 1 : _N_PROBLEM + 6]
    normalise, lo, hi = args[_N_PROBLEM + 6 :]
    return problem, args[_N_PROBLEM], ((lo, hi) if normalise else None)


@_op("acoustic_misfit", f"({_PROBLEM}, Tensor observed, {_SCALARS}, {_NORM}) -> Tensor")
def _misfit_op(*args):
    problem, observed, bounds = _misfit_args(args)
    return _call_native(problem, kind="misfit", observed=observed, bounds=bounds)


@_misfit_op.register_fake
def _(*args):
    vdt2, src = args[0], args[9]
    return vdt2.new_empty((vdt2.shape[0], src.shape[0], 4), dtype=torch.float64)


@_op(
    "acoustic_misfit_backward",
    f"(Tensor grad_sums, {_PROBLEM}, Tensor observed, {_SCALARS}, {_NORM}) -> Tensor",
)
def _misfit_backward_op(grad_sums, *args):
    problem, observed, bounds = _misfit_args(args)
    return _call_native(
        problem, kind="misfit_backward", observed=observed, bounds=bounds, grad=grad_sums
    )


@_misfit_backward_op.register_fake
def _(grad_sums, vdt2, *rest):
    return torch.empty_like(vdt2)


def _setup_saved(ctx, inputs, output) -> None:
    """Save the tensor arguments (the problem, and ``observed`` for the misfit) and the scalars."""
    n = _N_PROBLEM + (1 if len(inputs) > _N_PROBLEM + 5 else 0)
    ctx.save_for_backward(*inputs[:n])
    ctx.scalars = inputs[n:]


def _backward_of(op):
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        out = op(grad.contiguous(), *saved, *ctx.scalars) if ctx.needs_input_grad[0] else None
        return (out,) + (None,) * (len(saved) + len(ctx.scalars) - 1)

    return backward


_forward_op.register_autograd(_backward_of(_backward_op), setup_context=_setup_saved)
_misfit_op.register_autograd(_backward_of(_misfit_backward_op), setup_context=_setup_saved)


def misfit_value_and_grad(
    args: tuple, observed: Tensor, grad_sums: Tensor, bounds=None
) -> tuple[Tensor, Tensor]:
    """Misfit sums and the gradient of ``sum(grad_sums * sums)`` w.r.t. vdt2 in one native call
    (2 forward passes + the adjoint, instead of 3 + the adjoint through autograd).

    Args:
        args: :func:`native_args` tuple (``vdt2`` need not require grad).
        observed: (B, S, nt, R); grad_sums: (B, S, 4) float64 weights of the four sums.

    Returns:
        (sums (B, S, 4) float64, grad_vdt2 (B, nzm, nxm)). On CUDA the sums come from the forward
        kernel and the gradient from the host adjoint.
    """
    vdt2 = args[0]
    if vdt2.device.type != "cpu":
        sums = _call_native(args, kind="misfit", observed=observed, bounds=bounds)
        grad = _call_native(
            args, kind="misfit_backward", observed=observed, bounds=bounds, grad=grad_sums
        )
        return sums, grad
    sums = torch.zeros(vdt2.shape[0], args[9].shape[0], 4, dtype=torch.float64)
    grad = _call_native(
        args, kind="misfit_backward", observed=observed, bounds=bounds, grad=grad_sums, sums=sums
    )
    return sums, grad
