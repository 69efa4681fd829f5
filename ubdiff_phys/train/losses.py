"""Reconstruction losses of the autoencoder's training steps.

``g1 L1 + g2 MSE`` is the paper's (specs/ubdiff.md §2). The optional gradient term
``g_grad (L1(∂_z p, ∂_z t) + L1(∂_x p, ∂_x t))`` compares the finite differences of prediction and
target along the last two axes (depth and offset of a velocity map). Pixel losses alone pay little
for an interface smeared over two rows or for a small overshoot beside it; the gradient term pays
for both, and it is zero for a prediction that differs from the target by a constant.

The optional physical term ``g_phys ‖d(p) − d(t)‖² / ‖d(t)‖²`` (per sample, averaged; ``d`` the
inverse of the OpenFWI seismic normalisation) is the square of the residual the library reports
for a pair, in physical amplitude: the log transform makes the normalised losses weigh a sample of
the direct wave as much as one of a faint reflection, while the physical residual is dominated by
the direct wave.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gradient_l1", "physical_relative_l2", "reconstruction_loss"]


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |∂p − ∂t| over first differences along dim −2, plus the same along dim −1.

    Args:
        pred, target: (..., H, W) tensors of one shape (H, W ≥ 2).

    Returns:
        0-d tensor: ``mean|Δ_{-2}(p − t)| + mean|Δ_{-1}(p − t)|`` in the inputs' units per cell.
    """
    d = pred - target
    return (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., 1:] - d[..., :-1]).abs().mean()


def physical_relative_l2(
    pred: torch.Tensor, target: torch.Tensor, log_bounds: tuple[float, float]
) -> torch.Tensor:
    """Mean over the batch of ``‖d(p) − d(t)‖² / ‖d(t)‖²`` with ``d`` the inverse of the
    OpenFWI seismic normalisation with log bounds ``(lo, hi)``.

    Args:
        pred, target: (B, ...) normalised gathers (target not all zero in physical units).
        log_bounds: the normaliser's ``(s_log_min, s_log_max)``.

    Returns:
        0-d tensor, dimensionless (the squared relative L2 residual of each sample, averaged).
    """
    lo, hi = log_bounds

    def physical(x: torch.Tensor) -> torch.Tensor:
        y = (x.float() + 1) * (0.5 * (hi - lo)) + lo
        return torch.sign(y) * torch.expm1(y.abs())

    p, t = physical(pred).flatten(1), physical(target).flatten(1)
    return ((p - t).square().sum(1) / t.square().sum(1)).mean()


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma_l1: float,
    gamma_l2: float,
    gamma_grad: float = 0.0,
    gamma_physical: float = 0.0,
    log_bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    """``gamma_l1 L1 + gamma_l2 MSE + gamma_grad gradient_l1 + gamma_physical
    physical_relative_l2`` of pred against target (same shape, (B, C, H, W), normalised units);
    a term is skipped when its weight is 0. The physical term needs ``log_bounds`` (seismic only:
    ``ValueError`` without them)."""
    loss = gamma_l1 * F.l1_loss(pred, target) + gamma_l2 * F.mse_loss(pred, target)
    if gamma_grad:
        loss = loss + gamma_grad * gradient_l1(pred, target)
    if gamma_physical:
        if log_bounds is None:
            raise ValueError("gamma_physical applies to seismic gathers (needs their log bounds)")
        loss = loss + gamma_physical * physical_relative_l2(pred, target, log_bounds)
    return loss
