"""Bad input is refused with a clear message before any kernel runs; valid input never gives NaN."""

import numpy as np
import pytest
import torch

from ubdiff_phys.physics import STABILITY_LIMIT, Survey, simulate
from ubdiff_phys.physics.forward import stability_limit

SURVEY = Survey.openfwi().with_(nt=50)


def good(n=1, value=3000.0, dtype=torch.float32):
    return torch.full((n, 70, 70), value, dtype=dtype)


@pytest.mark.parametrize(
    "bad, exc, message",
    [
        (float("nan"), ValueError, "NaN or infinite"),
        (float("inf"), ValueError, "NaN or infinite"),
        (0.0, ValueError, "positive"),
        (-1500.0, ValueError, "positive"),
    ],
)
def test_bad_values(bad, exc, message):
    v = good()
    v[0, 10, 10] = bad
    with pytest.raises(exc, match=message):
        simulate(v, SURVEY)


def test_courant_limit_named_and_enforced():
    # OpenFWI grid: v dt / dx <= sqrt(3/8) ~ 0.6124 -> v_max <= 6123.7 m/s
    v_limit = STABILITY_LIMIT * SURVEY.dx / SURVEY.dt
    long = SURVEY.with_(nt=3000)
    for boundary in ("pml", "none"):
        kwargs = {"pad": 10} if boundary == "none" else {}
        ok = simulate(
            good(value=v_limit * 0.999, dtype=torch.float64), long, boundary=boundary, **kwargs
        )
        assert torch.isfinite(ok).all() and float(ok.abs().max()) < 100  # stable at the limit
        with pytest.raises(ValueError, match=r"Courant number .* above the limit 0\.6124"):
            simulate(good(value=v_limit * 1.001), SURVEY, boundary=boundary, **kwargs)


def test_sponge_lowers_the_stability_limit():
    # the OpenFWI sponge's damping lowers the limit (by ~3 % for a ~6000 m/s model): the check uses
    # the reduced limit, refusing input that would otherwise blow up, and accepting what is stable
    v_limit = STABILITY_LIMIT * SURVEY.dx / SURVEY.dt
    with pytest.raises(ValueError, match="reduced by the OpenFWI sponge"):
        simulate(good(value=v_limit * 0.99), SURVEY)
    limit = float(stability_limit(torch.tensor([v_limit * 0.96]), SURVEY, "openfwi")[0])
    v_ok = 0.999 * limit * SURVEY.dx / SURVEY.dt
    out = simulate(good(value=v_ok, dtype=torch.float64), SURVEY.with_(nt=3000))
    assert torch.isfinite(out).all() and float(out.abs().max()) < 100


@pytest.mark.parametrize(
    "v, exc, message",
    [
        (torch.full((70, 70), 2000.0), ValueError, "batch dimension"),
        (torch.full((1, 2, 70, 70), 2000.0), ValueError, r"\(B, 1, nz, nx\)"),
        (torch.full((1, 60, 70), 2000.0), ValueError, "60 x 70 grid"),
        (torch.full((1, 70, 70), 2000, dtype=torch.int32), TypeError, "float32 or float64"),
        (torch.full((1, 70, 70), 2000.0, dtype=torch.float16), TypeError, "float32 or float64"),
        (np.full((1, 70, 70), 2000.0), TypeError, "torch.from_numpy"),
        ([[2000.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_shapes_and_types(v, exc, message):
    with pytest.raises(exc, match=message):
        simulate(v, SURVEY)


def test_bad_boundary_backend_and_pad():
    with pytest.raises(ValueError, match="boundary must be one of"):
        simulate(good(), SURVEY, boundary="abc")
    with pytest.raises(ValueError, match="backend must be one of"):
        simulate(good(), SURVEY, backend="fortran")
    with pytest.raises(ValueError, match="pad is only used"):
        simulate(good(), SURVEY, boundary="pml", pad=3)
    with pytest.raises(TypeError, match="Survey"):
        simulate(good(), survey={"nt": 3})


def test_meta_device_refused():
    with pytest.raises(ValueError, match="cpu or cuda"):
        simulate(torch.full((1, 70, 70), 2000.0, device="meta"), SURVEY)


@pytest.mark.parametrize("boundary", ["openfwi", "pml"])
def test_no_nan_on_extreme_valid_models(boundary):
    g = torch.Generator().manual_seed(0)
    # rough random models spanning the whole velocity range, including a checkerboard
    v = 1500 + 3000 * torch.rand(3, 70, 70, generator=g)
    v[2] = 1500.0
    v[2, ::2, ::2] = 4500.0
    out = simulate(v, Survey.openfwi(), boundary=boundary)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("sample", [float("nan"), float("inf"), 1e38])
def test_wavelet_must_be_finite_and_bounded(sample):
    w = np.zeros(50)
    w[3] = sample
    with pytest.raises(ValueError, match="wavelet"):
        SURVEY.with_(wavelet=tuple(w))


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0])
def test_pml_max_velocity_must_be_finite_positive(value):
    with pytest.raises(ValueError, match="pml_max_velocity"):
        SURVEY.with_(pml_max_velocity=value)


def _problem(boundary="pml"):
    from ubdiff_phys.physics.forward import prepare_problem

    return prepare_problem(good(), SURVEY, boundary=boundary)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: {"ax": p.ax[:, :-3]}, "ax must have shape"),  # short profile: read past it
        (lambda p: {"az": None}, "needs the az profile"),
        (lambda p: {"receiver_rc": p.receiver_rc + 1000}, "outside"),
        (lambda p: {"source_rc": p.source_rc.float()}, "integer"),
        (lambda p: {"wavelet": p.wavelet * float("nan")}, "wavelet must be a finite"),
        (lambda p: {"wrap": True}, "periodic wrap"),
        (lambda p: {"kx": p.ax}, "not used"),
    ],
)
def test_problem_check_guards_both_devices(change, message):
    """The op-level check (shared by the CPU and CUDA paths) refuses what would read or write out
    of bounds in a kernel, whichever backend is asked."""
    import dataclasses

    from ubdiff_phys.ops.acoustic import acoustic_forward

    p = _problem()
    bad = dataclasses.replace(p, **change(p))
    for backend in ("native", "reference"):
        with pytest.raises(ValueError, match=message):
            acoustic_forward(bad, backend=backend)


def test_silent_simulation_gives_infinite_residual():
    """All-zero simulated gathers (a zero wavelet) against non-zero seismic: inf, not 1e153;
    against zero seismic: 0."""
    from ubdiff_phys.physics import residual

    s = SURVEY.with_(wavelet=tuple(np.zeros(50)))
    seismic = torch.ones(1, s.n_sources, s.nt, s.n_receivers)
    assert float(residual(good(), seismic, s).rel_l2[0]) == float("inf")
    assert float(residual(good(), torch.zeros_like(seismic), s).rel_l2[0]) == 0.0
