"""The split-conformal interval calibration: the rank rule on hand-made scores, the coverage of
fresh maps when the sampler is over- or under-confident by a known factor (the guarantee the
method rests on), and ``calibrate-interval`` / ``calibrate_interval`` with the shipped prior."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    child_env,
    gaussian_velocity_problem,
    posterior_survey,
    result_from_samples,
    small_store,
)

from ubdiff_phys.data.families import generate
from ubdiff_phys.inversion import fwi_start, load_prior, posterior_sample, sharpen_samples
from ubdiff_phys.inversion.calibration_cli import calibrate_interval, progress_key
from ubdiff_phys.inversion.interval_calibration import IntervalCalibration, conformal_scale
from ubdiff_phys.inversion.posterior import modelling_survey
from ubdiff_phys.inversion.posterior_cli import add_noise
from ubdiff_phys.inversion.prior import load_velocity_prior
from ubdiff_phys.physics import simulate


def misjudged_result(n: int, pixels: int, inflate: float, seed: int):
    """n exact draws of N(mu, sd²) per pixel, and a truth drawn from N(mu, (inflate·sd)²): a
    sampler whose spread is ``1/inflate`` times the true uncertainty."""
    g = torch.Generator().manual_seed(seed)
    mu = 3000 + 500 * torch.randn(1, 1, pixels, generator=g)
    sd = 50 + 200 * torch.rand(1, 1, pixels, generator=g)
    samples = mu + sd * torch.randn(n, 1, 1, pixels, generator=g)
    truth = mu + inflate * sd * torch.randn(1, 1, pixels, generator=g)
    res = result_from_samples(samples)
    return res, truth


@pytest.mark.parametrize("inflate", [2.0, 0.5])
def test_calibrated_interval_holds_fresh_maps_at_the_nominal_rate(inflate: float) -> None:
    """Calibrated on 10 maps, the interval holds 0.90 of the pixels of 10 other maps whatever
    the sampler's misjudgement, where the uncalibrated one is far off."""
    cal_maps = [misjudged_result(8, 2000, inflate, seed=s) for s in range(10)]
    cal = conformal_scale([r for r, _ in cal_maps], [t for _, t in cal_maps], 0.9, "predictive")
    assert (cal.scale > 1.5) if inflate > 1 else (cal.scale < 0.7)
    assert cal.n_maps == 10 and cal.n_pixels == 20_000 and len(cal.per_map_before) == 10
    before, after = [], []
    for s in range(100, 110):
        res, truth = misjudged_result(8, 2000, inflate, seed=s)
        before.append(res.coverage(truth, 0.9))
        after.append(dataclasses.replace(res, calibration=cal).coverage(truth, 0.9, "calibrated"))
    assert sum(after) / 10 == pytest.approx(0.90, abs=0.012)
    assert abs(sum(before) / 10 - 0.9) > 0.07
    # leaving each calibration map out estimates what the fresh maps then show
    assert cal.coverage_left_out == pytest.approx(0.90, abs=0.012)
    assert len(cal.per_map_left_out) == 10


