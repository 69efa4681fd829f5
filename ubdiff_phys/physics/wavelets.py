"""Source wavelets."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ricker_openfwi"]


def ricker_openfwi(frequency: float, dt: float, nt: int) -> np.ndarray:
    """The Ricker wavelet exactly as the OpenFWI / CSIM modelling builds it (specs/physics.md §1).

    ``nw = 2 floor(int(2.2 / (f dt)) / 2) + 1`` samples, peak at sample ``c = (nw - 1) / 2``,
    ``w[j] = (1 - 2 b) exp(-b)`` with ``b = (pi f dt (c - j))^2``, zero after ``nw`` samples.
    For f = 15 Hz, dt = 1 ms: 147 samples, peak (1.0) at j = 73, i.e. 73 ms.

    Args:
        frequency: peak frequency f [Hz], > 0.
        dt: time step [s], > 0.
        nt: number of samples returned.

    Returns:
        float64 array of shape (nt,), unit peak amplitude (dimensionless).
    """
    if not (frequency > 0 and dt > 0 and math.isfinite(frequency) and math.isfinite(dt)):
        raise ValueError(f"frequency and dt must be positive and finite, got {frequency}, {dt}")
    if nt < 0:
        raise ValueError(f"nt must be >= 0, got {nt}")
    nw = 2 * math.floor(int(2.2 / (frequency * dt)) / 2) + 1
    centre = (nw - 1) // 2
    j = np.arange(nw, dtype=np.float64)
    b = (math.pi * frequency * dt * (centre - j)) ** 2
    w = (1.0 - 2.0 * b) * np.exp(-b)
    out = np.zeros(nt, dtype=np.float64)
    n = min(nt, nw)
    out[:n] = w[:n]
    return out
