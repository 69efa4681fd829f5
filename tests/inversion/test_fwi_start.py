"""The FWI start of the velocity-space posterior, on the 16 × 16 Gaussian velocity-prior oracle
of the posterior tests: multiscale FWI from a linear model must fit the data to the noise level
(physics: the truth's own misfit is the noise level), and the sharpening from its copies must
end near the noise level with the true map inside its interval."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from helpers import gaussian_velocity_problem, posterior_survey

from ubdiff_phys.inversion import fwi_start, modelling_survey, pooled_start, sharpen_samples
from ubdiff_phys.inversion.fwi_start import (
    LINEAR_CANDIDATES,
    linear_model,
    pool_basins,
    pool_members,
)
from ubdiff_phys.physics import misfit

SURVEY = posterior_survey(150)
LINEAR = (2500.0, 3500.0)


def test_linear_model_rises_with_depth_and_is_constant_along_rows() -> None:
    v = linear_model(SURVEY, 2000.0, 4000.0)
    assert v.shape == (1, 1, 16, 16) and v.dtype == torch.float32
    assert float(v[0, 0, 0, 0]) == 2000.0 and float(v[0, 0, -1, 0]) == 4000.0
    assert torch.equal(v, v[..., :1].expand_as(v))
    assert bool((v[0, 0, 1:, 0] > v[0, 0, :-1, 0]).all())


def test_fwi_start_fits_the_data_and_the_sharpening_draws_around_it() -> None:
    """Measured: the linear start at 805x the noise level (MAE 158 m/s), the FWI at 0.96x
    (MAE 52), its sharpening (t_start 64, 10 steps x 10 iterations, bands 10, 15 Hz, full)
    4.6x at the samples' median with the truth's pixels 0.90 inside the 90 % interval."""
    prior, _, v_true, observed, sigma, err, _ = gaussian_velocity_problem(SURVEY)
    start = fwi_start(
        observed, SURVEY, boundary="pml", bounds=prior.bounds, n_samples=8, noise_std=sigma,
        linear=LINEAR,
    )  # fmt: skip
    ms = modelling_survey(SURVEY, "pml", prior.bounds[1])
    obs1 = observed.reshape(1, *observed.shape[-3:]).float()
    lin = linear_model(SURVEY, *LINEAR)
    f_lin = float(misfit(lin, obs1, ms, boundary="pml")) / start.noise_misfit
    f_fwi = float(misfit(start.mean[None], obs1, ms, boundary="pml")) / start.noise_misfit
    assert f_lin > 100.0 and f_fwi < 2.0, (f_lin, f_fwi)
    assert float(start.misfit[0]) / start.noise_misfit == pytest.approx(f_fwi, rel=1e-4)
    mae = float((start.mean - v_true[0]).abs().mean())
    assert mae < 0.5 * float((lin[0] - v_true[0]).abs().mean())
    assert start.samples.shape == (8, 1, 16, 16) and bool((start.samples == start.mean).all())
    assert float(start.std.abs().max()) == 0.0 and start.solver_calls > 10
    assert start.noise_misfit == pytest.approx(0.5 * observed.numel() * sigma**2)
    assert start.settings["method"] == "fwi_start" and start.settings["linear"] == list(LINEAR)
    prior.denoiser_error = err
    res = sharpen_samples(
        start, observed, SURVEY, prior=prior, t_start=64, steps=10, inner=10,
        bands=(10.0, 15.0, None), generator=torch.Generator().manual_seed(4),
    )  # fmt: skip
    assert float(res.misfit.median()) / res.noise_misfit < 8.0
    assert res.coverage(v_true[0]) > 0.8 and float(res.std.mean()) > 10.0
    assert res.settings["method"] == "fwi_start" and "sharpen" in res.settings


def test_fwi_start_keeps_the_candidate_start_that_fits_the_data() -> None:
    """Several linear starts: the FWI from each runs alone and the smallest misfit is kept.
    From a model decreasing with depth (4500 -> 1500 m/s) the FWI stays in a wrong basin
    (measured 9,494x the noise level) against 0.96x from LINEAR; the kept result is the
    single-start run from LINEAR, bit for bit, whatever the candidates' order."""
    prior, _, v_true, observed, sigma, _, _ = gaussian_velocity_problem(SURVEY)
    kw = {"boundary": "pml", "bounds": prior.bounds, "n_samples": 2, "noise_std": sigma}
    single = fwi_start(observed, SURVEY, linear=LINEAR, **kw)
    wrong = (4500.0, 1500.0)
    for order in ((wrong, LINEAR), (LINEAR, wrong)):
        res = fwi_start(observed, SURVEY, linear=order, **kw)
        assert res.settings["linear"] == list(LINEAR)
        assert res.settings["linear_candidates"] == [list(c) for c in order]
        f = dict(zip(order, res.settings["candidate_misfits"], strict=True))
        assert f[wrong] > 100.0 * res.noise_misfit and f[LINEAR] < 2.0 * res.noise_misfit
        assert f[LINEAR] == pytest.approx(float(single.misfit[0]), rel=1e-12)
        assert torch.equal(res.samples, single.samples) and torch.equal(res.misfit, single.misfit)
        assert res.solver_calls > single.solver_calls
    assert "linear_candidates" not in single.settings


