"""Fréchet distance against closed forms, and InversionNet's size (specs/ubdiff.md §5)."""

import numpy as np
import pytest
import torch

from ubdiff_phys.eval import frechet_distance, gaussian_stats
from ubdiff_phys.models.inversionnet import InversionNet


def test_identical_gaussians_give_zero():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 8, generator=g, dtype=torch.float64)
    s = a @ a.T + 0.1 * torch.eye(8, dtype=torch.float64)
    mu = torch.randn(8, generator=g, dtype=torch.float64)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_one_dimensional_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    fd = frechet_distance(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[0.25]])
    )
    assert fd == pytest.approx(9.0 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_commuting_covariances_closed_form():
    # diagonal covariances: sum_i (m1_i - m2_i)^2 + (sqrt(a_i) - sqrt(b_i))^2, in a rotated basis
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    a = torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    m1, m2 = torch.randn(6, generator=g, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    expected = float(((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-10)
    # symmetric in its arguments even when the covariances do not commute
    c = torch.randn(6, 6, generator=g, dtype=torch.float64)
    s3 = c @ c.T
    assert frechet_distance(m1, s1, m2, s3) == pytest.approx(
        frechet_distance(m2, s3, m1, s1), rel=1e-9
    )


def test_sample_statistics_and_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3))
    mu, s = gaussian_stats(x)
    torch.testing.assert_close(s, torch.eye(3, dtype=torch.float64), atol=0.05, rtol=0)
    mu2, s2 = gaussian_stats(x + np.array([1.0, 0.0, 0.0]))
    assert frechet_distance(mu, s, mu2, s2) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(x[:1])
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(mu, s, mu2[:2], s2)


def test_inversionnet_parameter_count_and_shapes():
    with torch.device("meta"):
        full = InversionNet()
    assert sum(p.numel() for p in full.parameters()) == 24_409_123  # OpenFWI: ~24.4 M
    small = InversionNet(width=0.125)
    with torch.no_grad():
        out = small(torch.randn(2, 5, 1000, 70))
    assert out.shape == (2, 1, 70, 70) and float(out.abs().max()) <= 1.0
