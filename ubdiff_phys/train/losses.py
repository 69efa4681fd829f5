"""Reconstruction losses of the autoencoder's training steps.

``g1 L1 + g2 MSE`` is the paper's (specs/ubdiff.md §2). The optional gradient term
``g_grad (L1(∂_z p, ∂_z t) + L1(∂_x p, ∂_x t))`` compares the finite differences of prediction and
target along the last two axes (depth and offset of a velocity map). Pixel losses alone pay little
for an interface smeared over two rows or for a small overshoot beside it; the gradient term pays
for both, and it is zero for a prediction that differs from the target by a constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gradient_l1", "reconstruction_loss"]


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |∂p − ∂t| over first differences along dim −2, plus the same along dim −1.

    Args:
        pred, target: (..., H, W) tensors of one shape (H, W ≥ 2).

    Returns:
        0-d tensor: ``mean|Δ_{-2}(p − t)| + mean|Δ_{-1}(p − t)|`` in the inputs' units per cell.
    """
    d = pred - target
    return (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., 1:] - d[..., :-1]).abs().mean()


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma_l1: float,
    gamma_l2: float,
    gamma_grad: float = 0.0,
) -> torch.Tensor:
    """``gamma_l1 L1 + gamma_l2 MSE + gamma_grad gradient_l1`` of pred against target (same
    shape, (B, C, H, W), normalised units); the gradient term is skipped when its weight is 0."""
    loss = gamma_l1 * F.l1_loss(pred, target) + gamma_l2 * F.mse_loss(pred, target)
    if gamma_grad:
        loss = loss + gamma_grad * gradient_l1(pred, target)
    return loss
