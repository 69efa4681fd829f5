"""The acoustic forward op: dispatch of an :class:`AcousticProblem` to the native CPU/CUDA kernels
or to the pure-PyTorch reference."""

from __future__ import annotations

import torch

from ubdiff_phys._native import native
from ubdiff_phys.ops.problem import AcousticProblem
from ubdiff_phys.ops.reference.acoustic import acoustic_forward_reference

__all__ = ["AcousticProblem", "acoustic_forward"]

BACKENDS = ("native", "reference")


def acoustic_forward(problem: AcousticProblem, backend: str = "native") -> torch.Tensor:
    """Run all shots of all models, whole time loop, in one call.

    Args:
        problem: prepared inputs (see :class:`AcousticProblem`); every tensor on one device.
        backend: "native" (C++/OpenMP on CPU tensors, CUDA on CUDA tensors) or "reference"
            (pure PyTorch, differentiable).

    Returns:
        (B, S, nt, R) recorded pressure, dtype and device of ``problem.vdt2``.
    """
    if backend == "reference":
        return acoustic_forward_reference(problem)
    if backend != "native":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if problem.vdt2.requires_grad:
        raise NotImplementedError(
            "the native acoustic op has no backward yet; use backend='reference' for gradients"
        )
    return _native_forward(problem)


def _native_forward(pr: AcousticProblem) -> torch.Tensor:
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

    out = torch.empty(pr.n_models, pr.n_shots, pr.nt, pr.n_receivers, dtype=dtype, device=device)
    if out.numel() == 0:
        return out
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
    p.out = out.data_ptr()
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
    return out
