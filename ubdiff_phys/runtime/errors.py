"""The one error type for user mistakes: the CLI prints its message in one line and exits 2.

Raise :class:`UserError` (or a subclass) for a bad option, input file, config value or a training
run that diverged because of its settings; programming errors keep their own types and tracebacks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = [
    "NonFiniteError",
    "OptionError",
    "UserError",
    "check_finite_loss",
    "check_finite_weights",
]


class UserError(Exception):
    """A mistake in the command line, a config or an input file: one line, exit status 2."""


class OptionError(UserError, ValueError):
    """An option or argument value outside its allowed range (raised before any work)."""


class NonFiniteError(UserError):
    """Training produced a non-finite loss or weights (the settings diverge); nothing is saved."""


def check_finite_loss(loss: torch.Tensor | float, step: int) -> None:
    """Raise :class:`NonFiniteError` when ``loss`` is NaN or infinite (before the optimiser uses
    its gradient)."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteError(
            f"the loss became {value} at step {step}: the run diverges with these settings "
            "(lower the learning rate?); the last checkpoint on disk is kept"
        )


def check_finite_weights(tensors: Iterable[torch.Tensor], what: str) -> None:
    """Raise :class:`NonFiniteError` when any tensor has NaN or infinite values (checked before a
    checkpoint is written, so no checkpoint holds non-finite weights)."""
    for t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NonFiniteError(
                f"{what} has non-finite weights: the run diverged with these settings; the last "
                "checkpoint on disk is kept"
            )
