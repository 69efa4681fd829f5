"""The OpenFWI normalisation (specs/data.md §2), both directions, never in place.

Velocity: ``v_n = 2 (v - 1500) / 3000 - 1`` maps [1500, 4500] m/s to [-1, 1].
Seismic: ``s_l = sign(s) log1p(|s|)``, then min-max to [-1, 1] with the *log-transformed* per-subset
bounds of :data:`SEISMIC_LOG_BOUNDS`, no clipping. Inverse: undo the min-max, then
``sign(x) expm1(|x|)``.

Every function accepts a numpy array or a torch tensor and returns a new one of the same kind
(floating dtype kept; integer input becomes float64 / float32): inputs are never modified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "SEISMIC_BOUNDS",
    "SEISMIC_LOG_BOUNDS",
    "VELOCITY_RANGE",
    "Normalizer",
    "denormalize_seismic",
    "denormalize_velocity",
    "normalize_seismic",
    "normalize_velocity",
    "subset_for_family",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

#: (min, max) velocity [m/s] mapped to [-1, 1].
VELOCITY_RANGE = (1500.0, 4500.0)

#: OpenFWI per-subset (data_min, data_max) of the raw seismic files (physical amplitude).
SEISMIC_BOUNDS: dict[str, tuple[float, float]] = {
    "flatvel-a": (-26.95, 52.77),
    "flatvel-b": (-27.17, 56.05),
    "curvevel-a": (-27.11, 55.10),
    "curvevel-b": (-29.04, 57.03),
    "flatfault-a": (-26.10, 50.86),
    "flatfault-b": (-24.86, 50.28),
    "curvefault-a": (-26.48, 52.32),
    "curvefault-b": (-24.93, 50.98),
    "style-a": (-24.96, 48.93),
    "style-b": (-23.76, 46.01),
}

#: The same bounds after ``sign(s) log1p(|s|)``: the ones the min-max step uses.
SEISMIC_LOG_BOUNDS: dict[str, tuple[float, float]] = {
    "flatvel-a": (-3.3304, 3.9847),
    "flatvel-b": (-3.3383, 4.0439),
    "curvevel-a": (-3.3361, 4.0271),
    "curvevel-b": (-3.4025, 4.0610),
    "flatfault-a": (-3.2995, 3.9485),
    "flatfault-b": (-3.2527, 3.9373),
    "curvefault-a": (-3.3135, 3.9763),
    "curvefault-b": (-3.2554, 3.9509),
    "style-a": (-3.2566, 3.9106),
    "style-b": (-3.2092, 3.8504),
}


def subset_for_family(family: str) -> str:
    """The OpenFWI subset whose seismic bounds a family uses ("style-like-a" -> "style-a")."""
    key = family.strip().lower().replace("_", "-")
    key = {"style-like": "style-a", "style-like-a": "style-a", "style-like-b": "style-b"}.get(
        key, key
    )
    if key not in SEISMIC_LOG_BOUNDS:
        raise ValueError(
            f"no OpenFWI seismic bounds for {family!r}; "
            f"known subsets: {', '.join(SEISMIC_LOG_BOUNDS)}"
        )
    return key


def _float(x: Array) -> Array:
    """A floating copy-safe view: integer input is promoted; float input is returned as is (the
    callers only build new arrays from it)."""
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(torch.float32)
    if isinstance(x, np.ndarray):
        return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    raise TypeError(f"expected a numpy array or torch tensor, got {type(x).__name__}")


def _log_signed(x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.sign(x) * torch.log1p(torch.abs(x))
    return np.sign(x) * np.log1p(np.abs(x))


def _exp_signed(x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.sign(x) * torch.expm1(torch.abs(x))
    return np.sign(x) * np.expm1(np.abs(x))


def normalize_velocity(v: Array, v_min: float = 1500.0, v_max: float = 4500.0) -> Array:
    """Velocity [m/s] -> [-1, 1]: ``2 (v - v_min) / (v_max - v_min) - 1``. Returns a new array."""
    v = _float(v)
    return 2.0 * (v - v_min) / (v_max - v_min) - 1.0


def denormalize_velocity(x: Array, v_min: float = 1500.0, v_max: float = 4500.0) -> Array:
    """Inverse of :func:`normalize_velocity`: [-1, 1] -> m/s. Returns a new array."""
    x = _float(x)
    return (x + 1.0) * (0.5 * (v_max - v_min)) + v_min


def _log_bounds(
    subset: str | None, log_min: float | None, log_max: float | None
) -> tuple[float, float]:
    if subset is not None:
        if log_min is not None or log_max is not None:
            raise ValueError("give either subset or (log_min, log_max), not both")
        return SEISMIC_LOG_BOUNDS[subset_for_family(subset)]
    if log_min is None or log_max is None:
        raise ValueError("give subset=... or both log_min and log_max")
    if not log_max > log_min:
        raise ValueError(f"need log_max > log_min, got {log_min}, {log_max}")
    return float(log_min), float(log_max)


def normalize_seismic(
    s: Array,
    subset: str | None = None,
    *,
    log_min: float | None = None,
    log_max: float | None = None,
) -> Array:
    """Seismic (physical amplitude) -> [-1, 1] (values outside the bounds map outside [-1, 1]; no
    clipping). Bounds from an OpenFWI ``subset`` name or explicit *log-transformed* bounds.
    Returns a new array."""
    lo, hi = _log_bounds(subset, log_min, log_max)
    s_l = _log_signed(_float(s))
    return 2.0 * (s_l - lo) / (hi - lo) - 1.0


def denormalize_seismic(
    x: Array,
    subset: str | None = None,
    *,
    log_min: float | None = None,
    log_max: float | None = None,
) -> Array:
    """Inverse of :func:`normalize_seismic`: undo the min-max, then ``sign(x) expm1(|x|)``."""
    lo, hi = _log_bounds(subset, log_min, log_max)
    x = _float(x)
    return _exp_signed((x + 1.0) * (0.5 * (hi - lo)) + lo)


@dataclass(frozen=True)
class Normalizer:
    """Normalisation constants of one dataset, stored in its HDF5 attributes.

    Attributes:
        v_min, v_max: velocity range [m/s] mapped to [-1, 1].
        s_log_min, s_log_max: log-transformed seismic bounds mapped to [-1, 1].
        source: where the seismic bounds come from (e.g. "openfwi:flatvel-a").
    """

    v_min: float = 1500.0
    v_max: float = 4500.0
    s_log_min: float = SEISMIC_LOG_BOUNDS["flatvel-a"][0]
    s_log_max: float = SEISMIC_LOG_BOUNDS["flatvel-a"][1]
    source: str = "openfwi:flatvel-a"

    @classmethod
    def for_family(cls, family: str) -> Normalizer:
        """The OpenFWI convention for a family (its subset's published bounds)."""
        subset = subset_for_family(family)
        lo, hi = SEISMIC_LOG_BOUNDS[subset]
        return cls(s_log_min=lo, s_log_max=hi, source=f"openfwi:{subset}")

    def velocity(self, v: Array) -> Array:
        return normalize_velocity(v, self.v_min, self.v_max)

    def velocity_inverse(self, x: Array) -> Array:
        return denormalize_velocity(x, self.v_min, self.v_max)

    def seismic(self, s: Array) -> Array:
        return normalize_seismic(s, log_min=self.s_log_min, log_max=self.s_log_max)

    def seismic_inverse(self, x: Array) -> Array:
        return denormalize_seismic(x, log_min=self.s_log_min, log_max=self.s_log_max)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        return cls(**d)
