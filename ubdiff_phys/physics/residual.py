"""Physics residual of (velocity, seismic) pairs: does the seismic obey the wave equation?

For each pair the velocity is simulated with the survey and boundary mode the data were made with,
and the pair's seismic is compared with the simulation (specs/ubdiff.md §5):
``rel_l2 = ||s - F(v)|| / ||F(v)||`` in physical units, and the same after the OpenFWI seismic
normalisation (specs/data.md §2). Real pairs give 0 by construction. The native path accumulates
the misfit at the receivers during the time loop, so the simulated gathers are never materialised
(on a GPU nothing is copied to the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ubdiff_phys.ops.acoustic import acoustic_forward
from ubdiff_phys.ops.reference.acoustic import misfit_sums_reference
from ubdiff_phys.physics.forward import BOUNDARIES, check_stability, check_velocity
from ubdiff_phys.physics.forward import prepare_problem as _prepare
from ubdiff_phys.physics.misfit import log_bounds_of
from ubdiff_phys.physics.survey import Survey
from ubdiff_phys.runtime.errors import OptionError

__all__ = ["Residual", "keep_mask", "residual"]


@dataclass(frozen=True)
class Residual:
    """Per-pair physics residuals and the keep decision.

    Attributes:
        rel_l2: (B,) float64, ``||s - F(v)|| / ||F(v)||`` in physical units.
        rel_l2_normalized: (B,) float64, the same in normalised units, or None (no log bounds).
        keep: (B,) bool, pairs within the threshold (all True without a criterion).
        threshold: the threshold applied to ``rel_l2`` (the quantile's value with
            ``keep_quantile``), or None.
    """

    rel_l2: torch.Tensor
    rel_l2_normalized: torch.Tensor | None
    keep: torch.Tensor
    threshold: float | None


def _relative(diff2: torch.Tensor, ref2: torch.Tensor) -> torch.Tensor:
    """sqrt(diff2 / ref2), with 0 / 0 = 0 and x / 0 = inf: a silent simulation (all-zero gathers)
    is infinitely far from any non-zero seismic, not 1e150 away."""
    rel = torch.sqrt(diff2 / ref2.clamp(min=torch.finfo(torch.float64).tiny))
    rel = torch.where(ref2 > 0, rel, torch.full_like(rel, float("inf")))
    return torch.where((ref2 == 0) & (diff2 == 0), torch.zeros_like(rel), rel)


def check_keep_criterion(threshold: float | None, keep_quantile: float | None) -> None:
    """Refuse (:class:`~ubdiff_phys.runtime.errors.OptionError`) a keep criterion :func:`keep_mask`
    cannot use: both given, a threshold that is negative or NaN, a quantile outside (0, 1]. Jobs
    call it before any sampling or simulation."""
    if threshold is not None and keep_quantile is not None:
        raise OptionError("give threshold or keep_quantile, not both")
    if threshold is not None and not threshold >= 0:
        raise OptionError(f"threshold must be >= 0, got {threshold}")
    if keep_quantile is not None and not 0 < keep_quantile <= 1:
        raise OptionError(f"keep_quantile must be in (0, 1], got {keep_quantile}")


def keep_mask(
    rel_l2: torch.Tensor, *, threshold: float | None = None, keep_quantile: float | None = None
) -> tuple[torch.Tensor, float | None]:
    """Pairs to keep: ``rel_l2 <= threshold``, or the ``keep_quantile`` fraction with the lowest
    residual (ties at the quantile value are kept). Returns (mask (B,) bool, threshold used)."""
    check_keep_criterion(threshold, keep_quantile)
    if threshold is not None:
        return rel_l2 <= threshold, float(threshold)
    if keep_quantile is not None:
        if rel_l2.numel() == 0:
            return torch.ones_like(rel_l2, dtype=torch.bool), None
        value = float(torch.quantile(rel_l2.double(), keep_quantile, interpolation="lower"))
        return rel_l2 <= value, value
    return torch.ones_like(rel_l2, dtype=torch.bool), None


def residual(
    v: torch.Tensor,
    seismic: torch.Tensor,
    survey: Survey | None = None,
    *,
    boundary: str = "openfwi",
    normalizer: Any = None,
    threshold: float | None = None,
    keep_quantile: float | None = None,
    fused: bool = True,
    backend: str = "native",
) -> Residual:
    """Physics residual of each (velocity, seismic) pair.

    Args:
        v: (B, nz, nx) or (B, 1, nz, nx) wave speed [m/s] (checked like :func:`simulate`).
        seismic: (B, n_sources, nt, n_receivers) gathers in physical amplitude, same device.
        survey, boundary: how the pairs' seismic was (supposedly) made; default OpenFWI, "openfwi".
        normalizer: an object with ``s_log_min``/``s_log_max`` (``ubdiff_phys.data.Normalizer``)
            or a (lo, hi) pair of log-transformed bounds: also report the normalised residual.
        threshold, keep_quantile: the keep criterion on the physical ``rel_l2`` (at most one).
        fused: accumulate the misfit inside the native time loop (no simulated gathers kept);
            False simulates the gathers first and compares them (the plain path).
        backend: "native" or "reference" (the reference always uses the plain path).

    Returns:
        :class:`Residual` with tensors on the input's device.
    """
    survey = Survey.openfwi() if survey is None else survey
    v = check_velocity(v, survey)
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    expected = (v.shape[0], survey.n_sources, survey.nt, survey.n_receivers)
    if not isinstance(seismic, torch.Tensor) or tuple(seismic.shape) != expected:
        shape = tuple(seismic.shape) if isinstance(seismic, torch.Tensor) else type(seismic)
        raise ValueError(f"seismic must be a tensor of shape {expected} (B, S, nt, R), got {shape}")
    if seismic.device != v.device:
        raise ValueError(f"seismic is on {seismic.device} but the velocity on {v.device}")
    if not bool(torch.isfinite(seismic).all()):
        raise ValueError("seismic contains NaN or infinite values")
    bounds = log_bounds_of(normalizer)
    if v.shape[0] > 0:
        check_stability(v, survey, boundary)
    problem = _prepare(v, survey, boundary=boundary)
    observed = seismic.to(v.dtype).contiguous()
    if fused and backend == "native":
        sums = acoustic_forward(problem, observed=observed, log_bounds=bounds)
    else:
        sums = misfit_sums_reference(acoustic_forward(problem, backend=backend), observed, bounds)
    per_model = sums.sum(dim=1)  # (B, 4)
    rel = _relative(per_model[:, 0], per_model[:, 1])
    rel_n = None
    if bounds is not None:
        rel_n = _relative(per_model[:, 2], per_model[:, 3])
    keep, used = keep_mask(rel, threshold=threshold, keep_quantile=keep_quantile)
    return Residual(rel_l2=rel, rel_l2_normalized=rel_n, keep=keep, threshold=used)
