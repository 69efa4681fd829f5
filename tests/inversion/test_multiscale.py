"""Multiscale FWI and multi-start refinement: the low-pass filter against a direct convolution
and its stated response, the band problem against the solver's linearity and time invariance, and
the refinement's bookkeeping against the misfit it reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import FWI_SURVEY as SURVEY
from helpers import layered

import ubdiff_phys as up
from ubdiff_phys.inversion import smooth_velocity
from ubdiff_phys.inversion.multiscale import (
    band_problem,
    gaussian_lowpass_taps,
    lowpass_time,
    multiscale_fwi,
    parse_bands,
)
from ubdiff_phys.inversion.refine import refine_samples


def test_lowpass_is_the_causal_convolution_truncated() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 50, 4, generator=g, dtype=torch.float64)
    taps = torch.rand(7, generator=g, dtype=torch.float64)
    y = lowpass_time(x, taps, dim=1)
    for b in range(3):
        for r in range(4):
            ref = np.convolve(x[b, :, r].numpy(), taps.numpy())[:50]
            np.testing.assert_allclose(y[b, :, r].numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("cutoff", [3.0, 8.0])
def test_gaussian_taps_halve_the_amplitude_at_the_cutoff(cutoff: float) -> None:
    dt = 1e-3
    h = gaussian_lowpass_taps(cutoff, dt)
    assert abs(float(h.sum()) - 1) < 1e-12
    k = torch.arange(h.numel(), dtype=torch.float64)
    for f, want in ((0.0, 1.0), (cutoff, 0.5), (2 * cutoff, 0.5**4)):
        resp = (h * torch.exp(-2j * math.pi * f * k * dt)).sum().abs()
        assert abs(float(resp) - want) < 1e-2, (f, float(resp), want)  # ±3 s truncation
    with pytest.raises(ValueError, match="Nyquist"):
        gaussian_lowpass_taps(600.0, dt)


@pytest.mark.parametrize("boundary", ["pml", "none"])
def test_band_problem_is_the_filtered_full_band_problem(boundary: str) -> None:
    """The scheme is linear and time-invariant in its source: simulating with the filtered
    wavelet equals filtering the gathers (the identity multiscale FWI relies on)."""
    v = layered()
    full = up.physics.simulate(v, SURVEY, boundary=boundary)
    band_survey, filtered = band_problem(SURVEY, full, 5.0)
    band = up.physics.simulate(v, band_survey, boundary=boundary)
    rel = float((band - filtered).norm() / filtered.norm())
    assert rel < 1e-5, rel
    assert band_problem(SURVEY, full, None)[1] is full


def test_parse_bands() -> None:
    assert parse_bands("3,5,8,full") == (3.0, 5.0, 8.0, None)
    assert parse_bands("4") == (4.0,)
    for bad in ("full,3", "5,3", "0,4", "x", ""):
        with pytest.raises(ValueError):
            parse_bands(bad)


def test_multiscale_fwi_reports_every_band_and_refuses_normalised_misfit() -> None:
    truth = layered()
    observed = up.physics.simulate(truth, SURVEY, boundary="pml")
    v0 = smooth_velocity(truth, 6.0)
    res = multiscale_fwi(
        observed,
        SURVEY,
        v0,
        bands=(4.0, 8.0, None),
        iterations=3,
        boundary="pml",
        bounds=(1500.0, 4000.0),
    )
    assert res.settings["bands"] == [4.0, 8.0, None]
    assert sum(res.settings["band_evaluations"]) == res.evaluations == res.history.shape[0]
    f0 = float(up.physics.misfit(v0, observed, SURVEY, boundary="pml"))
    f1 = float(up.physics.misfit(res.velocity, observed, SURVEY, boundary="pml"))
    assert f1 < 0.5 * f0, (f0, f1)
    with pytest.raises(ValueError, match="physical"):
        multiscale_fwi(observed, SURVEY, v0, normalizer=(0.0, 1.0))


def test_refine_samples_keeps_the_refinements_that_fit_the_data() -> None:
    truth = layered()
    observed = up.physics.simulate(truth, SURVEY, boundary="pml")[0]
    good = smooth_velocity(truth, 4.0)
    wrong = smooth_velocity(layered(2600.0, 2000.0, 3900.0), 4.0)
    starts = torch.cat([wrong, good, wrong + 50.0]).float()
    ref = refine_samples(
        observed,
        SURVEY,
        starts,
        boundary="pml",
        bounds=(1500.0, 4000.0),
        bands=(6.0, None),
        iterations=5,
        keep_within=1.25,
        polish_iterations=4,
    )
    obs_n = observed[None].expand(3, -1, -1, -1).float()
    f = up.physics.misfit(ref.samples, obs_n, SURVEY, boundary="pml", reduction="none")
    torch.testing.assert_close(ref.misfit, f.double())
    f_stage = up.physics.misfit(ref.unpolished, obs_n, SURVEY, boundary="pml", reduction="none")
    # the selection is made after the multiscale stage; the polish only touches the kept
    assert int(f_stage.argmin()) == 1 and bool(ref.kept[1])
    assert torch.equal(ref.kept, f_stage <= 1.25 * f_stage.min())
    assert torch.equal(ref.samples[~ref.kept], ref.unpolished[~ref.kept])
    assert bool((f[ref.kept] <= f_stage[ref.kept]).all())
    assert int(ref.misfit.argmin()) == 1
    torch.testing.assert_close(ref.mean, ref.samples[ref.kept].mean(0))
    torch.testing.assert_close(ref.best, ref.samples[1])
    assert float(ref.misfit[1]) < float(ref.start_misfit[1])
    assert ref.settings["polish_iterations"] == 4
    for bad in (dict(keep_within=0.5), dict(polish_iterations=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            refine_samples(observed, SURVEY, starts, boundary="pml", bounds=(1500, 4000), **bad)
