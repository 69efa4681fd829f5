"""deepwave (the peer library) run with conventions matched to ours (specs/physics.md §5).

Used by the tests and benchmarks to check and time the solver against the leading differentiable
wave library. deepwave is an optional dependency (``pip install ubdiff_phys[test]``).
"""

from __future__ import annotations

import torch

from ubdiff_phys.physics.survey import Survey

__all__ = ["simulate_deepwave"]


def simulate_deepwave(
    v: torch.Tensor,
    survey: Survey | None = None,
    *,
    pml_width: int = 20,
    max_vel: float = 4500.0,
) -> torch.Tensor:
    """Simulate with ``deepwave.scalar`` (4th order, C-PML) in our gather convention.

    deepwave adds ``-v^2 dt^2 f`` at the source into ``u[t+1]`` and records ``u[t]`` before the
    update, so we pass ``f = -w``, run nt + 1 steps and drop sample 0. ``courant_number=0.65``
    stops deepwave from silently halving dt; ``pml_freq`` and ``max_vel`` are pinned so the layer
    does not depend on the batch.

    Args:
        v: (B, nz, nx) or (B, 1, nz, nx) wave speed [m/s]; all models must share the device.
        survey: geometry (default OpenFWI); requires dx == dz.
        pml_width: deepwave's C-PML width [cells]; max_vel: velocity scaling its profile [m/s].

    Returns:
        (B, n_sources, nt, n_receivers) gathers, dtype and device of ``v``.
    """
    try:
        import deepwave
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("deepwave is not installed: pip install deepwave==0.1.0") from exc
    survey = Survey.openfwi() if survey is None else survey
    if survey.dx != survey.dz:
        raise ValueError("simulate_deepwave needs a square grid (dx == dz)")
    if v.dim() == 4:
        v = v[:, 0]
    dev, dtype = v.device, v.dtype
    s_count, r_count, nt = survey.n_sources, survey.n_receivers, survey.nt
    w = torch.as_tensor(survey.source_wavelet(), dtype=dtype, device=dev)
    amp = torch.zeros(s_count, 1, nt + 1, dtype=dtype, device=dev)
    amp[:, 0, :nt] = -w
    src = torch.tensor(survey.sources, dtype=torch.long, device=dev)[:, None, :]
    rec = torch.tensor(survey.receivers, dtype=torch.long, device=dev)[None].expand(
        s_count, r_count, 2
    )
    out = []
    for model in v:
        result = deepwave.scalar(
            model,
            survey.dx,
            survey.dt,
            source_amplitudes=amp,
            source_locations=src,
            receiver_locations=rec.contiguous(),
            accuracy=4,
            pml_width=pml_width,
            pml_freq=survey.frequency,
            max_vel=max_vel,
            courant_number=0.65,
        )
        data = result[-1]  # (shots, receivers, nt + 1)
        out.append(data[:, :, 1:].transpose(1, 2))
    return torch.stack(out)
