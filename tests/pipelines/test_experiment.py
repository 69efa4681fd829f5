"""The unbalanced-data experiment (examples/unbalanced_experiment.py), tiny preset end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import child_env
from torch.utils.data import ConcatDataset

from ubdiff_phys.pipelines import validate_store
from ubdiff_phys.pipelines.experiment import (
    PRESETS,
    SETTINGS,
    chosen_settings,
    default_configs_dir,
    training_set,
    with_budget,
)

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "unbalanced_experiment.py"


def _run(workdir: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--scale", "tiny", "--workdir", str(workdir)]
    cmd += ["--device", "cpu", "--no-progress", *extra]
    return subprocess.run(
        cmd, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=300
    )


def test_settings_subset_is_checked_before_any_work(tmp_path):
    p = PRESETS["tiny"]
    assert chosen_settings(p, None) == p.settings
    assert chosen_settings(p, ["guided+real", "real"]) == ("real", "guided+real")  # preset order
    for bad in (["real", "nope"], []):
        with pytest.raises(ValueError):
            chosen_settings(p, bad)
    work = tmp_path / "exp"
    proc = _run(work, tmp_path, "--settings", "real,nope")
    assert proc.returncode == 2 and "--settings" in proc.stderr and "nope" in proc.stderr
    assert not work.exists()  # refused before any work


def test_budget_override_is_tagged_and_checked_before_any_work(tmp_path):
    p = PRESETS["tiny"]
    assert with_budget(p) == (p, "")
    q, tag = with_budget(p, p.protocol["max_steps"], 3)  # the preset's own steps: same files
    assert tag == "" and q.protocol_seeds == 3 and q.protocol == p.protocol
    q, tag = with_budget(p, p.protocol["max_steps"] + 5)
    assert tag == f"_steps{p.protocol['max_steps'] + 5}"
    assert q.protocol["max_steps"] == p.protocol["max_steps"] + 5
    assert {k: v for k, v in q.protocol.items() if k != "max_steps"} == {
        k: v for k, v in p.protocol.items() if k != "max_steps"
    }
    for bad in ((0, None), (None, 0)):
        with pytest.raises(ValueError):
            with_budget(p, *bad)
    work = tmp_path / "exp"
    proc = _run(work, tmp_path, "--max-steps", "0")
    assert proc.returncode == 2 and "max_steps" in proc.stderr
    assert not work.exists()  # refused before any work


def test_presets_are_complete():
    assert set(PRESETS) == {"tiny", "small", "medium", "full"}
    for name in ("medium", "full"):  # the data scale: all velocities + 1k pairs
        assert (PRESETS[name].n_velocity, PRESETS[name].n_paired) == (24000, 1000)
    configs = default_configs_dir()  # installed with the package, or the checkout's
    for p in PRESETS.values():
        assert (configs / p.ae_config).is_file() and (configs / p.diffusion_config).is_file()


def _rows_below(rel: list[float], cut: float) -> list[int]:
    return [i for i, r in enumerate(rel) if r <= cut]


@pytest.mark.slow
def test_tiny_experiment_end_to_end(tmp_path):
    work = tmp_path / "exp"
    proc = _run(work, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    assert results["scale"] == "tiny"
    assert "non_finite" not in results
    assert list(results["inversion"]) == list(SETTINGS)
    p = PRESETS["tiny"]
    n_train = {r: results["inversion"][r]["n_train"] for r in SETTINGS}
    assert n_train == {
        "real": p.n_paired,
        "ubdiff": p.n_generated,
        "ubdiff+real": p.n_generated + p.n_paired,
        "wo_opt": p.n_generated,
        "ubdiff_filtered": n_train["ubdiff_filtered"],
        "ubdiff_resim": p.n_generated,
        "ubdiff_resim+real": p.n_generated + p.n_paired,
        "majority_solver": p.n_velocity,  # every training map, paired or not
        "guided+real": p.n_generated + p.n_paired,
    }
    for r in results["inversion"].values():
        # one InversionNet run per seed, combined as mean and sample standard deviation
        assert r["seeds"] == [0, 1] and len(r["metrics_per_seed"]) == p.protocol_seeds == 2
        for k, mean in r["metrics_mean"].items():
            vals = [m[k] for m in r["metrics_per_seed"]]
            assert mean == pytest.approx(sum(vals) / 2)
            assert r["metrics_std"][k] == pytest.approx(abs(vals[0] - vals[1]) / 2**0.5)
        # the same optimiser-step budget for every setting
        assert r["n_test"] == p.n_test and r["steps"] == p.protocol["max_steps"]
        assert set(r["metrics"]) >= {"mae", "mse", "rmse", "ssim"}
        assert all(math.isfinite(v) for v in r["metrics"].values())
    assert set(results["frechet"]) == {"ubdiff", "ubdiff_guided", "wo_opt", "real_train"}
    for f in results["frechet"].values():
        assert math.isfinite(f["fd"]) and f["fd"] >= 0 and f["n_real"] == p.n_test
    assert results["frechet"]["ubdiff"]["n_generated"] == p.n_generated
    # the trivial predictor beside them: the mean paired training map
    assert results["trivial"]["n_train"] == p.n_paired
    assert all(math.isfinite(v) for v in results["trivial"]["metrics"].values())
    md = (work / "results.md").read_text()
    assert "| setting | train pairs | MAE | MSE | RMSE | SSIM |" in md
    assert "| reference: the mean real training map" in md
    assert md.count("| (") == len(SETTINGS)
    assert " ± " in md and "seeds [0, 1]" in md
    for name in ("ae_ubdiff", "ae_wo_opt", "diffusion_ubdiff", "diffusion_wo_opt"):
        assert (work / name / "final.pt").exists()
    assert not list(work.glob("*.state.pt"))  # resume points go once their step is done

    # resumable: a second run skips every step and reproduces the table
    timings = json.loads((work / "timings.json").read_text())
    assert timings["autoencoder_ubdiff"] > 0 and timings["diffusion_wo_opt"] > 0
    proc = _run(work, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "running" not in proc.stdout
    assert (work / "results.md").read_text() == md
    again = json.loads((work / "timings.json").read_text())
    assert again["autoencoder_ubdiff"] == timings["autoencoder_ubdiff"]  # skipped: time kept
    assert results["complete"] is True

    # --settings: InversionNet for a subset only, reusing the results already there
    proc = _run(work, tmp_path, "--settings", "guided+real,real")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "running" not in proc.stdout
    part = json.loads((work / "results.json").read_text())
    assert list(part["inversion"]) == ["real", "guided+real"] and part["complete"] is False
    assert part["inversion"]["real"] == results["inversion"]["real"]
    assert "Partial:" in (work / "results.md").read_text()

    # --max-steps: another InversionNet budget sits beside the preset's results
    before = {f.name: f.read_bytes() for f in work.glob("inversion_*.json")}
    steps = p.protocol["max_steps"] + 3
    proc = _run(work, tmp_path, "--settings", "real", "--max-steps", str(steps), "--seeds", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {f.name: f.read_bytes() for f in work.glob("inversion_*.json") if f.name in before} == (
        before
    )
    longer = json.loads((work / f"results_steps{steps}.json").read_text())
    r = longer["inversion"]["real"]
    assert r["steps"] == r["config"]["max_steps"] == steps and "seeds" not in r
    assert (work / f"inversion_real_steps{steps}.json").exists()
    assert f"Every run: {steps} optimiser steps" in (work / f"results_steps{steps}.md").read_text()
    assert json.loads((work / "results.json").read_text()) == part

    # (c) is the union of the generated and the real pairs
    ds = training_set([work / "generated_ubdiff.h5", work / "data.h5"])
    assert isinstance(ds, ConcatDataset) and len(ds) == p.n_generated + p.n_paired
    v, s = ds[len(ds) - 1]
    assert v.shape == (1, 70, 70) and s.shape[0] == 5

    # (e) keeps exactly the lowest-residual half of the UB-Diff pairs
    rel = json.loads((work / "residual_ubdiff.json").read_text())["rel_l2"]
    assert len(rel) == p.n_generated
    ranked = sorted(rel)
    k = n_train["ubdiff_filtered"]
    assert k == math.floor(p.filter_keep * (len(rel) - 1)) + 1
    assert ranked[k - 1] < ranked[k]  # no tie at the cut, so exactly these rows
    kept = training_set([(work / "generated_ubdiff.h5", _rows_below(rel, ranked[k - 1]))])
    assert len(kept) == k
    # (f) is physically consistent: the solver reproduces its seismic
    resim = validate_store(work / "resimulated_ubdiff.h5", device="cpu", progress=False)
    assert max(resim.rel_l2) < 1e-5
    assert min(rel) > 1e-2  # the decoder's seismic is not
    # (h) every training map with the solver's seismic
    every = validate_store(work / "resimulated_train.h5", device="cpu", progress=False)
    assert every.n_pairs == p.n_velocity and max(every.rel_l2) < 1e-5
    # (i) the guided pairs are marked as such, and every generated set has its reference points
    from ubdiff_phys.data import open_store

    with open_store(work / "generated_ubdiff_guided.h5") as st:
        assert st.attrs["seismic_mode"] == "guided" and st.attrs["generated"]
    for name in ("ubdiff", "ubdiff_guided", "wo_opt"):
        r = results["residuals"][name]
        assert set(r["baselines"]) >= {"own", "shuffled", "direct_wave", "diversity"}
        assert r["sample_seconds_per_pair"] > 0
    assert "| UB-Diff, physics-guided |" in md and "Solver seismic (settings f, g)" in md


def test_training_set_refuses_mismatched_normalisation(tmp_path, monkeypatch):
    from ubdiff_phys.pipelines import experiment

    class _Store:
        def __init__(self, name, norm):
            self.path, self.seismic_shape, self.grid = name, (5, 1000, 70), (70, 70)
            self.normalizer = type("N", (), {"to_dict": lambda self, n=norm: n})()

    class _View:
        def __init__(self, store):
            self.store = store

    stores = {"a": _Store("a", {"v": 1}), "b": _Store("b", {"v": 2})}
    monkeypatch.setattr(experiment, "training_pairs", lambda s: _View(stores[s]))
    with pytest.raises(ValueError, match="normalised"):
        experiment.training_set(["a", "b"])


def test_mean_map_reference_scores_the_constant_predictor(tmp_path):
    """Oracle: the trivial predictor's MAE / MSE are those of the mean paired training map
    against every held-out map, computed here from the store's velocities directly."""
    from helpers import small_store

    from ubdiff_phys.data.store import open_store
    from ubdiff_phys.eval.protocol import heldout_pairs
    from ubdiff_phys.pipelines.experiment_report import mean_map_reference

    path = small_store(tmp_path / "s.h5", n_velocity=12, n_paired=6, n_test=4)
    ref = mean_map_reference(path, heldout_pairs(path))
    with open_store(path) as st:
        norm = st.normalizer
        paired = [i for i in st.train_index if st.seismic_row[i] >= 0]
        train = np.stack([norm.velocity(st.velocity(int(i))) for i in paired]).astype(np.float64)
        test = np.stack([norm.velocity(st.velocity(int(i))) for i in st.test_index])
    d = test.astype(np.float64) - train.mean(0)
    assert ref["n_train"] == len(paired) == 6
    assert ref["metrics"]["mae"] == pytest.approx(np.abs(d).mean(), rel=1e-5)
    assert ref["metrics"]["mse"] == pytest.approx(np.square(d).mean(), rel=1e-5)
    assert 0 < ref["metrics"]["ssim"] < 1
