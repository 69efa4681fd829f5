"""Physics and specification checks of the solver (specs/physics.md), against oracles:
an independent numpy transcription of the OpenFWI scheme, the analytic 2-D Green's function,
reciprocity, symmetry, float64, and the unbounded-medium reference."""

import math

import numpy as np
import pytest
import torch
from helpers import layered_models, rel_l2

from ubdiff_phys.physics import Survey, ricker_openfwi, simulate

OPENFWI = Survey.openfwi()


def openfwi_numpy_port(v: np.ndarray, src_col: int, nt: int) -> np.ndarray:
    """specs/physics.md §2 transcribed line by line (float64, one shot); returns (nt, 70)."""
    nbc, dx, dt = 120, 10.0, 1e-3
    vp = np.pad(v, nbc, mode="edge")
    a = (nbc - 1) * dx
    k0 = 3 * v.min() * np.log(1e7) / (2 * a)
    d = k0 * (np.arange(nbc) * dx / a) ** 2  # d_0 next to the model
    damp = np.zeros_like(vp)
    damp[:, :nbc] = d[::-1][None, :]
    damp[:, nbc + 70 :] = d[None, :]
    damp[:nbc, nbc : nbc + 70] = d[::-1][:, None]  # top/bottom strips: model columns only
    damp[nbc + 70 :, nbc : nbc + 70] = d[:, None]
    alpha = (vp * dt / dx) ** 2
    kappa = damp * dt
    A, B, beta = 2 - 5 * alpha - kappa, 1 - kappa, (vp * dt) ** 2
    w = ricker_openfwi(15.0, dt, nt)
    p0, p1 = np.zeros_like(vp), np.zeros_like(vp)
    out = []

    def r(di, dj):  # periodic neighbours
        return np.roll(p1, (-di, -dj), axis=(0, 1))

    for n in range(1, nt + 1):
        near = r(0, 1) + r(0, -1) + r(1, 0) + r(-1, 0)
        far = r(0, 2) + r(0, -2) + r(2, 0) + r(-2, 0)
        p2 = A * p1 - B * p0 + alpha * (4 / 3 * near - 1 / 12 * far)
        p2[1 + nbc, src_col + nbc] += beta[1 + nbc, src_col + nbc] * w[n - 1]
        out.append(p2[1 + nbc, nbc : nbc + 70].copy())
        p0, p1 = p1, p2
    return np.stack(out)


def test_openfwi_mode_matches_spec_transcription():
    v = layered_models(1, seed=3)[0]
    nt = 250
    survey = OPENFWI.with_(nt=nt, sources=((1, 17),))
    port = openfwi_numpy_port(v.numpy(), 17, nt)
    ours64 = simulate(v[None], survey)[0, 0].numpy()
    ours32 = simulate(v[None].float(), survey)[0, 0].double().numpy()
    assert np.linalg.norm(ours64 - port) / np.linalg.norm(port) < 1e-12
    assert np.linalg.norm(ours32 - port) / np.linalg.norm(port) < 1e-5


def test_openfwi_float32_matches_float64():
    v = layered_models(4, seed=11)
    g64 = simulate(v, OPENFWI)
    g32 = simulate(v.float(), OPENFWI)
    assert g32.dtype == torch.float32 and g32.shape == (4, 5, 1000, 70)
    assert rel_l2(g32, g64) <= 1e-5


def test_flatvel_mirror_symmetry():
    # laterally uniform model: source 0's gather is source 4's mirrored left-right
    v = torch.full((1, 70, 70), 1800.0, dtype=torch.float64)
    for k, vel in enumerate((2200.0, 2900.0, 3600.0, 4200.0)):
        v[:, 14 * (k + 1) :] = vel
    for boundary in ("openfwi", "pml"):
        g = simulate(v, OPENFWI, boundary=boundary)[0]
        assert rel_l2(g[0].flip(-1), g[4]) < 1e-12, boundary
        assert rel_l2(g[1].flip(-1), g[3]) < 1e-12, boundary  # columns 17 and 52 mirror too


def test_amplitude_range_of_fast_top_layer():
    # specs/physics.md §2: a 4300 m/s top-layer model gives max ~52.6, min ~-26.9
    v = torch.full((1, 70, 70), 4300.0, dtype=torch.float64)
    v[:, 35:] = 3000.0
    g = simulate(v, OPENFWI)
    assert float(g.max()) == pytest.approx(52.6, abs=0.1)
    assert float(g.min()) == pytest.approx(-26.9, abs=0.1)


