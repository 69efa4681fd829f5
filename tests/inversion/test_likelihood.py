"""The band-scheduled likelihood (:mod:`ubdiff_phys.inversion.likelihood`) against oracles: the
band's misfit equals the low-passed full-band residual of the solver's own gathers (by the
scheme's linearity), its gradient matches finite differences, and the ‖h‖² normalisation keeps
the misfit of pure noise at the closed-form expectation of filtered white noise."""

from __future__ import annotations

import pytest
import torch
from helpers import posterior_survey

from ubdiff_phys.inversion.likelihood import StateMisfits
from ubdiff_phys.inversion.multiscale import (
    DEFAULT_BANDS,
    band_schedule,
    gaussian_lowpass_taps,
    lowpass_time,
)
from ubdiff_phys.physics import simulate

SURVEY = posterior_survey(400, pml_max_velocity=3500.0)


class _Identity:
    """A 'prior' whose state is the velocity itself [m/s]."""

    def velocity(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.float()


def _layered(shift: float = 0.0) -> torch.Tensor:
    v = torch.full((1, 1, 16, 16), 2000.0)
    v[..., 8:, :] = 3000.0 + shift
    return v


def test_band_schedule_spreads_the_cut_offs_then_the_full_band() -> None:
    per_step = band_schedule(50, DEFAULT_BANDS, 0.6)
    cuts = [b for b in DEFAULT_BANDS if b is not None]
    assert per_step[30:] == [None] * 20
    assert [c for i, c in enumerate(per_step[:30]) if i == 0 or c != per_step[i - 1]] == cuts
    counts = [per_step.count(c) for c in cuts]
    assert sum(counts) == 30 and max(counts) - min(counts) <= 1  # 30 steps over 7 bands
    assert band_schedule(4, (3.0, None), 0.5) == [3.0, 3.0, None, None]
    assert band_schedule(5, DEFAULT_BANDS, 0.0) == [None] * 5
    assert band_schedule(3, (None,), 1.0) == [None] * 3
    with pytest.raises(ValueError, match="full_from"):
        band_schedule(5, DEFAULT_BANDS, 1.5)
    with pytest.raises(ValueError, match="increasing"):
        band_schedule(5, (5.0, 3.0), 0.5)


def test_band_misfit_is_the_low_passed_residual_of_the_full_band_gathers() -> None:
    truth, model = _layered(), _layered(shift=-300.0)
    observed = simulate(truth, SURVEY, boundary="pml").float()
    full = simulate(model, SURVEY, boundary="pml").double()
    fits = StateMisfits(_Identity(), SURVEY, "pml")
    for cut in (8.0, 20.0):
        taps = gaussian_lowpass_taps(cut, SURVEY.dt)
        residual = lowpass_time(full - observed.double(), taps, dim=-2)
        expected = 0.5 * residual.square().sum() / taps.square().sum()
        got = fits.against(observed, cut)(model.double())
        assert float(got[0]) == pytest.approx(float(expected), rel=2e-4)
    f_full = fits.against(observed)(model.double())
    assert float(f_full[0]) == pytest.approx(
        float(0.5 * (full - observed.double()).square().sum()), rel=2e-4
    )
    assert fits.calls == 3


def test_band_misfit_gradient_matches_finite_differences() -> None:
    observed = simulate(_layered(), SURVEY, boundary="pml").float()
    fit = StateMisfits(_Identity(), SURVEY, "pml").against(observed, 10.0)
    v = _layered(shift=-200.0).double().requires_grad_(True)
    (g,) = torch.autograd.grad(fit(v).sum(), v)
    d = torch.zeros_like(v)
    d[..., 6:12, 4:12] = 1.0  # m/s, around the interface
    eps = 5.0
    with torch.no_grad():
        fd = (fit(v + eps * d) - fit(v - eps * d)).sum() / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=0.02)


def test_band_misfit_of_pure_noise_is_the_filtered_noise_expectation() -> None:
    """Data = the model's own gathers + white noise N(0, σ²): the band's misfit divided by ‖h‖²
    must average ½σ² Σ_n Σ_{k<=n} h_k² / ‖h‖² per trace (the causal filter's start-up), close
    to the full band's ½Nσ²."""
    v = _layered()
    b = 16
    clean = simulate(v, SURVEY, boundary="pml").float().expand(b, -1, -1, -1)
    sigma = 0.05 * float(clean.square().mean().sqrt())
    g = torch.Generator().manual_seed(0)
    noisy = clean + sigma * torch.randn(clean.shape, generator=g)
    cut = 20.0
    taps = gaussian_lowpass_taps(cut, SURVEY.dt)
    partial = taps.square().cumsum(0) / taps.square().sum()
    per_trace = torch.cat([partial, torch.ones(max(SURVEY.nt - len(partial), 0))])[: SURVEY.nt]
    n_traces = SURVEY.n_sources * SURVEY.n_receivers
    expected = 0.5 * sigma**2 * n_traces * float(per_trace.sum())
    full_band = 0.5 * sigma**2 * n_traces * SURVEY.nt
    assert 0.85 * full_band < expected < full_band  # the start-up costs a few per cent
    got = StateMisfits(_Identity(), SURVEY, "pml").against(noisy, cut)(
        v.double().expand(b, -1, -1, -1)
    )
    assert float(got.mean()) == pytest.approx(expected, rel=0.05)
    # without the normalisation the band's misfit would be ‖h‖² (0.03 here) of it
    assert float(taps.square().sum()) < 0.1
