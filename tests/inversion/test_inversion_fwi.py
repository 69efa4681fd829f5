"""Deterministic FWI: it recovers a model from its own data, keeps every iterate inside the
bounds, and the ``invert`` command writes its outputs safely."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import FWI_SURVEY as SURVEY
from helpers import layered

import ubdiff_phys as up
from ubdiff_phys.data import open_store
from ubdiff_phys.inversion import fwi, smooth_velocity


def test_fwi_recovers_a_layered_model(device: torch.device) -> None:
    truth = layered().to(device)
    observed = up.physics.simulate(truth, SURVEY, boundary="pml")
    v0 = smooth_velocity(truth, 6.0)
    result = fwi(observed, SURVEY, v0, boundary="pml", iterations=30, bounds=(1500.0, 4000.0))
    assert result.velocity.shape == truth.shape and result.velocity.device.type == device.type
    assert float(result.history[-1, 0]) < 0.05 * float(result.history[0, 0])
    err0 = float((v0 - truth).abs().mean())
    err1 = float((result.velocity - truth).abs().mean())
    assert err1 < 0.6 * err0, (err0, err1)  # measured: 165 -> 84 m/s


def test_fwi_pins_the_cpml_to_the_upper_bound() -> None:
    """With "pml" the C-PML follows v_max of the bounds, not each iterate's own maximum: the
    same run as with a survey pinned explicitly (the misfit does not move with the iterate)."""
    truth = layered()
    observed = up.physics.simulate(truth, SURVEY, boundary="pml")
    v0 = smooth_velocity(truth, 6.0)
    kw = dict(boundary="pml", iterations=3, bounds=(1500.0, 4000.0))
    free = fwi(observed, SURVEY, v0, **kw)
    pinned = fwi(observed, SURVEY.with_(pml_max_velocity=4000.0), v0, **kw)
    torch.testing.assert_close(free.velocity, pinned.velocity, rtol=0, atol=0)
    torch.testing.assert_close(free.history, pinned.history, rtol=0, atol=0)


def test_fwi_iterates_stay_inside_bounds_with_adam() -> None:
    truth = layered()
    observed = up.physics.simulate(truth, SURVEY, boundary="pml")
    v0 = torch.full_like(truth, 5000.0)  # outside the bounds: moved inside
    seen = []

    def check(k: int, v: torch.Tensor, f: torch.Tensor) -> None:
        assert torch.isfinite(v).all() and torch.isfinite(f).all()
        seen.append((float(v.min()), float(v.max())))

    result = fwi(
        observed,
        SURVEY,
        v0,
        boundary="pml",
        iterations=4,
        optimizer="adam",
        lr=0.5,
        bounds=(1800.0, 3600.0),
        callback=check,
    )
    assert len(seen) == result.evaluations == 5
    assert all(1800.0 <= lo and hi <= 3600.0 for lo, hi in seen)


def test_fwi_rejects_bad_arguments() -> None:
    truth = layered()
    observed = up.physics.simulate(truth, SURVEY, boundary="pml")
    with pytest.raises(ValueError, match="optimizer"):
        fwi(observed, SURVEY, truth, optimizer="sgd")
    with pytest.raises(ValueError, match="bounds"):
        fwi(observed, SURVEY, truth, bounds=(3000.0, 2000.0))
    with pytest.raises(ValueError, match="unstable"):
        fwi(observed, SURVEY, truth, bounds=(1500.0, 40000.0))
    with pytest.raises(ValueError, match="shape"):
        fwi(observed[:, :2], SURVEY, truth)


def test_invert_command_writes_outputs_and_refuses_to_overwrite(tmp_path) -> None:
    store = tmp_path / "flat.h5"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli"]
    subprocess.run(
        [
            *cmd,
            "make-dataset",
            "--family",
            "flatvel-a",
            "--n-velocity",
            "2",
            "--n-paired",
            "1",
            "--n-test",
            "0",
            "--boundary",
            "pml",
            "--quiet",
            str(store),
        ],
        check=True,
        cwd=tmp_path,
    )
    out = tmp_path / "inv"
    args = [*cmd, "invert", str(store), "--method", "fwi", "--out", str(out), "--iterations", "2"]
    subprocess.run(args, check=True, cwd=tmp_path, capture_output=True)
    report = json.loads((out / "fwi.json").read_text())
    assert report["kind"] == "ubdiff_phys.invert" and report["evaluations"] >= 2
    assert report["misfit_final"][0] < report["misfit_initial"][0]
    for name in ("inverted.npy", "initial.npy", "figure.png"):
        assert (out / name).stat().st_size > 0
    before = (out / "fwi.json").read_bytes()
    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert again.stderr.count("\n") == 1  # one line, no traceback
    assert (out / "fwi.json").read_bytes() == before
    bad = subprocess.run(
        [*args[:-2], "--rows", "9", "--overwrite"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "rows" in bad.stderr
    # --device reaches the FWI path: refused in one line without a GPU, else the CUDA run
    # matches the CPU one (same data, same optimiser; float32 sums in another order)
    cuda = subprocess.run(
        [*args, "--device", "cuda", "--overwrite"], cwd=tmp_path, capture_output=True, text=True
    )
    if not torch.cuda.is_available():
        assert cuda.returncode == 2 and "--device cpu" in cuda.stderr, cuda.stderr
        assert cuda.stderr.count("\n") == 1
        assert (out / "fwi.json").read_bytes() == before
    else:
        assert cuda.returncode == 0, cuda.stderr
        on_gpu = json.loads((out / "fwi.json").read_text())
        assert on_gpu["misfit_final"][0] == pytest.approx(report["misfit_final"][0], rel=1e-3)


def test_invert_fwi_with_bands_runs_every_band(tmp_path) -> None:
    """--bands: multiscale FWI, --iterations per band, the bands in the report; a bad list and
    --normalised are refused in one line."""
    store = tmp_path / "flat.h5"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli"]
    make = [*cmd, "make-dataset", "--family", "flatvel-a", "--n-velocity", "2", "--n-paired"]
    make += ["1", "--n-test", "0", "--boundary", "pml", "--quiet", str(store)]
    subprocess.run(make, check=True, cwd=tmp_path)
    out = tmp_path / "inv"
    args = [*cmd, "invert", str(store), "--method", "fwi", "--out", str(out)]
    args += ["--iterations", "2", "--bands", "5,full"]
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "fwi.json").read_text())
    assert report["settings"]["bands"] == [5.0, None]
    assert sum(report["settings"]["band_evaluations"]) == report["evaluations"]
    # the reported start and end misfits are full-band ones (the history's rows are per band)
    with open_store(store) as st:
        survey = st.survey.with_(pml_max_velocity=4500.0)  # fwi's pin: the upper bound
        obs = torch.from_numpy(st.seismic(0)[None]).float()
    for key, name in (("misfit_initial", "initial.npy"), ("misfit_final", "inverted.npy")):
        v = torch.from_numpy(np.load(out / name)).float()
        f = up.physics.misfit(v, obs, survey, boundary="pml", reduction="none")
        assert report[key] == pytest.approx(f.double().tolist(), rel=1e-5)
    assert report["misfit_final"][0] < report["misfit_initial"][0]
    for extra in (["--bands", "full,5"], ["--normalised"]):
        bad = subprocess.run(
            [*args, *extra, "--overwrite"], cwd=tmp_path, capture_output=True, text=True
        )
        assert bad.returncode == 2 and "--bands" in bad.stderr, bad.stderr
        assert bad.stderr.count("\n") == 1
