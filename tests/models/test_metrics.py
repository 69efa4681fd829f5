"""MAE / MSE / RMSE / SSIM of specs/ubdiff.md §5 against hand-computed values and properties."""

from __future__ import annotations

import math

import pytest
import torch

from ubdiff_phys.models.metrics import MetricAccumulator, gaussian_window, mae, mse, rmse, ssim

C1, C2 = 0.01**2, 0.03**2


def test_mae_mse_rmse_hand_values():
    a = torch.tensor([[0.0, 0.5], [-1.0, 1.0]])
    b = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    assert mae(a, b) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert mse(a, b) == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert rmse(a, b) == pytest.approx(math.sqrt(2.25 / 4))


def test_gaussian_window():
    w = gaussian_window()
    assert w.shape == (11, 11)
    assert float(w.sum()) == pytest.approx(1.0)
    g = torch.exp(-(torch.tensor([0.0, 1.0]) ** 2) / (2 * 1.5**2))
    assert float(w[5, 6] / w[5, 5]) == pytest.approx(float(g[1] / g[0]))


def test_ssim_of_constant_images_hand_value():
    # x = a, y = b constants on a 1 x 1 image: the window centre weight w0 sees the pixel, the
    # rest is zero padding, so mu_x = w0 a, E[x^2] = w0 a^2, var_x = w0 a^2 - (w0 a)^2,
    # cov = w0 ab - w0^2 ab
    w0 = float(gaussian_window()[5, 5])
    xa, yb = 0.3, -0.2  # in [-1, 1]
    a, b = (xa + 1) / 2, (yb + 1) / 2
    mx, my = w0 * a, w0 * b
    vx, vy, cxy = w0 * a * a - mx**2, w0 * b * b - my**2, w0 * a * b - mx * my
    expected = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    got = ssim(
        torch.full((1, 1, 1, 1), xa, dtype=torch.float64),
        torch.full((1, 1, 1, 1), yb, dtype=torch.float64),
    )
    assert got == pytest.approx(expected, rel=1e-10)


def test_ssim_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 20, 24, generator=g) * 2 - 1
    y = (x + 0.2 * torch.randn(3, 1, 20, 24, generator=g)).clamp(-1, 1)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y) == pytest.approx(ssim(y, x), abs=1e-12)
    assert -1 <= ssim(x, -x) <= ssim(x, y) < 1
    # a constant shift lowers SSIM (luminance term), more for a larger shift
    s1 = ssim(x, (x + 0.1).clamp(-1, 1))
    s2 = ssim(x, (x + 0.4).clamp(-1, 1))
    assert 1 > s1 > s2


def test_ssim_borders_are_included_with_zero_padding():
    # with zero padding the border means differ from the interior ones: a constant image compared
    # with itself is still 1 everywhere, but two constants give a border-dependent map
    x = torch.full((1, 1, 30, 30), 0.5)
    y = torch.full((1, 1, 30, 30), 0.4)
    from ubdiff_phys.models.metrics import ssim_map

    m = ssim_map(x, y)
    assert m[0, 0, 15, 15] != pytest.approx(float(m[0, 0, 0, 0]), abs=1e-6)
    assert ssim(x, y) == pytest.approx(float(m.mean()))


def test_accumulator_equals_whole_set():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 1, 16, 16, generator=g) * 2 - 1
    y = torch.rand(7, 1, 16, 16, generator=g) * 2 - 1
    acc = MetricAccumulator()
    for i in range(0, 7, 3):
        acc.update(x[i : i + 3], y[i : i + 3])
    r = acc.compute()
    assert r["mae"] == pytest.approx(mae(x, y))
    assert r["mse"] == pytest.approx(mse(x, y))
    assert r["rmse"] == pytest.approx(rmse(x, y))
    assert r["ssim"] == pytest.approx(ssim(x, y))
    assert "ssim" not in MetricAccumulator(with_ssim=False).compute() | {"x": 0}


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        mae(torch.zeros(2), torch.zeros(3))