def test_pool_members_ranks_drops_the_misfits_too_large_and_splits_the_chains() -> None:
    """The CurveVel-A map 5 candidates (misfit / noise level): the three within 2x of the best
    (1.14) in misfit order, 8 chains as 3, 3, 2; never more members than chains; ties keep the
    candidates' order; a ratio of 1 keeps the best alone."""
    fits = [1.37, 1260.5, 3.41, 591.9, 1.14, 1.95]
    assert pool_members(fits, 3, 2.0, 8) == ([4, 0, 5], [3, 3, 2])
    assert pool_members(fits, 6, 2.0, 8) == ([4, 0, 5], [3, 3, 2])
    assert pool_members(fits, 6, 1e9, 8) == ([4, 0, 5, 2, 3, 1], [2, 2, 1, 1, 1, 1])
    assert pool_members(fits, 3, 2.0, 2) == ([4, 0], [1, 1])
    assert pool_members(fits, 1, 2.0, 8) == pool_members(fits, 3, 1.0, 8) == ([4], [8])
    assert pool_members([2.0, 1.0, 1.0], 2, 2.0, 5) == ([1, 2], [3, 2])


def test_fwi_start_pool_splits_the_chains_over_the_candidates_that_fit() -> None:
    """pool=3 over (wrong, LINEAR): at the default ratio (2x) the wrong basin (9,494x the noise
    level) is dropped and the result is the single start's, bit for bit; with the ratio opened
    it gets the last chain, the samples keep their own FWI and misfit, best first."""
    prior, _, _, observed, sigma, _, _ = gaussian_velocity_problem(SURVEY)
    kw = {"boundary": "pml", "bounds": prior.bounds, "n_samples": 3, "noise_std": sigma}
    wrong = (4500.0, 1500.0)
    single = fwi_start(observed, SURVEY, linear=LINEAR, **kw)
    alone = fwi_start(observed, SURVEY, linear=(wrong, LINEAR), pool=3, **kw)
    assert torch.equal(alone.samples, single.samples) and torch.equal(alone.mean, single.mean)
    assert torch.equal(alone.misfit, single.misfit) and float(alone.std.abs().max()) == 0.0
    assert alone.settings["pool"] == [list(LINEAR)] and alone.settings["pool_sizes"] == [3]
    assert alone.settings["pool_top"] == 3 and alone.settings["pool_max_ratio"] == 2.0
    both = fwi_start(observed, SURVEY, linear=(wrong, LINEAR), pool=3, pool_max_ratio=1e9, **kw)
    assert both.settings["pool"] == [list(LINEAR), list(wrong)]
    assert both.settings["pool_sizes"] == [2, 1] and both.settings["linear"] == list(LINEAR)
    assert torch.equal(both.samples[:2], single.samples[:2])
    fits = both.settings["candidate_misfits"]  # in the candidates' order: wrong, LINEAR
    assert both.misfit.tolist() == pytest.approx([fits[1], fits[1], fits[0]], rel=1e-12)
    assert fits[0] > 100.0 * both.noise_misfit  # the third sample is the wrong basin's FWI
    ms = modelling_survey(SURVEY, "pml", prior.bounds[1])
    obs1 = observed.reshape(1, *observed.shape[-3:]).float()
    f2 = float(misfit(both.samples[2:], obs1, ms, boundary="pml"))
    assert f2 == pytest.approx(fits[0], rel=1e-3)
    torch.testing.assert_close(both.mean, both.samples.mean(0))
    torch.testing.assert_close(both.std, both.samples.std(0))
    assert "pool" not in single.settings
    for bad in ({"pool": 0}, {"pool": 2.5}, {"pool_max_ratio": 0.5}):
        with pytest.raises(ValueError, match="pool"):
            fwi_start(observed, SURVEY, linear=LINEAR, **kw, **bad)


