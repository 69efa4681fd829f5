"""The dataset file's format: its name, version, JSON attributes and the empty skeleton.

:func:`create_store` writes the skeleton of a dataset file (every dataset at its final size, the
attributes, zero commit counters) under a temporary name and renames it into place, so the file
exists only in a readable state. Reading and filling it: :mod:`ubdiff_phys.data.store`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ubdiff_phys.runtime.errors import UserError
from ubdiff_phys.runtime.files import atomic_path

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "JSON_ATTRS", "StoreError", "create_store"]

FORMAT_NAME = "ubdiff_phys.dataset"
FORMAT_VERSION = 1
JSON_ATTRS = ("survey", "source_files", "normalization", "split", "build_args")


class StoreError(ValueError, UserError):
    """A file that is not a (complete, consistent) ubdiff_phys dataset."""


def _compression_kwargs(compression: str | None) -> dict[str, Any]:
    if compression in (None, "none"):
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"compression must be 'gzip', 'lzf' or None, got {compression!r}")


def _index(values: Sequence[int] | np.ndarray, name: str, n_rows: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= n_rows):
        raise ValueError(f"{name} has rows outside [0, {n_rows})")
    if len(np.unique(arr)) != len(arr):
        raise ValueError(f"{name} has repeated rows")
    return arr


def create_store(
    path: str | os.PathLike,
    *,
    n_rows: int,
    grid: tuple[int, int],
    seismic_shape: tuple[int, int, int],
    paired_index: Sequence[int] | np.ndarray,
    train_index: Sequence[int] | np.ndarray,
    test_index: Sequence[int] | np.ndarray,
    attrs: dict[str, Any],
    compression: str | None = "gzip",
) -> Path:
    """Create an empty dataset file with every dataset at its final size.

    Written to ``<path>.creating`` and renamed, so ``path`` never holds a half-made skeleton.

    Args:
        n_rows: number of velocity maps N.
        grid: (nz, nx) of a map [cells].
        seismic_shape: (S, nt, R) of one sample's gathers.
        paired_index: (P,) velocity rows that get gathers, in seismic order.
        train_index, test_index: disjoint velocity rows.
        attrs: attributes (dicts/lists/None go in as JSON for the keys in ``JSON_ATTRS``).
    """
    path = Path(path)
    paired = _index(paired_index, "paired_index", n_rows)
    train = _index(train_index, "train_index", n_rows)
    test = _index(test_index, "test_index", n_rows)
    if np.intersect1d(train, test).size:
        raise ValueError("train_index and test_index overlap")
    comp = _compression_kwargs(compression)
    nz, nx = grid
    with atomic_path(path, ".creating") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(
            "velocity",
            shape=(n_rows, 1, nz, nx),
            dtype=np.float32,
            chunks=(1, 1, nz, nx) if n_rows else None,
            **(comp if n_rows else {}),
        )
        p = len(paired)
        f.create_dataset(
            "seismic",
            shape=(p, *seismic_shape),
            dtype=np.float32,
            chunks=(1, *seismic_shape) if p else None,
            **(comp if p else {}),
        )
        f.create_dataset("paired_index", data=paired)
        f.create_dataset("train_index", data=train)
        f.create_dataset("test_index", data=test)
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            if key in JSON_ATTRS:
                f.attrs[key] = json.dumps(value)
            elif value is not None:
                f.attrs[key] = value
        f.attrs["n_velocity_committed"] = 0
        f.attrs["n_seismic_committed"] = 0
        f.attrs["seismic_min"] = np.inf
        f.attrs["seismic_max"] = -np.inf
        f.attrs["complete"] = False
    return path
