"""Native kernels against the pure-PyTorch reference (the op's specification), on CPU."""

import pytest
import torch
from helpers import ODD_SURVEY, layered_models, rel_l2

from ubdiff_phys.physics import Survey, simulate

OPENFWI_SHORT = Survey.openfwi().with_(nt=300)


@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize(
    "survey", [OPENFWI_SHORT, ODD_SURVEY], ids=["openfwi-survey", "odd-survey"]
)
def test_native_matches_reference(boundary, dtype, tol, survey):
    v = layered_models(2, seed=1, nz=survey.nz, nx=survey.nx, dtype=dtype)
    kwargs = {"pad": 20} if boundary == "none" else {}
    native = simulate(v, survey, boundary=boundary, **kwargs)
    reference = simulate(v, survey, boundary=boundary, backend="reference", **kwargs)
    assert native.shape == (2, survey.n_sources, survey.nt, survey.n_receivers)
    assert native.dtype == dtype
    assert torch.isfinite(native).all()
    assert float(native.abs().max()) > 0
    assert rel_l2(native, reference) < tol


def test_channel_dimension_and_batch_independence():
    v = layered_models(3, seed=2, dtype=torch.float32)
    survey = OPENFWI_SHORT
    for boundary in ("openfwi", "pml"):
        batched = simulate(v[:, None], survey, boundary=boundary)  # (B, 1, nz, nx) accepted
        single = simulate(v[1:2], survey, boundary=boundary)
        assert torch.equal(batched[1:2], single)  # a model's gathers do not depend on the batch


def test_reference_is_differentiable():
    survey = Survey(nz=12, nx=12, nt=60, sources=((1, 6),), receivers=((1, 2), (1, 10)))
    v = torch.full((1, 12, 12), 2000.0, dtype=torch.float64, requires_grad=True)
    out = simulate(v, survey, boundary="pml", backend="reference")
    out.square().sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_empty_batch():
    out = simulate(torch.empty(0, 70, 70), Survey.openfwi().with_(nt=10))
    assert out.shape == (0, 5, 10, 70)
