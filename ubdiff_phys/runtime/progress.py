"""The resumable batch loop every long writer shares: rows ``[committed, total)`` in consecutive
batches, each written and committed by a callback, under a tqdm progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["commit_batches"]


def commit_batches(
    committed: int,
    total: int,
    step: int,
    write: Callable[[int, int], Any],
    *,
    desc: str,
    unit: str = "row",
    progress: bool = True,
    on_commit: Callable[[int, int], None] | None = None,
    **bar: Any,
) -> tuple[int, float]:
    """Call ``write(i, j)`` for the row ranges ``[i, j)`` of at most ``step`` rows that cover
    ``[committed, total)`` in order; ``write`` writes and commits them, so an interrupted loop
    resumes at the first uncommitted row. ``on_commit(j, total)`` runs after each batch; ``bar``:
    more tqdm options. Returns (rows written, seconds spent in ``write``)."""
    done, seconds = 0, 0.0
    options = {"file": sys.stderr, **bar}
    with tqdm(
        total=total, initial=committed, desc=desc, unit=unit, disable=not progress, **options
    ) as pbar:
        i = committed
        while i < total:
            j = min(i + step, total)
            t0 = time.perf_counter()
            write(i, j)
            seconds += time.perf_counter() - t0
            done += j - i
            pbar.update(j - i)
            i = j
            if on_commit is not None:
                on_commit(j, total)
    return done, seconds
