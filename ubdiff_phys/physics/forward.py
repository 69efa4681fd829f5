"""``simulate``: velocity maps -> seismic gathers with the native finite-difference solver."""

from __future__ import annotations

import math

import numpy as np
import torch

from ubdiff_phys.ops.acoustic import acoustic_forward
from ubdiff_phys.ops.problem import AcousticProblem
from ubdiff_phys.physics.boundaries import cpml_profiles, openfwi_sponge_profile
from ubdiff_phys.physics.survey import STABILITY_LIMIT, Survey

__all__ = [
    "BOUNDARIES",
    "check_stability",
    "check_velocity",
    "courant_number",
    "prepare_problem",
    "simulate",
    "stability_limit",
]

#: Boundary modes of :func:`simulate`.
BOUNDARIES = ("openfwi", "pml", "none")


def simulate(
    v: torch.Tensor,
    survey: Survey | None = None,
    *,
    boundary: str = "openfwi",
    backend: str = "native",
    pad: int | None = None,
) -> torch.Tensor:
    """Simulate the seismic gathers a survey records over each velocity model.

    Constant-density acoustic wave equation, leapfrog in time, 4th-order Laplacian in space, all
    shots of all models in one call with the whole time loop inside it.

    Args:
        v: wave speed [m/s], shape (B, nz, nx) or (B, 1, nz, nx), float32 or float64, CPU or CUDA;
            finite, positive, and within the stability limit
            ``v_max dt sqrt(1/dx^2 + 1/dz^2) / sqrt(2) <= sqrt(3/8) ~ 0.612``.
        survey: geometry and discretisation; default :meth:`Survey.openfwi`.
        boundary: "openfwi": exactly the OpenFWI / CSIM modelling (120-cell edge-replicated sponge
            scaled by each model's minimum velocity, periodic wrap at the outer edge;
            specs/physics.md §2) — reproduces the OpenFWI data files.
            "pml": the same interior scheme with a narrow convolutional PML (``survey.pml_width``
            cells): fast and closer to an unbounded medium.
            "none": no absorption, edge-replicated padding of ``pad`` cells and a zero field beyond;
            with the default ``pad`` no reflection from the edge reaches a receiver within nt
            steps, i.e. the unbounded-medium reference.
        backend: "native" (C++/OpenMP or CUDA) or "reference" (pure PyTorch). Both are
            differentiable in ``v``: the native backward is the adjoint-state method with
            checkpointing (csrc/cpu/acoustic_adjoint_cpu.cpp), the reference uses autograd.
        pad: "none" only: padding cells per side; default ``ceil(v_max nt dt / (2 h)) + 12``.

    Returns:
        Gathers (B, n_sources, nt, n_receivers) — (model, shot, time sample, receiver), the OpenFWI
        layout — pressure in the OpenFWI amplitude convention, dtype and device of ``v``.

    Raises:
        TypeError, ValueError: on a bad shape, dtype, device, non-finite or non-positive velocity,
            an unstable Courant number, or an unknown boundary/backend — before any kernel runs.
    """
    survey = Survey.openfwi() if survey is None else survey
    if not isinstance(survey, Survey):
        raise TypeError(f"survey must be a ubdiff_phys.physics.Survey, got {type(survey).__name__}")
    v = check_velocity(v, survey)
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if v.shape[0] > 0:
        check_stability(v, survey, boundary)
    problem = prepare_problem(v, survey, boundary=boundary, pad=pad)
    return acoustic_forward(problem, backend=backend)


def courant_number(v_max: float, survey: Survey) -> float:
    """Courant number of the fastest velocity (stable iff <= sqrt(3/8) ~ 0.612)."""
    return survey.courant(v_max)


def stability_limit(v_min: torch.Tensor, survey: Survey, boundary: str) -> torch.Tensor:
    """Largest stable Courant number per model, (B,) float64.

    Leapfrog with the 4th-order Laplacian and a sponge ``-kappa (p - p_prev)`` has the amplification
    polynomial ``z^2 - (2 - kappa - lam) z + (1 - kappa)``, stable iff ``lam <= 4 - 2 kappa`` with
    ``lam = (v dt)^2 16/3 (1/dx^2 + 1/dz^2)``: the Courant limit sqrt(3/8) shrinks by
    ``sqrt(1 - kappa_max / 2)``. The OpenFWI sponge's ``kappa_max = 3 v_min ln(1e7) dt / (2 a)``
    grows with the model's minimum velocity (3 % lower limit for a 4500 m/s model); the C-PML and
    "none" modes keep sqrt(3/8) (checked empirically at 0.999 of it for 4000 steps).

    Args:
        v_min: (B,) minimum velocity of each model [m/s].
    """
    limit = torch.full_like(v_min, STABILITY_LIMIT, dtype=torch.float64)
    if boundary == "openfwi":
        h = min(survey.dx, survey.dz)
        a = (survey.sponge_width - 1) * h
        kappa_max = 3.0 * v_min.double() * math.log(1e7) * survey.dt / (2.0 * a)
        limit = limit * torch.sqrt(torch.clamp(1.0 - kappa_max / 2.0, min=0.0))
    return limit


