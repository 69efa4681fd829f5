"""``ubdiff-phys evaluate`` end to end on tiny OpenFWI-shaped stores (oracles: real pairs have a
zero physics residual; another family is farther in Fréchet distance than the real family's own
maps)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import child_env

from ubdiff_phys.data import make_dataset
from ubdiff_phys.eval import FeatureConfig, ProtocolConfig
from ubdiff_phys.physics import Survey
from ubdiff_phys.pipelines.evaluate import evaluate
from ubdiff_phys.pipelines.evaluate_cli import load_eval_config


def _store(path, family, seed):
    make_dataset(
        path,
        family=family,
        n_velocity=16,
        n_paired=16,
        n_test=8,
        seed=seed,
        survey=Survey.openfwi(),
        boundary="pml",
        progress=False,
    )
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    return _store(d / "real.h5", "flatvel-a", 0), _store(d / "other.h5", "curvefault-a", 1)


@pytest.fixture(scope="module")
def cli_report(stores, tmp_path_factory):
    """The CLI with the real store's own pairs as the 'generated' file."""
    real, _ = stores
    tmp = tmp_path_factory.mktemp("cli")
    cmd = [
        sys.executable, "-m", "ubdiff_phys.cli", "evaluate",
        "--generated", str(real), "--real", str(real), "--out", str(tmp / "out"),
        "--epochs", "1", "--batch", "8", "--width", "0.125", "--feature-epochs", "4",
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp, env=child_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out", proc.stdout


def test_cli_writes_reports(cli_report):
    out, stdout = cli_report
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert "Fréchet distance (velocity features)" in stdout
    p = report["protocol"]
    assert (p["n_train"], p["n_test"], p["steps"]) == (16, 8, 2)
    assert set(p["metrics"]) == {"mae", "mse", "rmse", "ssim"}
    assert p["config"]["width"] == 0.125 and p["config"]["lr"] == 1e-4
    fd = report["frechet"]["velocity"]
    assert set(report["frechet"]) == {"velocity"}
    assert fd["fd"] >= 0 and (fd["n_generated"], fd["n_real"]) == (16, 8)
    feats = fd["features"]
    assert feats["kind"] == "ubdiff_phys feature autoencoder" and feats["modality"] == "velocity"
    assert feats["checkpoint"].endswith("features_velocity.pt")
    assert (out / "features_velocity.pt").is_file()
    assert not list(out.glob("*.state.pt"))  # the feature network's resume point is removed
    # real pairs through the solver they were made with: zero residual
    res = report["residual"]
    assert res["n_pairs"] == 24 and res["boundary"] == "pml"
    assert res["distribution"]["physical"]["max"] == pytest.approx(0.0, abs=1e-6)
    assert res["distribution"]["normalized"]["max"] == pytest.approx(0.0, abs=1e-6)
    assert all(v == 1.0 for v in res["fraction_under"].values())
    for text in ("MAE", "SSIM", "Fréchet", "features_velocity.pt", "residual"):
        assert text in md
    assert f"{p['metrics']['mae']:.4g}" in md


def test_other_family_is_farther(stores, cli_report, tmp_path):
    """Same feature checkpoint: another family's maps are farther from the real held-out maps
    than the real family's own training maps; the seismic FD is reported too."""
    real, other = stores
    out, _ = cli_report
    own = json.loads((out / "report.json").read_text())["frechet"]["velocity"]
    report = evaluate(
        other,
        real,
        tmp_path / "o",
        protocol=ProtocolConfig(epochs=1, batch=8, width=0.125, max_steps=1),
        feature_cfg=FeatureConfig(epochs=2, width=8, feature_dim=16),
        features=out / "features_velocity.pt",
        seismic_fd=True,
        device="cpu",
        progress=False,
    )
    fd = report["frechet"]["velocity"]
    assert fd["features"]["sha256"] == own["features"]["sha256"]
    assert fd["fd"] > own["fd"]
    assert report["protocol"]["steps"] == 1
    seis = report["frechet"]["seismic"]
    assert seis["features"]["modality"] == "seismic" and seis["fd"] >= 0
    assert (tmp_path / "o" / "features_seismic.pt").is_file()
    assert (tmp_path / "o" / "report.md").read_text().count("| seismic |") == 1


def test_wrong_modality_checkpoint_refused(stores, cli_report, tmp_path):
    real, _ = stores
    out, _ = cli_report
    with pytest.raises(ValueError, match="velocity features, not seismic"):
        evaluate(
            real,
            real,
            tmp_path,
            protocol=ProtocolConfig(batch=8, width=0.125, max_steps=1),
            seismic_features=out / "features_velocity.pt",
            device="cpu",
            progress=False,
        )


def test_eval_config_toml(tmp_path):
    path = tmp_path / "eval.toml"
    path.write_text("[protocol]\nepochs = 3\nbatch = 16\n\n[features]\nfeature_dim = 32\n")
    protocol, feats = load_eval_config(path)
    assert (protocol.epochs, protocol.batch, protocol.lr) == (3, 16, 1e-4)
    assert feats.feature_dim == 32 and feats.modality == "velocity"
    path.write_text("[protokol]\nepochs = 3\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_eval_config(path)


def test_train_features_cli(stores, tmp_path, capsys):
    from ubdiff_phys.cli import main
    from ubdiff_phys.eval import load_feature_extractor

    real, _ = stores
    ckpt = tmp_path / "feat.pt"
    argv = ["train-features", "--real", str(real), "--out", str(ckpt), "--epochs", "1"]
    assert main([*argv, "--seed", "2", "--device", "cpu", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    ext = load_feature_extractor(ckpt)
    assert info == json.loads(json.dumps(ext.describe()))
    assert info["config"]["epochs"] == 1 and info["config"]["seed"] == 2
    assert info["trained_on"]["rows"] == 16 and info["trained_on"]["family"] == "flatvel-a"


def test_evaluate_resumes_and_handles_missing_survey(stores, tmp_path, monkeypatch):
    """A finished InversionNet result is reused; a file without a survey gets no residual (it
    cannot be simulated) instead of an error; Inception-v3 weights serve as velocity features."""
    import h5py
    import torch

    from ubdiff_phys.models.inception import InceptionV3
    from ubdiff_phys.pipelines import evaluate as report_mod

    real, _ = stores
    gen = tmp_path / "gen.h5"
    gen.write_bytes(real.read_bytes())
    with h5py.File(gen, "r+") as f:  # as if imported from elsewhere: no survey recorded
        del f.attrs["survey"]
    torch.manual_seed(0)
    inception = tmp_path / "inception.pth"
    torch.save(InceptionV3(1000).state_dict(), inception)
    kwargs = dict(
        protocol=ProtocolConfig(epochs=1, batch=8, width=0.125, max_steps=2),
        features=inception,
        device="cpu",
        progress=False,
    )
    first = evaluate(gen, real, tmp_path / "out", **kwargs)
    assert "skipped" in first["residual"] and "no survey" in first["residual"]["skipped"]
    assert "Not computed" in (tmp_path / "out" / "report.md").read_text()
    fd = first["frechet"]["velocity"]
    assert fd["features"]["kind"] == "Inception-v3 (torchvision weights)"
    assert fd["features"]["feature_dim"] == 2048 and fd["fd"] >= 0
    assert not (tmp_path / "out" / "inversionnet_state.pt").exists()

    def must_not_train(*args, **kw):
        raise AssertionError("InversionNet retrained although its result is stored")

    monkeypatch.setattr(report_mod, "run_protocol", must_not_train)
    second = evaluate(gen, real, tmp_path / "out", **kwargs)
    assert second["protocol"] == first["protocol"]
    # another protocol config is a new result
    kwargs["protocol"] = ProtocolConfig(epochs=1, batch=8, width=0.125, max_steps=1)
    with pytest.raises(AssertionError, match="retrained"):
        evaluate(gen, real, tmp_path / "out", **kwargs)
