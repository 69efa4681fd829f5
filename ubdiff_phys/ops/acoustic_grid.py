"""The grid-parallel backward of the native acoustic op (every cell of every shot at once): the
CUDA adjoint (csrc/cuda/acoustic_adjoint_cuda.cu) and its host twin, the same schedule and per-cell
code run by host loops, which lets machines without a GPU test the CUDA code against the CPU
adjoint. Also the one place that fills the native parameter struct (:func:`problem_params`)."""

import torch

from ubdiff_phys._native import native

__all__ = ["GRID_BACKWARD_MEMORY_SHARE", "grid_backward", "grid_workspace_elems", "problem_params"]

Tensor = torch.Tensor


class Pointers:
    """Raw data pointers for the native parameter struct: ``ptrs(t, dtype)`` converts ``t`` to
    the compute device and ``dtype`` (default: the compute dtype), contiguous, keeps the converted
    tensor alive in ``ptrs.keep`` (until the kernels are queued) and returns its address; None
    gives 0 (a null pointer)."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.keep: list[Tensor] = []

    def __call__(self, t: Tensor | None, want: torch.dtype | None = None) -> int:
        if t is None:
            return 0
        t = t.to(device=self.device, dtype=want or self.dtype).contiguous()
        self.keep.append(t)
        return t.data_ptr()


def problem_params(C, args: tuple, ptr):
    """The native parameter struct with the problem's sizes, geometry and tensors (``ptr`` turns
    a tensor into a pointer kept alive by the caller)."""
    vdt2, kx, kz, ax, bx, dbx, az, bz, dbz, src, rec, wavelet, pad, cpml, wrap, dx, dz = args
    p = C.AcousticForwardParams()
    p.n_models, p.nzm, p.nxm = vdt2.shape
    p.n_shots, p.n_receivers, p.nt = src.shape[0], rec.shape[0], wavelet.shape[0]
    p.pad = pad
    p.boundary = C.Boundary.cpml if cpml else C.Boundary.sponge
    p.dtype = C.DType.float32 if vdt2.dtype == torch.float32 else C.DType.float64
    p.wrap = wrap
    p.rdx2, p.rdz2, p.rdx, p.rdz = 1.0 / dx**2, 1.0 / dz**2, 1.0 / dx, 1.0 / dz
    p.vdt2 = ptr(vdt2)
    p.kx, p.kz = ptr(kx), ptr(kz)
    p.ax, p.bx, p.dbx = ptr(ax), ptr(bx), ptr(dbx)
    p.az, p.bz, p.dbz = ptr(az), ptr(bz), ptr(dbz)
    p.source_rc, p.receiver_rc = ptr(src, torch.int64), ptr(rec, torch.int64)
    p.wavelet = ptr(wavelet)
    return p


#: Share of the free device memory (plus the caching allocator's unused blocks) one chunk of the
#: CUDA backward's workspace may take.
GRID_BACKWARD_MEMORY_SHARE = 0.8


def grid_backward(
    args: tuple,
    *,
    observed: Tensor | None = None,
    bounds=None,
    grad: Tensor,
    sums: Tensor | None = None,
    host: bool = False,
    max_bytes: int | None = None,
) -> Tensor:
    """The grid-parallel backward (every cell of every shot at once): the CUDA kernel, or with
    ``host=True`` the same schedule and per-cell code run by host loops on CPU tensors (the test
    oracle's twin of the CUDA code on machines without a GPU).

    Args:
        args: :func:`native_args` tuple on the device that runs the backward.
        observed: (B, S, nt, R) for the misfit's backward (``grad`` is then dJ/dsums (B, S, 4)
            float64), or None (``grad`` is dJ/dgathers (B, S, nt, R)).
        bounds: (lo, hi) log bounds of the normalised sums, or None.
        sums: optional (B, S, 4) float64 tensor receiving the misfit sums (misfit only).
        max_bytes: workspace bytes per call; the models are split into chunks that fit. Default:
            :data:`GRID_BACKWARD_MEMORY_SHARE` of the free device memory (host: no limit).

    Returns:
        grad_vdt2 (B, nzm, nxm) in the compute dtype.
    """
    C = native()
    vdt2 = args[0]
    dtype, device = vdt2.dtype, vdt2.device
    result = torch.zeros_like(vdt2)
    n_models = vdt2.shape[0]
    if result.numel() == 0:
        return result
    run = C.acoustic_backward_grid_host if host else C.acoustic_backward_cuda
    per_model = grid_workspace_elems(C, args, 1, observed is not None) * vdt2.element_size()
    if max_bytes is None and not host:
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        max_bytes = int(GRID_BACKWARD_MEMORY_SHARE * (free + cached))
    chunk = n_models if max_bytes is None else max(1, min(n_models, max_bytes // max(per_model, 1)))
    ptr = Pointers(device, dtype)
    for b0 in range(0, n_models, chunk):
        sl = slice(b0, min(b0 + chunk, n_models))
        part = tuple(a[sl] if i < 9 and a is not None else a for i, a in enumerate(args))
        p = problem_params(C, part, ptr)
        out = result[sl]
        p.grad_vdt2 = out.data_ptr()
        if observed is not None:
            p.observed = ptr(observed[sl])
            p.grad_misfit = ptr(grad[sl], torch.float64)
            p.normalise = bounds is not None
            if bounds is not None:
                p.norm_lo, p.norm_hi = float(bounds[0]), float(bounds[1])
            if sums is not None:
                p.misfit = sums[sl].data_ptr()
        else:
            p.grad_out = ptr(grad[sl])
        workspace = torch.empty(C.acoustic_backward_workspace_elems(p), dtype=dtype, device=device)
        p.workspace = workspace.data_ptr()  # freed after the call: the caching allocator reuses
        # it only for work queued later on this stream
        if host:
            run(p)
        else:
            with torch.cuda.device(device):
                p.stream = torch.cuda.current_stream(device).cuda_stream
                run(p)
    return result


def grid_workspace_elems(C, args: tuple, n_models: int, misfit: bool) -> int:
    """Workspace elements of the grid backward for ``n_models`` models of ``args``' problem."""
    vdt2, src, rec, wavelet, pad, cpml = args[0], args[9], args[10], args[11], args[12], args[13]
    p = C.AcousticForwardParams()
    p.n_models, p.nzm, p.nxm = n_models, vdt2.shape[1], vdt2.shape[2]
    p.n_shots, p.n_receivers, p.nt = src.shape[0], rec.shape[0], wavelet.shape[0]
    p.pad = pad
    p.boundary = C.Boundary.cpml if cpml else C.Boundary.sponge
    if misfit:
        p.observed = 1  # only its presence matters for the size
    return C.acoustic_backward_workspace_elems(p)
