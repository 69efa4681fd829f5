"""One HDF5 file per dataset: velocity maps, the seismic gathers of some of them, split indices.

Layout (format version :data:`FORMAT_VERSION`)::

    velocity      (N, 1, nz, nx)    float32  wave speed [m/s], row 0 = surface
    seismic       (P, S, nt, R)     float32  gathers in physical amplitude (simulate's output)
    paired_index  (P,)              int64    seismic[i] belongs to velocity[paired_index[i]]
    train_index   (N_train,)        int64    rows of velocity a training step may use
    test_index    (N_test,)         int64    held-out rows; disjoint from train_index

Datasets are chunked one sample per chunk and compressed (gzip + shuffle by default), so readers
stream single samples with bounded memory. Attributes: ``format``, ``format_version``,
``survey`` (JSON or "null"), ``boundary``, ``solver_version``, ``family``, ``seed``, ``source``,
``source_files`` (JSON), ``normalization`` (JSON, see :class:`~.normalize.Normalizer`), ``split``
(JSON), ``build_args`` (JSON: what a resumed build must match), the commit counters
``n_velocity_committed`` / ``n_seismic_committed``, ``complete``, and running ``seismic_min`` /
``seismic_max`` of the committed gathers.

Crash safety: the file is created complete in structure (every dataset at its final size) under a
temporary name and renamed into place, so it exists only in a readable state. Afterwards a writer
fills rows in order and, after each batch, flushes the data, then raises the commit counter and
flushes again. A build killed at any point leaves a readable file whose committed rows are
complete; rows past the counters are ignored and rewritten by the resumed build.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ubdiff_phys.data.normalize import Normalizer
from ubdiff_phys.data.store_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    JSON_ATTRS,
    StoreError,
    create_store,
)
from ubdiff_phys.data.store_verify import verify_attributes, verify_store
from ubdiff_phys.physics import Survey

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Store",
    "StoreError",
    "StoreWriter",
    "create_store",
    "open_store",
]


def _open_h5(path: Path, mode: str, **kwargs: Any) -> h5py.File:
    if not path.exists():
        raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
    try:
        return h5py.File(path, mode, **kwargs)
    except OSError as exc:
        raise StoreError(
            f"{str(path)!r} cannot be opened as HDF5 ({exc}); it is not a ubdiff_phys "
            "dataset, or it "
            "is truncated or corrupt"
        ) from exc


def _attr(f: h5py.File, key: str) -> Any:
    value = f.attrs[key]
    if isinstance(value, bytes):
        value = value.decode()
    if key in JSON_ATTRS:
        return json.loads(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_structure(f: h5py.File, path: Path) -> None:
    """Format name/version, datasets, shapes and index ranges."""
    if f.attrs.get("format") not in (FORMAT_NAME, FORMAT_NAME.encode()):
        raise StoreError(
            f"{str(path)!r} is an HDF5 file but not a ubdiff_phys dataset (no format="
            f"{FORMAT_NAME!r} attribute); import OpenFWI .npy files with `ubdiff-phys "
            "import-openfwi` or build one with `ubdiff-phys make-dataset`"
        )
    version = f.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)):
        raise StoreError(f"{str(path)!r}: missing or invalid format_version attribute")
    if int(version) != FORMAT_VERSION:
        raise StoreError(
            f"{str(path)!r} has dataset format version {int(version)}; this ubdiff_phys reads "
            f"version {FORMAT_VERSION}"
            + (" (upgrade ubdiff_phys)" if version > FORMAT_VERSION else "")
        )
    for name, ndim in (
        ("velocity", 4),
        ("seismic", 4),
        ("paired_index", 1),
        ("train_index", 1),
        ("test_index", 1),
    ):
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise StoreError(f"{str(path)!r} is corrupt: dataset {name!r} is missing")
        if f[name].ndim != ndim:
            raise StoreError(
                f"{str(path)!r} is corrupt: {name} has shape {f[name].shape}, want {ndim}-D"
            )
    n, one, nz, nx = f["velocity"].shape
    if one != 1:
        raise StoreError(
            f"{str(path)!r}: velocity has shape {f['velocity'].shape}, want (N, 1, nz, nx)"
        )
    p = f["seismic"].shape[0]
    if f["paired_index"].shape != (p,):
        raise StoreError(
            f"{str(path)!r} is corrupt: paired_index has {f['paired_index'].shape[0]} rows but "
            f"seismic has {p}"
        )
    for name in ("paired_index", "train_index", "test_index"):
        idx = f[name][()]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise StoreError(
                f"{str(path)!r} is corrupt: {name} points outside the {n} velocity rows"
            )
    if np.intersect1d(f["train_index"][()], f["test_index"][()]).size:
        raise StoreError(f"{str(path)!r} is corrupt: train_index and test_index overlap")
    survey = _attr(f, "survey") if "survey" in f.attrs else None
    if survey is not None and p:
        want = (len(survey["sources"]), survey["nt"], len(survey["receivers"]))
        if tuple(f["seismic"].shape[1:]) != want or (nz, nx) != (survey["nz"], survey["nx"]):
            raise StoreError(
                f"{str(path)!r}: shapes velocity {f['velocity'].shape}, "
                f"seismic {f['seismic'].shape} "
                f"do not match the recorded survey "
                f"(grid {survey['nz']}x{survey['nx']}, gathers {want})"
            )
    for key in ("n_velocity_committed", "n_seismic_committed"):
        c = int(f.attrs.get(key, -1))
        limit = n if key == "n_velocity_committed" else p
        if not 0 <= c <= limit:
            raise StoreError(f"{str(path)!r} is corrupt: {key} = {c} outside [0, {limit}]")


_CORE_DATASETS = ("velocity", "seismic", "paired_index", "train_index", "test_index")


@dataclass(frozen=True)
class Progress:
    """Commit state of a dataset file."""

    n_velocity: int
    n_velocity_committed: int
    n_seismic: int
    n_seismic_committed: int
    complete: bool


class StoreWriter:
    """Fills a file made by :func:`create_store` in order, committing after each batch.

    Use as a context manager; the file is closed (and stays readable) on any exception, including
    KeyboardInterrupt.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # no raw-data chunk cache: a write that cannot reach the disk (a full disk) fails in
        # the call that made it, instead of leaving dirty chunks that HDF5 retries when objects
        # are freed and at exit (errors h5py ignores there, then a segfault)
        self._f = _open_h5(self.path, "r+", rdcc_nbytes=0)
        try:
            _check_structure(self._f, self.path)
        except Exception:
            self._f.close()
            raise

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; a close that fails (a full disk) raises OSError unless another error
        is already on its way."""
        if not self._f.id.valid:
            return
        try:
            self._f.close()
        except RuntimeError as exc:
            if sys.exc_info()[1] is None:
                raise OSError(errno.EIO, f"closing {str(self.path)!r} failed: {exc}") from None

    def attr(self, key: str) -> Any:
        return _attr(self._f, key)

    @property
    def progress(self) -> Progress:
        f = self._f
        return Progress(
            n_velocity=f["velocity"].shape[0],
            n_velocity_committed=int(f.attrs["n_velocity_committed"]),
            n_seismic=f["seismic"].shape[0],
            n_seismic_committed=int(f.attrs["n_seismic_committed"]),
            complete=bool(f.attrs["complete"]),
        )

    @property
    def paired_index(self) -> np.ndarray:
        return self._f["paired_index"][()]

    def read_velocity(self, rows: np.ndarray) -> np.ndarray:
        """Committed velocity rows (increasing), (k, 1, nz, nx) float32."""
        if len(rows) and rows.max() >= self.progress.n_velocity_committed:
            raise RuntimeError("reading velocity rows that are not committed yet")
        return self._f["velocity"][np.asarray(rows)]

    def _check_batch(self, name: str, start: int, data: np.ndarray, committed: int) -> np.ndarray:
        dset = self._f[name]
        data = np.asarray(data, dtype=np.float32)
        if start != committed:
            raise RuntimeError(f"{name}: writing rows from {start} but {committed} are committed")
        if data.shape[1:] != dset.shape[1:] or start + len(data) > dset.shape[0]:
            raise ValueError(
                f"{name}: batch of shape {data.shape} at row {start} does not fit {dset.shape}"
            )
        if not np.isfinite(data).all():
            raise ValueError(f"{name}: batch at row {start} contains NaN or infinite values")
        return data

    def _flush(self, dset: h5py.Dataset) -> None:
        """Flush a dataset's chunk cache and the file, raising OSError when the data did not
        reach the disk (h5py would otherwise report a full disk only as an ignored error when the
        dataset object is freed, and the build would claim success)."""
        try:
            dset.flush()
            self._f.flush()
        except RuntimeError as exc:
            msg = " ".join(str(exc).split())
            code = errno.ENOSPC if "No space left" in msg else errno.EIO
            raise OSError(code, f"writing {str(self.path)!r} failed: {msg[:200]}") from None

    def write_velocity(self, start: int, v: np.ndarray) -> None:
        """Write and commit velocity rows start .. start+len(v)-1 ((k, 1, nz, nx) m/s)."""
        v = self._check_batch("velocity", start, v, self.progress.n_velocity_committed)
        dset = self._f["velocity"]
        dset[start : start + len(v)] = v
        self._flush(dset)
        self._f.attrs["n_velocity_committed"] = start + len(v)
        self._f.flush()

    def write_seismic(self, start: int, s: np.ndarray) -> None:
        """Write and commit gathers start .. start+len(s)-1 ((k, S, nt, R), physical amplitude)."""
        s = self._check_batch("seismic", start, s, self.progress.n_seismic_committed)
        dset = self._f["seismic"]
        dset[start : start + len(s)] = s
        self._flush(dset)
        if len(s):
            self._f.attrs["seismic_min"] = min(float(self._f.attrs["seismic_min"]), float(s.min()))
            self._f.attrs["seismic_max"] = max(float(self._f.attrs["seismic_max"]), float(s.max()))
        self._f.attrs["n_seismic_committed"] = start + len(s)
        self._f.flush()

    def add_dataset(self, name: str, data: np.ndarray, **attrs: Any) -> None:
        """Add a per-row side dataset (e.g. each pair's residual) with its attributes; the
        store's own datasets cannot be replaced."""
        if name in _CORE_DATASETS:
            raise ValueError(f"{name!r} is one of the store's own datasets")
        if name in self._f:
            del self._f[name]
        d = self._f.create_dataset(name, data=np.asarray(data))
        d.attrs.update(attrs)
        self._f.flush()

    def finalize(self, **attrs: Any) -> None:
        """Mark the file complete (all rows committed) and add final attributes."""
        p = self.progress
        if p.n_velocity_committed != p.n_velocity or p.n_seismic_committed != p.n_seismic:
            raise RuntimeError(f"cannot finalise an incomplete dataset: {p}")
        for key, value in attrs.items():
            self._f.attrs[key] = json.dumps(value) if key in JSON_ATTRS else value
        self._f.attrs["complete"] = True
        self._f.flush()


class Store:
    """Read access to a dataset file, one sample at a time (bounded memory).

    Opening checks the format name and version, dataset shapes, index ranges and, unless
    ``allow_incomplete``, that the build finished. Every sample read is checked for finiteness;
    :meth:`verify` scans the whole file. The HDF5 handle is reopened lazily in each process, so a
    Store can be used from DataLoader worker processes.
    """

    def __init__(self, path: str | os.PathLike, *, allow_incomplete: bool = False):
        self.path = Path(path)
        self._f: h5py.File | None = None
        self._pid: int | None = None
        f = self._file()
        _check_structure(f, self.path)
        self.attrs: dict[str, Any] = {k: _attr(f, k) for k in f.attrs}
        self.n_velocity = f["velocity"].shape[0]
        self.grid = tuple(f["velocity"].shape[2:])
        self.seismic_shape = tuple(f["seismic"].shape[1:])
        self.paired_index = f["paired_index"][()]
        self.train_index = f["train_index"][()]
        self.test_index = f["test_index"][()]
        self.progress = Progress(
            n_velocity=self.n_velocity,
            n_velocity_committed=int(self.attrs["n_velocity_committed"]),
            n_seismic=len(self.paired_index),
            n_seismic_committed=int(self.attrs["n_seismic_committed"]),
            complete=bool(self.attrs["complete"]),
        )
        if not self.progress.complete and not allow_incomplete:
            self.close()
            p = self.progress
            raise StoreError(
                f"{str(self.path)!r} is an unfinished build (velocity {p.n_velocity_committed}/"
                f"{p.n_velocity}, seismic {p.n_seismic_committed}/{p.n_seismic} committed); re-run "
                "the same command to resume it"
            )
        # seismic row of each velocity row (-1: none)
        self.seismic_row = np.full(self.n_velocity, -1, dtype=np.int64)
        self.seismic_row[self.paired_index] = np.arange(len(self.paired_index))

    # -- file handle, per process -------------------------------------------------------------
    def _file(self) -> h5py.File:
        if self._f is None or self._pid != os.getpid() or not self._f.id.valid:
            self._f = _open_h5(self.path, "r")
            self._pid = os.getpid()
        return self._f

    def close(self) -> None:
        if self._f is not None and self._pid == os.getpid() and self._f.id.valid:
            self._f.close()
        self._f = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_f"], state["_pid"] = None, None
        return state

    # -- metadata ----------------------------------------------------------------------------
    @property
    def survey(self):  # -> Survey | None
        s = self.attrs.get("survey")
        return None if s is None else Survey.from_dict(s)

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer.from_dict(self.attrs["normalization"])

    @property
    def family(self) -> str:
        return str(self.attrs.get("family", "unknown"))

    # -- samples -----------------------------------------------------------------------------
    def velocity(self, row: int) -> np.ndarray:
        """Velocity map ``row``: (1, nz, nx) float32 [m/s]."""
        if not 0 <= row < self.progress.n_velocity_committed:
            raise IndexError(
                f"velocity row {row} outside the "
                f"{self.progress.n_velocity_committed} committed rows"
            )
        v = self._file()["velocity"][row]
        if not np.isfinite(v).all() or v.min() <= 0:
            raise StoreError(
                f"{str(self.path)!r}: velocity row {row} is corrupt (non-finite or <= 0)"
            )
        return v

    def seismic(self, i: int) -> np.ndarray:
        """Gathers ``i`` (of velocity row ``paired_index[i]``): (S, nt, R) float32."""
        if not 0 <= i < self.progress.n_seismic_committed:
            raise IndexError(
                f"seismic row {i} outside the {self.progress.n_seismic_committed} committed"
            )
        s = self._file()["seismic"][i]
        if not np.isfinite(s).all():
            raise StoreError(f"{str(self.path)!r}: seismic row {i} contains NaN or infinite values")
        return s

    def seismic_of(self, row: int) -> np.ndarray:
        """Gathers of velocity row ``row``; KeyError if that row has none."""
        i = int(self.seismic_row[row])
        if i < 0:
            raise KeyError(f"velocity row {row} has no seismic gathers")
        return self.seismic(i)

    def verify(self, chunk: int = 256) -> None:
        """Full check (``check-dataset --full``): :func:`~.store_verify.verify_store`."""
        verify_store(self, chunk)

    def verify_attributes(self) -> None:
        """Stored attributes only: :func:`~.store_verify.verify_attributes`."""
        verify_attributes(self)


def open_store(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Store:
    """Open a dataset file for reading (see :class:`Store`)."""
    return Store(path, allow_incomplete=allow_incomplete)
