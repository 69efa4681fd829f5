"""Survey geometry: grid, time sampling, sources, receivers, wavelet and boundary widths."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ubdiff_phys.physics.wavelets import ricker_openfwi

__all__ = ["STABILITY_LIMIT", "Survey"]

#: Largest stable Courant number v dt / h of leapfrog + the 4th-order Laplacian on a square grid,
#: sqrt(3/8) (specs/physics.md §4); in general v dt sqrt(1/dx^2 + 1/dz^2) <= sqrt(3/4).
STABILITY_LIMIT = math.sqrt(3.0 / 8.0)


#: Largest accepted |wavelet sample|: gathers scale with it, and float32 overflows near 3.4e38.
MAX_WAVELET_AMPLITUDE = 1e12


@dataclass(frozen=True)
class Survey:
    """Acquisition geometry and discretisation of a 2-D acoustic survey.

    Locations are (row, column) cell indices of the *model* grid (row 0 = surface). The gathers that
    :func:`ubdiff_phys.physics.simulate` returns have shape (B, n_sources, nt, n_receivers).

    Attributes:
        nz, nx: model size [cells] (rows = depth, columns = horizontal position).
        dz, dx: cell size [m].
        dt: time step [s]; also the sampling interval of the gathers.
        nt: number of time steps = samples per trace.
        sources: (row, col) of each source; one shot per source.
        receivers: (row, col) of each receiver, shared by all shots.
        frequency: Ricker peak frequency [Hz] of the OpenFWI wavelet (ignored if ``wavelet`` given).
        wavelet: optional custom source time function of ``nt`` samples (n-1 injected at step n).
        sponge_width: padding [cells] of ``boundary="openfwi"`` (OpenFWI: 120).
        pml_width: C-PML width [cells] of ``boundary="pml"``. The default 13 keeps the OpenFWI
            survey within 6.7e-4 relative L2 of an unbounded medium (worst of 10 models; 20 cells of
            deepwave's C-PML: 1.1e-3) and makes the padded grid 96 = 12 x 8 cells wide, which
            the SIMD kernel covers without dead columns (14 % faster than 14 cells).
        pml_reflection: target normal-incidence reflection coefficient of the C-PML profile.
        pml_max_velocity: velocity [m/s] that scales the C-PML damping; None = each model's own
            maximum (then a model's gathers never depend on the other models in the batch).
    """

    nz: int = 70
    nx: int = 70
    dz: float = 10.0
    dx: float = 10.0
    dt: float = 1e-3
    nt: int = 1000
    sources: tuple[tuple[int, int], ...] = ((1, 0), (1, 17), (1, 34), (1, 52), (1, 69))
    receivers: tuple[tuple[int, int], ...] = field(
        default_factory=lambda: tuple((1, j) for j in range(70))
    )
    frequency: float = 15.0
    wavelet: tuple[float, ...] | None = None
    sponge_width: int = 120
    pml_width: int = 13
    pml_reflection: float = 1e-5
    pml_max_velocity: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", _as_locations(self.sources, "sources"))
        object.__setattr__(self, "receivers", _as_locations(self.receivers, "receivers"))
        if self.wavelet is not None:
            object.__setattr__(self, "wavelet", tuple(float(x) for x in self.wavelet))
        for name in ("nz", "nx", "nt"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Survey.{name} must be a positive integer, got {value!r}")
        for name in ("dz", "dx", "dt", "frequency"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Survey.{name} must be a positive finite number, got {value!r}")
        for name, minimum in (("sponge_width", 0), ("pml_width", 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"Survey.{name} must be an integer >= {minimum}, got {value!r}")
        if not 0 < self.pml_reflection < 1:
            raise ValueError(f"Survey.pml_reflection must be in (0, 1), got {self.pml_reflection}")
        if self.pml_max_velocity is not None and not (
            math.isfinite(self.pml_max_velocity) and self.pml_max_velocity > 0
        ):
            raise ValueError(
                f"Survey.pml_max_velocity must be positive and finite, got {self.pml_max_velocity}"
            )
        if not self.sources:
            raise ValueError("Survey.sources is empty: give at least one (row, col)")
        if not self.receivers:
            raise ValueError("Survey.receivers is empty: give at least one (row, col)")
        for kind, locations in (("source", self.sources), ("receiver", self.receivers)):
            for k, (row, col) in enumerate(locations):
                if not (0 <= row < self.nz and 0 <= col < self.nx):
                    raise ValueError(
                        f"{kind} {k} at (row {row}, col {col}) lies outside the "
                        f"{self.nz} x {self.nx} model grid (rows 0..{self.nz - 1}, "
                        f"cols 0..{self.nx - 1})"
                    )
        if self.wavelet is not None and len(self.wavelet) != self.nt:
            raise ValueError(
                f"Survey.wavelet has {len(self.wavelet)} samples but nt = {self.nt}: "
                "give exactly nt samples"
            )
        if self.wavelet is not None:
            w = np.asarray(self.wavelet, dtype=np.float64)
            if not np.isfinite(w).all():
                raise ValueError("Survey.wavelet contains NaN or infinite samples")
            if np.abs(w).max(initial=0.0) > MAX_WAVELET_AMPLITUDE:
                raise ValueError(
                    f"Survey.wavelet reaches |w| = {np.abs(w).max():.3g}, above "
                    f"{MAX_WAVELET_AMPLITUDE:g}: the gathers would overflow float32; rescale it"
                )

    @classmethod
    def openfwi(cls) -> Survey:
        """The OpenFWI geometry (specs/physics.md §1): 70 x 70 cells of 10 m, 5 sources and 70
        receivers on row 1, dt = 1 ms, nt = 1000, Ricker 15 Hz."""
        return cls()

    @property
    def n_sources(self) -> int:
        return len(self.sources)

    @property
    def n_receivers(self) -> int:
        return len(self.receivers)

    def source_wavelet(self) -> np.ndarray:
        """Source time function, float64 array of shape (nt,) (dimensionless amplitude)."""
        if self.wavelet is not None:
            return np.asarray(self.wavelet, dtype=np.float64)
        return ricker_openfwi(self.frequency, self.dt, self.nt)

    def courant(self, v_max: float) -> float:
        """Courant number ``v_max dt sqrt(1/dx^2 + 1/dz^2) / sqrt(2)`` (v dt / h if dx = dz).

        Stable iff <= :data:`STABILITY_LIMIT` (~0.612)."""
        return v_max * self.dt * math.sqrt(1.0 / self.dx**2 + 1.0 / self.dz**2) / math.sqrt(2.0)

    def with_(self, **changes: Any) -> Survey:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description (lists instead of tuples); inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        d["sources"] = [list(s) for s in self.sources]
        d["receivers"] = [list(r) for r in self.receivers]
        d["wavelet"] = None if self.wavelet is None else list(self.wavelet)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Survey:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown Survey fields {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> Survey:
        return cls.from_dict(json.loads(s))


def _as_locations(locations: Any, name: str) -> tuple[tuple[int, int], ...]:
    try:
        out = tuple((int(r), int(c)) for r, c in locations)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Survey.{name} must be a sequence of (row, col) integer pairs") from exc
    for (r, c), orig in zip(out, locations, strict=True):
        if (r, c) != tuple(orig):
            raise ValueError(f"Survey.{name}: locations must be integers, got {tuple(orig)}")
    return out