@pytest.mark.parametrize("boundary", ["openfwi", "none"])
def test_reciprocity(boundary):
    # constant-density acoustics: the discrete operator is symmetric, so swapping a source and a
    # receiver gives the same trace (to rounding) in any heterogeneous model
    v = layered_models(1, seed=5, dtype=torch.float64)
    v = v * (
        1 + 0.1 * torch.rand(v.shape, generator=torch.Generator().manual_seed(0), dtype=v.dtype)
    )
    a, b = (5, 10), (40, 55)
    s_ab = OPENFWI.with_(nt=500, sources=(a,), receivers=(b,))
    s_ba = OPENFWI.with_(nt=500, sources=(b,), receivers=(a,))
    t_ab = simulate(v, s_ab, boundary=boundary)[0, 0, :, 0]
    t_ba = simulate(v, s_ba, boundary=boundary)[0, 0, :, 0]
    assert float(t_ab.abs().max()) > 1e-3
    assert rel_l2(t_ab, t_ba) < 1e-10


def test_pml_close_to_unbounded_medium():
    # specs/physics.md §3: relative L2 <= 1e-3 against a no-boundary reference on the OpenFWI survey
    homogeneous = torch.full((1, 70, 70), 4500.0, dtype=torch.float64)
    layered = layered_models(1, seed=7, dtype=torch.float64)
    for v in (homogeneous, layered):
        reference = simulate(v, OPENFWI, boundary="none")
        pml = simulate(v, OPENFWI, boundary="pml")
        assert rel_l2(pml, reference) <= 1e-3
    # the OpenFWI sponge is much further off (2.5 % measured in the spec)
    sponge = simulate(homogeneous, OPENFWI, boundary="openfwi")
    assert rel_l2(sponge, simulate(homogeneous, OPENFWI, boundary="none")) > 1e-2


def analytic_trace(c: float, r: float, times: np.ndarray, f: float, t0: float) -> np.ndarray:
    """c^2 (G * w)(r, t) for u_tt = c^2 lap u + c^2 w(t) delta(x), 2-D.

    G(r, t) = H(ct - r) / (2 pi c sqrt(c^2 t^2 - r^2)); with t - tau = r/c + q^2 the convolution
    becomes (c / pi) int_0^inf w(t - r/c - q^2) / sqrt(c (2 r + c q^2)) dq, with no singularity.
    w is the Ricker wavelet with peak at t0, zero before t = 0.
    """

    def ricker(tau):
        b = (math.pi * f * (tau - t0)) ** 2
        return np.where(tau >= 0, (1 - 2 * b) * np.exp(-b), 0.0)

    out = np.zeros_like(times)
    for k, t in enumerate(times):
        if t <= r / c:
            continue
        q = np.linspace(0.0, math.sqrt(t - r / c), 4001)
        y = ricker(t - r / c - q**2) / np.sqrt(c * (2 * r + c * q**2))
        out[k] = c / math.pi * np.sum((y[1:] + y[:-1]) * np.diff(q)) / 2
    return out


def test_homogeneous_green_function_converges():
    c, f, duration = 2000.0, 15.0, 0.45
    errors = []
    for refine in (1, 2):
        h, dt = 10.0 / refine, 1e-3 / refine
        n = 60 * refine + 1
        centre = 30 * refine
        offsets = (20 * refine, 30 * refine)  # receivers at 200 m and 300 m
        survey = Survey(
            nz=n,
            nx=n,
            dz=h,
            dx=h,
            dt=dt,
            nt=round(duration / dt),
            frequency=f,
            sources=((centre, centre),),
            receivers=tuple((centre, centre + o) for o in offsets),
        )
        v = torch.full((1, n, n), c, dtype=torch.float64)
        gather = simulate(v, survey, boundary="none")[0, 0].numpy() / (h * h)  # per unit area
        times = (np.arange(survey.nt) + 1) * dt  # sample m is the field at (m + 1) dt
        t0 = (len(np.flatnonzero(ricker_openfwi(f, dt, 10**5))) - 1) // 2 * dt
        err = 0.0
        for k, o in enumerate(offsets):
            exact = analytic_trace(c, o * h, times[refine - 1 :: refine], f, t0)
            numeric = gather[refine - 1 :: refine, k]
            err = max(err, np.linalg.norm(numeric - exact) / np.linalg.norm(exact))
        errors.append(err)
    assert errors[0] < 0.02, errors  # measured 1.0 % (a one-sample time shift gives 9.7 %)
    assert errors[1] < errors[0] / 4, errors  # measured 0.13 % at half the spacing
