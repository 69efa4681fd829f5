"""Layered families without faults: FlatVel-A/B and CurveVel-A/B (specs/data.md §3).

All functions take a numpy ``Generator`` and a count and return (n, 70, 70) float32 maps in m/s,
row 0 = surface. They are vectorised over maps.
"""

from __future__ import annotations

import numpy as np

from ubdiff_phys.data.families._common import (
    NX,
    NZ,
    V_MAX,
    V_MIN,
    fill_layers,
    random_sinusoid_sum,
    sorted_layer_velocities,
)

__all__ = ["curvevel_a", "curvevel_b", "flatvel_a", "flatvel_b"]

_MAX_N = 7  # N ~ U{3..7} in the A recipes


def flatvel_a(rng: np.random.Generator, n: int) -> np.ndarray:
    """FlatVel-A: laterally invariant layers with velocity increasing with depth.

    Recipe of specs/data.md §3, which reproduces the statistics *measured on 6,000 real FlatVel-A
    maps* (layer-count histogram, mean thickness per layer, mean velocity per layer, velocity
    jumps): N ~ U{3..7}, h = 70/N; N+1 integer velocities ~ U{1500..4500}, sorted; shift
    s ~ U(-h/2, h/2); interfaces at round(k h + s + d_k), k = 1..N, kept when strictly inside
    (0, 70); filled top-down. One change, measured to fit better: the jitter d_k is U{0, 1}, not
    U{-1, 0, 1}; with {-1, 0, 1} inner layers differ by up to 5 cells (real maps: 0-3) and the
    7- and 8-layer counts drift from the table.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    n_int = rng.integers(3, _MAX_N + 1, n)  # N
    h = NZ / n_int
    shift = rng.uniform(-h / 2, h / 2)
    jitter = rng.integers(0, 2, (n, _MAX_N))
    k = np.arange(1, _MAX_N + 1)
    pos = np.rint(k * h[:, None] + shift[:, None] + jitter)
    valid = (k <= n_int[:, None]) & (pos > 0) & (pos < NZ)
    vel = sorted_layer_velocities(rng, n_int + 1, _MAX_N + 1)
    return fill_layers(pos.astype(np.int64), valid, vel)


def _b_layer_velocities(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """B assumption: i.i.d. integer velocities ~ U{1500..4500}, *not* sorted (velocity may decrease
    with depth), adjacent layers differing by at least 300 m/s (wider contrasts)."""
    vel = rng.integers(V_MIN, V_MAX + 1, (n, width))
    for _ in range(64):  # resample too-small contrasts; converges in a few rounds
        close = np.zeros_like(vel, dtype=bool)
        close[:, 1:] = np.abs(np.diff(vel, axis=1)) < 300
        if not close.any():
            break
        vel[close] = rng.integers(V_MIN, V_MAX + 1, int(close.sum()))
    return vel


def _b_interfaces(rng: np.random.Generator, n: int, n_int: np.ndarray, width: int) -> np.ndarray:
    """B assumption: N+1 layers of uneven thickness, 3 + Dirichlet(2) share of the rest; returns
    interface depths (n, width) float64 (entries past N are beyond the bottom)."""
    g = rng.gamma(2.0, 1.0, (n, width + 1))
    g = np.where(np.arange(width + 1) <= n_int[:, None], g, 0.0)
    w = g / g.sum(axis=1, keepdims=True)
    thick = 3.0 + (NZ - 3.0 * (n_int[:, None] + 1)) * w
    return np.cumsum(thick, axis=1)[:, :width]


def flatvel_b(rng: np.random.Generator, n: int) -> np.ndarray:
    """FlatVel-B (not measured: every rule here is an assumption, see specs/data.md §3).

    Still laterally invariant (measured fact about B). Assumed "harder" than A: N ~ U{4..9}
    interfaces (5-10 layers, all visible), uneven thicknesses (>= 3 cells, Dirichlet(2) shares),
    and i.i.d. layer velocities ~ U{1500..4500} that may *decrease* with depth, adjacent layers
    differing by >= 300 m/s.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    width = 9
    n_int = rng.integers(4, width + 1, n)
    pos = np.rint(_b_interfaces(rng, n, n_int, width)).astype(np.int64)
    valid = np.arange(width) < n_int[:, None]
    vel = _b_layer_velocities(rng, n, width + 1)
    return fill_layers(pos, valid, vel)