def test_pool_basins_follow_each_sample_to_its_start_through_the_resampling(monkeypatch) -> None:
    """Pooled starts 3 + 3 over LINEAR's FWI (near the noise level) and the wrong basin's
    (thousands of times it), sharpened briefly: with a resampling after the first step the
    chains move to the start that fits; without one every chain keeps its own start, and the
    wrong start's chains end with the larger misfit. With the resampler replaced by two fixed
    ancestor lists the lineage is their composition, worked by hand."""
    from ubdiff_phys.diffusion import resampling

    prior, _, _, observed, sigma, err, _ = gaussian_velocity_problem(SURVEY)
    kw = {"boundary": "pml", "bounds": prior.bounds, "n_samples": 6, "noise_std": sigma}
    both = fwi_start(
        observed, SURVEY, linear=((4500.0, 1500.0), LINEAR), pool=2, pool_max_ratio=1e9, **kw
    )
    assert both.settings["pool_sizes"] == [3, 3]
    prior.denoiser_error = err
    sharpen = {"prior": prior, "t_start": 8, "steps": 2, "inner": 2, "bands": None}

    def basins_of(resample_at: list[int], seed: int, **extra) -> tuple[list[dict], list[int]]:
        res = sharpen_samples(
            both, observed, SURVEY, **sharpen | extra, resample_at=resample_at,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        basins = pool_basins(res)
        assert [b["linear"] for b in basins] == [list(LINEAR), [4500.0, 1500.0]]
        assert [b["chains"] for b in basins] == [3, 3]
        lineage = res.settings["sharpen_lineage"]
        for j, b in enumerate(basins):
            mine = torch.tensor([(i >= 3) == bool(j) for i in lineage])
            assert b["samples"] == int(mine.sum())
            if b["samples"]:
                torch.testing.assert_close(b["mean"], res.samples[mine].mean(0)[0])
                ratio = float(res.misfit[mine].median()) / res.noise_misfit
                assert b["misfit_median_over_noise"] == pytest.approx(ratio)
            else:
                assert b["mean"] is None and b["misfit_median_over_noise"] is None
        return basins, lineage

    basins, _ = basins_of([0], 5)
    assert basins[0]["samples"] > 3, basins  # the misfit moved chains to the start that fits
    basins, lineage = basins_of([], 6)
    assert lineage == list(range(6)) and [b["samples"] for b in basins] == [3, 3]
    assert basins[1]["misfit_median_over_noise"] > basins[0]["misfit_median_over_noise"]

    fixed = iter([torch.tensor([1, 1, 2, 3, 4, 5]), torch.tensor([5, 0, 0, 1, 2, 3])])
    monkeypatch.setattr(resampling, "systematic_resample", lambda w, g: next(fixed))
    basins, lineage = basins_of([0, 1], 7, steps=3)
    assert lineage == [5, 1, 1, 1, 2, 3]  # a1[a2]: sample 0 is a copy of 5, a copy of start 5
    assert [b["samples"] for b in basins] == [4, 2]
    monkeypatch.undo()
    assert pool_basins(both) is None, "not sharpened"
    single = fwi_start(observed, SURVEY, linear=LINEAR, **kw)
    assert pool_basins(sharpen_samples(single, observed, SURVEY, **sharpen)) is None


def test_fwi_start_rejects_what_it_cannot_run() -> None:
    prior, _, _, observed, sigma, _, _ = gaussian_velocity_problem(SURVEY)
    for kw, word in (
        ({"linear": (1000.0, 3000.0)}, "inside bounds"),
        ({"linear": (2000.0, 5000.0)}, "inside bounds"),
        ({"linear": ((2000.0, 3000.0), (2000.0, 5000.0))}, "inside bounds"),
        ({"linear": ((2000.0, 3000.0), (2000.0,))}, "pair"),
        ({"linear": ()}, "at least one"),
        ({"n_samples": 0}, "n_samples"),
        ({"iterations": 0}, "iterations"),
        ({"noise_std": -1.0}, "noise_std"),
    ):
        with pytest.raises(ValueError, match=word):
            fwi_start(observed, SURVEY, boundary="pml", bounds=prior.bounds, **kw)
    with pytest.raises(ValueError, match="observed"):
        fwi_start(observed[..., :4], SURVEY, boundary="pml", bounds=prior.bounds)


def test_pooled_start_joins_the_starts_and_the_sharpening_fits_the_data() -> None:
    """Pool the FWI start (4 copies) with 4 copies of the linear model (805x the noise level):
    the pool keeps each start's samples and misfits in order; sharpened (t_start 64, as above)
    it ends near the noise level (measured: median 4.6x, coverage 0.91)."""
    prior, _, v_true, observed, sigma, err, _ = gaussian_velocity_problem(SURVEY)
    good = fwi_start(
        observed, SURVEY, boundary="pml", bounds=prior.bounds, n_samples=4, noise_std=sigma,
        linear=LINEAR,
    )  # fmt: skip
    lin = linear_model(SURVEY, *LINEAR)
    bad = replace(
        good, samples=lin.expand(4, *lin.shape[1:]).contiguous(), mean=lin[0], seconds=2.0,
        misfit=torch.full((4,), 7.0, dtype=torch.float64), solver_calls=5,
        settings=good.settings | {"method": "linear"},
    )  # fmt: skip
    pool = pooled_start(bad, good)
    assert pool.samples.shape == (8, 1, 16, 16)
    assert torch.equal(pool.samples[:4], bad.samples)
    assert torch.equal(pool.samples[4:], good.samples)
    assert torch.equal(pool.misfit, torch.cat([bad.misfit, good.misfit.double()]))
    assert torch.allclose(pool.mean, pool.samples.mean(0)) and float(pool.std.max()) > 0.0
    assert pool.seconds == pytest.approx(2.0 + good.seconds)
    assert pool.solver_calls == 5 + good.solver_calls
    assert pool.settings["sizes"] == [4, 4] and pool.settings["method"] == "pooled"
    assert [s["method"] for s in pool.settings["starts"]] == ["linear", "fwi_start"]
    assert pool.settings["noise_std"] == sigma and pool.calibration is None
    prior.denoiser_error = err
    res = sharpen_samples(
        pool, observed, SURVEY, prior=prior, t_start=64, steps=10, inner=10,
        bands=(10.0, 15.0, None), generator=torch.Generator().manual_seed(4),
    )  # fmt: skip
    assert float(res.misfit.median()) / res.noise_misfit < 8.0
    assert res.coverage(v_true[0]) > 0.8


def test_pooled_start_rejects_starts_for_other_data() -> None:
    prior, _, _, observed, sigma, _, _ = gaussian_velocity_problem(SURVEY)
    a = fwi_start(
        observed, SURVEY, boundary="pml", bounds=prior.bounds, n_samples=2, noise_std=sigma,
        iterations=1, polish_iterations=0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="at least two"):
        pooled_start(a)
    with pytest.raises(ValueError, match="noise_std"):
        pooled_start(a, replace(a, settings=a.settings | {"noise_std": 2 * sigma}))
    with pytest.raises(ValueError, match="boundary"):
        pooled_start(a, replace(a, settings=a.settings | {"boundary": "none"}))
    with pytest.raises(ValueError, match="noise_misfit"):
        pooled_start(a, replace(a, noise_misfit=2 * a.noise_misfit))
    with pytest.raises(ValueError, match="shape"):
        pooled_start(a, replace(a, samples=a.samples[..., :8]))


def test_the_cli_passes_its_pool_options_to_fwi_start(monkeypatch) -> None:
    """``--sharpen-fwi-pool`` / ``--sharpen-fwi-pool-max-ratio`` reach fwi_start (defaults: 1
    and 2, the single start)."""
    import argparse
    from types import SimpleNamespace

    from ubdiff_phys.inversion import sharpen_cli

    seen: list[dict] = []
    monkeypatch.setattr(sharpen_cli, "fwi_start", lambda *a, **k: seen.append(k))
    p = argparse.ArgumentParser()
    sharpen_cli.add_sharpen_options(p)
    for extra, pool, ratio in (([], 1, 2.0), (["--sharpen-fwi-pool", "3"], 3, 2.0),
                               (["--sharpen-fwi-pool", "2", "--sharpen-fwi-pool-max-ratio", "1.5"],
                                2, 1.5)):  # fmt: skip
        args = p.parse_args(["--sharpen-from", "fwi", "--sharpen-fwi-linear", "candidates", *extra])
        args.sharpen_fwi_linear_starts = LINEAR_CANDIDATES
        args.sharpen_prior, args.n_samples = SimpleNamespace(device="cpu", bounds=(1.0, 9.0)), 8
        sharpen_cli.fwi_start_row(args, {"survey": None, "boundary": "pml"}, torch.zeros(1), None)
        assert (seen[-1]["pool"], seen[-1]["pool_max_ratio"]) == (pool, ratio)
        assert seen[-1]["linear"] == LINEAR_CANDIDATES and seen[-1]["n_samples"] == 8
