"""The posterior interval against closed-form oracles: Student's t quantiles from published tables,
and the coverage of a further draw when the samples are exact draws of a Gaussian posterior."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch
from helpers import result_from_samples

from ubdiff_phys.inversion.posterior import PosteriorResult
from ubdiff_phys.runtime.stats import student_t_quantile, student_t_quantiles


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [
        (0.975, 1, 12.706),
        (0.95, 7, 1.895),
        (0.95, 15, 1.753),
        (0.975, 30, 2.042),
        (0.999, 3, 10.215),
    ],
)
def test_student_t_quantile_matches_tables(p: float, df: int, table: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(table, abs=1e-3)
    assert student_t_quantile(1 - p, df) == pytest.approx(-table, abs=1e-3)


def test_vectorised_t_quantiles_match_the_scalar_ones() -> None:
    df = np.array([1.0, 1.5, 2.0, 3.3, 7.0, 15.0, 40.0, 1e4, np.inf])
    for p in (0.95, 0.975, 0.995):
        normal = NormalDist().inv_cdf(p)
        exact = [student_t_quantile(p, d) if np.isfinite(d) else normal for d in df]
        np.testing.assert_allclose(student_t_quantiles(p, df), exact, rtol=5e-4)
    np.testing.assert_allclose(student_t_quantiles(0.95, np.full(3, np.inf)), 1.6448536, rtol=1e-6)
    with pytest.raises(ValueError, match="df >= 1"):
        student_t_quantiles(0.95, np.array([0.5]))


def gaussian_result(n: int, pixels: int, seed: int) -> tuple[PosteriorResult, torch.Tensor]:
    """n exact posterior draws per pixel (each its own N(mu, sd^2)) and one more: the truth."""
    g = torch.Generator().manual_seed(seed)
    mu = 3000 + 500 * torch.randn(1, 1, pixels, generator=g)
    sd = 50 + 200 * torch.rand(1, 1, pixels, generator=g)
    draws = mu + sd * torch.randn(n + 1, 1, 1, pixels, generator=g)
    samples, truth = draws[:n], draws[n]
    res = result_from_samples(samples)
    return res, truth


@pytest.mark.parametrize("n", [4, 8, 16])
def test_predictive_interval_is_calibrated_for_exact_draws(n: int) -> None:
    res, truth = gaussian_result(n, 40_000, seed=n)
    assert res.coverage(truth, 0.9) == pytest.approx(0.90, abs=0.01)
    assert res.coverage(truth, 0.5) == pytest.approx(0.50, abs=0.012)


def test_quantile_interval_under_covers_with_few_samples() -> None:
    """The reason the predictive interval is the default: the empirical 5-95 % quantiles of 8
    draws lie inside [min, max], which holds a further exchangeable draw with probability exactly
    7/9 (distribution-free); for Gaussian draws they hold it about 0.73 of the time, not 0.9."""
    res, truth = gaussian_result(8, 40_000, seed=1)
    cov = res.coverage(truth, 0.9, kind="quantile")
    assert cov <= 7 / 9 + 0.01
    assert cov == pytest.approx(0.73, abs=0.015)
    with pytest.raises(ValueError, match="kind"):
        res.interval(0.9, kind="hdi")