class FixedInterval:
    """A result whose base interval is [-1, 1] at every pixel (half-width 1, centre 0)."""

    def __init__(self, pixels: int):
        self.pixels = pixels

    def interval(self, level: float, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        return -torch.ones(1, 1, self.pixels), torch.ones(1, 1, self.pixels)


def test_scale_is_the_conformal_rank_of_the_pooled_scores() -> None:
    """N = 9 scores 0.2 .. 1.8 at level 0.8: the ⌈(N + 1)·0.8⌉ = 8th smallest, 1.6."""
    truths = [torch.tensor([0.2, -0.4, 0.6]), torch.tensor([-0.8, 1.0, 1.2, -1.4, 1.6, -1.8])]
    results = [FixedInterval(3), FixedInterval(6)]
    cal = conformal_scale(results, truths, 0.8, "predictive")
    assert cal.scale == pytest.approx(1.6)
    assert cal.coverage_before == pytest.approx(5 / 9)
    assert cal.per_map_before == [1.0, 0.3333]
    with pytest.raises(ValueError, match="too few"):
        conformal_scale(results, truths, 0.95, "predictive")  # ⌈10 · 0.95⌉ = 10 > 9
    back = IntervalCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal
    with pytest.raises(ValueError, match="kind"):
        IntervalCalibration.from_dict({"kind": "ubdiff_phys.decoder_error"})


def test_left_out_coverage_uses_the_scale_of_the_other_maps() -> None:
    """Level 0.5, three maps of 4 scores: map 1 left out, the 5th smallest of the other 8 is
    0.9 and holds all of map 1; map 2 likewise; map 3 left out, the scale 0.5 holds none."""
    truths = [torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.5, 0.6, 0.7, 0.8])]
    truths.append(torch.tensor([0.9, 1.0, 1.1, 1.2]))
    cal = conformal_scale([FixedInterval(4)] * 3, truths, 0.5, "predictive")
    assert cal.scale == pytest.approx(0.7)  # ⌈13 · 0.5⌉ = 7th of all 12
    assert cal.per_map_left_out == [1.0, 1.0, 0.0]
    assert cal.coverage_left_out == pytest.approx(0.6667)
    one = conformal_scale([FixedInterval(4)], truths[:1], 0.5, "predictive")
    assert one.per_map_left_out is None and one.coverage_left_out is None
    old = IntervalCalibration.from_dict({k: v for k, v in cal.to_dict().items() if "left" not in k})
    assert old.coverage_left_out is None  # a record from before the estimate still loads


def test_calibrated_kind_scales_the_base_interval_and_refuses_without_a_calibration() -> None:
    res, _ = misjudged_result(8, 500, 1.0, seed=1)
    with pytest.raises(ValueError, match="calibrate-interval"):
        res.interval(0.9, kind="calibrated")
    cal = IntervalCalibration(0.9, 1.7, "predictive", 1, 500, 0.9, [0.9], "test")
    lo, hi = res.interval(0.9)
    clo, chi = dataclasses.replace(res, calibration=cal).interval(0.9, kind="calibrated")
    torch.testing.assert_close(chi - clo, 1.7 * (hi - lo))
    torch.testing.assert_close(chi + clo, hi + lo)
    with pytest.raises(ValueError, match="level 0.9"):
        dataclasses.replace(res, calibration=cal).interval(0.8, kind="calibrated")
    cal = dataclasses.replace(cal, settings={"method": "noise_aware", "n_samples": 8, "steps": 50})
    same = {"method": "noise_aware", "n_samples": 8, "steps": 50, "noise_std": 0.3}
    assert cal.differs_from(same) == {}
    assert cal.differs_from(same | {"n_samples": 16}) == {"n_samples": (8, 16)}
    # a record that predates latent_fit was measured without the fit (0)
    assert cal.differs_from(same | {"latent_fit": 0}) == {}
    assert cal.differs_from(same | {"latent_fit": 20}) == {"latent_fit": (0, 20)}
    # a calibration of the single FWI start does not hold for chains pooled over several
    assert cal.differs_from(same | {"pool_top": 1}) == {}
    assert cal.differs_from(same | {"pool_top": 3}) == {"pool_top": (1, 3)}
    # the noise fraction, where the caller knows it, against the one the scale was measured at
    assert cal.differs_from(same, noise=0.05) == {}, "a record without its noise: no claim"
    at_1 = dataclasses.replace(cal, settings=cal.settings | {"noise": 0.01})
    assert at_1.differs_from(same) == {} and at_1.differs_from(same, noise=0.01) == {}
    assert at_1.differs_from(same, noise=0.05) == {"noise": (0.01, 0.05)}


def test_calibrate_interval_with_the_shipped_prior_reaches_the_level_on_its_maps() -> None:
    prior = load_prior()
    v = torch.as_tensor(generate("flatvel-a", 2, seed=77)).float().reshape(2, 1, 70, 70)
    cal, results = calibrate_interval(prior, v, noise=0.02, n_samples=2, steps=3, seed=5)
    assert cal.base == "approximation" and cal.settings["n_samples"] == 2
    assert [r.samples.shape for r in results] == [(2, 1, 70, 70)] * 2

    def pooled(scale: float) -> float:
        c = dataclasses.replace(cal, scale=scale)
        covs = [
            dataclasses.replace(r, calibration=c).coverage(v[k], 0.9, "calibrated")
            for k, r in enumerate(results)
        ]
        return sum(covs) / 2

    assert pooled(cal.scale) >= 0.9 > pooled(cal.scale * 0.99)
    base = sum(r.coverage(v[k], 0.9, "approximation") for k, r in enumerate(results)) / 2
    assert cal.coverage_before == pytest.approx(base, abs=1e-6)


