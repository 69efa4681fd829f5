"""Pure-PyTorch GroupNorm -> FiLM -> SiLU: the semantics of the fused native op.

``y = silu(group_norm(x; groups, weight, bias, eps) * (1 + scale) + shift)`` in plain torch ops
(F.group_norm, mul/add, F.silu), differentiable by autograd. This is the test oracle of
:func:`ubdiff_phys.ops.group_norm_film_silu` and its fallback when the native op is not eligible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["group_norm_film_silu_reference"]


def group_norm_film_silu_reference(
    x: torch.Tensor,
    scale: torch.Tensor | None,
    shift: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    groups: int,
    eps: float = 1e-5,
) -> torch.Tensor:
    """GroupNorm, then FiLM scale/shift broadcast over the spatial axes, then SiLU.

    Args:
        x: features, shape (B, C, *spatial) (the latent U-Net: (B, C, L)).
        scale: FiLM scale, shape (B, C); the normalised features are multiplied by ``1 + scale``.
            None: no scaling.
        shift: FiLM shift, shape (B, C). None: no shift.
        weight: GroupNorm gamma, shape (C,), or None.
        bias: GroupNorm beta, shape (C,), or None.
        groups: number of groups G (C divisible by G).
        eps: added to the biased group variance.

    Returns:
        y, shape and dtype of ``x`` (type promotion as the torch ops do).
    """
    h = F.group_norm(x, groups, weight, bias, eps)
    film_shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
    if scale is not None:
        h = h * (1 + scale.reshape(film_shape))
    if shift is not None:
        h = h + shift.reshape(film_shape)
    return F.silu(h)
