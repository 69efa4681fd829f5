"""The full check of a dataset file (``check-dataset --full``): attributes every reader relies on,
every committed sample, and the velocities against the recorded survey's stability limit."""

from __future__ import annotations

import numpy as np

from ubdiff_phys.data.normalize import Normalizer
from ubdiff_phys.data.store_format import StoreError
from ubdiff_phys.physics.survey import STABILITY_LIMIT

__all__ = ["verify_attributes", "verify_store"]


def verify_store(store, chunk: int = 256) -> None:
    """Full check of a :class:`~.store.Store` (``check-dataset --full``): the attributes
    (:func:`verify_attributes`), then
    every committed sample for finiteness (and positive velocity), ``chunk`` rows at a time,
    and the largest velocity against the recorded survey's stability limit."""
    verify_attributes(store)
    f = store._file()
    v_max = 0.0
    for name, n in (
        ("velocity", store.progress.n_velocity_committed),
        ("seismic", store.progress.n_seismic_committed),
    ):
        for a in range(0, n, chunk):
            block = f[name][a : min(a + chunk, n)]
            bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
            if name == "velocity":
                bad |= block.reshape(len(block), -1).min(axis=1) <= 0
            if bad.any():
                raise StoreError(
                    f"{str(store.path)!r}: {name} row {a + int(np.argmax(bad))} is corrupt "
                    "(non-finite values or non-positive velocity)"
                )
            if name == "velocity" and len(block):
                v_max = max(v_max, float(block.max()))
    survey = store.survey
    if survey is not None and survey.courant(v_max) > STABILITY_LIMIT:
        raise StoreError(
            f"{str(store.path)!r}: velocities up to {v_max:.0f} m/s are unstable on the "
            f"recorded survey (Courant number {survey.courant(v_max):.3f} > "
            f"{STABILITY_LIMIT:.3f}): its gathers cannot be the solver's"
        )


def verify_attributes(store) -> None:
    """Refuse (:class:`StoreError`) stored attributes no reader can use: non-float sample
    dtypes, non-finite or inverted normalisation bounds, an unknown boundary mode, an invalid
    survey, paired indices that repeat or point outside the velocity rows."""
    f = store._file()
    where = repr(str(store.path))
    for name in ("velocity", "seismic"):
        dt = f[name].dtype
        if dt not in (np.float32, np.float64):
            raise StoreError(f"{where}: {name} is stored as {dt}, expected float32/float64")
    norm = store.attrs.get("normalization")
    if norm is not None:
        n = Normalizer.from_dict(norm)
        values = [n.v_min, n.v_max, n.s_log_min, n.s_log_max]
        if not (np.isfinite(values).all() and n.v_min < n.v_max and n.s_log_min < n.s_log_max):
            raise StoreError(f"{where}: normalisation bounds {norm} are not finite and ordered")
    if store.attrs.get("survey") is not None:
        try:
            store.survey  # noqa: B018 (validates the stored geometry)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{where}: the recorded survey is invalid: {exc}") from None
        boundary = store.attrs.get("boundary")
        if boundary not in ("openfwi", "pml", "none"):
            raise StoreError(f"{where}: unknown boundary mode {boundary!r}")
    paired = store.paired_index[: store.progress.n_seismic_committed]
    if len(np.unique(paired)) != len(paired):
        raise StoreError(f"{where}: paired_index repeats a velocity row")
    if len(paired) and (paired.min() < 0 or paired.max() >= store.progress.n_velocity):
        raise StoreError(f"{where}: paired_index points outside the velocity rows")
