"""The acoustic forward op: dispatch of an :class:`AcousticProblem` to the native CPU/CUDA kernels
or to the pure-PyTorch reference."""

from __future__ import annotations

import torch

from ubdiff_phys.ops import acoustic_native
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
        backend: "native" (C++/OpenMP on CPU tensors, CUDA on CUDA tensors; differentiable in
            ``problem.vdt2`` through the adjoint-state backward) or "reference" (pure PyTorch,
            differentiable by autograd).
        observed: optional (B, S, nt, R) gathers to compare with. Then the misfit is accumulated
            at the receivers during the time loop (natively without materialising the simulated
            gathers) and per-shot sums are returned instead of gathers.
        log_bounds: with ``observed``: (lo, hi) log-transformed seismic bounds for the sums in
            normalised units (the OpenFWI seismic normalisation); None skips them.

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
    problem.check()
    if backend == "reference":
        gathers = acoustic_forward_reference(problem)
        if observed is None:
            return gathers
        return misfit_sums_reference(gathers, observed, log_bounds)
    if backend != "native":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    args = acoustic_native.native_args(problem)
    ops = torch.ops.ubdiff_phys
    if observed is None:
        if acoustic_native.keeps_states(args):
            return acoustic_native.forward_for_gradient(args)
        return ops.acoustic_forward(*args)
    lo, hi = (0.0, 1.0) if log_bounds is None else (float(log_bounds[0]), float(log_bounds[1]))
    observed = observed.to(args[0].dtype).contiguous()
    return ops.acoustic_misfit(*args[:12], observed, *args[12:], log_bounds is not None, lo, hi)
