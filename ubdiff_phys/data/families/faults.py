"""Fault families: FlatFault-A/B and CurveFault-A/B (specs/data.md §3).

A fault is one straight line through the map. The block on one side of it (the displaced block)
is moved along the fault plane by a sub-cell amount and resampled with bilinear interpolation, and
the two blocks are joined across a narrow fault zone (a logistic blend a few cells wide). This is
what makes real FlatFault maps hold velocities between the layer velocities: one-row bands at
the interfaces inside the displaced block, and cells along the fault trace whose deviation decays
exponentially away from it (the measured fractions at 0.001, 1 and 20 m/s, 0.20 / 0.12 / 0.07,
fit exponential tails of width ~2 cells; a sharp, area-weighted fault line gives only ~0.03).
"""

from __future__ import annotations

import numpy as np

from ubdiff_phys.data.families._common import NX, NZ, fill_layers, sorted_layer_velocities
from ubdiff_phys.data.families.layered import (
    _b_interfaces,
    _b_layer_velocities,
    curvevel_a,
    curvevel_b,
)

#: Logistic width [cells] of the fault zone, fitted to the interpolated-cell fractions of the real
#: FlatFault-A maps (> 0.001, > 1 and > 20 m/s from every layer velocity: 0.20, 0.12, 0.07).
FAULT_ZONE_WIDTH = 2.0

__all__ = [
    "FAULT_ZONE_WIDTH",
    "apply_fault",
    "fault_zone_weight",
    "curvefault_a",
    "curvefault_b",
    "flatfault_a",
    "flatfault_b",
]


def _bilinear(maps: np.ndarray, shift_z: np.ndarray, shift_x: np.ndarray) -> np.ndarray:
    """maps(z - shift_z, x - shift_x) by bilinear interpolation, edges replicated.

    Args:
        maps: (n, nz, nx) float64; shift_z, shift_x: (n,) displacement [cells].
    """
    n, nz, nx = maps.shape
    zs = np.clip(np.arange(nz)[None, :] - shift_z[:, None], 0, nz - 1)  # (n, nz)
    xs = np.clip(np.arange(nx)[None, :] - shift_x[:, None], 0, nx - 1)  # (n, nx)
    z0 = np.minimum(np.floor(zs).astype(np.int64), nz - 2)
    x0 = np.minimum(np.floor(xs).astype(np.int64), nx - 2)
    fz = (zs - z0)[:, :, None]
    fx = (xs - x0)[:, None, :]
    b = np.arange(n)[:, None, None]
    zi, xi = z0[:, :, None], x0[:, None, :]
    top = (1 - fx) * maps[b, zi, xi] + fx * maps[b, zi, xi + 1]
    bottom = (1 - fx) * maps[b, zi + 1, xi] + fx * maps[b, zi + 1, xi + 1]
    return (1 - fz) * top + fz * bottom


def fault_zone_weight(dist: np.ndarray, width: float = FAULT_ZONE_WIDTH) -> np.ndarray:
    """Weight of the displaced block at signed distance ``dist`` [cells] from the fault line: a
    logistic step 1 / (1 + exp(-dist / width)). Its exponential tails spread the fault over a
    zone whose deviations from the layer velocities decay by a factor e every ``width`` cells."""
    return 0.5 * (1.0 + np.tanh(dist / (2.0 * width)))


