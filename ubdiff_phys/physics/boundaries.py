"""Absorbing-boundary coefficient profiles along one padded axis.

Both boundary modes pad the model by edge replication; these functions give, per model, the 1-D
coefficient profiles over the padded axis (length n_model + 2 * width, zero inside the model) that
the kernels combine into 2-D damping.
"""

from __future__ import annotations

import math

import torch

__all__ = ["cpml_profiles", "openfwi_sponge_profile"]


def openfwi_sponge_profile(
    v_min: torch.Tensor, n_model: int, width: int, h: float, dt: float
) -> torch.Tensor:
    """The OpenFWI / CSIM sponge (specs/physics.md §2) as kappa = d dt along one padded axis.

    ``a = (width - 1) h``, ``k0 = 3 v_min ln(1e7) / (2 a)``, ``d_i = k0 (i h / a)^2`` for the i-th
    pad cell counted from the model (i = 0 next to the model, i = width - 1 outermost).

    Args:
        v_min: (B,) minimum velocity [m/s] of each model (float64 recommended).
        n_model: model cells along this axis.
        width: pad cells on each side (OpenFWI: 120); must be >= 2.
        h: cell size along this axis [m].
        dt: time step [s].

    Returns:
        (B, n_model + 2 width) tensor, dtype and device of ``v_min``: kappa (dimensionless).
    """
    if width < 2:
        raise ValueError(f"the OpenFWI sponge needs a width of at least 2 cells, got {width}")
    a = (width - 1) * h
    k0 = 3.0 * v_min * math.log(1e7) / (2.0 * a)  # (B,)
    i = torch.arange(width, dtype=v_min.dtype, device=v_min.device)
    kappa = k0[:, None] * (i * h / a) ** 2 * dt  # (B, width), i = 0 next to the model
    out = torch.zeros(v_min.shape[0], n_model + 2 * width, dtype=v_min.dtype, device=v_min.device)
    out[:, :width] = kappa.flip(-1)
    out[:, width + n_model :] = kappa
    return out


def cpml_profiles(
    v_max: torch.Tensor,
    n_model: int,
    width: int,
    h: float,
    dt: float,
    frequency: float,
    reflection: float = 1e-3,
    power: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """C-PML recursive-convolution coefficients along one padded axis.

    Complex-frequency-shifted PML (Kuzuoglu & Mittra 1996; Komatitsch & Martin 2007):
    ``sigma(d) = sigma_max d^power`` with ``sigma_max = (power + 1) v_max ln(1/R) / (2 L)``,
    ``alpha(d) = pi f (1 - d)``, d in [0, 1] the normalised depth into the layer (L = width h,
    d = 0 at the model's outermost cell centre, d = 1 at the outermost pad cell), and
    ``a = exp(-(sigma + alpha) dt)``, ``b = sigma / (sigma + alpha) (a - 1)``. ``db`` is db/dx along
    +x [1/m] (central difference of the continuous profile). All three are zero inside the model.

    Args:
        v_max: (B,) velocity [m/s] scaling the damping of each model (float64 recommended).
        n_model: model cells along this axis.
        width: PML cells on each side.
        h: cell size [m]; dt: time step [s]; frequency: CFS frequency [Hz] (the wavelet's peak).
        reflection: target reflection coefficient R; power: polynomial grading.

    Returns:
        a, b, db: each (B, n_model + 2 width), dtype and device of ``v_max``.
    """
    n = n_model + 2 * width
    dtype, device = v_max.dtype, v_max.device
    if width == 0:
        z = torch.zeros(v_max.shape[0], n, dtype=dtype, device=device)
        return z, z.clone(), z.clone()
    length = width * h
    sigma_max = (power + 1.0) * v_max[:, None] * math.log(1.0 / reflection) / (2.0 * length)
    x = torch.arange(n, dtype=dtype, device=device)

    def depth(xc: torch.Tensor) -> torch.Tensor:
        # normalised distance into the layer from the model's edge cell centre
        left = (width - xc) / width
        right = (xc - (width + n_model - 1)) / width
        return torch.clamp(torch.maximum(left, right), min=0.0)

    def ab(xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = depth(xc)[None, :]
        sigma = sigma_max * d**power
        alpha = math.pi * frequency * (1.0 - d).clamp(min=0.0)
        a = torch.exp(-(sigma + alpha) * dt)
        denom = sigma + alpha
        b = torch.where(denom > 0, sigma / torch.where(denom > 0, denom, 1.0) * (a - 1.0), 0.0)
        inside = (d == 0).expand_as(a)
        return torch.where(inside, 0.0, a), torch.where(inside, 0.0, b)

    a, b = ab(x)
    eps = 1e-3
    _, b_plus = ab(x + eps)
    _, b_minus = ab(x - eps)
    db = (b_plus - b_minus) / (2.0 * eps * h)
    in_model = (x >= width) & (x < width + n_model)
    db = torch.where(in_model[None, :], 0.0, db)
    return a, b, db
