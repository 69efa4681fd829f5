"""FlatVel-A structure statistics and the PCA Fréchet distance, against oracles: real family maps,
the same maps blurred along depth or with pixel noise, hand-made profiles with known values, and
a closed form for a constant velocity shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubdiff_phys.data.families import generate
from ubdiff_phys.eval import (
    LayerStructure,
    layer_structure,
    pca_basis,
    pca_frechet,
    pca_frechet_floor,
)

NZ = NX = 70


def _blur_depth(maps: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian blur of (N, 1, nz, nx) maps along depth only (edge rows repeated)."""
    r = int(4 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(maps.astype(np.float64), ((0, 0), (0, 0), (r, r), (0, 0)), mode="edge")
    out = sum(w * pad[:, :, j : j + maps.shape[2]] for j, w in enumerate(k))
    return out.astype(np.float32)


def _from_profile(profile: list[float] | np.ndarray) -> np.ndarray:
    """One laterally invariant map (1, 1, nz, nx) from a depth profile (nz,) [m/s]."""
    p = np.asarray(profile, dtype=np.float32)
    return np.repeat(p[None, None, :, None], NX, axis=3)


def _steps(z_to_v: list[tuple[int, float]]) -> np.ndarray:
    """Profile (nz,) from (first row, velocity) pairs, top first."""
    p = np.empty(NZ)
    for i, (z, v) in enumerate(z_to_v):
        end = z_to_v[i + 1][0] if i + 1 < len(z_to_v) else NZ
        p[z:end] = v
    return p


@pytest.fixture(scope="module")
def family() -> np.ndarray:
    return generate("flatvel-a", 256, seed=2)


def test_family_maps_are_flatvel_like(family):
    s = layer_structure(family)
    assert isinstance(s, LayerStructure)
    # rows exactly constant, sorted layer velocities: exact zeros for every map
    assert np.all(s.row_std == 0.0) and np.all(s.max_decrease == 0.0)
    # jump share is exactly 1 unless two adjacent layers differ by 50 m/s or less
    steps = np.diff(family[:, 0, :, 0].astype(np.float64), axis=1)
    small_step = ((steps > 0) & (steps <= 50)).any(axis=1)
    assert np.all(s.jump_share[~small_step] == 1.0)
    assert np.all(s.jump_share[small_step] < 1.0)
    assert s.summary()["share_flatvel_like"] >= 0.99
    # the first 64 maps of this stream pass all three tests
    first = layer_structure(family[:64]).summary()
    for key in ("share_row_std", "share_max_decrease", "share_jump_share", "share_flatvel_like"):
        assert first[key] == 1.0
    assert first["median_row_std"] == 0.0 and first["median_jump_share"] == 1.0


def test_blurred_family_maps_fail_the_jump_test(family):
    s = layer_structure(_blur_depth(family[:64]))
    summ = s.summary()
    # the blur keeps rows constant and (positive kernel) the profile non-decreasing ...
    assert summ["share_row_std"] == 1.0 and summ["share_max_decrease"] == 1.0
    # ... but spreads the jumps over several rows of < 50 m/s
    assert summ["share_jump_share"] < 0.2
    assert summ["share_flatvel_like"] == summ["share_jump_share"]
    assert summ["median_jump_share"] < 0.7


def test_pixel_noise_fails_row_std(family):
    rng = np.random.default_rng(0)
    noisy = family[:64] + rng.normal(0.0, 50.0, family[:64].shape).astype(np.float32)
    s = layer_structure(torch.from_numpy(noisy))
    assert not s.pass_row_std.any() and not s.flatvel_like.any()
    assert abs(float(np.median(s.row_std)) - 50.0) < 3.0


def test_decreasing_profile_fails_max_decrease():
    p = _steps([(0, 2000.0), (20, 3000.0), (40, 2900.0), (55, 3500.0)])
    s = layer_structure(_from_profile(p))
    assert s.max_decrease[0] == pytest.approx(100.0)
    assert not s.pass_max_decrease[0] and not s.flatvel_like[0]
    assert s.row_std[0] == 0.0
    # jumps 1000 + 600 over a net increase of 1500: reported unclipped
    assert s.jump_share[0] == pytest.approx(1600.0 / 1500.0)


@pytest.mark.parametrize(
    ("profile", "share"),
    [
        (np.full(NZ, 2500.0), 1.0),  # constant map: trivially layered
        (_steps([(0, 2000.0), (30, 3000.0)]), 1.0),  # one jump carries everything
        (_steps([(0, 2000.0), (30, 2030.0)]), 1.0),  # net increase <= 50, no jump
        (_steps([(0, 2000.0), (10, 2100.0), (20, 2000.0)]), 0.0),  # jump given back
        (1500.0 + 3000.0 * np.arange(NZ) / (NZ - 1), 0.0),  # linear ramp: 43.5 m/s per row
        (1500.0 + 60.0 * np.arange(NZ), 1.0),  # every 60 m/s step counts as a jump
        (_steps([(0, 2000.0), (20, 2040.0), (40, 2240.0)]), 200.0 / 240.0),  # 40 smooth, 200 jump
    ],
)
def test_jump_share_edge_cases(profile, share):
    s = layer_structure(_from_profile(profile)[:, 0])  # (N, nz, nx) input
    assert s.jump_share[0] == pytest.approx(share)
    assert s.pass_jump_share[0] == (share >= 0.8)


def test_inputs_and_summary():
    maps = generate("flatvel-a", 8, seed=5)
    a = layer_structure(maps)
    b = layer_structure(torch.from_numpy(maps[:, 0]))
    for name in ("row_std", "max_decrease", "jump_share", "flatvel_like"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert set(a.summary()) == {
        "n",
        "share_row_std",
        "share_max_decrease",
        "share_jump_share",
        "share_flatvel_like",
        "median_row_std",
        "median_max_decrease",
        "median_jump_share",
    }
    assert np.isnan(layer_structure(maps[:0]).summary()["share_flatvel_like"])
    with pytest.raises(ValueError, match="expected"):
        layer_structure(np.zeros((2, 2, 70, 70)))
    with pytest.raises(ValueError, match="nz >= 2"):
        layer_structure(np.zeros((2, 1, 70)))
    bad = maps.copy()
    bad[0, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer_structure(bad)


def test_pca_frechet_constant_shift_closed_form(family):
    # same maps shifted by d m/s: equal covariances, mean moved by d along the all-ones map
    basis = pca_basis(family[:128], n_components=16)
    a = family[128:192]
    d = 30.0
    c1 = basis.components.sum(dim=1)  # C @ ones
    plain = pca_frechet(basis, a, a + d)
    assert plain == pytest.approx(d**2 * float(c1.square().sum()), rel=1e-6)
    white = pca_frechet(basis, a, a + d, whiten=True)
    assert white == pytest.approx(d**2 * float((c1 / basis.std).square().sum()), rel=1e-6)
    # the basis is orthonormal, and fitting from maps gives the same number as passing it
    eye = basis.components @ basis.components.T
    assert torch.allclose(eye, torch.eye(16, dtype=torch.float64), atol=1e-8)
    assert pca_frechet(family[:128], a, a + d, 16) == pytest.approx(plain, rel=1e-9)


def test_pca_frechet_family_floor_vs_blurred(family):
    n = 256
    ref = generate("flatvel-a", 256, seed=1)
    basis = pca_basis(ref, 32)
    b = generate("flatvel-a", n, seed=3)
    assert pca_frechet(basis, family, family) == pytest.approx(0.0, abs=1e-3)
    assert pca_frechet(basis, family, family, whiten=True) == pytest.approx(0.0, abs=1e-9)
    for whiten, factor in ((True, 4.0), (False, 1.2)):
        floor = pca_frechet(basis, family, b, whiten=whiten)
        blurred = pca_frechet(basis, family, _blur_depth(b), whiten=whiten)
        assert blurred > factor * floor > 0.0
    # pca_frechet_floor: two halves of one seeded stream
    maps = generate("flatvel-a", 2 * 64, seed=9)
    expected = pca_frechet(basis, maps[:64], maps[64:], whiten=True)
    assert pca_frechet_floor(basis, 64, seed=9, whiten=True) == pytest.approx(expected, rel=1e-12)


def test_pca_basis_rejects_too_few_directions():
    one = generate("flatvel-a", 1, seed=0)
    with pytest.raises(ValueError, match="directions"):
        pca_basis(np.repeat(one, 40, axis=0), 8)
    with pytest.raises(ValueError, match="reference maps"):
        pca_basis(generate("flatvel-a", 8, seed=0), 8)