def test_calibration_records_the_band_schedule_it_was_measured_with() -> None:
    """A scale holds for the sampler it was measured with: one measured with a band-scheduled
    likelihood records the bands as ``posterior_sample`` does, so a run with the same schedule
    matches it and a full-band run is told."""
    prior = load_prior()
    v = torch.as_tensor(generate("flatvel-a", 1, seed=78)).float().reshape(1, 1, 70, 70)
    kw = {"noise": 0.02, "n_samples": 2, "steps": 3, "seed": 5}
    cal, results = calibrate_interval(prior, v, bands=(3.0, None), full_band_from=0.5, **kw)
    assert cal.settings["bands"] == [3.0, None] and cal.settings["full_band_from"] == 0.5
    assert results[0].settings["bands"] == [3.0, None]
    assert cal.differs_from(results[0].settings) == {}
    plain, plain_results = calibrate_interval(prior, v, **kw)
    assert cal.differs_from(plain_results[0].settings)["bands"] == ([3.0, None], None)
    assert plain.differs_from(plain_results[0].settings) == {}
    assert not torch.equal(results[0].samples, plain_results[0].samples), "bands must act"


def test_calibration_records_keep_best_of_and_leaves_plain_keys_alone() -> None:
    """keep_best_of changes which draws are scored, so a scale measured with it records it (and
    a plain run is told it differs), while a run without it keeps the key it always had (the
    committed progress files must still resume)."""
    prior = load_prior()
    v = torch.as_tensor(generate("flatvel-a", 1, seed=78)).float().reshape(1, 1, 70, 70)
    kw = {"noise": 0.02, "n_samples": 2, "steps": 3, "seed": 5}
    cal, results = calibrate_interval(prior, v, keep_best_of=3, **kw)
    assert cal.settings["keep_best_of"] == 3 and results[0].settings["keep_best_of"] == 3
    assert results[0].samples.shape[0] == 2 and cal.differs_from(results[0].settings) == {}
    plain_settings = dict(results[0].settings)
    del plain_settings["keep_best_of"]
    assert cal.differs_from(plain_settings) == {"keep_best_of": (3, None)}
    key_args = {"level": 0.9, "trust": 1.0, "bands": None, "full_band_from": 0.6}
    key_args |= {"latent_fit": 0, "sharpen": None, "fwi": None} | kw
    assert "keep_best_of" not in progress_key(prior, **key_args)["sampler"]
    assert progress_key(prior, keep_best_of=3, **key_args)["sampler"]["keep_best_of"] == 3
    with pytest.raises(ValueError, match="keep_best_of"):
        calibrate_interval(prior, v, keep_best_of=1, **kw)


