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
The backward runs natively on either device: on the CPU one OpenMP task per shot
(csrc/cpu/acoustic_adjoint_cpu.cpp), on CUDA every cell of every shot at once
(csrc/cuda/acoustic_adjoint_cuda.cu), the batch split into chunks of models when its workspace
would not fit the free device memory (:func:`grid_backward`).
"""

import math

import torch

from ubdiff_phys._native import native
from ubdiff_phys.ops.acoustic_grid import Pointers, grid_backward, problem_params

__all__ = [
    "forward_for_gradient",
    "keeps_states",
    "misfit_value_and_grad",
    "native_args",
]

Tensor = torch.Tensor


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
    checkpoints: Tensor | None = None,
) -> Tensor:
    """Fill the native parameter struct and run one entry point.

    Args:
        args: :func:`native_args` tuple.
        kind: "forward" (gathers), "misfit" (sums), "backward" (``grad`` = dJ/dgathers) or
            "misfit_backward" (``grad`` = dJ/dsums (B, S, 4) float64).
        observed: (B, S, nt, R) for the misfit kinds; bounds: (lo, hi) log bounds or None.
        sums: "misfit_backward": a (B, S, 4) float64 tensor that also receives the misfit sums
            (value and gradient in one call).
        checkpoint_every: "forward_ckpt" and the backward kinds: steps between stored states
            (0: sqrt(nt * fields)).
        checkpoints: "backward" on CPU only: the states "forward_ckpt" stored (same
            ``checkpoint_every``); the backward then skips its own forward pass.

    Returns:
        gathers (B, S, nt, R) | sums (B, S, 4) float64 | grad_vdt2 (B, nzm, nxm); "forward_ckpt":
        (gathers, checkpoints (n,) of the compute dtype).
    """
    C = native()
    vdt2, src, rec, wavelet = args[0], args[9], args[10], args[11]
    dtype, device = vdt2.dtype, vdt2.device
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"native acoustic op supports float32/float64, got {dtype}")
    n_models, nzm, nxm = vdt2.shape
    n_shots, n_rec, nt = src.shape[0], rec.shape[0], wavelet.shape[0]
    backward = kind in ("backward", "misfit_backward")
    if backward and device.type == "cuda":
        return grid_backward(args, observed=observed, bounds=bounds, grad=grad, sums=sums)
    ptr = Pointers(device, dtype)

    if kind in ("forward", "forward_ckpt"):
        result = torch.empty(n_models, n_shots, nt, n_rec, dtype=dtype, device=device)
    elif kind == "misfit":
        result = torch.zeros(n_models, n_shots, 4, dtype=torch.float64, device=device)
    else:
        result = torch.zeros_like(vdt2)
    if kind == "forward_ckpt":
        if device.type != "cpu" or checkpoint_every <= 0:
            raise ValueError("the checkpointed forward runs on the CPU with checkpoint_every > 0")
        stored = torch.empty(checkpoint_numel(args, checkpoint_every), dtype=dtype)
    if result.numel() == 0 or (not backward and nt * n_rec == 0):
        return (result, stored) if kind == "forward_ckpt" else result
    p = problem_params(C, args, ptr)
    p.checkpoint_every = int(checkpoint_every)
    if observed is not None:
        p.observed = ptr(observed)
        p.normalise = bounds is not None
        if bounds is not None:
            p.norm_lo, p.norm_hi = float(bounds[0]), float(bounds[1])
    if kind in ("forward", "forward_ckpt"):
        p.out = result.data_ptr()
    elif kind == "misfit":
        p.misfit = result.data_ptr()
    elif kind == "backward":
        p.grad_out, p.grad_vdt2 = ptr(grad), result.data_ptr()
    else:
        p.grad_misfit, p.grad_vdt2 = ptr(grad, torch.float64), result.data_ptr()
        if sums is not None:
            p.misfit = sums.data_ptr()
    if checkpoints is not None:
        p.checkpoints = checkpoints.data_ptr()
    if kind == "forward_ckpt":
        if C.acoustic_checkpoint_elems(p) != stored.numel():
            raise RuntimeError("checkpoint size mismatch between Python and the native op")
        p.checkpoints = stored.data_ptr()
        C.acoustic_forward_cpu(p)
        return result, stored
    if device.type == "cpu":
        (C.acoustic_backward_cpu if backward else C.acoustic_forward_cpu)(p)
    elif device.type == "cuda":
        workspace = torch.zeros(C.acoustic_forward_workspace_elems(p), dtype=dtype, device=device)
        ptr.keep.append(workspace)
        p.workspace = workspace.data_ptr()
        with torch.cuda.device(device):
            p.stream = torch.cuda.current_stream(device).cuda_stream
            C.acoustic_forward_cuda(p)
    else:
        raise ValueError(f"native acoustic op runs on cpu or cuda tensors, got device {device}")
    return result


def checkpoint_interval(args: tuple, threads: int | None = None) -> int:
    """Steps between the states the checkpointed forward keeps for the backward.

    The stored states of all B*S shots (``B S nt / k`` states of ``n_state`` fields) live until the
    backward; the recomputation buffer (``k`` fields per OpenMP thread) only during it. Their sum is
    smallest at ``k = sqrt(B S nt n_state / threads)``, never below the backward's own choice
    ``sqrt(nt n_state)``; clamped to [1, nt].
    """
    vdt2, src, wavelet, cpml = args[0], args[9], args[11], args[13]
    nt, tasks = wavelet.shape[0], vdt2.shape[0] * src.shape[0]
    n_state = 6 if cpml else 2
    threads = max(1, threads or torch.get_num_threads())
    k = math.ceil(math.sqrt(nt * n_state * max(tasks / threads, 1.0)))
    return max(1, min(k, nt))


def checkpoint_numel(args: tuple, checkpoint_every: int) -> int:
    """Elements of the stored states: (B S, ceil(nt / k), n_state, (nz + 2 pad + 4)(nx + 2 pad + 4))
    on the halo-inclusive padded grid (the native ``acoustic_checkpoint_elems``)."""
    vdt2, src, wavelet, pad, cpml = args[0], args[9], args[11], args[12], args[13]
    n_models, nzm, nxm = vdt2.shape
    nt = wavelet.shape[0]
    k = max(1, min(checkpoint_every, max(nt, 1)))
    cells = (nzm + 2 * pad + 4) * (nxm + 2 * pad + 4)
    return n_models * src.shape[0] * -(-nt // k) * (6 if cpml else 2) * cells


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


# The forward for a gradient (CPU): also returns the states the backward restarts from, so the
# backward skips its own forward pass (forward + backward = 2 forward passes + the adjoint).
@_op(
    "acoustic_forward_checkpointed",
    f"({_PROBLEM}, {_SCALARS}, int checkpoint_every) -> (Tensor, Tensor)",
)
def _forward_ckpt_op(*args):
    return _call_native(args[:-1], kind="forward_ckpt", checkpoint_every=args[-1])


@_forward_ckpt_op.register_fake
def _(*args):
    vdt2, src, rec, wavelet = args[0], args[9], args[10], args[11]
    gathers = vdt2.new_empty((vdt2.shape[0], src.shape[0], wavelet.shape[0], rec.shape[0]))
    return gathers, vdt2.new_empty((checkpoint_numel(args[:-1], args[-1]),))


@_op(
    "acoustic_backward_checkpointed",
    f"(Tensor grad_out, Tensor checkpoints, {_PROBLEM}, {_SCALARS}, int checkpoint_every) "
    "-> Tensor",
)
def _backward_ckpt_op(grad_out, checkpoints, *args):
    return _call_native(
        args[:-1],
        kind="backward",
        grad=grad_out,
        checkpoints=checkpoints,
        checkpoint_every=args[-1],
    )


@_backward_ckpt_op.register_fake
def _(grad_out, checkpoints, vdt2, *rest):
    return torch.empty_like(vdt2)


def _setup_ckpt(ctx, inputs, output) -> None:
    ctx.save_for_backward(output[1], *inputs[:_N_PROBLEM])
    ctx.scalars = inputs[_N_PROBLEM:]


def _backward_ckpt(ctx, grad, _grad_states):
    stored, *problem = ctx.saved_tensors
    out = None
    if ctx.needs_input_grad[0]:
        out = _backward_ckpt_op(grad.contiguous(), stored, *problem, *ctx.scalars)
    return (out,) + (None,) * (len(problem) + len(ctx.scalars) - 1)


_forward_ckpt_op.register_autograd(_backward_ckpt, setup_context=_setup_ckpt)


#: Most bytes of stored states per shot the forward keeps for the backward. The C-PML grid of the
#: OpenFWI survey needs 1.2 MB per shot at B = 4 (float32), the 310 x 310 sponge grid of
#: boundary="openfwi" 6.3 MB: kept, that would be 36 % of deepwave's memory per model (measured
#: with benchmarks/bench_gradient.py), so that mode recomputes them in the backward instead.
STATES_MAX_BYTES_PER_SHOT = 2 * 2**20


def keeps_states(args: tuple) -> bool:
    """Whether the forward of these :func:`native_args` keeps its states for the backward: on the
    CPU, under autograd, when they fit :data:`STATES_MAX_BYTES_PER_SHOT`."""
    vdt2, src = args[0], args[9]
    if vdt2.device.type != "cpu" or not (vdt2.requires_grad and torch.is_grad_enabled()):
        return False
    shots = vdt2.shape[0] * src.shape[0]
    if shots == 0:
        return False
    size = checkpoint_numel(args, checkpoint_interval(args)) * vdt2.element_size()
    return size <= STATES_MAX_BYTES_PER_SHOT * shots


def forward_for_gradient(args: tuple) -> Tensor:
    """Gathers (B, S, nt, R) of :func:`native_args` ``args`` on CPU tensors, differentiable in
    ``vdt2``, with the states for the backward kept from this pass (see
    :func:`checkpoint_interval` for their size): forward + backward = 2 forward passes + the
    adjoint instead of 3 + the adjoint."""
    gathers, _ = _forward_ckpt_op(*args, checkpoint_interval(args))
    return gathers


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
        (sums (B, S, 4) float64, grad_vdt2 (B, nzm, nxm)), on the device of ``vdt2``.
    """
    vdt2 = args[0]
    sums = torch.zeros(vdt2.shape[0], args[9].shape[0], 4, dtype=torch.float64, device=vdt2.device)
    grad = _call_native(
        args, kind="misfit_backward", observed=observed, bounds=bounds, grad=grad_sums, sums=sums
    )
    return sums, grad
