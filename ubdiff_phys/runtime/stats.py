"""Summaries of a distribution of values (e.g. the physics residuals of many pairs)."""

from __future__ import annotations

import numpy as np

__all__ = ["QUANTILES", "QUANTILE_NAMES", "distribution"]

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
QUANTILE_NAMES = ("min", "p05", "p25", "median", "p75", "p95", "max")


def distribution(values) -> dict[str, float]:
    """{min, p05, p25, median, p75, p95, max, mean} of ``values`` as floats ({} when empty)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {}
    q = np.quantile(values, QUANTILES)
    return {**dict(zip(QUANTILE_NAMES, map(float, q), strict=True)), "mean": float(values.mean())}