def test_calibrate_interval_cli_stores_the_record_and_refuses_to_replace_it(tmp_path) -> None:
    ckpt = tmp_path / "prior"
    shutil.copytree(Path(load_prior().info["diffusion"]).parent, ckpt)
    (ckpt / "interval_calibration.json").unlink(missing_ok=True)
    for partial in ckpt.glob("*.partial.pt"):  # a run in progress in the source folder
        partial.unlink()
    store = small_store(tmp_path / "s.h5", 6, 1, 3, seed=11)
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "calibrate-interval", str(ckpt)]
    cmd += ["--store", str(store), "--n-samples", "2", "--steps", "2"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cmd, *extra],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=tmp_path,  # outside the checkout: the installed package must be imported
            timeout=600,
        )

    r = run("--n-maps", "2")
    assert r.returncode == 0, r.stderr
    cal = load_prior(ckpt).interval_calibration
    assert cal is not None and cal.n_maps == 2 and cal.n_pixels == 2 * 70 * 70
    assert cal.source.startswith("held-out store rows 0..1")
    again = run("--n-maps", "2")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert again.stderr.count("\n") == 1
    too_many = run("--n-maps", "3", "--skip", "1", "--overwrite")
    assert too_many.returncode == 2 and "3 held-out rows" in too_many.stderr
    bad_bands = run("--n-maps", "2", "--bands", "8,4", "--overwrite")
    assert bad_bands.returncode == 2 and "--bands" in bad_bands.stderr
    assert bad_bands.stderr.count("\n") == 1
    assert load_prior(ckpt).interval_calibration == cal, "a refused run must not touch the file"
    (ckpt / "interval_calibration_sharpened.json").unlink(missing_ok=True)
    sharpen = ["--n-maps", "1", "--sharpen", "--sharpen-t-start", "16", "--sharpen-steps", "3"]
    sharpen += ["--sharpen-inner", "2", "--latent-fit", "2"]
    r = run(*sharpen)
    assert r.returncode == 0, r.stderr
    assert "interval_calibration_sharpened.json" in r.stdout
    again = load_prior(ckpt)
    assert again.interval_calibration == cal, "--sharpen must leave the latent sampler's scale"
    sharp = again.sharpened_interval_calibration
    assert sharp is not None and sharp.base == "predictive" and sharp.n_maps == 1
    assert sharp.settings["sharpen"]["t_start"] == 16 and sharp.settings["latent_fit"] == 2
    assert sharp.settings["sharpen"]["resample_at"] == [1]
    refused = run(*sharpen)
    assert refused.returncode == 2 and "interval_calibration_sharpened.json" in refused.stderr
    bad = run(*sharpen, "--sharpen-t-start", "0", "--overwrite")
    assert bad.returncode == 2 and "--sharpen-t-start" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_shipped_prior_carries_its_interval_calibration() -> None:
    cal = load_prior().interval_calibration
    assert cal is not None, "the shipped checkpoint must ship interval_calibration.json"
    assert cal.level == 0.9 and cal.base == "approximation" and cal.n_maps >= 16
    assert cal.source.startswith("held-out store rows") and cal.settings["n_samples"] == 8
    assert 0 < cal.coverage_before < 1 and cal.scale > 0


