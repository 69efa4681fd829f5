"""Statistics of velocity maps, measured the way specs/data.md §3 describes the real OpenFWI maps.

Used by the tests (which compare them with the real-data tables) and by the benchmark report. All
functions take maps of shape (n, 70, 70) or (n, 1, 70, 70) in m/s and only read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FaultStats",
    "LayerStats",
    "DisplacementStats",
    "fault_stats",
    "displacement_stats",
    "flat_layer_stats",
    "interpolated_fraction",
    "sine_fit",
    "variogram",
]


def _as3d(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps)
    if maps.ndim == 4:
        if maps.shape[1] != 1:
            raise ValueError(f"maps of shape {maps.shape}: expected (n, 1, nz, nx)")
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"maps must be (n, nz, nx) or (n, 1, nz, nx), got {maps.shape}")
    return maps


@dataclass
class LayerStats:
    """Per-map layers of laterally invariant maps, read from column 0 top to bottom.

    Attributes:
        n_layers: (n,) number of layers (runs of equal velocity down the column).
        thickness: list of (L,) int arrays [cells], top first.
        velocity: list of (L,) float arrays [m/s], top first.
        laterally_invariant: (n,) bool, every row constant.
    """

    n_layers: np.ndarray
    thickness: list[np.ndarray]
    velocity: list[np.ndarray]
    laterally_invariant: np.ndarray


def flat_layer_stats(maps: np.ndarray) -> LayerStats:
    """Layer count, thicknesses and velocities of (nominally) flat maps."""
    maps = _as3d(maps)
    col = maps[:, :, 0]
    invariant = (maps == col[:, :, None]).all(axis=(1, 2))
    starts = np.ones_like(col, dtype=bool)
    starts[:, 1:] = col[:, 1:] != col[:, :-1]
    thickness, velocity = [], []
    for i in range(len(maps)):
        first = np.flatnonzero(starts[i])
        thickness.append(np.diff(np.append(first, col.shape[1])))
        velocity.append(col[i, first].astype(np.float64))
    n_layers = np.array([len(t) for t in thickness])
    return LayerStats(n_layers, thickness, velocity, invariant)


def sine_fit(
    curves: np.ndarray, wavelengths: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best single-sinusoid least-squares fit (offset + sin + cos) of each curve over a wavelength
    grid.

    Args:
        curves: (n, nx) samples along x.
        wavelengths: candidate wavelengths [samples]; default 10-200 in 1 % steps.

    Returns:
        (best wavelength (n,), RMS residual of that fit (n,)).
    """
    curves = np.asarray(curves, dtype=np.float64)
    if wavelengths is None:
        wavelengths = np.exp(np.linspace(np.log(10.0), np.log(200.0), 302))
    x = np.arange(curves.shape[1], dtype=np.float64)
    bases = []
    for lam in wavelengths:  # orthonormal basis of span{1, sin, cos} per wavelength
        phase = 2 * np.pi * x / lam
        design = np.stack([np.ones_like(x), np.sin(phase), np.cos(phase)])
        bases.append(np.linalg.qr(design.T)[0])
    proj = curves @ np.concatenate(bases, axis=1)  # (n, 3 * n_wavelengths)
    captured = (proj**2).reshape(len(curves), len(wavelengths), 3).sum(axis=2).T
    total = (curves**2).sum(axis=1)
    rms = np.sqrt(np.clip(total - captured, 0.0, None) / curves.shape[1])
    best = rms.argmin(axis=0)
    return wavelengths[best], rms[best, np.arange(len(curves))]


@dataclass
class DisplacementStats:
    """CurveVel-style statistics, per map (specs/data.md §3, CurveVel-A).

    d(x) is the thickness of the top layer in column x (depth of the first interface) [cells];
    h = 70 / (L - 1). Ratios are in units of h.
    """

    n_layers: np.ndarray
    h: np.ndarray
    mean_d: np.ndarray
    min_d: np.ndarray
    max_d: np.ndarray
    dominant_wavelength: np.ndarray
    sine_residual: np.ndarray
    inner_thickness: np.ndarray  # mean thickness of inner layers over x, per map
    thickness_range: np.ndarray  # median over inner layers of (max_x - min_x) thickness
    velocities: np.ndarray  # pooled layer velocities of all maps


