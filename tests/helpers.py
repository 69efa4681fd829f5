"""Helpers the tests share (import them from here, not from ``conftest``).

CUDA tests carry ``@requires_cuda`` (or take the ``device`` fixture of ``conftest.py``): they are
marked ``cuda`` and skip with a visible reason on machines without a GPU or a CUDA build.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

import ubdiff_phys
from ubdiff_phys._native import build_info
from ubdiff_phys.diffusion import cosine_schedule
from ubdiff_phys.physics import Survey

#: folder holding the ubdiff_phys package this test run imported (site-packages after
#: `pip install .`, the checkout in a development tree)
PACKAGE_PARENT = Path(ubdiff_phys.__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that must import the same ubdiff_phys as this one.

    Run the child with ``cwd`` outside the checkout as well: ``python -c`` puts its working
    directory first on sys.path, where the source tree (without the compiled module) would win.
    """
    return {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT), **extra}


def _cuda_skip_reason() -> str | None:
    info = build_info()
    if not info["native"]:
        return f"native module unavailable: {info['native_error']}"
    if not info["cuda"]:
        return "this build has no CUDA kernels (UBD_CUDA=OFF or no nvcc at build time)"
    if not torch.cuda.is_available():
        return "no CUDA device visible to PyTorch (CPU-only machine or CPU build of torch)"
    return None


CUDA_SKIP_REASON = _cuda_skip_reason()
#: the reason every CUDA test skips with (conftest marks the tests that carry it ``cuda``)
CUDA_SKIP_PREFIX = "CUDA test: "

#: a survey unlike OpenFWI: rectangular non-square cells, interior and deep sources, sparse
#: receivers, narrow sponge and PML
ODD_SURVEY = Survey(
    nz=30,
    nx=45,
    dz=8.0,
    dx=12.0,
    dt=8e-4,
    nt=250,
    frequency=20.0,
    sources=((3, 5), (15, 40), (29, 0)),
    receivers=tuple((0, j) for j in range(0, 45, 2)) + ((29, 10), (12, 44)),
    sponge_width=30,
    pml_width=10,
)


def tiny_survey(
    nz: int = 13,
    nx: int = 11,
    nt: int = 60,
    *,
    dx: float = 10.0,
    repeat_receiver: bool = False,
    **kw: Any,
) -> Survey:
    """Odd-sized grid for gradient tests: sources and receivers at edges, a corner and the
    interior (``repeat_receiver``: one receiver twice, as a raw problem may have it); ``kw``: other
    Survey fields (e.g. ``pml_max_velocity``)."""
    receivers = ((1, 0), (2, 5), (1, nx - 1), (nz - 1, 4)) + (((2, 5),) if repeat_receiver else ())
    return Survey(
        **kw,
        nz=nz,
        nx=nx,
        dz=10.0,
        dx=dx,
        dt=0.001,
        nt=nt,
        sources=((1, 2), (3, nx - 3)),
        receivers=receivers,
        frequency=25.0,
        sponge_width=6,
        pml_width=5,
    )


requires_cuda = pytest.mark.skipif(
    CUDA_SKIP_REASON is not None, reason=f"{CUDA_SKIP_PREFIX}{CUDA_SKIP_REASON}"
)

#: the devices a device-generic test runs on: CPU always, CUDA marked and skipped visibly
DEVICES = ("cpu", pytest.param("cuda", marks=requires_cuda))


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative L2 difference ||a - b|| / ||b|| in float64."""
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


def layered_models(
    n: int, seed: int, nz: int = 70, nx: int = 70, dtype=torch.float64
) -> torch.Tensor:
    """Random laterally varying layered models [m/s], (n, nz, nx), velocities in [1500, 4500]."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, nz, nx, dtype=dtype)
    z = torch.arange(nz, dtype=dtype)[:, None]
    x = torch.arange(nx, dtype=dtype)[None, :]
    for k in range(n):
        n_layers = int(torch.randint(2, 7, (1,), generator=g))
        vel = torch.sort(1500 + 3000 * torch.rand(n_layers, generator=g, dtype=dtype)).values
        depth = torch.sort(torch.rand(n_layers - 1, generator=g, dtype=dtype)).values * nz
        tilt = (torch.rand(n_layers - 1, generator=g, dtype=dtype) - 0.5) * 0.3
        m = torch.full((nz, nx), float(vel[0]), dtype=dtype)
        for i in range(n_layers - 1):
            m = torch.where(z >= depth[i] + tilt[i] * (x - nx / 2), vel[i + 1], m)
        out[k] = m
    return out


