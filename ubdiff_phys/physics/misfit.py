"""``misfit``: the differentiable data misfit ½‖F(v) − d‖² of velocity models against gathers.

The native path accumulates the misfit at the receivers inside the time loop (the simulated
gathers are never materialised) and its gradient in ``v`` is the adjoint-state backward with
checkpointing, so FWI and physics-guided sampling cost a few solver passes and little memory.
"""

from __future__ import annotations

import torch

from ubdiff_phys.ops.acoustic import acoustic_forward
from ubdiff_phys.ops.acoustic_native import misfit_value_and_grad, native_args
from ubdiff_phys.physics.forward import (
    BOUNDARIES,
    check_stability,
    check_velocity,
    prepare_problem,
)
from ubdiff_phys.physics.survey import Survey

__all__ = ["REDUCTIONS", "check_observed", "log_bounds_of", "misfit", "misfit_and_grad"]

#: Reductions of :func:`misfit` over the batch.
REDUCTIONS = ("sum", "mean", "none")


def log_bounds_of(normalizer: object) -> tuple[float, float] | None:
    """(lo, hi) log-transformed seismic bounds from a ``ubdiff_phys.data.Normalizer``-like object
    (``s_log_min``/``s_log_max``) or a (lo, hi) pair; None passes through."""
    if normalizer is None:
        return None
    if hasattr(normalizer, "s_log_min"):
        lo, hi = float(normalizer.s_log_min), float(normalizer.s_log_max)
    else:
        lo, hi = (float(x) for x in normalizer)
    if not (torch.isfinite(torch.tensor([lo, hi])).all() and hi > lo):
        raise ValueError(f"seismic log bounds must be finite with hi > lo, got ({lo}, {hi})")
    return lo, hi


def check_observed(observed: torch.Tensor, v: torch.Tensor, survey: Survey) -> torch.Tensor:
    """Validate observed gathers against checked velocities ``v`` (B, nz, nx).

    Returns:
        ``observed`` (B, S, nt, R) in ``v``'s dtype, contiguous.
    """
    expected = (v.shape[0], survey.n_sources, survey.nt, survey.n_receivers)
    if not isinstance(observed, torch.Tensor):
        raise TypeError(f"observed must be a torch.Tensor of shape {expected}")
    if tuple(observed.shape) != expected:
        raise ValueError(
            f"observed gathers must have shape {expected} (B, S, nt, R) for this survey, "
            f"got {tuple(observed.shape)}"
        )
    if observed.device != v.device:
        raise ValueError(f"observed is on {observed.device} but the velocity on {v.device}")
    if not bool(torch.isfinite(observed).all()):
        raise ValueError("observed gathers contain NaN or infinite values")
    return observed.detach().to(v.dtype).contiguous()


def misfit(
    v: torch.Tensor,
    observed: torch.Tensor,
    survey: Survey | None = None,
    *,
    boundary: str = "openfwi",
    reduction: str = "sum",
    normalizer: object = None,
    backend: str = "native",
) -> torch.Tensor:
    """Data misfit ``½ Σ (F(v) − d)²`` per model, differentiable in ``v``.

    Args:
        v: (B, nz, nx) or (B, 1, nz, nx) wave speed [m/s] (checked like :func:`simulate`).
        observed: (B, n_sources, nt, n_receivers) observed gathers ``d``, physical amplitude.
        survey: geometry and discretisation; default OpenFWI.
        boundary: "openfwi", "pml" or "none" (see :func:`simulate`).
        reduction: "sum" (scalar), "mean" (scalar) or "none" ((B,)).
        normalizer: None for physical units; or a Normalizer / (lo, hi) log bounds to measure the
            misfit after the OpenFWI seismic normalisation ``n(x) = 2 (sign(x) log1p|x| − lo) /
            (hi − lo) − 1``: ``½ Σ (n(F(v)) − n(d))²``.
        backend: "native" (fused, adjoint backward) or "reference" (autograd through PyTorch).

    Returns:
        float64 misfit [amplitude², or normalised units²]; (B,) with ``reduction="none"``.
    """
    survey = Survey.openfwi() if survey is None else survey
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    v = check_velocity(v, survey)
    obs = check_observed(observed, v, survey)
    bounds = log_bounds_of(normalizer)
    if v.shape[0] > 0:
        check_stability(v, survey, boundary)
    problem = prepare_problem(v, survey, boundary=boundary)
    sums = acoustic_forward(problem, backend=backend, observed=obs, log_bounds=bounds)
    per_model = 0.5 * sums[..., 0 if bounds is None else 2].sum(dim=1)
    if reduction == "none":
        return per_model
    return per_model.sum() if reduction == "sum" else per_model.mean()


def misfit_and_grad(
    v: torch.Tensor,
    observed: torch.Tensor,
    survey: Survey | None = None,
    *,
    boundary: str = "openfwi",
    normalizer: object = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model misfit and its gradient in ``v`` in one native call (no autograd graph).

    Same quantity as ``misfit(..., reduction="none")``, at 2 forward passes + the adjoint instead
    of 3 + the adjoint through autograd: the backward's own forward pass yields the misfit. The
    boundary profiles (which depend on each model's min/max velocity) are held fixed, as in
    autograd through :func:`simulate`.

    Args:
        v: (B, nz, nx) or (B, 1, nz, nx) wave speed [m/s]; observed: (B, S, nt, R).

    Returns:
        (misfit (B,) float64, gradient (B, nz, nx) [misfit units per m/s], dtype of ``v``).
    """
    survey = Survey.openfwi() if survey is None else survey
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    v = check_velocity(v.detach(), survey)
    obs = check_observed(observed, v, survey)
    bounds = log_bounds_of(normalizer)
    if v.shape[0] > 0:
        check_stability(v, survey, boundary)
    args = native_args(prepare_problem(v, survey, boundary=boundary))
    weights = torch.zeros(v.shape[0], survey.n_sources, 4, dtype=torch.float64, device=v.device)
    k = 0 if bounds is None else 2
    weights[..., k] = 0.5
    sums, grad_vdt2 = misfit_value_and_grad(args, obs, weights, bounds)
    per_model = 0.5 * sums[..., k].sum(dim=1)
    return per_model, grad_vdt2 * (2.0 * survey.dt**2) * v
