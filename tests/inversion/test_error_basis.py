"""The decoder error's low-rank Gaussian model and its fit to the data.

Oracles: the basis against the sample mean and covariance of the reconstruction errors (exact
when k is the errors' rank); the fit on the tiny acoustic problem of the posterior tests, whose
true map lies outside the decoder's range by a field the basis can express: the corrected
samples must explain the data near the noise level where the decoder's cannot.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import linear_posterior_problem, linear_prior, posterior_survey

from ubdiff_phys.inversion.error_basis import ErrorBasis, estimate_error_basis, fit_error
from ubdiff_phys.inversion.posterior import modelling_survey, posterior_sample
from ubdiff_phys.physics import misfit, simulate

SURVEY = posterior_survey(150)


class ProjectorPrior:
    """A prior whose decoder reconstructs the projection of every map on the first ``r`` of a
    fixed orthonormal basis: the error v − D(E(v)) is the rest of the map."""

    def __init__(self, q: torch.Tensor, r: int, shape: tuple[int, int]):
        self.p = q[:, :r] @ q[:, :r].T
        self.shape = shape

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        return v.double().flatten(1) @ self.p

    def velocity(self, z: torch.Tensor) -> torch.Tensor:
        return z.float().reshape(z.shape[0], 1, *self.shape)


def test_basis_is_the_errors_mean_and_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    shape, n, rank = (5, 4), 40, 6
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
    prior = ProjectorPrior(q, 8, shape)
    # maps in the span of 8 + rank directions: the errors have rank `rank` about their mean
    coef = torch.randn(n, 8 + rank, generator=g, dtype=torch.float64) * 80
    v = (3000 + coef @ q[:, : 8 + rank].T).float().reshape(n, 1, *shape)
    errors = (v - prior.velocity(prior.encode(v))).double().flatten(1)
    basis = estimate_error_basis(prior, v, k=rank, source="test", batch=7)
    assert basis.k == rank and basis.n_maps == n and basis.explained == pytest.approx(1.0)
    torch.testing.assert_close(basis.mean.double().flatten(), errors.mean(0), atol=1e-3, rtol=0)
    comps = basis.components.double().flatten(1)
    torch.testing.assert_close(comps.T @ comps, torch.cov(errors.T), atol=0.05, rtol=1e-4)
    fewer = estimate_error_basis(prior, v, k=2)
    assert 0.2 < fewer.explained < 1.0
    with pytest.raises(ValueError, match="N > k"):
        estimate_error_basis(prior, v[:5], k=6)


def test_basis_round_trips_through_its_file(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    basis = ErrorBasis(
        mean=torch.randn(3, 4, generator=g) * 10,
        components=torch.randn(2, 3, 4, generator=g) * 50,
        n_maps=9,
        source="test",
        explained=0.9,
    )
    basis.save(tmp_path / "b.npz")
    back = ErrorBasis.load(tmp_path / "b.npz")
    torch.testing.assert_close(back.mean, basis.mean)
    torch.testing.assert_close(back.components, basis.components, rtol=1e-3, atol=0.05)  # float16
    assert (back.n_maps, back.source, back.explained) == (9, "test", 0.9)
    c = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    expected = basis.mean.double() + (c @ back.components.double().flatten(1)).reshape(3, 4)
    torch.testing.assert_close(back.field(c), expected[None, None])


def _shallow_layer_basis() -> tuple[ErrorBasis, torch.Tensor]:
    """(a basis of a shallow layer (rows 3-5) at 150 m/s standard deviation, a lateral gradient
    and the decoder's own two patterns (a deep layer, a depth gradient: what a sample that
    misread the shallow layer gets wrong), the true map's error field [m/s])."""
    rows = torch.arange(16, dtype=torch.float32)[:, None].expand(16, 16)
    layer = ((rows >= 3) & (rows <= 5)).float()
    lateral = (rows.T - 7.5) / 7.5
    comps = torch.stack([150 * layer, 60 * lateral, 100 * (rows >= 9).float(), 100 * rows / 15])
    basis = ErrorBasis(torch.zeros(16, 16), comps, n_maps=100, source="test", explained=1.0)
    return basis, 250 * layer  # a 1.7-sigma layer


def test_fit_explains_data_the_decoder_cannot() -> None:
    prior = linear_prior(SURVEY)
    survey = modelling_survey(SURVEY, "pml", 4500.0)
    basis, e_true = _shallow_layer_basis()
    decoded = prior.velocity(torch.tensor([[0.6, -0.4]], dtype=torch.float64))
    observed = simulate(decoded + e_true, survey, boundary="pml").float()
    sigma = 0.002 * float(observed.square().mean().sqrt())
    noise_misfit = 0.5 * observed.numel() * sigma**2
    samples = decoded.expand(4, -1, -1, -1).contiguous()
    obs = observed.expand(4, -1, -1, -1).contiguous()
    before = misfit(samples, obs, survey, boundary="pml", reduction="none")
    for draw in (False, True):
        g = torch.Generator().manual_seed(5)
        fitted, calls = fit_error(
            samples, obs, survey, "pml", basis, sigma, prior.bounds, 30, draw=draw, generator=g
        )
        after = misfit(fitted, obs, survey, boundary="pml", reduction="none")
        assert float(before.min()) > 100 * noise_misfit, before / noise_misfit
        # noise-free data; measured: the mode 5e-8, the draws 0.002-0.005 x the noise level
        assert float(after.max()) < 0.1 * noise_misfit, after / noise_misfit
        err = (fitted - decoded).abs()
        # measured: within 0.003 m/s (mode) and 1.8 m/s (draws) of the true layer
        assert float((err - e_true).abs().max()) < 10, "the fit must find the shallow layer"
        assert calls >= 30 and fitted.dtype == torch.float32
    lo_hi = (2000.0, 2400.0)
    clamped, _ = fit_error(samples, obs, survey, "pml", basis, sigma, lo_hi, 3, draw=False)
    assert float(clamped.min()) >= 2000.0 and float(clamped.max()) <= 2400.0


def test_posterior_sample_error_fit_records_and_lowers_the_misfit() -> None:
    basis, e_true = _shallow_layer_basis()  # the latent samples misread the shallow layer
    prior, v_true, observed, kw = linear_posterior_problem(SURVEY, e_true)
    with pytest.raises(ValueError, match="no decoder-error basis"):
        posterior_sample(observed, SURVEY, error_fit=5, **kw)
    prior.error_basis = basis
    with pytest.raises(ValueError, match="error_fit"):
        posterior_sample(observed, SURVEY, error_fit=-1, **kw)
    plain = posterior_sample(observed, SURVEY, generator=torch.Generator().manual_seed(3), **kw)
    fitted = posterior_sample(
        observed, SURVEY, error_fit=20, generator=torch.Generator().manual_seed(3), **kw
    )
    assert "error_fit" not in plain.settings
    assert fitted.settings["error_fit"] == 20 and fitted.settings["error_basis"]["k"] == 4
    assert fitted.solver_calls > plain.solver_calls and fitted.decoder_error is None
    # noise-free data; measured: plain 955 x the noise level, fitted 0.0005-0.005 x; mean
    # absolute error of the posterior mean 364 m/s plain, 0.09 m/s fitted
    noise = fitted.noise_misfit
    assert float(plain.misfit.min()) > 100 * noise, plain.misfit / noise
    assert float(fitted.misfit.max()) < 0.1 * noise, fitted.misfit / noise
    assert float((plain.mean - v_true[0]).abs().mean()) > 100
    assert float((fitted.mean - v_true[0]).abs().mean()) < 5