def test_calibrate_interval_with_sharpening_scales_the_sharpened_predictive_interval() -> None:
    """``sharpen=``: every posterior is sharpened exactly as ``sharpen_samples`` does with the
    documented seeds (checked by redoing map 1 by hand), the scale is the conformal rank of the
    sharpened samples' predictive interval, and the record names the sharpening, so a result
    sharpened the same way matches it and an unsharpened one is told."""
    survey = posterior_survey(150)
    prior, mu, _, _, _, err, g = gaussian_velocity_problem(survey)
    prior.denoiser_error = err
    v = prior.velocity(mu + 0.05 * torch.randn((2, 1, 16, 16), generator=g, dtype=torch.float64))
    sharpen = {"prior": prior, "t_start": 32, "steps": 4, "inner": 4, "bands": (15.0, None)}
    kw = {"noise": 0.01, "n_samples": 3, "steps": 4, "seed": 2}
    cal, results = calibrate_interval(prior, v.float(), sharpen=sharpen, **kw)
    assert cal.base == "predictive" and cal.n_maps == 2
    assert cal.settings["sharpen"] == results[0].settings["sharpen"]
    assert cal.settings["sharpen"]["resample_at"] == [1, 2]  # the default for 4 steps
    assert cal.differs_from(results[1].settings) == {}
    plain, plain_results = calibrate_interval(prior, v.float(), **kw)
    assert "sharpen" in plain.differs_from(results[0].settings)
    assert cal.differs_from(plain_results[0].settings)["sharpen"][1] is None

    truth = v[1].float()  # map 1 by hand, with the seeds calibrate_interval documents
    clean = simulate(truth[None], prior.survey, boundary=prior.boundary).float()[0]
    obs, sigma = add_noise(clean, 0.01, seed=2 * 1_000_003 + 1)
    ms = modelling_survey(prior.survey, prior.boundary, prior.bounds[1])
    start = posterior_sample(
        obs, ms, boundary=prior.boundary, prior=prior, n_samples=3, noise_std=sigma, steps=4,
        generator=torch.Generator().manual_seed(2 + 1),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(2 * 1_000_003 + 1 + 7)
    again = sharpen_samples(start, obs, ms, generator=gen, **sharpen)
    torch.testing.assert_close(again.samples, results[1].samples, rtol=0, atol=0)

    def pooled(scale: float) -> float:
        c = dataclasses.replace(cal, scale=scale)
        covs = [
            dataclasses.replace(r, calibration=c).coverage(v[k].float(), 0.9, "calibrated")
            for k, r in enumerate(results)
        ]
        return sum(covs) / 2

    k = math.ceil((cal.n_pixels + 1) * 0.9)  # the rank of the scale among the pooled scores
    assert pooled(cal.scale) >= k / cal.n_pixels > pooled(cal.scale * 0.999)
    kept = sharpen_samples(start, obs, ms, generator=gen, calibration=cal, **sharpen)
    assert kept.calibration == cal
    lo, hi = kept.interval(0.9)
    clo, chi = kept.interval(0.9, kind="calibrated")
    torch.testing.assert_close(chi - clo, cal.scale * (hi - lo), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="predictive"):
        sharpen_samples(start, obs, ms, calibration=dataclasses.replace(cal, base="approximation"))


def test_calibrate_interval_from_the_fwi_start_records_the_start_it_scales() -> None:
    """``fwi=``: each map starts from fwi_start with the documented noise seed, is sharpened
    with the documented seed (map 1 redone by hand, bit for bit), and the record names the FWI
    start (method, linear starts, iterations), so a result made the same way matches it and
    one from another start or the latent posterior is told."""
    survey = posterior_survey(150)
    prior, mu, _, _, _, err, g = gaussian_velocity_problem(survey)
    prior.denoiser_error = err
    v = prior.velocity(mu + 0.05 * torch.randn((2, 1, 16, 16), generator=g, dtype=torch.float64))
    sharpen = {"prior": prior, "t_start": 32, "steps": 3, "inner": 3, "bands": (15.0, None)}
    fwi = {"linear": ((2500.0, 3500.0), (2000.0, 4000.0)), "iterations": 3}
    fwi["polish_iterations"] = 2
    kw = {"noise": 0.01, "n_samples": 3, "seed": 2, "sharpen": sharpen}
    cal, results = calibrate_interval(prior, v.float(), fwi=fwi, **kw)
    assert cal.base == "predictive" and cal.n_maps == 2 and len(cal.per_map_left_out) == 2
    assert cal.settings["method"] == "fwi_start" and cal.settings["n_samples"] == 3
    assert cal.settings["linear_candidates"] == [[2500.0, 3500.0], [2000.0, 4000.0]]
    assert cal.settings["iterations"] == 3 and cal.settings["polish_iterations"] == 2
    assert all(cal.differs_from(r.settings) == {} for r in results)
    one = dataclasses.replace(results[0], settings=results[0].settings | {"linear": [1.0, 2.0]})
    del one.settings["linear_candidates"]
    assert set(cal.differs_from(one.settings)) == {"fwi_starts"}
    latent, latent_results = calibrate_interval(prior, v[:1].float(), steps=3, **kw)
    assert {"method", "fwi_starts"} <= set(cal.differs_from(latent_results[0].settings))
    assert "fwi_starts" not in latent.settings and latent.settings["steps"] == 3
    with pytest.raises(ValueError, match="sharpen"):
        calibrate_interval(prior, v.float(), fwi=fwi, noise=0.01)

    truth = v[1].float()  # map 1 by hand, with the seeds calibrate_interval documents
    clean = simulate(truth[None], prior.survey, boundary=prior.boundary).float()[0]
    obs, sigma = add_noise(clean, 0.01, seed=2 * 1_000_003 + 1)
    ms = modelling_survey(prior.survey, prior.boundary, prior.bounds[1])
    start = fwi_start(
        obs, ms, boundary=prior.boundary, bounds=prior.bounds, n_samples=3, noise_std=sigma, **fwi
    )
    gen = torch.Generator().manual_seed(2 * 1_000_003 + 1 + 7)
    again = sharpen_samples(start, obs, ms, generator=gen, **sharpen)
    torch.testing.assert_close(again.samples, results[1].samples, rtol=0, atol=0)


def test_calibrate_interval_cli_from_the_fwi_start_is_used_by_invert(tmp_path) -> None:
    """``calibrate-interval VELOCITY_PRIOR --sharpen --sharpen-from fwi`` stores the scale beside
    the velocity prior (leaving any other record alone), and ``invert --sharpen --sharpen-from
    fwi`` with that prior and the same settings reads its calibrated interval from it; a
    ``--sharpen-checkpoint`` that is not the CHECKPOINT is one line and exit 2."""
    from ubdiff_phys.pipelines.generator import shipped_velocity_checkpoint

    folder = tmp_path / "vprior"
    shutil.copytree(shipped_velocity_checkpoint().parent, folder)
    ckpt = folder / shipped_velocity_checkpoint().name
    store = small_store(tmp_path / "s.h5", 6, 1, 3, seed=12)
    small = ["--n-samples", "2", "--sharpen", "--sharpen-t-start", "16", "--sharpen-steps", "2"]
    small += ["--sharpen-inner", "2", "--sharpen-from", "fwi", "--sharpen-fwi-iterations", "1"]
    small += ["--sharpen-fwi-polish", "1", "--sharpen-fwi-linear", "2000:4000,2500:3500"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ubdiff_phys.cli", *args],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=tmp_path,
            timeout=600,
        )

    cal_cmd = ["calibrate-interval", str(ckpt), "--store", str(store), "--n-maps", "2", *small]
    wrong = run(*cal_cmd, "--sharpen-checkpoint", str(tmp_path / "other.pt"))
    assert wrong.returncode == 2 and "--sharpen-checkpoint" in wrong.stderr
    assert wrong.stderr.count("\n") == 1
    r = run(*cal_cmd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fwi_sharpened" in r.stdout and "other maps' scale" in r.stdout
    shipped = {p.name for p in shipped_velocity_checkpoint().parent.iterdir()}
    new = {p.name for p in folder.iterdir()} - shipped
    record = "velocity_diffusion.interval_calibration_fwi_sharpened.json"
    assert new == {record, record + ".partial.pt"}, "the record and its run's progress file"
    cal = load_velocity_prior(ckpt).fwi_sharpened_interval_calibration
    assert cal is not None and cal.n_maps == 2 and cal.base == "predictive"
    assert cal.settings["linear_candidates"] == [[2000.0, 4000.0], [2500.0, 3500.0]]
    assert run(*cal_cmd).returncode == 2, "a stored record is replaced only with --overwrite"

    inv = ["invert", str(store), "--method", "noise_aware", "--rows", "0", "--add-noise", "0.01"]
    inv += [*small, "--sharpen-checkpoint", str(ckpt), "--out", str(tmp_path / "inv")]
    r = run(*inv)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "inv" / "posterior.json").read_text())
    assert report["interval_90_kind"] == "calibrated"
    assert report["interval_calibration"]["scale"] == pytest.approx(cal.scale)
    assert report["per_row"][0]["calibration_differs_in"] == {}

    again = run(*cal_cmd, "--overwrite")  # every map comes from the progress file
    assert again.returncode == 0, again.stderr[-2000:]
    assert "taken from" in again.stdout and "map 1/2" not in again.stdout
    assert load_velocity_prior(ckpt).fwi_sharpened_interval_calibration.scale == cal.scale
    r = run(*inv[:-1], str(tmp_path / "inv5"), "--add-noise", "0.05")  # the last one counts
    assert r.returncode == 0, r.stderr[-2000:]
    assert "measured with noise 0.01 (this run: 0.05)" in r.stdout
    report = json.loads((tmp_path / "inv5" / "posterior.json").read_text())
    assert report["per_row"][0]["calibration_differs_in"] == {"noise": [0.01, 0.05]}

    # chains pooled over both starts: a calibration of their own, beside the single start's
    pool = ["--sharpen-fwi-pool", "2", "--sharpen-fwi-pool-max-ratio", "1000"]
    missing = run(*cal_cmd, *pool, "--progress", str(tmp_path / "nowhere" / "p.pt"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "--progress" in missing.stderr
    kept = tmp_path / "runs" / "pooled.partial.pt"  # the progress outside the prior's folder
    kept.parent.mkdir()
    r = run(*cal_cmd, *pool, "--progress", str(kept))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fwi_pooled" in r.stdout
    assert kept.is_file() and not list(folder.glob("*pooled*.partial.pt"))
    pooled_cal = load_velocity_prior(ckpt).fwi_pooled_interval_calibration
    assert pooled_cal is not None and pooled_cal.settings["pool_top"] == 2
    assert load_velocity_prior(ckpt).fwi_sharpened_interval_calibration == cal, "left alone"
    r = run(*inv[:-1], str(tmp_path / "inv_pool"), *pool)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "inv_pool" / "posterior.json").read_text())
    assert report["interval_calibration"]["scale"] == pytest.approx(pooled_cal.scale)
    assert report["per_row"][0]["calibration_differs_in"] == {}
    basins = report["per_row"][0]["pool_basins"]  # which start each sample descends from
    assert [b["chains"] for b in basins] == [1, 1] and sum(b["samples"] for b in basins) == 2
    assert "samples per pooled start: " in r.stdout
    assert report["per_row"][0]["settings"]["sharpen_lineage"] in ([0, 1], [0, 0], [1, 1])
    assert run(*cal_cmd, *pool).returncode == 2, "the pooled record is not replaced either"
    (folder / record).unlink()
    other = run(*cal_cmd, "--noise", "0.02")
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert "noise" in other.stderr and "--overwrite" in other.stderr


