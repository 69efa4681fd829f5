"""The acoustic forward op: dispatch of an :class:`AcousticProblem` to the native CPU/CUDA kernels
or to the pure-PyTorch reference."""

from __future__ import annotations

import torch

from ubdiff_phys._native import native
from ubdiff_phys.ops.problem import AcousticProblem
from ubdiff_phys.ops.reference.acoustic import acoustic_forward_reference, misfit_sums_reference

__all__ = ["AcousticProblem", "acoustic_forward"]

BACKENDS = ("native", "reference")


def acoustic_forward(
    problem: AcousticProblem,
    backend: str = "native",
    *,
    observed: torch.Tensor | None = None,
    log_bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Run all shots of all models, whole time loop, in one call.

    Args:
        problem: prepared inputs (see :class:`AcousticProblem`); every tensor on one device.
        backend: "native" (C++/OpenMP on CPU tensors, CUDA on CUDA tensors) or "reference"
            (pure PyTorch, differentiable).
        observed: optional (B, S, nt, R) gathers to compare with. Then the misfit is accumulated
            at the receivers during the time loop (natively without materialising the simulated
            gathers) and per-shot sums are returned instead of gathers.
        log_bounds: with ``observed``: (lo, hi) log-transformed seismic bounds for the sums in
            normalised units (specs/data.md §2); None skips them.

    Returns:
        Without ``observed``: (B, S, nt, R) recorded pressure, dtype and device of
        ``problem.vdt2``. With it: (B, S, 4) float64 sums, see :func:`misfit_sums_reference`.
    """
    if observed is not None:
        expected = (problem.n_models, problem.n_shots, problem.nt, problem.n_receivers)
        if tuple(observed.shape) != expected:
            raise ValueError(
                f"observed gathers have shape {tuple(observed.shape)}, expected {expected}"
            )
        if observed.device != problem.vdt2.device:
            raise ValueError(
                f"observed is on {observed.device}, the velocity on {problem.vdt2.device}"
            )
        if log_bounds is not None and not log_bounds[1] > log_bounds[0]:
            raise ValueError(f"log_bounds must be (lo, hi) with hi > lo, got {log_bounds}")
    if backend == "reference":
        gathers = acoustic_forward_reference(problem)
        if observed is None:
            return gathers
        return misfit_sums_reference(gathers, observed, log_bounds)
    if backend != "native":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if problem.vdt2.requires_grad:
        raise NotImplementedError(
            "the native acoustic op has no backward yet; use backend='reference' for gradients"
        )
    return _native_forward(problem, observed, log_bounds)


def _native_forward(
    pr: AcousticProblem,
    observed: torch.Tensor | None = None,
    log_bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    C = native()
    vdt2 = pr.vdt2.contiguous()
    dtype, device = vdt2.dtype, vdt2.device
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"native acoustic op supports float32/float64, got {dtype}")
    keep = []  # keep every tensor whose pointer is handed over alive for the call

    def ptr(t: torch.Tensor | None, want: torch.dtype = dtype) -> int:
        if t is None:
            return 0
        t = t.to(device=device, dtype=want).contiguous()
        keep.append(t)
        return t.data_ptr()

    if observed is None:
        out = torch.empty(
            pr.n_models, pr.n_shots, pr.nt, pr.n_receivers, dtype=dtype, device=device
        )
        result = out
    else:
        out = None
        result = torch.zeros(pr.n_models, pr.n_shots, 4, dtype=torch.float64, device=device)
    if result.numel() == 0 or pr.nt * pr.n_receivers == 0:
        return result
    p = C.AcousticForwardParams()
    p.n_models, p.n_shots, p.nt = pr.n_models, pr.n_shots, pr.nt
    p.nzm, p.nxm, p.pad = vdt2.shape[1], vdt2.shape[2], pr.pad
    p.n_receivers = pr.n_receivers
    p.boundary = C.Boundary.cpml if pr.boundary == "cpml" else C.Boundary.sponge
    p.dtype = C.DType.float32 if dtype == torch.float32 else C.DType.float64
    p.wrap = bool(pr.wrap)
    p.rdx2, p.rdz2, p.rdx, p.rdz = 1.0 / pr.dx**2, 1.0 / pr.dz**2, 1.0 / pr.dx, 1.0 / pr.dz
    p.vdt2 = ptr(vdt2)
    p.kx, p.kz = ptr(pr.kx), ptr(pr.kz)
    p.ax, p.bx, p.dbx = ptr(pr.ax), ptr(pr.bx), ptr(pr.dbx)
    p.az, p.bz, p.dbz = ptr(pr.az), ptr(pr.bz), ptr(pr.dbz)
    p.source_rc = ptr(pr.source_rc, torch.int64)
    p.receiver_rc = ptr(pr.receiver_rc, torch.int64)
    p.wavelet = ptr(pr.wavelet)
    p.out = 0 if out is None else out.data_ptr()
    if observed is not None:
        p.observed = ptr(observed)
        p.misfit = result.data_ptr()
        p.normalise = log_bounds is not None
        if log_bounds is not None:
            p.norm_lo, p.norm_hi = float(log_bounds[0]), float(log_bounds[1])
    if device.type == "cpu":
        C.acoustic_forward_cpu(p)
    elif device.type == "cuda":
        workspace = torch.zeros(C.acoustic_forward_workspace_elems(p), dtype=dtype, device=device)
        p.workspace = workspace.data_ptr()
        with torch.cuda.device(device):
            p.stream = torch.cuda.current_stream(device).cuda_stream
            C.acoustic_forward_cuda(p)
        keep.append(workspace)
    else:
        raise ValueError(f"native acoustic op runs on cpu or cuda tensors, got device {device}")
    return result
