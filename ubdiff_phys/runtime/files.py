"""Atomic file writes and file hashing.

Every file the package writes in place of an older one goes through :func:`atomic_path`: the
content is written to a temporary name in the same folder and renamed over the target with
``os.replace``, so a run killed at any moment leaves either the old or the new file, never a torn
one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ubdiff_phys.runtime.errors import OptionError, UserError

__all__ = [
    "LockedError",
    "append_json_record",
    "atomic_path",
    "atomic_save_figure",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_folder",
    "exclusive_lock",
    "file_sha256",
    "run_record",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit rename it over ``path``.

    ``suffix``: the temporary name is ``<name><suffix>`` (e.g. ``".creating"`` for a store a
    reader may recognise); default ``.<name>.<pid>.tmp``. On an exception the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + suffix if suffix else f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (with a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def append_json_record(path: str | os.PathLike, record: Any, indent: int = 2) -> Path:
    """Append ``record`` to the JSON list in ``path`` (created if missing), atomically: the
    benchmarks' results files."""
    path = Path(path)
    records = json.loads(path.read_text()) if path.exists() else []
    records.append(record)
    return atomic_write_text(path, json.dumps(records, indent=indent) + "\n")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class LockedError(UserError, OSError):
    """Another process holds the lock of an output (two writers on one path)."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str = "writer") -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``.<name>.lock`` beside ``path`` for the block, so two
    writers of one output cannot run at once; the second raises :class:`LockedError` at once.
    The operating system drops the lock when its process dies (no stale locks after a kill)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another {what} is writing {str(path)!r} right now (lock {str(lock)!r}); wait "
                "for it to finish or choose another output"
            ) from None
        yield lock
    finally:
        os.close(fd)


def check_output_folder(out: str | os.PathLike, names: tuple[str, ...], overwrite: bool) -> None:
    """Refuse (:class:`~ubdiff_phys.runtime.errors.OptionError`) an output folder ``out`` that is
    a file, or that already holds any of ``names`` (an earlier run's outputs, or a user's own
    files) unless ``overwrite``. Commands call it before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {str(out)!r} exists and is not a folder")
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise OptionError(
            f"{str(out)!r} already holds {', '.join(existing)}; pass --overwrite to replace "
            "them, or choose another --out"
        )


def atomic_save_figure(fig: Any, path: str | os.PathLike, dpi: int = 80) -> Path:
    """Save a matplotlib figure as PNG to ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt  # only the callers that draw need matplotlib

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def run_record() -> dict[str, Any]:
    """Where and how a result was measured, for benchmark and example JSON: CPU model, torch
    threads and version, the command line."""
    import platform
    import sys

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "command": "python " + " ".join(sys.argv),
    }
