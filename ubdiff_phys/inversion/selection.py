"""Selections from a posterior's samples: the draws that fit the data best, as starts for the
sharpening (:func:`~ubdiff_phys.inversion.posterior_sample`'s ``keep_best_of``;
docs/posterior_sampling.md: "More latent draws, the best-fitting kept"). A selection is not a set of
posterior draws: a stored interval scale measured without it stays on the result, and its
``differs_from`` names ``keep_best_of``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ubdiff_phys.inversion.posterior import PosteriorResult

__all__ = ["best_fitting", "drawn_batch"]


def drawn_batch(n_samples: int, keep_best_of: int | None) -> int:
    """The batch :func:`~ubdiff_phys.inversion.posterior_sample` draws (ValueError for a
    ``keep_best_of`` below ``n_samples``)."""
    if keep_best_of is None:
        return n_samples
    if not (isinstance(keep_best_of, int) and keep_best_of >= n_samples):
        raise ValueError(f"keep_best_of must be an integer >= n_samples, got {keep_best_of!r}")
    return keep_best_of


def best_fitting(result: PosteriorResult, n: int) -> PosteriorResult:
    """The ``n`` samples of ``result`` with the smallest data misfit, in increasing misfit
    (mean and std recomputed; everything else kept).

    Args:
        result: samples (m, 1, nz, nx) [m/s] with their misfits (m,), m ≥ n ≥ 1.
        n: how many to keep.
    """
    if not 1 <= n <= result.samples.shape[0]:
        raise ValueError(f"n must be in [1, {result.samples.shape[0]}], got {n}")
    order = torch.argsort(result.misfit)[:n]
    v = result.samples[order]
    return dataclasses.replace(
        result,
        samples=v,
        mean=v.mean(0),
        std=v.std(0) if n > 1 else torch.zeros_like(v[0]),
        misfit=result.misfit[order],
    )