def check_stability(v: torch.Tensor, survey: Survey, boundary: str) -> None:
    """Raise ValueError if any model of ``v`` (B, nz, nx) [m/s] is beyond its stability limit."""
    v64 = v.detach().double()
    v_min, v_max = v64.amin(dim=(1, 2)).cpu(), v64.amax(dim=(1, 2)).cpu()
    limit = stability_limit(v_min, survey, boundary)
    courant = torch.tensor([survey.courant(float(x)) for x in v_max], dtype=torch.float64)
    bad = torch.nonzero(courant > limit).flatten()
    if len(bad):
        k = int(bad[0])
        reason = (
            f"sqrt(3/8) = {STABILITY_LIMIT:.4f} reduced by the OpenFWI sponge's damping "
            "(see ubdiff_phys.physics.forward.stability_limit)"
            if boundary == "openfwi"
            else "sqrt(3/8) of leapfrog with the 4th-order Laplacian"
        )
        raise ValueError(
            f"unstable: model {k} has Courant number v_max dt sqrt(1/dx^2 + 1/dz^2)/sqrt(2) = "
            f"{float(courant[k]):.4f} (v_max = {float(v_max[k]):.1f} m/s), above the limit "
            f"{float(limit[k]):.4f} = {reason}; {len(bad)} of {len(v_max)} models are unstable. "
            f"Reduce dt below {survey.dt * float(limit[k]) / float(courant[k]):.3e} s or "
            "coarsen the grid"
        )


def prepare_problem(
    v: torch.Tensor, survey: Survey, *, boundary: str, pad: int | None = None
) -> AcousticProblem:
    """Build the kernel inputs (padded geometry, boundary profiles) for checked velocities.

    Args:
        v: (B, nz, nx) wave speed [m/s], already checked by :func:`simulate`.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if pad is not None and boundary != "none":
        raise ValueError("pad is only used with boundary='none'")
    dtype, device = v.dtype, v.device
    v64 = v.detach().to(torch.float64)
    v_min = v64.amin(dim=(1, 2))
    v_max = v64.amax(dim=(1, 2))
    nz, nx = survey.nz, survey.nx
    # (v dt)^2 rounded once from float64, with or without autograd (same gathers either way)
    vdt2 = ((v.to(torch.float64) * survey.dt) ** 2).to(dtype)
    none6: tuple[None, ...] = (None,) * 6
    kx = kz = None
    ax, bx, dbx, az, bz, dbz = none6
    if boundary == "openfwi":
        width = survey.sponge_width
        kx = openfwi_sponge_profile(v_min, nx, width, survey.dx, survey.dt).to(dtype)
        kz = openfwi_sponge_profile(v_min, nz, width, survey.dz, survey.dt).to(dtype)
        kind, wrap = "sponge", True
    elif boundary == "pml":
        width = survey.pml_width
        vm = (
            v_max
            if survey.pml_max_velocity is None
            else torch.full_like(v_max, survey.pml_max_velocity)
        )
        common = dict(
            width=width, dt=survey.dt, frequency=survey.frequency, reflection=survey.pml_reflection
        )
        ax, bx, dbx = (t.to(dtype) for t in cpml_profiles(vm, nx, h=survey.dx, **common))
        az, bz, dbz = (t.to(dtype) for t in cpml_profiles(vm, nz, h=survey.dz, **common))
        kind, wrap = "cpml", False
    else:
        if pad is None:
            h = min(survey.dx, survey.dz)
            pad = math.ceil(float(v_max.max()) * survey.nt * survey.dt / (2.0 * h)) + 12
        if not isinstance(pad, (int, np.integer)) or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        width, kind, wrap = int(pad), "sponge", False
    src = torch.tensor(survey.sources, dtype=torch.int64, device=device) + width
    rec = torch.tensor(survey.receivers, dtype=torch.int64, device=device) + width
    wavelet = torch.as_tensor(survey.source_wavelet(), device=device).to(dtype)
    return AcousticProblem(
        vdt2=vdt2,
        pad=width,
        boundary=kind,
        wrap=wrap,
        dx=survey.dx,
        dz=survey.dz,
        kx=kx,
        kz=kz,
        ax=ax,
        bx=bx,
        dbx=dbx,
        az=az,
        bz=bz,
        dbz=dbz,
        source_rc=src,
        receiver_rc=rec,
        wavelet=wavelet,
    )


def check_velocity(v: torch.Tensor, survey: Survey) -> torch.Tensor:
    """Validate the velocity tensor and return it as (B, nz, nx)."""
    if isinstance(v, np.ndarray):
        raise TypeError("v must be a torch.Tensor; convert a numpy array with torch.from_numpy(v)")
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a torch.Tensor of wave speeds [m/s], got {type(v).__name__}")
    if v.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"v must be float32 or float64, got {v.dtype}; use v.float()")
    if v.device.type not in ("cpu", "cuda"):
        raise ValueError(f"v must be on a cpu or cuda device, got {v.device}")
    if v.dim() == 4:
        if v.shape[1] != 1:
            raise ValueError(f"v of shape {tuple(v.shape)}: a 4-D velocity must be (B, 1, nz, nx)")
        v = v[:, 0]
    if v.dim() != 3:
        raise ValueError(
            f"v must have shape (B, nz, nx) or (B, 1, nz, nx), got {tuple(v.shape)}; "
            "add a batch dimension with v[None] for a single model"
        )
    if tuple(v.shape[1:]) != (survey.nz, survey.nx):
        raise ValueError(
            f"v has a {v.shape[1]} x {v.shape[2]} grid but the survey is "
            f"{survey.nz} x {survey.nx}; "
            "pass a Survey with matching nz, nx"
        )
    if v.shape[0] == 0:
        return v
    finite = torch.isfinite(v)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"v contains {bad} NaN or infinite value(s)")
    v_lo, v_hi = torch.aminmax(v.detach())
    if float(v_lo) <= 0:
        raise ValueError(
            f"v must be positive everywhere (wave speed in m/s), minimum is {float(v_lo)}"
        )
    return v
