"""Deterministic full-waveform inversion: minimise the data misfit over the velocity with the
native adjoint (L-BFGS or Adam), the velocity kept inside physical bounds.

The velocity is parametrised as ``v = v_min + (v_max − v_min) sigmoid(θ)``: every iterate is
inside the bounds (and so stable and finite), with no clipping that would zero the gradient or
let a line search step out of the physical range. Each model's misfit is divided by its value at
the start, so models of a batch weigh equally and the objective is O(1) whatever the amplitude.
The boundary profiles are held fixed by the gradient; with ``boundary="pml"`` the C-PML is pinned to
``v_max`` so the objective does not move with the iterate (the OpenFWI sponge follows each
iterate's minimum velocity, as in the data files; its effect on the misfit is small).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ubdiff_phys.physics.forward import BOUNDARIES, check_stability, check_velocity
from ubdiff_phys.physics.misfit import check_observed, misfit_and_grad
from ubdiff_phys.physics.survey import Survey

__all__ = ["OPTIMIZERS", "FWIResult", "fwi", "smooth_velocity"]

#: Optimisers of :func:`fwi`.
OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class FWIResult:
    """Outcome of :func:`fwi`.

    Attributes:
        velocity: (B, 1, nz, nx) inverted wave speed [m/s], dtype/device of the input.
        history: (n_evaluations, B) float64 data misfit ½‖F(v) − d‖² of each model at every
            objective evaluation (the first row is the initial model).
        evaluations: solver calls made (each = misfit + gradient).
        settings: the arguments used (JSON-serialisable).
    """

    velocity: torch.Tensor
    history: torch.Tensor
    evaluations: int
    settings: dict[str, Any] = field(default_factory=dict)


def smooth_velocity(v: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of velocity maps (B, 1, nz, nx) [m/s] with ``sigma`` cells (edges
    replicated): the usual "heavily smoothed" starting model of FWI studies."""
    if sigma <= 0:
        return v.clone()
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).to(v.dtype).to(v.device)
    pad = torch.nn.functional.pad(v, (radius, radius, radius, radius), mode="replicate")
    out = torch.nn.functional.conv2d(pad, k.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(out, k.view(1, 1, -1, 1))


def _to_theta(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    u = ((v.double() - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4)
    return torch.log(u) - torch.log1p(-u)


def _optimise(theta: torch.Tensor, closure, optimizer: str, iterations: int, lr) -> None:
    """Run L-BFGS (strong-Wolfe line search) or Adam on ``theta`` with ``closure`` (which sets
    ``theta.grad`` and returns the objective); Adam evaluates the final iterate once more."""
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            [theta],
            lr=1.0 if lr is None else lr,
            max_iter=iterations,
            history_size=10,
            tolerance_grad=1e-12,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )
        opt.step(closure)
        return
    opt = torch.optim.Adam([theta], lr=0.05 if lr is None else lr)
    for _ in range(iterations):
        opt.zero_grad(set_to_none=False)
        closure()
        opt.step()
    closure()  # the misfit of the final model


def fwi(
    observed: torch.Tensor,
    survey: Survey | None,
    v_init: torch.Tensor,
    *,
    boundary: str = "openfwi",
    iterations: int = 50,
    optimizer: str = "lbfgs",
    bounds: tuple[float, float] = (1500.0, 4500.0),
    lr: float | None = None,
    normalizer: object = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> FWIResult:
    """Invert observed gathers for velocity, starting from ``v_init``.

    Args:
        observed: (B, n_sources, nt, n_receivers) gathers [physical amplitude].
        survey: geometry the data were recorded with (default OpenFWI).
        v_init: (B, nz, nx) or (B, 1, nz, nx) starting model [m/s]; values outside ``bounds`` are
            moved just inside them.
        boundary: boundary mode of the modelling ("openfwi", "pml", "none").
        iterations: L-BFGS iterations (each may take a few evaluations in its strong-Wolfe line
            search; at most 1.25 x iterations evaluations) or Adam steps.
        optimizer: "lbfgs" (default) or "adam".
        bounds: (v_min, v_max) [m/s]; v_max must be stable for the survey.
        lr: step size: L-BFGS default 1 (the line search scales it), Adam default 0.05 (in θ).
        normalizer: misfit in normalised units (a Normalizer or (lo, hi) log bounds), or None.
        callback: called after every evaluation as ``callback(evaluation, v, misfit)`` with the
            current (B, 1, nz, nx) velocity and (B,) misfit.

    Returns:
        :class:`FWIResult`.
    """
    survey = Survey.openfwi() if survey is None else survey
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo < hi < float("inf")):
        raise ValueError(f"bounds must be 0 < v_min < v_max < inf, got {bounds}")
    if lr is not None and not (0 < lr < float("inf")):
        raise ValueError(f"lr must be positive and finite, got {lr}")
    if boundary == "pml" and survey.pml_max_velocity is None:
        survey = survey.with_(pml_max_velocity=hi)  # the C-PML pinned (module docstring)
    v0 = check_velocity(v_init.detach(), survey)
    obs = check_observed(observed, v0, survey)
    check_stability(
        torch.full((1, survey.nz, survey.nx), hi, dtype=torch.float64), survey, boundary
    )

    theta = _to_theta(v0, lo, hi).requires_grad_()
    history: list[torch.Tensor] = []
    scale: list[torch.Tensor] = []

    def velocity() -> torch.Tensor:
        return (lo + (hi - lo) * torch.sigmoid(theta.detach())).to(v0.dtype)

    def closure() -> torch.Tensor:
        v = velocity()
        f, g = misfit_and_grad(v, obs, survey, boundary=boundary, normalizer=normalizer)
        if not scale:
            scale.append(f.clamp(min=torch.finfo(torch.float64).tiny))
        history.append(f.detach().cpu())
        s = torch.sigmoid(theta.detach())
        theta.grad = (g.double() / scale[0][:, None, None]) * (hi - lo) * s * (1 - s)
        if callback is not None:
            callback(len(history) - 1, v[:, None], f)
        return (f / scale[0]).sum()

    _optimise(theta, closure, optimizer, iterations, lr)
    settings = dict(
        boundary=boundary,
        iterations=iterations,
        optimizer=optimizer,
        bounds=[lo, hi],
        lr=lr,
        normalised=normalizer is not None,
    )
    return FWIResult(
        velocity=velocity()[:, None],
        history=torch.stack(history),
        evaluations=len(history),
        settings=settings,
    )
