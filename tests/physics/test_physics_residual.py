"""Physics residual of pairs (specs/ubdiff.md §5): oracles are exact pairs (0), analytic
perturbations, the plain (materialised) path, the reference backend and the data module's own
normalisation."""

import json

import numpy as np
import pytest
import torch
from helpers import layered_models, requires_cuda

from ubdiff_phys.cli import main as cli_main
from ubdiff_phys.data import Normalizer, make_dataset, normalize_seismic
from ubdiff_phys.physics import Survey, keep_mask, residual, simulate
from ubdiff_phys.validate import validate_store

SURVEY = Survey.openfwi().with_(nt=300)
NORM = Normalizer()


@pytest.fixture(scope="module")
def pairs():
    v = layered_models(4, seed=8, dtype=torch.float32)
    return v, simulate(v, SURVEY, boundary="openfwi")


def test_real_pairs_have_zero_residual(pairs):
    v, s = pairs
    for fused in (True, False):
        r = residual(v, s, SURVEY, normalizer=NORM, fused=fused)
        assert torch.equal(r.rel_l2, torch.zeros(4, dtype=torch.float64))
        assert torch.equal(r.rel_l2_normalized, torch.zeros(4, dtype=torch.float64))
        assert r.keep.all()


def test_analytic_perturbations(pairs):
    v, s = pairs
    # s (1 + eps) -> relative L2 exactly eps in physical units
    r = residual(v, s * 1.03, SURVEY)
    torch.testing.assert_close(
        r.rel_l2, torch.full((4,), 0.03, dtype=torch.float64), rtol=1e-5, atol=0
    )
    assert r.rel_l2_normalized is None
    # normalised units: against the data module's normalisation (an independent implementation)
    g = torch.Generator().manual_seed(0)
    noisy = s + 0.2 * torch.randn(s.shape, generator=g)
    r = residual(v, noisy, SURVEY, normalizer=NORM)
    ns = normalize_seismic(s.double().numpy(), log_min=NORM.s_log_min, log_max=NORM.s_log_max)
    nn = normalize_seismic(noisy.double().numpy(), log_min=NORM.s_log_min, log_max=NORM.s_log_max)
    expected = np.linalg.norm((nn - ns).reshape(4, -1), axis=1) / np.linalg.norm(
        ns.reshape(4, -1), axis=1
    )
    np.testing.assert_allclose(r.rel_l2_normalized.numpy(), expected, rtol=1e-5)
    phys = np.linalg.norm((noisy - s).double().reshape(4, -1), axis=1) / np.linalg.norm(
        s.double().reshape(4, -1), axis=1
    )
    np.testing.assert_allclose(r.rel_l2.numpy(), phys, rtol=1e-5)


@pytest.mark.parametrize("boundary", ["openfwi", "pml"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_plain_and_reference(boundary, dtype):
    v = layered_models(2, seed=9, dtype=dtype)
    # seismic from a different model: a large, model-dependent residual
    s = simulate(layered_models(2, seed=10, dtype=dtype), SURVEY, boundary=boundary)
    fused = residual(v, s, SURVEY, boundary=boundary, normalizer=NORM, fused=True)
    plain = residual(v, s, SURVEY, boundary=boundary, normalizer=NORM, fused=False)
    ref = residual(v, s, SURVEY, boundary=boundary, normalizer=NORM, backend="reference")
    assert float(fused.rel_l2.min()) > 0.05
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for other in (plain, ref):
        torch.testing.assert_close(fused.rel_l2, other.rel_l2, rtol=tol, atol=0)
        torch.testing.assert_close(
            fused.rel_l2_normalized, other.rel_l2_normalized, rtol=tol, atol=0
        )


def test_keep_mask_semantics():
    rel = torch.tensor([0.3, 0.1, 0.2, 0.4], dtype=torch.float64)
    keep, t = keep_mask(rel, threshold=0.2)
    assert keep.tolist() == [False, True, True, False] and t == 0.2
    keep, t = keep_mask(rel, keep_quantile=0.5)
    assert keep.tolist() == [False, True, True, False] and t == pytest.approx(0.2)
    keep, t = keep_mask(rel)
    assert keep.all() and t is None
    with pytest.raises(ValueError, match="not both"):
        keep_mask(rel, threshold=0.1, keep_quantile=0.5)
    with pytest.raises(ValueError, match="keep_quantile"):
        keep_mask(rel, keep_quantile=0.0)


def test_bad_input(pairs):
    v, s = pairs
    with pytest.raises(ValueError, match=r"shape \(4, 5, 300, 70\)"):
        residual(v, s[:, :, :10], SURVEY)
    with pytest.raises(ValueError, match="NaN"):
        bad = s.clone()
        bad[0, 0, 0, 0] = float("nan")
        residual(v, bad, SURVEY)
    with pytest.raises(ValueError, match="boundary"):
        residual(v, s, SURVEY, boundary="x")


def test_validate_store_real_pairs_give_zero(tmp_path):
    survey = Survey.openfwi().with_(nt=200)
    path = tmp_path / "tiny.h5"
    make_dataset(
        path,
        family="flatvel-a",
        n_velocity=10,
        n_paired=4,
        n_test=2,
        survey=survey,
        boundary="pml",
        batch=3,
        progress=False,
    )
    summary = validate_store(path, keep_quantile=0.5, batch=4, progress=False)
    assert summary.n_pairs == 6 and summary.boundary == "pml"
    assert max(summary.rel_l2) == 0.0 and max(summary.rel_l2_normalized) == 0.0
    out = tmp_path / "summary.json"
    assert (
        cli_main(["validate", str(path), "--threshold", "1e-6", "--out", str(out), "--quiet"]) == 0
    )
    d = json.loads(out.read_text())
    assert d["n_kept"] == 6 and d["distribution"]["physical"]["max"] == 0.0


@requires_cuda
def test_fused_residual_on_cuda_matches_cpu(pairs):
    v, s = pairs
    s2 = s * 1.01 + 0.05
    cpu = residual(v, s2, SURVEY, normalizer=NORM)
    gpu = residual(v.cuda(), s2.cuda(), SURVEY, normalizer=NORM, keep_quantile=0.5)
    assert gpu.rel_l2.device.type == "cuda" and gpu.keep.device.type == "cuda"
    torch.testing.assert_close(gpu.rel_l2.cpu(), cpu.rel_l2, rtol=1e-5, atol=0)
    torch.testing.assert_close(
        gpu.rel_l2_normalized.cpu(), cpu.rel_l2_normalized, rtol=1e-5, atol=0
    )
