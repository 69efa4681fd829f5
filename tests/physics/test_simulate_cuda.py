"""CUDA kernels against the CPU kernels and the reference. Skipped, with the reason shown, on
machines without a CUDA build or device (run `pytest -rs` to see it)."""

import pytest
import torch
from helpers import ODD_SURVEY, layered_models, rel_l2, requires_cuda

from ubdiff_phys.physics import Survey, simulate

pytestmark = requires_cuda

SURVEYS = {
    "openfwi": Survey.openfwi(),
    "odd": ODD_SURVEY,
}


@pytest.mark.parametrize("name", list(SURVEYS))
@pytest.mark.parametrize("boundary", ["openfwi", "pml", "none"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_cuda_matches_cpu(name, boundary, dtype, tol):
    survey = SURVEYS[name]
    v = layered_models(3, seed=21, nz=survey.nz, nx=survey.nx, dtype=dtype)
    kwargs = {"pad": 24} if boundary == "none" else {}
    cpu = simulate(v, survey, boundary=boundary, **kwargs)
    gpu = simulate(v.cuda(), survey, boundary=boundary, **kwargs)
    assert gpu.device.type == "cuda" and gpu.dtype == dtype and gpu.shape == cpu.shape
    assert torch.isfinite(gpu).all()
    assert rel_l2(gpu.cpu(), cpu) < tol


def test_cuda_matches_reference_on_device():
    survey = Survey.openfwi().with_(nt=200)
    v = layered_models(2, seed=22, dtype=torch.float64).cuda()
    for boundary in ("openfwi", "pml"):
        native = simulate(v, survey, boundary=boundary)
        reference = simulate(v, survey, boundary=boundary, backend="reference")
        assert rel_l2(native, reference) < 1e-12


def test_cuda_large_batch_and_stream():
    survey = Survey.openfwi().with_(nt=100)
    v = layered_models(64, seed=23, dtype=torch.float32).cuda()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = simulate(v, survey, boundary="pml")
    stream.synchronize()
    ref = simulate(v[:4].cpu(), survey, boundary="pml")
    assert rel_l2(out[:4].cpu(), ref) < 2e-6
