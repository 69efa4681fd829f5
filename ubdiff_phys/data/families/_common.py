"""Shared pieces of the velocity-family generators: grid size, velocity range, layer filling and
smooth random curves."""

from __future__ import annotations

import numpy as np

__all__ = [
    "NX",
    "NZ",
    "V_MAX",
    "V_MIN",
    "fill_layers",
    "random_sinusoid_sum",
    "sorted_layer_velocities",
]

#: Grid of every family map [cells] (OpenFWI: 70 x 70 cells of 10 m).
NZ = NX = 70
#: Velocity range of the OpenFWI families [m/s]; also the velocity normalisation range.
V_MIN, V_MAX = 1500, 4500

_NO_LAYER = np.iinfo(np.int64).max


def sorted_layer_velocities(rng: np.random.Generator, n_used: np.ndarray, width: int) -> np.ndarray:
    """Per map, ``n_used[i]`` integer velocities ~ U{1500..4500} sorted ascending (top to bottom).

    Returns an int64 array (n, width); entries past ``n_used[i]`` hold a sentinel larger than any
    velocity and must not be used.
    """
    vel = rng.integers(V_MIN, V_MAX + 1, (len(n_used), width))
    vel = np.where(np.arange(width) < n_used[:, None], vel, _NO_LAYER)
    vel.sort(axis=1)
    return vel


def fill_layers(interfaces: np.ndarray, valid: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Fill a layered model top-down.

    Args:
        interfaces: (n, K) or (n, K, nx) depth [cells] of the first row of layer k+1 (increasing in
            k); a layer starts at row ``interfaces[..., k]`` inclusive.
        valid: boolean, same shape: interfaces that exist (others are ignored).
        velocities: (n, K+1) layer velocities [m/s], top layer first.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    z = np.arange(NZ)
    if interfaces.ndim == 2:  # flat: one depth per interface
        layer = ((interfaces[:, :, None] <= z) & valid[:, :, None]).sum(axis=1)  # (n, nz)
        col = np.take_along_axis(velocities, layer, axis=1).astype(np.float32)
        return np.repeat(col[:, :, None], NX, axis=2)
    layer = ((interfaces[:, :, None, :] <= z[:, None]) & valid[:, :, None, :]).sum(axis=1)
    n = interfaces.shape[0]
    out = np.take_along_axis(velocities, layer.reshape(n, -1), axis=1)
    return out.reshape(n, NZ, NX).astype(np.float32)


def random_sinusoid_sum(
    rng: np.random.Generator,
    n: int,
    amplitudes: np.ndarray,
    wavelengths: np.ndarray,
) -> np.ndarray:
    """Sum of sinusoids with random phases along x.

    Args:
        amplitudes: (n, m) amplitude of each component.
        wavelengths: (n, m) wavelength of each component [cells].

    Returns:
        (n, 70) float64 curve.
    """
    x = np.arange(NX, dtype=np.float64)
    phase = rng.uniform(0.0, 2.0 * np.pi, amplitudes.shape)
    arg = 2.0 * np.pi * x / wavelengths[:, :, None] + phase[:, :, None]
    return (amplitudes[:, :, None] * np.sin(arg)).sum(axis=1)
