"""``style-like-a`` / ``style-like-b``: Gaussian-process stand-ins for OpenFWI's Style-A/B.

The real Style maps were made by style transfer of natural images and cannot be reproduced here.
specs/data.md §3 gives a Gaussian-process fit to them on the 70 x 70 grid in m/s: squared
exponential + constant offset + linear depth trend + white noise. These families sample that GP;
they are *not* OpenFWI Style data and are named "style-like" for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubdiff_phys.data.families._common import NX, NZ, V_MAX, V_MIN

__all__ = ["STYLE_A", "STYLE_B", "StyleGP", "sample_style_gp", "style_like_a", "style_like_b"]


@dataclass(frozen=True)
class StyleGP:
    """GP hyper-parameters (specs/data.md §3 fit).

    Attributes:
        length: squared-exponential length scale [cells].
        sigma: squared-exponential standard deviation [m/s].
        offset_sigma: standard deviation of the per-map constant offset [m/s].
        slope_sigma: standard deviation of the per-map linear depth trend [m/s per cell].
        noise_sigma: white-noise standard deviation [m/s].
        mean: mean velocity [m/s] (assumption: the fit gives no mean; mid-range 3000).
    """

    length: float
    sigma: float
    offset_sigma: float
    slope_sigma: float
    noise_sigma: float
    mean: float = 3000.0


STYLE_A = StyleGP(length=3.5, sigma=183.0, offset_sigma=520.0, slope_sigma=31.0, noise_sigma=0.1)
STYLE_B = StyleGP(length=2.0, sigma=158.0, offset_sigma=1239.0, slope_sigma=92.0, noise_sigma=58.0)


def _se_factor(n: int, length: float) -> np.ndarray:
    """A factor L with L L^T = exp(-(i - j)^2 / (2 length^2)) on n points (symmetric square root,
    robust to the kernel's tiny negative eigenvalues)."""
    i = np.arange(n, dtype=np.float64)
    k = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2.0 * length**2))
    w, u = np.linalg.eigh(k)
    return (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T


def sample_style_gp(rng: np.random.Generator, n: int, gp: StyleGP, clip: bool = True) -> np.ndarray:
    """Sample the GP on the 70 x 70 grid.

    v(z, x) = mean + c + beta (z - 34.5) + f(z, x) + eps, with c ~ N(0, offset_sigma^2),
    beta ~ N(0, slope_sigma^2) (assumption: the depth trend has zero mean), f a squared-exponential
    GP (separable on the grid, sampled as Lz G Lx^T) and eps white noise.

    Args:
        clip: clip to [1500, 4500] m/s (the OpenFWI velocity range, which also keeps the solver
            stable); the unclipped field is the exact GP.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    lz, lx = _se_factor(NZ, gp.length), _se_factor(NX, gp.length)
    g = rng.standard_normal((n, NZ, NX))
    f = gp.sigma * (lz @ g @ lx.T)
    offset = rng.normal(0.0, gp.offset_sigma, n)[:, None, None]
    slope = rng.normal(0.0, gp.slope_sigma, n)[:, None, None]
    z = (np.arange(NZ, dtype=np.float64) - (NZ - 1) / 2)[None, :, None]
    v = gp.mean + offset + slope * z + f + gp.noise_sigma * rng.standard_normal((n, NZ, NX))
    if clip:
        v = np.clip(v, V_MIN, V_MAX)
    return v.astype(np.float32)


def style_like_a(rng: np.random.Generator, n: int) -> np.ndarray:
    """style-like-a: the GP fitted to real Style-A maps (length 3.5 cells, sigma 183 m/s, offset
    sigma 520, depth slope sigma 31 m/s per cell, noise 0.1), mean 3000 m/s (assumed), clipped to
    [1500, 4500] m/s. A stand-in for Style-A, not a reproduction.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    return sample_style_gp(rng, n, STYLE_A)


def style_like_b(rng: np.random.Generator, n: int) -> np.ndarray:
    """style-like-b: the GP fitted to real Style-B maps (length 2.0 cells, sigma 158, noise 58,
    offset sigma 1239, slope sigma 92), mean 3000 m/s (assumed), clipped to [1500, 4500] m/s.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    return sample_style_gp(rng, n, STYLE_B)