def curvevel_displacement(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lateral displacement curve a(x) in units of the layer spacing h: (n, 70) float64.

    The first interface lies at d(x) = h (1 + a(x)). A sum of 2-3 random sinusoids (a single sine
    does not fit the real maps): a dominant one (wavelength 20-36 cells, amplitude 0.35-0.6 h), a
    long one (40-140 cells, 0.2-0.5 h) and, in half of the maps, a short one (12-22 cells,
    0.05-0.25 h), plus a small offset ~ N(0, 0.1). Tuned to the measured CurveVel-A displacement
    statistics (mean, min, max, peak-to-peak, dominant wavelength, single-sine residual).
    """
    amp = np.stack(
        [
            rng.uniform(0.35, 0.6, n),
            rng.uniform(0.2, 0.5, n),
            rng.uniform(0.05, 0.25, n) * (rng.uniform(size=n) < 0.5),
        ],
        axis=1,
    )
    lam = np.stack(
        [
            rng.uniform(20, 36, n),
            np.exp(rng.uniform(np.log(40), np.log(140), n)),
            rng.uniform(12, 22, n),
        ],
        axis=1,
    )
    return random_sinusoid_sum(rng, n, amp, lam) + rng.normal(0.0, 0.1, n)[:, None]


def _curved_interfaces(
    rng: np.random.Generator, base: np.ndarray, h: np.ndarray, a: np.ndarray, wobble: float
) -> np.ndarray:
    """Interface depths z_k(x) = base_k + h a(x) + e_k(x): (n, K, 70) float64.

    Args:
        base: (n, K) depth of each interface where a(x) = 0 [cells].
        h: (n,) layer spacing [cells]; a: (n, 70) displacement in units of h.
        wobble: e_k is a small independent sinusoid per interface (amplitude ~ U(0, wobble) cells,
            wavelength 30-100 cells), so layers are nearly but not exactly parallel.
    """
    n, width = base.shape
    amp = rng.uniform(0.0, wobble, (n * width, 1))
    lam = rng.uniform(30.0, 100.0, (n * width, 1))
    e = random_sinusoid_sum(rng, n * width, amp, lam).reshape(n, width, NX)
    return base[:, :, None] + (h[:, None] * a)[:, None, :] + e


def curvevel_a(rng: np.random.Generator, n: int) -> np.ndarray:
    """CurveVel-A: FlatVel-A-like layers moved by one smooth lateral displacement curve.

    Measured on 6,000 real CurveVel-A maps (specs/data.md §3) and reproduced here: N ~ U{3..7}
    with all N+1 layers visible; velocities integer, uniform on [1500, 4500], increasing with
    depth; inner thickness 70/N on average; the whole stack displaced by d(x) = h (1 + a(x))
    (:func:`curvevel_displacement`), so interfaces are nearly parallel (thickness varies by a few
    cells across x). The exact curve family (sum of sinusoids) and the small per-interface wobble
    are assumptions fitted to those statistics.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    n_int = rng.integers(3, _MAX_N + 1, n)
    h = NZ / n_int
    a = curvevel_displacement(rng, n)
    base = np.arange(1, _MAX_N + 1) * h[:, None]
    z = _curved_interfaces(rng, base, h, a, wobble=2.0)
    pos = np.rint(z).astype(np.int64)
    valid = np.broadcast_to((np.arange(_MAX_N) < n_int[:, None])[:, :, None], pos.shape)
    vel = sorted_layer_velocities(rng, n_int + 1, _MAX_N + 1)
    return fill_layers(pos, valid, vel)


def curvevel_b(rng: np.random.Generator, n: int) -> np.ndarray:
    """CurveVel-B (not measured: assumptions). FlatVel-B layers (:func:`flatvel_b`: 5-10 layers of
    uneven thickness, velocities that may decrease with depth) moved by a CurveVel-A displacement
    curve of 1.5x the amplitude, with a larger per-interface wobble (up to 2.5 cells) so interfaces
    are less parallel.

    Returns:
        (n, 70, 70) float32 velocity [m/s].
    """
    width = 9
    n_int = rng.integers(4, width + 1, n)
    flat = _b_interfaces(rng, n, n_int, width)
    h = NZ / (n_int + 1)
    a = 1.5 * curvevel_displacement(rng, n)
    z = _curved_interfaces(rng, flat, h, a, wobble=2.5)
    pos = np.rint(z).astype(np.int64)
    valid = np.broadcast_to((np.arange(width) < n_int[:, None])[:, :, None], pos.shape)
    vel = _b_layer_velocities(rng, n, width + 1)
    return fill_layers(pos, valid, vel)