def apply_fault(rng: np.random.Generator, maps: np.ndarray, max_throw: float = 10.0) -> np.ndarray:
    """Cut each map by one planar fault and displace one block along it.

    Fault parameters (fitted to the measurements on 1,000 real FlatFault-A maps): dip
    38 + 50 u^0.7 degrees from horizontal, u ~ U(0, 1) (median 69), dipping left or right with
    equal probability; vertical throw ~ U(2, max_throw) cells with a random sign (median 6, 75th
    percentile 8, max 10 for the default); the fault crosses mid-depth at x ~ U(20, 50); either
    block may be the displaced one.

    Args:
        maps: (n, 70, 70) velocity [m/s] before faulting.

    Returns:
        (n, 70, 70) float32 faulted velocity [m/s].
    """
    n = len(maps)
    base = maps.astype(np.float64)
    dip = np.radians(38.0 + 50.0 * rng.uniform(0.0, 1.0, n) ** 0.7)
    direction = rng.choice(np.array([-1.0, 1.0]), n)
    throw = rng.uniform(2.0, max_throw, n) * rng.choice(np.array([-1.0, 1.0]), n)
    x0 = rng.uniform(20.0, 50.0, n)
    # along the fault (x, z) = (direction cos(dip), sin(dip)); unit normal (sin(dip), -dir cos(dip))
    nxc, nzc = np.sin(dip), -direction * np.cos(dip)
    moved = _bilinear(base, throw, throw * direction / np.tan(dip))
    xc = np.arange(NX)[None, None, :] - x0[:, None, None]
    zc = np.arange(NZ)[None, :, None] - (NZ - 1) / 2
    dist = nxc[:, None, None] * xc + nzc[:, None, None] * zc
    cover = fault_zone_weight(dist)
    return (cover * moved + (1 - cover) * base).astype(np.float32)


def _four_flat_layers(rng: np.random.Generator, n: int) -> np.ndarray:
    """4 flat layers, thickness 9 + 34 w_i with w ~ Dirichlet(2, 2, 2, 2) (sum 70), velocities
    integer ~ U{1500..4500} increasing with depth."""
    g = rng.gamma(2.0, 1.0, (n, 4))
    thick = 9.0 + (NZ - 36.0) * g / g.sum(axis=1, keepdims=True)
    pos = np.rint(np.cumsum(thick, axis=1)[:, :3]).astype(np.int64)
    vel = sorted_layer_velocities(rng, np.full(n, 4), 4)
    return fill_layers(pos, np.ones_like(pos, dtype=bool), vel)


def flatfault_a(rng: np.random.Generator, n: int) -> np.ndarray:
    """FlatFault-A: 4 flat layers cut by one planar fault.

    Measured on 1,000 real FlatFault-A maps (specs/data.md §3) and targeted here: 4 major layers,
    integer velocities uniform on [1500, 4500] increasing with depth, layer thickness at the map
    edges 9-24 cells (median 16); fault dip 38-88 deg (median 69), either direction; vertical
    throw median 6, 75th percentile 8, max 10 cells, either sign; sub-cell shift of the displaced
    block with linear interpolation (see :func:`apply_fault`). The thickness law (9 + Dirichlet
    share) and the parameter distributions are assumptions fitted to those statistics.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    return apply_fault(rng, _four_flat_layers(rng, n))


def _b_flat_layers(rng: np.random.Generator, n: int) -> np.ndarray:
    width = 7
    n_int = rng.integers(4, width + 1, n)
    pos = np.rint(_b_interfaces(rng, n, n_int, width)).astype(np.int64)
    valid = np.arange(width) < n_int[:, None]
    return fill_layers(pos, valid, _b_layer_velocities(rng, n, width + 1))


def flatfault_b(rng: np.random.Generator, n: int) -> np.ndarray:
    """FlatFault-B (not measured: assumptions). 5-8 flat layers of uneven thickness whose
    velocities may decrease with depth (as :func:`~.layered.flatvel_b`, adjacent contrast >= 300
    m/s), cut by one fault as in FlatFault-A with throws up to 15 cells.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    return apply_fault(rng, _b_flat_layers(rng, n), max_throw=15.0)


def curvefault_a(rng: np.random.Generator, n: int) -> np.ndarray:
    """CurveFault-A (not measured: assumption from specs/data.md §3). CurveVel-A layers
    (:func:`~.layered.curvevel_a`) cut by one fault built exactly as in FlatFault-A.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    return apply_fault(rng, curvevel_a(rng, n))


def curvefault_b(rng: np.random.Generator, n: int) -> np.ndarray:
    """CurveFault-B (not measured: assumptions). CurveVel-B layers (:func:`~.layered.curvevel_b`)
    cut by one fault as in FlatFault-B (throws up to 15 cells).

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    return apply_fault(rng, curvevel_b(rng, n), max_throw=15.0)
