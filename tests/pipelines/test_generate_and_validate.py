"""The main job (examples/generate_and_validate.py) at tiny N with the shipped checkpoint: its
outputs are readable, the stored residuals are the residuals of the stored pairs (recomputed with
the solver, and by `ubdiff-phys validate`), the keep criterion holds, and the residual trace along
the reverse diffusion is finite."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import child_env

from ubdiff_phys.data import open_store
from ubdiff_phys.physics import residual
from ubdiff_phys.pipelines import (
    load_generator,
    reference_residuals,
    residual_trace,
    shipped_checkpoint,
    validate_store,
)
from ubdiff_phys.pipelines.generator import shipped_velocity_checkpoint
from ubdiff_phys.pipelines.shipped_velocity import job_checkpoint
from ubdiff_phys.runtime.files import file_sha256

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "generate_and_validate.py"


def test_shipped_checkpoint_is_in_the_package():
    ck = shipped_checkpoint()
    for name in ("diffusion.pt", "autoencoder.pt", "manifest.json"):
        assert (ck / name).is_file(), f"{name} missing from {ck}"
    manifest = json.loads((ck / "manifest.json").read_text())
    total = sum(p.stat().st_size for p in ck.rglob("*") if p.is_file())
    assert total <= 20 * 2**20
    assert manifest["files"]["autoencoder.pt"]["bytes"] == (ck / "autoencoder.pt").stat().st_size


def test_shipped_velocity_model_is_in_the_package():
    path = shipped_velocity_checkpoint()
    manifest = json.loads((path.parent / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == file_sha256(path.parent / name), name
    # both shipped generators together stay within the package budget
    assets = shipped_checkpoint().parent
    total = sum(p.stat().st_size for d in (shipped_checkpoint(), path.parent) for p in d.rglob("*"))
    assert total <= 20 * 2**20, total
    stored = torch.load(path, weights_only=True)["model"]
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    gen = load_generator(path)
    assert gen.info["shipped"] and not gen.has_seismic_decoder and assets.is_dir()
    assert next(gen.denoiser.parameters()).dtype == torch.float32
    assert manifest["parameters"]["velocity_unet"] == sum(
        p.numel() for p in gen.denoiser.parameters()
    )
    # the job's default per seismic mode: the velocity model for solver pairs, UB-Diff otherwise
    assert job_checkpoint(None, "solver", None) == path
    for seismic, ae in (("decoder", None), ("guided", None), ("solver", "my_ae.pt")):
        assert job_checkpoint(None, seismic, ae) == shipped_checkpoint()


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gv")
    cmd = [
        sys.executable,
        str(EXAMPLE),
        "--n", "4",
        "--steps", "5",
        "--batch", "3",
        "--keep-quantile", "0.5",
        "--trace-steps", "3",
        "--trace-n", "2",
        "--device", "cpu",
        "--seed", "1",
        "--seismic", "decoder",  # the residual filter has something to select
        "--quiet",
        "--out", str(out / "run"),
    ]  # fmt: skip
    result = subprocess.run(
        cmd, env=child_env(), cwd=out, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "run", result.stdout


def test_example_outputs(example_run):
    out, stdout = example_run
    assert "pairs/s" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_generated"] == 4
    # keep_quantile 0.5 of 4 with the "lower" quantile: the two lowest residuals
    assert summary["n_accepted"] == 2 and summary["n_rejected"] == 2
    assert summary["criterion"] == {"keep_quantile": 0.5}
    assert summary["device"] == "cpu"
    assert summary["checkpoint"]["shipped"] is True
    assert summary["sampler"] == {"name": "ddim", "steps": 5, "eta": 0.0, "seed": 1, "batch": 3}
    for key in ("sample", "decode", "validate", "write", "total"):
        assert summary["timings_s"][key] >= 0
    dist = summary["residual"]["all"]
    assert dist["min"] <= dist["median"] <= dist["max"]
    assert summary["threshold_used"] == pytest.approx(summary["residual"]["accepted"]["max"])
    for name in ("figure.png", "residual_vs_step.png"):
        assert (out / name).stat().st_size > 10_000

    with open_store(out / "pairs.h5") as st:
        assert len(st.paired_index) == 2
        v = torch.from_numpy(np.stack([st.velocity(int(r)) for r in st.paired_index]))
        s = torch.from_numpy(np.stack([st.seismic(i) for i in range(2)]))
        survey, boundary, norm = st.survey, st.attrs["boundary"], st.normalizer
        assert boundary == summary["data"]["boundary"]
    with h5py.File(out / "pairs.h5", "r") as f:
        stored = f["residual"][()]
        stored_n = f["residual_normalized"][()]
        index = f["sample_index"][()]
    assert stored.shape == (2,) and np.all(stored <= summary["threshold_used"])
    assert len(set(index.tolist())) == 2
    r = residual(v, s, survey, boundary=boundary, normalizer=norm)
    np.testing.assert_allclose(stored, r.rel_l2.numpy(), rtol=1e-5)
    np.testing.assert_allclose(stored_n, r.rel_l2_normalized.numpy(), rtol=1e-5)
    # the validate command sees the same numbers in the written file
    val = validate_store(out / "pairs.h5", device="cpu", progress=False)
    np.testing.assert_allclose(val.rel_l2, stored, rtol=1e-5)


def test_example_trace_is_finite(example_run):
    out, _ = example_run
    trace = json.loads((out / "summary.json").read_text())["trace"]
    assert trace["on"] == "x0" and trace["n"] == 2 and trace["steps"] == 5
    rows = trace["rows"]
    assert [row["step"] for row in rows] == [1, 3, 5]
    for row in rows:
        assert len(row["rel_l2"]) == 2
        assert np.isfinite(row["rel_l2"]).all() and row["median"] >= 0


def test_trace_last_step_is_the_sample():
    """The last traced x0 is the final sample: its residual equals the pass-1 residual of the
    same samples (batch 0, same seed)."""
    gen = load_generator(None, "cpu")
    trace = residual_trace(gen, 2, steps=4, trace_steps=2, seed=3)
    assert [row["step"] for row in trace["rows"]] == [1, 4]
    from ubdiff_phys.diffusion.samplers import sample_latents

    z = sample_latents(
        gen.denoiser,
        2,
        sampler="ddim",
        steps=4,
        generator=torch.Generator().manual_seed(3 * 1_000_003),
    )
    r = gen.residual(*gen.decode(z))
    np.testing.assert_allclose(trace["rows"][-1]["rel_l2"], r.rel_l2.numpy(), rtol=1e-5)


def test_reference_residuals_real_pairs_are_zero(tmp_path):
    from ubdiff_phys.data import make_dataset

    gen = load_generator(None, "cpu")
    store = tmp_path / "ref.h5"
    make_dataset(
        store,
        family=gen.store_attrs["family"],
        n_velocity=2,
        n_paired=1,
        n_test=2,
        boundary=gen.boundary,
        survey=gen.survey,
        device="cpu",
        progress=False,
    )
    ref = reference_residuals(gen, store, n=2)
    assert ref["n"] == 2
    assert ref["real"]["max"] == 0.0
    assert np.isfinite(ref["autoencoder_values"]).all()