def displacement_stats(maps: np.ndarray) -> DisplacementStats:
    """Measure the lateral displacement of monotonic curved-layer maps (velocity increasing with
    depth in every column): the distinct velocities of a map are its layers, top to bottom, and
    the depth of interface k in column x is the number of cells slower than layer k."""
    maps = _as3d(maps)
    n, nz, _ = maps.shape
    rows = {k: [] for k in ("L", "d", "inner", "range")}
    pooled = []
    for i in range(n):
        levels = np.unique(maps[i])
        pooled.append(levels)
        depth = (maps[i][None, :, :] < levels[1:, None, None]).sum(axis=1)  # (L-1, nx)
        rows["L"].append(len(levels))
        rows["d"].append(depth[0])
        if len(levels) > 3:
            thick = np.diff(depth, axis=0)[:-1]  # inner layers only (exclude the bottom one)
            inside = (depth[1:-1] > 0) & (depth[1:-1] < nz)
            rows["inner"].append(thick.mean())
            rng_x = [np.ptp(t[m]) for t, m in zip(thick, inside, strict=True) if m.sum() > 1]
            rows["range"].append(np.median(rng_x) if rng_x else np.nan)
        else:
            rows["inner"].append(np.nan)
            rows["range"].append(np.nan)
    n_layers = np.array(rows["L"])
    h = nz / np.maximum(n_layers - 1, 1)
    d = np.array(rows["d"], dtype=np.float64)
    lam, resid = sine_fit(d)
    return DisplacementStats(
        n_layers=n_layers,
        h=h,
        mean_d=d.mean(axis=1) / h,
        min_d=d.min(axis=1) / h,
        max_d=d.max(axis=1) / h,
        dominant_wavelength=lam,
        sine_residual=resid,
        inner_thickness=np.array(rows["inner"]),
        thickness_range=np.array(rows["range"]),
        velocities=np.concatenate(pooled),
    )


def _major_levels(m: np.ndarray, k: int) -> np.ndarray:
    """The k most frequent values of a map, sorted ascending."""
    vals, counts = np.unique(m, return_counts=True)
    return np.sort(vals[np.argsort(counts)[::-1][:k]])


def interpolated_fraction(maps: np.ndarray, n_major: int, tol: float) -> np.ndarray:
    """Per map, the fraction of cells farther than ``tol`` m/s from every one of its ``n_major``
    most frequent velocities (the major layers)."""
    maps = _as3d(maps)
    out = np.empty(len(maps))
    for i, m in enumerate(maps):
        levels = _major_levels(m, n_major).astype(np.float64)
        dist = np.abs(m.astype(np.float64)[..., None] - levels).min(axis=-1)
        out[i] = (dist > tol).mean()
    return out


@dataclass
class FaultStats:
    """FlatFault-style statistics per map; NaN where a quantity could not be measured.

    dip: fault dip from horizontal [deg], from a line fitted to the fault trace.
    throw: signed vertical offset of the interfaces across the fault [cells] (right minus left).
    edge_thickness: (n, 2, n_major) layer thickness [cells] at columns 0 and nx-1.
    """

    dip: np.ndarray
    throw: np.ndarray
    edge_thickness: np.ndarray


def _interface_depths(column: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Sub-cell depth of each interface between consecutive ``levels`` in one column: the number of
    cells above it, counting a linearly blended cell by its blend weight."""
    c = column.astype(np.float64)[:, None]
    lo, hi = levels[:-1], levels[1:]
    w = np.clip((hi - c) / (hi - lo), 0.0, 1.0)
    return w.sum(axis=0)


def fault_stats(maps: np.ndarray, n_major: int = 4) -> FaultStats:
    """Dip, throw and edge thicknesses of flat layered maps cut by one planar fault (layers
    increasing with depth)."""
    maps = _as3d(maps)
    n, nz, nx = maps.shape
    dip = np.full(n, np.nan)
    throw = np.full(n, np.nan)
    edges = np.full((n, 2, n_major), np.nan)
    z = np.arange(nz) + 0.5
    for i, m in enumerate(maps.astype(np.float64)):
        levels = _major_levels(m, n_major).astype(np.float64)
        if len(levels) < n_major:
            continue
        left, right = _interface_depths(m[:, 0], levels), _interface_depths(m[:, -1], levels)
        for e, dep in enumerate((left, right)):
            edges[i, e] = np.diff(np.concatenate([[0.0], dep, [nz]]))
        # fault trace: where each row changes along x, weighted by the size of the change
        diff = np.abs(np.diff(m, axis=1))
        weight = diff.sum(axis=1)
        rows = weight > 0
        if rows.sum() < 3:
            continue
        xc = (diff * (np.arange(1, nx))[None, :]).sum(axis=1)[rows] / weight[rows]
        slope = np.polyfit(z[rows], xc, 1)[0]  # dx/dz along the trace
        dip[i] = np.degrees(np.arctan2(1.0, abs(slope)))
        x_cross = np.polyval(np.polyfit(z[rows], xc, 1), left)  # where the trace meets interfaces
        inside = (x_cross > 3) & (x_cross < nx - 3)
        if inside.any():
            throw[i] = float(np.mean((right - left)[inside]))
    return FaultStats(dip, throw, edges)


def variogram(fields: np.ndarray, lags: np.ndarray, axis: str) -> np.ndarray:
    """Empirical semivariogram 0.5 E[(f(p + lag) - f(p))^2] along ``axis`` ("x" or "z")
    [m^2/s^2], pooled over maps and positions."""
    f = _as3d(fields).astype(np.float64)
    out = []
    for lag in lags:
        if axis == "x":
            d = f[:, :, lag:] - f[:, :, :-lag]
        elif axis == "z":
            d = f[:, lag:, :] - f[:, :-lag, :]
        else:
            raise ValueError(f"axis must be 'x' or 'z', got {axis!r}")
        out.append(0.5 * np.mean(d**2))
    return np.array(out)