def small_store(path: Path, n_velocity: int, n_paired: int, n_test: int, **kwargs: Any) -> Path:
    """A synthetic dataset file built on the CPU with the PML boundary, no progress bars
    (``kwargs``: more :func:`ubdiff_phys.data.make_dataset` options, e.g. ``family``)."""
    from ubdiff_phys.data import make_dataset

    options = {"family": "flatvel-a", "boundary": "pml", "device": "cpu", "progress": False}
    make_dataset(
        path, n_velocity=n_velocity, n_paired=n_paired, n_test=n_test, **{**options, **kwargs}
    )
    return path


class GaussianDenoiser(torch.nn.Module):
    """The exact v-prediction denoiser of N(mu, s^2 I)."""

    def __init__(self, mu: torch.Tensor, s: float, timesteps: int = 256):
        super().__init__()
        self.mu, self.s = mu, s
        self.schedule = cosine_schedule(timesteps)

    def posterior_var(self, t: int) -> float:
        ab = float(self.schedule.alphas_cumprod[t])
        return self.s**2 * (1 - ab) / (ab * self.s**2 + 1 - ab)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.schedule.alphas_cumprod[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        gain = self.s**2 * ab.sqrt() / (ab * self.s**2 + 1 - ab)
        x0 = self.mu + gain * (x - ab.sqrt() * self.mu)
        return (ab.sqrt() * x - x0) / (1 - ab).sqrt()


def result_from_samples(samples: torch.Tensor, decoder_error: torch.Tensor | None = None):
    """A :class:`~ubdiff_phys.inversion.PosteriorResult` holding ``samples`` (n, 1, ...) [m/s]
    (mean, std from them; no misfits or timings), with an optional decoder error."""
    from ubdiff_phys.inversion import PosteriorResult

    n = samples.shape[0]
    return PosteriorResult(
        samples=samples,
        mean=samples.mean(0),
        std=samples.std(0) if n > 1 else torch.zeros_like(samples[0]),
        misfit=torch.zeros(n, dtype=torch.float64),
        noise_misfit=1.0,
        seconds=0.0,
        solver_calls=0,
        decoder_error=decoder_error,
    )


#: a 30 × 30 grid, 3 sources and 30 receivers on the second row, 0.4 s: the FWI tests' survey
FWI_SURVEY = Survey(
    nz=30,
    nx=30,
    dz=10.0,
    dx=10.0,
    dt=0.001,
    nt=400,
    sources=((1, 2), (1, 15), (1, 27)),
    receivers=tuple((1, j) for j in range(30)),
    frequency=15.0,
    pml_width=10,
)


def posterior_survey(nt: int, **extra: Any) -> Survey:
    """The 16 × 16 acoustic problem of the posterior tests: 10 m cells, 1 ms steps, two sources
    and 8 receivers on the second row, 25 Hz, sponge 6, C-PML 5 cells; ``nt`` steps and any
    other :class:`Survey` field in ``extra``."""
    return Survey(
        nz=16,
        nx=16,
        dz=10.0,
        dx=10.0,
        dt=0.001,
        nt=nt,
        sources=((1, 3), (1, 12)),
        receivers=tuple((1, j) for j in range(0, 16, 2)),
        frequency=25.0,
        sponge_width=6,
        pml_width=5,
        **extra,
    )


def layered(top: float = 2000.0, mid: float = 2700.0, deep: float = 3400.0) -> torch.Tensor:
    """(1, 1, 30, 30) float64 three-layer model [m/s] on :data:`FWI_SURVEY`'s grid, interfaces
    at rows 10 and 20."""
    v = torch.full((1, 1, 30, 30), top, dtype=torch.float64)
    v[..., 10:, :] = mid
    v[..., 20:, :] = deep
    return v


class LinearDecoder(torch.nn.Module):
    """z (B, 2) -> normalised velocity (B, 1, 16, 16): base + z1 * deep layer + z2 * gradient."""

    def __init__(self) -> None:
        super().__init__()
        depth = torch.arange(16, dtype=torch.float32)[:, None].expand(16, 16)
        self.register_buffer("base", torch.full((16, 16), -1 / 3))
        self.register_buffer("p1", 0.4 * (depth >= 9).float())
        self.register_buffer("p2", 0.3 * depth / 15)

    def decode_velocity(self, z: torch.Tensor) -> torch.Tensor:
        z = z.reshape(z.shape[0], 2).float()
        x = self.base + z[:, :1, None] * self.p1 + z[:, 1:, None] * self.p2
        return x[:, None]

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # least squares on the two patterns
        a = torch.stack([self.p1.flatten(), self.p2.flatten()], dim=1)
        rhs = (x.reshape(x.shape[0], -1) - self.base.flatten()).T
        return torch.linalg.lstsq(a, rhs).solution.T


def linear_prior(survey: Survey, s: float = 0.5) -> Any:
    """The posterior tests' prior: z ~ N(0, s² I) in 2-D (exact denoiser) and the
    :class:`LinearDecoder`, velocities in [1500, 4500] m/s, modelled on ``survey`` with "pml"."""
    from ubdiff_phys.data import Normalizer
    from ubdiff_phys.inversion.prior import LatentPrior

    return LatentPrior(
        denoiser=GaussianDenoiser(torch.zeros(2, dtype=torch.float64), s, timesteps=128),
        autoencoder=LinearDecoder(),
        normalizer=Normalizer(v_min=1500.0, v_max=4500.0),
        latent_dim=2,
        survey=survey,
        boundary="pml",
        device=torch.device("cpu"),
        error_path=None,  # type: ignore[arg-type]
    )


def linear_posterior_problem(survey: Survey, extra: torch.Tensor | None = None):
    """(prior, true map (1, 1, 16, 16) [m/s], its noise-free gathers, ``posterior_sample``
    keyword arguments) of the posterior tests' tiny problem: :func:`linear_prior`, the map
    decoded from z = (0.6, −0.4) plus ``extra`` [m/s], σ = 0.2 % of the gathers' RMS, 4 samples
    × 10 steps, the denoiser error of 16 prior draws; gathers modelled with the C-PML pinned at
    4,500 m/s."""
    from ubdiff_phys.inversion.prior import estimate_denoiser_error
    from ubdiff_phys.physics import simulate

    prior = linear_prior(survey)
    pinned = survey.with_(pml_max_velocity=4500.0)
    v_true = prior.velocity(torch.tensor([[0.6, -0.4]], dtype=torch.float64))
    v_true = v_true if extra is None else v_true + extra
    observed = simulate(v_true, pinned, boundary="pml").float()
    sigma = 0.002 * float(observed.square().mean().sqrt())
    g = torch.Generator().manual_seed(7)
    train = prior.velocity(0.5 * torch.randn(16, 2, generator=g, dtype=torch.float64))
    err = estimate_denoiser_error(prior, train, pinned, boundary="pml", n_timesteps=8)
    kw = dict(
        boundary="pml", prior=prior, n_samples=4, noise_std=sigma, steps=10, denoiser_error=err
    )
    return prior, v_true, observed, kw


def gaussian_velocity_problem(survey: Survey):
    """(prior, μ, true map (1, 1, 16, 16) [m/s], observed gathers, σ, denoiser error, the
    generator the draws came from, for further draws) of the
    velocity-space posterior tests: a :class:`~ubdiff_phys.inversion.prior.VelocityPrior` whose
    exact Gaussian denoiser draws each normalised pixel from N(μ, 0.05²) (μ: a step at row 9 on a
    gradient), a truth drawn from it, its gathers (C-PML pinned at 4,500 m/s) plus noise at 0.2 %
    of their RMS, and the denoiser error of 16 prior draws."""
    from ubdiff_phys.data import Normalizer
    from ubdiff_phys.inversion.prior import VelocityPrior, estimate_denoiser_error
    from ubdiff_phys.physics import simulate

    depth = torch.arange(16, dtype=torch.float64)[:, None].expand(16, 16)
    mu = (-1 / 3 + 0.4 * (depth >= 9) + 0.3 * depth / 15)[None]
    prior = VelocityPrior(
        denoiser=GaussianDenoiser(mu, 0.05, timesteps=128),
        shape=(16, 16),
        normalizer=Normalizer(v_min=1500.0, v_max=4500.0),
        survey=survey,
        boundary="pml",
        device=torch.device("cpu"),
        error_path=None,  # type: ignore[arg-type]
    )
    g = torch.Generator().manual_seed(5)
    v_true = prior.velocity(
        mu + 0.05 * torch.randn((1, 1, 16, 16), generator=g, dtype=torch.float64)
    )
    pinned = survey.with_(pml_max_velocity=4500.0)
    clean = simulate(v_true, pinned, boundary="pml").float()
    sigma = 0.002 * float(clean.square().mean().sqrt())
    observed = clean + torch.randn(clean.shape, generator=g) * sigma
    train = prior.velocity(mu + 0.05 * torch.randn((16, 1, 16, 16), generator=g).double())
    err = estimate_denoiser_error(prior, train, pinned, boundary="pml", n_timesteps=8)
    return prior, mu, v_true, observed, sigma, err, g
