"""Resume points: what every trainer does to continue an interrupted run.

A resume point is a tagged checkpoint (:mod:`ubdiff_phys.runtime.checkpoint`) that embeds the
``config`` dict of the run that wrote it and the RNG state at the moment it was written. A trainer
saves one with :func:`save_resume_point` (atomic: an interrupted write leaves the previous file)
and, when it starts, asks :func:`load_resume_point` for it: ``None`` when the file does not exist
(a fresh run), the checkpoint when it has the trainer's format tag and was written with the same
config, else a :class:`~ubdiff_phys.runtime.checkpoint.CheckpointError` (a
:class:`~ubdiff_phys.runtime.errors.UserError`: one line, exit 2) naming the differing options.
Options that do not change the numbers (:data:`RESUME_FREE`) may differ. Restoring the weights,
optimiser and RNG state is the trainer's (each knows when its RNG must be restored).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ubdiff_phys.runtime.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "RESUME_FILE",
    "RESUME_FREE",
    "config_mismatch",
    "load_resume_point",
    "save_resume_point",
]

#: the resume point's name in a run directory
RESUME_FILE = "last.pt"

#: (section, option) pairs a resumed run may change: they do not change the numbers
#: (``out_dir``: a run directory may be moved or copied and resumed there)
RESUME_FREE = frozenset(
    {("run", "progress"), ("run", "threads"), ("run", "device"), ("run", "out_dir")}
)


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """{key path: value} of the non-dict values of a nested dict (``{"a": {"b": 1}}`` ->
    ``{("a", "b"): 1}``)."""
    out: dict[tuple[str, ...], Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_leaves(value, (*prefix, str(key))))
        else:
            out[(*prefix, str(key))] = value
    return out


def config_mismatch(
    a: dict[str, Any], b: dict[str, Any], free: Iterable[tuple[str, ...]] = RESUME_FREE
) -> list[str]:
    """The dotted option names (``section.option``, or ``option`` for a flat config) whose values
    differ between two config dicts, sorted. An option missing on one side counts as ``None``;
    options under a key path in ``free`` (e.g. ``("run", "progress")``) are ignored."""
    free = frozenset(tuple(f) for f in free)
    la, lb = _leaves(a), _leaves(b)
    out = []
    for path in set(la) | set(lb):
        if any(path[:i] in free for i in range(1, len(path) + 1)):
            continue
        if la.get(path) != lb.get(path):
            out.append(".".join(path))
    return sorted(out)


def load_resume_point(
    path: str | os.PathLike,
    fmt: str,
    what: str,
    config: dict[str, Any],
    *,
    identity: dict[str, Any] | None = None,
    free: Iterable[tuple[str, ...]] = RESUME_FREE,
    map_location: Any = "cpu",
    hint: str = "use another run.out_dir or --restart",
    normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The resume checkpoint at ``path``, or None when there is no such file.

    Args:
        path: the checkpoint file (a run directory's :data:`RESUME_FILE`).
        fmt, what: its format tag and the kind named in errors (``"autoencoder"``, ...).
        config: the config dict of the run now starting; the checkpoint's ``config`` must
            equal it except for ``free`` options.
        identity: other top-level payload values that must match (e.g. ``{"n_train": 16}``).
        map_location: passed to ``torch.load``.
        hint: what the user can do about a refused checkpoint (ends the message).
        normalise: applied to the checkpoint's config before the comparison, e.g. a round trip
            through the config class, so that an option added since (absent from an older
            checkpoint) compares as its default.

    Raises:
        CheckpointError: unreadable (truncated, corrupted), of another format, or written by
            another run (the differing options are named).
    """
    path = Path(path)
    if not path.exists():
        return None
    ckpt = load_checkpoint(path, fmt, what, map_location)
    stored = ckpt.get("config") or {}
    if normalise is not None and stored:
        stored = normalise(stored)
    diff = config_mismatch(stored, config, free)
    diff += sorted(k for k, v in (identity or {}).items() if ckpt.get(k) != v)
    if diff:
        raise CheckpointError(
            f"{str(path)!r} is a checkpoint of another {what} run, written with a different "
            f"config ({', '.join(diff)}); {hint}"
        )
    return ckpt


def save_resume_point(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` plus the current RNG state (key ``"rng"``, see
    :func:`~ubdiff_phys.runtime.checkpoint.get_rng_state`) to ``path`` atomically."""
    return save_checkpoint(path, {**payload, "rng": get_rng_state()})
