"""``invert --method noise_aware|dps`` with the shipped prior on a fresh FlatVel-A-like file: the
outputs exist and are consistent, existing outputs are refused, mistakes are one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import child_env, small_store

from ubdiff_phys.inversion import load_prior, modelling_survey
from ubdiff_phys.physics import Survey


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> Path:
    return small_store(tmp_path_factory.mktemp("post") / "obs.h5", 2, 1, 1, seed=5)


def test_shipped_prior_carries_its_denoiser_error_for_the_openfwi_survey() -> None:
    prior = load_prior()
    err = prior.denoiser_error
    assert err is not None, "the shipped checkpoint must ship denoiser_error.json"
    survey = modelling_survey(Survey.openfwi(), prior.boundary, prior.bounds[1])
    assert err.matches(survey, prior.boundary)
    assert err.timesteps[0] == 0 and err.timesteps[-1] == prior.denoiser.schedule.timesteps - 1
    assert err.rms[0] < err.rms[-1] and all(r > 0 for r in err.rms)


def test_invert_posterior_writes_outputs_and_refuses_to_overwrite(observed: Path, tmp_path) -> None:
    out = tmp_path / "post"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--out", str(out)]
    args = [*cmd, "--method", "noise_aware", "--n-samples", "2", "--steps", "3"]
    args += ["--add-noise", "0.02", "--rows", "1"]
    r = subprocess.run(
        args, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "posterior.json").read_text())
    assert report["kind"] == "ubdiff_phys.invert.posterior" and report["rows"] == [1]
    row = report["per_row"][0]
    assert row["settings"]["denoiser_error"].endswith("training maps")  # the stored estimate
    assert len(row["misfit"]) == 2 and row["solver_calls"] == 4
    assert 0.0 <= row["coverage_90"] <= 1.0 and row["noise_misfit"] > 0
    # the shipped prior stores its decoder error; that interval is never the narrower one
    assert row["coverage_90"] <= row["coverage_90_approximation"] <= 1.0
    samples = np.load(out / "samples.npy")
    assert samples.shape == (1, 2, 1, 70, 70)
    assert np.allclose(np.load(out / "mean.npy"), samples.mean(axis=1), atol=1e-3)
    # the shipped prior stores its interval calibration: the written interval is that one
    assert report["interval_90_kind"] == "calibrated" and report["interval_calibration"]
    assert row["coverage_90_calibrated"] is not None
    # measured with 8 samples x 50 steps: the run says so, in the JSON and in one line
    assert row["calibration_differs_in"] == {
        "n_samples": [8, 2], "steps": [50, 3], "noise": [0.01, 0.02]
    }  # fmt: skip
    assert (
        "invert: note: the prior's interval calibration was measured with n_samples 8" in r.stdout
    )
    interval = np.load(out / "interval_90.npy")
    assert interval.shape == (1, 2, 1, 70, 70)
    centre, half = interval.mean(axis=1), np.diff(interval, axis=1)[:, 0] / 2
    assert np.allclose(centre, samples.mean(axis=1), atol=1e-2) and (half > 0).all()
    assert (out / "figure.png").stat().st_size > 0
    again = subprocess.run(
        args, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=300
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert again.stderr.count("\n") == 1
    bad = [*cmd, "--method", "dps", "--n-samples", "0", "--overwrite"]
    r = subprocess.run(
        bad, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=300
    )
    assert r.returncode == 2 and "--n-samples" in r.stderr


def test_invert_refines_the_samples_with_multiscale_fwi(observed: Path, tmp_path) -> None:
    """--refine-iterations: every sample starts a multiscale FWI; the refined files and the
    report agree with each other, and a bad band list is one line before any sampling."""
    out = tmp_path / "refined"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--out", str(out)]
    args = [*cmd, "--method", "noise_aware", "--n-samples", "3", "--steps", "2", "--rows", "1"]
    base = list(args)
    args += ["--refine-iterations", "2", "--refine-bands", "6,full", "--keep-within", "1.5"]
    args += ["--polish-iterations", "2"]
    r = subprocess.run(
        args, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((out / "posterior.json").read_text())["per_row"][0]
    ref = row["refined"]
    assert ref["settings"]["bands"] == [6.0, None] and ref["settings"]["iterations"] == 2
    assert ref["settings"]["polish_iterations"] == 2
    mis = np.array(ref["misfit"])
    assert ref["kept"] == list(mis <= 1.5 * mis.min())
    # the refinement lowers the misfit of the best sample below the best posterior sample's
    assert mis.min() < min(row["misfit"])
    refined = np.load(out / "refined.npy")
    assert refined.shape == (1, 3, 1, 70, 70)
    kept = np.array(ref["kept"])
    assert np.allclose(np.load(out / "refined_mean.npy")[0], refined[0][kept].mean(0), atol=1e-2)
    bad = [*base, "--refine-iterations", "2", "--refine-bands", "8,4", "--overwrite"]
    r = subprocess.run(
        bad, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=300
    )
    assert r.returncode == 2 and "--refine-bands" in r.stderr and r.stderr.count("\n") == 1


def test_invert_posterior_with_a_band_scheduled_likelihood(observed: Path, tmp_path) -> None:
    """--bands with a posterior method: the sampler's likelihood low-passes the data early; the
    report records the bands, the calibration note names them (the stored scale was measured
    with the full band), and a bad --full-band-from or band list is one line before any work."""
    out = tmp_path / "banded"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--out", str(out)]
    base = [*cmd, "--n-samples", "2", "--steps", "4", "--rows", "0"]
    args = [*base, "--method", "noise_aware", "--bands", "3,6,full", "--full-band-from", "0.5"]
    r = subprocess.run(
        args, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((out / "posterior.json").read_text())["per_row"][0]
    assert row["settings"]["bands"] == [3.0, 6.0, None]
    assert row["settings"]["full_band_from"] == 0.5 and row["solver_calls"] == 5
    assert row["calibration_differs_in"]["bands"] == [None, [3.0, 6.0, None]]
    for extra, word in (
        (["--method", "proximal", "--bands", "full,3"], "--bands"),
        (["--method", "noise_aware", "--bands", "3,full", "--full-band-from", "1.5"], "full-band"),
        (["--method", "dps", "--bands", "6,3"], "--bands"),
    ):
        _assert_one_line_mistake([*base, *extra, "--overwrite"], tmp_path, word)


def test_invert_keep_best_of_records_the_selection_and_flags_the_stored_scale(
    observed: Path, tmp_path
) -> None:
    """--keep-best-of M: the row's settings record the draws kept from, the stored scale (made
    without a selection) is flagged, and M below --n-samples is one line before any work."""
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed)]
    base = [*cmd, "--n-samples", "2", "--steps", "3", "--rows", "0", "--method", "noise_aware"]
    report = _invert_report([*base, "--keep-best-of", "3"], tmp_path / "kept")
    row = report["per_row"][0]
    assert row["settings"]["keep_best_of"] == 3 and row["settings"]["n_samples"] == 2
    assert row["calibration_differs_in"]["keep_best_of"] == [None, 3]
    _assert_one_line_mistake(
        [*base, "--keep-best-of", "1", "--out", str(tmp_path / "bad")], tmp_path, "--keep-best-of"
    )


def _assert_one_line_mistake(args: list[str], cwd: Path, word: str) -> None:
    """``args`` exits 2 with one line on stderr that names ``word``."""
    r = subprocess.run(args, capture_output=True, text=True, env=child_env(), cwd=cwd, timeout=300)
    assert r.returncode == 2 and word in r.stderr and r.stderr.count("\n") == 1, r.stderr


def _invert_report(args: list[str], out: Path) -> dict:
    """``posterior.json`` of ``invert`` run with ``args`` into ``out`` (which must succeed)."""
    r = subprocess.run(
        [*args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=out.parent,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((out / "posterior.json").read_text())


def test_invert_error_fit_uses_the_shipped_basis_and_says_when_there_is_none(
    observed: Path, tmp_path
) -> None:
    """--error-fit: the samples get the decoder-error fit (recorded, more solver calls, a lower
    misfit than the same draws without it); a prior without a basis is refused in one line."""
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--method"]
    base = [*cmd, "noise_aware", "--n-samples", "2", "--steps", "3", "--rows", "1"]
    base += ["--add-noise", "0.01"]
    rows = {}
    for fit in (0, 4):
        report = _invert_report([*base, "--error-fit", str(fit)], tmp_path / f"fit{fit}")
        assert report["interval_90_kind"] == ("predictive" if fit else "calibrated")
        rows[fit] = report["per_row"][0]
    fitted, plain = rows[4], rows[0]
    assert fitted["settings"]["error_fit"] == 4 and "error_fit" not in plain["settings"]
    assert fitted["settings"]["error_basis"]["k"] == 64
    assert fitted["solver_calls"] > plain["solver_calls"]
    assert fitted["misfit_median"] < plain["misfit_median"]
    # the fit replaces the decoder error's widening, and the calibration (measured without it)
    assert fitted["coverage_90_approximation"] is None and fitted["coverage_90_calibrated"] is None
    assert plain["coverage_90_calibrated"] is not None
    ckpt = tmp_path / "prior"
    shutil.copytree(Path(load_prior().info["diffusion"]).parent, ckpt)
    (ckpt / "decoder_error_basis.npz").unlink()
    r = subprocess.run(
        [*base, "--error-fit", "4", "--checkpoint", str(ckpt), "--out", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "no decoder-error basis" in r.stderr and not (tmp_path / "none").exists()


def test_invert_sharpen_redraws_the_samples_under_the_velocity_prior(
    observed: Path, tmp_path
) -> None:
    """--sharpen: every row's samples re-drawn under the shipped velocity-space prior (recorded,
    more solver calls, a lower misfit than the same latent draws alone, the shipped calibration
    of the sharpened interval); a bad timestep or checkpoint is one line before any work."""
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--method"]
    base = [*cmd, "noise_aware", "--n-samples", "2", "--steps", "3", "--rows", "1"]
    base += ["--add-noise", "0.01"]
    sharpen = ["--sharpen", "--sharpen-t-start", "16", "--sharpen-steps", "3"]
    sharpen += ["--sharpen-inner", "3", "--sharpen-resample-groups", "2"]
    rows = {}
    for extra in ([], sharpen):
        report = _invert_report([*base, *extra], tmp_path / f"sharpen{len(extra)}")
        rows[bool(extra)] = report["per_row"][0], report["interval_90_kind"]
    (sharp, kind), (plain, plain_kind) = rows[True], rows[False]
    assert sharp["settings"]["sharpen"]["t_start"] == 16 and "sharpen" not in plain["settings"]
    assert sharp["settings"]["sharpen"]["bands"][-1] is None
    assert sharp["settings"]["sharpen"]["resample_at"] == [1]  # 35 %, 60 %: never the last
    assert sharp["settings"]["sharpen"]["resample_groups"] == 2  # passed on, recorded
    assert sharp["solver_calls"] > plain["solver_calls"] + 5
    assert sharp["misfit_median"] < plain["misfit_median"], (sharp, plain)
    # the shipped prior stores a calibration of the sharpened interval (measured with 8 samples
    # and the default sharpening), so this run gets it and is told how its settings differ
    assert kind == "calibrated" and plain_kind == "calibrated"
    assert sharp["calibration_differs_in"]["sharpen"][1]["t_start"] == 16
    assert sharp["calibration_differs_in"]["n_samples"] == [8, 2]
    for extra, word in (
        (["--sharpen-t-start", "0"], "--sharpen-t-start"),
        (["--sharpen-checkpoint", str(tmp_path / "missing.pt")], "--sharpen-checkpoint"),
        (["--sharpen-bands", "6,3"], "--sharpen-bands"),
        (["--sharpen-steps", "3", "--sharpen-resample-at", "3"], "--sharpen-resample-at"),
        (["--sharpen-resample-at", "x"], "--sharpen-resample-at"),
        (["--sharpen-resample-groups", "3"], "--sharpen-resample-groups"),
    ):
        args = [*base, "--sharpen", *extra, "--out", str(tmp_path / "bad")]
        _assert_one_line_mistake(args, tmp_path, word)


def test_invert_sharpen_from_fwi_starts_from_multiscale_fwi(observed: Path, tmp_path) -> None:
    """--sharpen-from fwi: the sharpening starts from fwi_start's copies (recorded, no latent
    sampler, no calibration: the stored one is the latent start's), its samples fit the data
    far better than the linear model FWI starts from (physics: the FWI and the sharpening lower
    the misfit) and its mean is closer to the truth; the start's options are checked first."""
    from ubdiff_phys.data.store import open_store
    from ubdiff_phys.inversion.fwi_start import DEFAULT_LINEAR_START, linear_model
    from ubdiff_phys.physics import misfit

    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--method"]
    base = [*cmd, "noise_aware", "--n-samples", "2", "--steps", "3", "--rows", "1"]
    base += ["--add-noise", "0.01", "--sharpen", "--sharpen-t-start", "16", "--sharpen-steps"]
    base += ["3", "--sharpen-inner", "3"]
    fwi = ["--sharpen-from", "fwi", "--sharpen-fwi-iterations", "3", "--sharpen-fwi-polish", "3"]
    two = ["--sharpen-fwi-linear", "4500:1500,2000:4000"]  # the kept one: the smaller misfit
    report = _invert_report([*base, *fwi, *two], tmp_path / "fwi")
    row = report["per_row"][0]
    assert row["settings"]["method"] == "fwi_start" and "latent_fit" not in row["settings"]
    cand = row["settings"]["linear_candidates"]
    assert cand == [[4500.0, 1500.0], [2000.0, 4000.0]]
    fits = row["settings"]["candidate_misfits"]
    assert row["settings"]["linear"] == cand[min(range(2), key=fits.__getitem__)], fits
    assert row["settings"]["iterations"] == 3 and row["settings"]["polish_iterations"] == 3
    assert row["settings"]["sharpen"]["t_start"] == 16
    assert report["interval_90_kind"] == "predictive" and row["calibration_differs_in"] is None
    with open_store(observed) as st:
        truth = torch.as_tensor(st.velocity(int(st.paired_index[1])), dtype=torch.float32)
        clean = torch.as_tensor(st.seismic(1), dtype=torch.float32)[None]
        survey = modelling_survey(st.survey, "pml", 4500.0)
    lin = linear_model(survey, *DEFAULT_LINEAR_START)  # where the FWI starts: 773x the noise
    f_lin = float(misfit(lin, clean, survey, boundary="pml"))
    assert row["misfit_median"] < 0.25 * f_lin, (row["misfit_median"], f_lin)
    lin_mae = float((lin[0] - truth.reshape(1, 70, 70)).abs().mean())
    assert row["mean_vs_truth"]["mae_m_per_s"] < lin_mae, (row["mean_vs_truth"], lin_mae)
    for extra, word in (
        (["--sharpen-fwi-iterations", "0"], "--sharpen-fwi-iterations"),
        (["--sharpen-fwi-polish", "-1"], "--sharpen-fwi-polish"),
        (["--sharpen-fwi-linear", "2000"], "--sharpen-fwi-linear"),
        (["--sharpen-fwi-linear", "2000:4000,1000:3000"], "outside"),
        (["--sharpen-fwi-pool", "0"], "--sharpen-fwi-pool"),
        (["--sharpen-fwi-pool", "2", "--sharpen-fwi-pool-max-ratio", "0.5"], "max-ratio"),
    ):
        args = [*base, *fwi, *extra, "--out", str(tmp_path / "bad")]
        _assert_one_line_mistake(args, tmp_path, word)
        assert not (tmp_path / "bad").exists()
    plain = [*cmd, "noise_aware", "--rows", "1", "--sharpen-from", "fwi"]
    _assert_one_line_mistake([*plain, "--out", str(tmp_path / "x")], tmp_path, "needs --sharpen")
    fwi_method = [sys.executable, "-m", "ubdiff_phys.cli", "invert", str(observed), "--rows", "1"]
    for extra in (["--sharpen"], ["--sharpen-from", "fwi"], ["--refine-iterations", "2"]):
        args = [*fwi_method, *extra, "--out", str(tmp_path / "x")]  # --method fwi: no posterior
        _assert_one_line_mistake(args, tmp_path, "needs a posterior --method")
    assert not (tmp_path / "x").exists()
