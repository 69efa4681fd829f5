"""Normalisation of specs/data.md §2: hand-computed values, inverses, never in place."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ubdiff_phys.data.normalize import (
    SEISMIC_BOUNDS,
    SEISMIC_LOG_BOUNDS,
    Normalizer,
    denormalize_seismic,
    denormalize_velocity,
    normalize_seismic,
    normalize_velocity,
    subset_for_family,
)


def test_log_bounds_are_the_log_of_the_data_bounds() -> None:
    """The two tables of specs/data.md §2 agree: log bound = sign * log1p(|data bound|)."""
    for subset, (lo, hi) in SEISMIC_BOUNDS.items():
        log_lo, log_hi = SEISMIC_LOG_BOUNDS[subset]
        assert abs(-math.log1p(-lo) - log_lo) < 2e-4, subset
        assert abs(math.log1p(hi) - log_hi) < 2e-4, subset


def test_velocity_hand_values() -> None:
    v = np.array([1500.0, 3000.0, 4500.0, 2250.0])
    np.testing.assert_allclose(normalize_velocity(v), [-1.0, 0.0, 1.0, -0.5])
    np.testing.assert_allclose(denormalize_velocity(np.array([-1.0, 0.0, 1.0])), [1500, 3000, 4500])


def test_seismic_hand_values() -> None:
    lo, hi = SEISMIC_LOG_BOUNDS["flatvel-a"]
    s = np.array([-26.95, 52.77, 0.0, math.e - 1])  # log: lo, hi, 0, 1
    expected = [-1.0, 1.0, 2 * (0 - lo) / (hi - lo) - 1, 2 * (1 - lo) / (hi - lo) - 1]
    np.testing.assert_allclose(normalize_seismic(s, "flatvel-a"), expected, atol=1e-4)
    # inverse of the end points: the raw data bounds of the table
    np.testing.assert_allclose(
        denormalize_seismic(np.array([-1.0, 1.0]), "flatvel-a"), [-26.95, 52.77], atol=0.01
    )
    # no clipping: beyond the bounds maps beyond [-1, 1]
    assert normalize_seismic(np.array([1000.0]), "flatvel-a")[0] > 1


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_round_trips_and_never_in_place(kind: str) -> None:
    rng = np.random.default_rng(0)
    v = rng.uniform(1500, 4500, (3, 1, 70, 70))
    s = rng.standard_normal((2, 5, 100, 70)) * 10
    if kind == "torch":
        v, s = torch.from_numpy(v), torch.from_numpy(s)
    v0, s0 = v.clone() if kind == "torch" else v.copy(), s.clone() if kind == "torch" else s.copy()
    n = Normalizer.for_family("curvefault-b")
    vn, sn = n.velocity(v), n.seismic(s)
    assert type(vn) is type(v) and type(sn) is type(s)
    np.testing.assert_allclose(np.asarray(n.velocity_inverse(vn)), np.asarray(v), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(n.seismic_inverse(sn)), np.asarray(s), rtol=1e-10, atol=1e-12
    )
    for x, x0 in ((v, v0), (s, s0)):  # inputs untouched
        np.testing.assert_array_equal(np.asarray(x), np.asarray(x0))
    assert vn is not v and sn is not s


def test_float32_torch_stays_float32_and_integers_promote() -> None:
    x = torch.full((4,), 3000.0)
    assert normalize_velocity(x).dtype == torch.float32
    assert normalize_velocity(np.array([1500, 4500])).dtype == np.float64


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="known subsets"):
        normalize_seismic(np.zeros(2), "flatvel-c")
    with pytest.raises(ValueError, match="either subset"):
        normalize_seismic(np.zeros(2), "flatvel-a", log_min=-1.0, log_max=1.0)
    with pytest.raises(ValueError, match="log_max > log_min"):
        normalize_seismic(np.zeros(2), log_min=1.0, log_max=1.0)
    with pytest.raises(TypeError):
        normalize_velocity([1500.0])  # type: ignore[arg-type]
    assert subset_for_family("style-like-b") == "style-b"
    n = Normalizer.for_family("style-like")
    assert Normalizer.from_dict(n.to_dict()) == n and n.source == "openfwi:style-a"