def test_calibrate_interval_resumes_from_its_progress_file(tmp_path) -> None:
    """A run stopped after its first map leaves that map's scores in the progress file; the same
    call then samples only the second map and gives the uninterrupted run's scale and coverage
    bit for bit; a run over fewer maps takes them all from the file; other maps or other settings
    are refused (or, asked, start over)."""
    from ubdiff_phys.inversion.calibration_progress import ProgressMismatch

    survey = posterior_survey(150)
    prior, mu, _, _, _, err, g = gaussian_velocity_problem(survey)
    prior.denoiser_error = err
    v = prior.velocity(mu + 0.05 * torch.randn((2, 1, 16, 16), generator=g, dtype=torch.float64))
    v = v.float()
    sharpen = {"prior": prior, "t_start": 32, "steps": 2, "inner": 2, "bands": (15.0, None)}
    fwi = {"linear": ((2000.0, 4000.0),), "iterations": 2, "polish_iterations": 1}
    kw = {"noise": 0.01, "n_samples": 3, "seed": 3, "sharpen": sharpen, "fwi": fwi}
    whole, _ = calibrate_interval(prior, v, **kw)
    path = tmp_path / "cal.json.partial.pt"

    def stop(k: int, res, cov: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibrate_interval(prior, v, progress=path, report=stop, **kw)
    assert len(torch.load(path, weights_only=True)["maps"]) == 1
    sampled: list[int] = []
    resumed, results = calibrate_interval(
        prior, v, progress=path, report=lambda k, r, c: sampled.append(k), **kw
    )
    assert sampled == [1] and results[0] is None and results[1] is not None
    assert resumed.scale == whole.scale and resumed.per_map_before == whole.per_map_before
    assert resumed.per_map_left_out == whole.per_map_left_out
    assert {k: v for k, v in resumed.settings.items() if k != "seconds"} == {
        k: v for k, v in whole.settings.items() if k != "seconds"
    }
    first, results = calibrate_interval(prior, v[:1], progress=path, **kw)
    assert results == [None] and first.per_map_before == whole.per_map_before[:1]
    with pytest.raises(ProgressMismatch, match="position 1"):
        calibrate_interval(prior, v.flip(0), progress=path, **kw)
    with pytest.raises(ProgressMismatch, match="noise"):
        calibrate_interval(prior, v[:1], progress=path, **(kw | {"noise": 0.02}))
    other, results = calibrate_interval(
        prior, v[:1], progress=path, restart_on_mismatch=True, **(kw | {"noise": 0.02})
    )
    assert results[0] is not None and len(torch.load(path, weights_only=True)["maps"]) == 1


def test_progress_key_names_the_prior_by_its_checkpoint_and_stored_estimates() -> None:
    """A progress file is keyed by the prior's checkpoint bytes and the stored estimates that
    change its posterior: a reloaded prior matches, one without its denoiser error does not."""
    from ubdiff_phys.inversion.calibration_progress import CalibrationProgress

    def key(prior) -> dict[str, str]:
        return CalibrationProgress.open(None, {"prior": prior, "noise": 0.01}, []).key

    prior = load_prior()
    assert prior.denoiser_error is not None
    assert key(prior) == key(load_prior())
    bare = dataclasses.replace(prior, denoiser_error=None)
    assert key(bare)["prior"] != key(prior)["prior"] and key(bare)["noise"] == key(prior)["noise"]


def test_the_committed_curvevel_a_progress_file_still_matches_the_single_fwi_start() -> None:
    """The FWI-start calibration committed beside the CurveVel-A velocity prior resumes only if
    the CLI builds the same FWI key: the pool options must not enter it for the single start
    (``--sharpen-fwi-pool 1``), and must for a pooled one (another run)."""
    import argparse

    from ubdiff_phys.inversion.calibration_cli import _fwi_kwargs
    from ubdiff_phys.inversion.calibration_progress import _canonical
    from ubdiff_phys.inversion.fwi_start import parse_linear_starts
    from ubdiff_phys.inversion.sharpen_cli import add_sharpen_options

    root = Path(__file__).resolve().parents[2] / "research" / "priors" / "curvevel_a_velocity_10k"
    path = root / "velocity_diffusion.interval_calibration_fwi_sharpened.json.partial.pt"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    stored = torch.load(path, weights_only=False)["key"]["fwi"]
    p = argparse.ArgumentParser()
    add_sharpen_options(p)
    keys = []
    for extra in ([], ["--sharpen-fwi-pool", "1"], ["--sharpen-fwi-pool", "3"]):
        args = p.parse_args(["--sharpen", "--sharpen-from", "fwi", "--sharpen-fwi-linear",
                             "candidates", *extra])  # fmt: skip
        args.sharpen_fwi_linear_starts = parse_linear_starts(args.sharpen_fwi_linear)
        keys.append(_canonical(_fwi_kwargs(args)))
    assert keys[0] == keys[1] == stored
    assert keys[2] != stored and '"pool": 3' in keys[2]


def test_the_committed_flatvel_a_progress_file_resumes_under_the_documented_command(
    tmp_path,
) -> None:
    """The 36-row recalibration of the shipped prior's sharpened interval, committed under
    research/calibration_progress/, resumes (instead of starting over) only if the
    README's command builds the key its maps were scored under: same prior bytes and stored
    estimates, sampler, sharpening, noise, level, seed."""
    import argparse

    from ubdiff_phys.inversion.calibration_cli import (
        _check,
        progress_key,
        register_calibrate_interval,
        run_settings,
    )
    from ubdiff_phys.inversion.calibration_progress import _canonical
    from ubdiff_phys.pipelines.generator import shipped_checkpoint

    root = Path(__file__).resolve().parents[2] / "research" / "calibration_progress"
    path = root / "flatvel_a_small_sharpened_1pct.partial.pt"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    stored = torch.load(path, weights_only=True)["key"]
    parser = argparse.ArgumentParser()
    register_calibrate_interval(parser.add_subparsers())
    store = tmp_path / "shipped.h5"  # only its existence is checked before sampling
    store.touch()
    args = parser.parse_args(
        ["calibrate-interval", str(shipped_checkpoint()), "--store", str(store),
         "--n-maps", "36", "--latent-fit", "20", "--sharpen", "--progress", str(path)]
    )  # fmt: skip
    _check(args)
    key = progress_key(load_prior(args.checkpoint), **run_settings(args))
    assert {k: _canonical(v) for k, v in key.items()} == stored


def test_calibration_keys_name_the_resample_groups_only_when_used() -> None:
    """``calibrate-interval --sharpen-resample-groups G``: G > 1 is part of the sharpening's
    settings (so its progress and record differ from one population's); G = 1 leaves them as
    earlier runs wrote them (their progress files stay valid)."""
    import argparse

    from ubdiff_phys.inversion.calibration_cli import _sharpen_kwargs

    ns = argparse.Namespace(
        sharpen=True, sharpen_prior=None, sharpen_t_start=128, sharpen_steps=20,
        sharpen_inner=15, sharpen_band_list=None, sharpen_resample_list=[7, 12],
        sharpen_resample_groups=1,
    )  # fmt: skip
    assert "resample_groups" not in _sharpen_kwargs(ns)
    ns.sharpen_resample_groups = 2
    assert _sharpen_kwargs(ns)["resample_groups"] == 2
