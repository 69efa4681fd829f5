"""Synthetic velocity families, OpenFWI-like (specs/data.md §3).

``generate(name, n, seed=...)`` returns (n, 1, 70, 70) float32 maps in m/s (row 0 = surface).

Maps come from an endless seeded stream per (family, seed): the stream is cut into blocks of
:data:`BLOCK` maps and block b is drawn from its own generator seeded by (seed, family, b). So
``generate(name, n, seed=s, start=i)`` returns maps i .. i+n-1 of that stream, whatever n and
however the stream is cut: a large dataset can be generated piece by piece (and resumed) and
equals the same maps generated in one call.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from ubdiff_phys.data.families._common import NX, NZ, V_MAX, V_MIN
from ubdiff_phys.data.families.faults import curvefault_a, curvefault_b, flatfault_a, flatfault_b
from ubdiff_phys.data.families.layered import curvevel_a, curvevel_b, flatvel_a, flatvel_b
from ubdiff_phys.data.families.style import style_like_a, style_like_b

__all__ = [
    "BLOCK",
    "FAMILIES",
    "MEASURED_FAMILIES",
    "NX",
    "NZ",
    "V_MAX",
    "V_MIN",
    "check_family",
    "generate",
]

#: Maps per independently seeded block of a family's stream.
BLOCK = 256

#: name -> generator(rng, n) -> (n, 70, 70) float32 [m/s]
FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "flatvel-a": flatvel_a,
    "flatvel-b": flatvel_b,
    "curvevel-a": curvevel_a,
    "curvevel-b": curvevel_b,
    "flatfault-a": flatfault_a,
    "flatfault-b": flatfault_b,
    "curvefault-a": curvefault_a,
    "curvefault-b": curvefault_b,
    "style-like-a": style_like_a,
    "style-like-b": style_like_b,
}
_ALIASES = {"style-like": "style-like-a"}

#: Families whose statistics were measured on real OpenFWI maps; the others rest on assumptions.
MEASURED_FAMILIES = ("flatvel-a", "curvevel-a", "flatfault-a")


def check_family(name: str) -> str:
    """Canonical family name; raises ValueError listing the valid names for an unknown one."""
    if not isinstance(name, str):
        raise TypeError(f"family name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        valid = ", ".join(list(FAMILIES) + list(_ALIASES))
        raise ValueError(f"unknown velocity family {name!r}; valid families: {valid}")
    return key


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return int(value)


def _block(name: str, seed: int, b: int) -> np.ndarray:
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(name.encode()), b))
    maps = FAMILIES[name](np.random.default_rng(ss), BLOCK)
    assert maps.shape == (BLOCK, NZ, NX) and maps.dtype == np.float32
    return maps


def generate(name: str, n: int, *, seed: int, start: int = 0) -> np.ndarray:
    """Velocity maps of one family.

    Args:
        name: one of :data:`FAMILIES` (case-insensitive; "style-like" = "style-like-a").
        n: number of maps (>= 0).
        seed: non-negative integer; the same (name, seed) always gives the same stream.
        start: index of the first map in the stream (>= 0).

    Returns:
        (n, 1, 70, 70) float32 velocity [m/s], row 0 = surface.
    """
    name = check_family(name)
    n = _check_int(n, "n")
    seed = _check_int(seed, "seed")
    start = _check_int(start, "start")
    out = np.empty((n, 1, NZ, NX), dtype=np.float32)
    i = 0
    while i < n:
        b, off = divmod(start + i, BLOCK)
        take = min(BLOCK - off, n - i)
        out[i : i + take, 0] = _block(name, seed, b)[off : off + take]
        i += take
    return out
