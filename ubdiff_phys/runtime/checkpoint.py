"""Atomic, code-free checkpoints and the RNG state they carry.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only (no classes), so it
loads with ``torch.load(..., weights_only=True)``: no pickled code runs. It is written through
:func:`~ubdiff_phys.runtime.files.atomic_path` (temp file, fsync, rename), so a run killed at any
moment leaves either the previous or the new checkpoint, never a torn one. Each kind of checkpoint
carries a ``format`` tag that its loader checks.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.runtime.errors import UserError
from ubdiff_phys.runtime.files import atomic_path

__all__ = ["get_rng_state", "load_checkpoint", "save_checkpoint", "set_rng_state"]


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike, fmt: str, what: str, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; refuse it unless its ``format`` is ``fmt``.

    ``what`` names the kind in the error ("autoencoder", "diffusion", ...)."""
    if not Path(path).is_file():
        raise CheckpointError(f"{what} checkpoint {str(path)!r} is not a file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError) as exc:
        msg = " ".join(str(exc).split())[:160]
        raise CheckpointError(
            f"{str(path)!r} cannot be read as a {what} checkpoint (truncated or corrupted?): {msg}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise CheckpointError(f"{str(path)!r} is not a ubdiff_phys {what} checkpoint")
    return ckpt


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is missing, unreadable, or of another kind."""


def get_rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors and lists (weights_only-loadable)."""
    np_state = np.random.get_state()  # noqa: NPY002 (the global legacy RNG is what we save)
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
