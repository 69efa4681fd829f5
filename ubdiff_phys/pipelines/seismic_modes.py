"""Where a generated pair's seismic comes from: the decoder, the solver, or the decoder guided by
the solver.

- ``decoder``: UB-Diff as published: both halves of the pair from the autoencoder's decoders.
- ``solver``: the gathers simulated from the generated velocity with the training data's survey
  and boundary mode: an exact pair by construction (residual 0 to float tolerance).
- ``guided``: physics guidance during the reverse diffusion. Before each of the last
  ``guidance_steps`` sampler steps, the predicted clean co-latent ẑ0 takes a gradient step that
  lowers the pair misfit ‖D_s(ẑ0) − n(F(D_v(ẑ0)))‖ (normalised units, through both decoders and
  the solver's native adjoint), as diffusion posterior sampling does with an observation; here the
  "observation" is the pair's own consistency. ``guidance_scale`` is the step on ẑ0 per unit of
  RMS misfit gradient.
"""

from __future__ import annotations

from typing import Any

import torch

from ubdiff_phys.diffusion.samplers import Guide
from ubdiff_phys.ops.reference.acoustic import openfwi_normalise
from ubdiff_phys.physics import simulate
from ubdiff_phys.runtime.errors import OptionError

__all__ = [
    "SEISMIC_MODES",
    "check_mode_for",
    "decode_pairs",
    "generate_pairs",
    "mode_options",
    "pair_misfit_guide",
    "sample_for_mode",
]

SEISMIC_MODES = ("decoder", "solver", "guided")


def _decode_differentiable(gen, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, latent_dim) -> (velocity [m/s] (B, nz, nx) float32, normalised seismic), with grad."""
    p = next(gen.autoencoder.parameters())
    v_n, s_n = gen.autoencoder.decode(z.to(p.device, p.dtype))
    nm = gen.normalizer
    v = nm.v_min + (v_n.float().clamp(-1, 1) + 1) * (0.5 * (nm.v_max - nm.v_min))
    return v[:, 0], s_n.float()


def pair_misfit(gen, z: torch.Tensor) -> torch.Tensor:
    """(B,) RMS of D_s(z) − n(F(D_v(z))) in normalised seismic units, differentiable in z."""
    v, s_n = _decode_differentiable(gen, z)
    sim = simulate(v, gen.survey, boundary=gen.boundary)
    lo, hi = gen.normalizer.s_log_min, gen.normalizer.s_log_max
    r = s_n - openfwi_normalise(sim, lo, hi)
    return r.square().mean(dim=(1, 2, 3)).sqrt()


def pair_misfit_guide(
    gen, *, scale: float, guidance_steps: int, total_steps: int, log: list | None = None
) -> Guide:
    """The sampler ``guide`` of the ``guided`` mode (see the module docstring).

    Args:
        gen: a loaded :class:`~ubdiff_phys.pipelines.generator.Generator` with a survey.
        scale: step on ẑ0 per unit RMS gradient (0 disables guidance).
        guidance_steps: guide only the last this-many sampler steps (the early ẑ0 are blurry).
        total_steps: the sampler's number of steps.
        log: if given, receives (step, median misfit before the correction) per guided step.
    """
    if gen.survey is None:
        raise ValueError("guided seismic needs a generator whose training data records a survey")
    if not (scale >= 0 and scale < float("inf")):
        raise ValueError(f"guidance scale must be finite and >= 0, got {scale}")
    first = max(total_steps - guidance_steps, 0)

    def guide(x0: torch.Tensor, i: int, t: int) -> torch.Tensor:
        if i < first or scale == 0:
            return x0
        shape = x0.shape
        with torch.enable_grad():
            z = x0.detach().reshape(shape[0], -1).float().requires_grad_()
            misfit = pair_misfit(gen, z)
            (grad,) = torch.autograd.grad(misfit.sum(), z)
        if log is not None:
            log.append((i, float(misfit.detach().median())))
        rms = grad.square().mean(dim=1, keepdim=True).sqrt().clamp(min=1e-30)
        step = scale * grad / rms
        return (x0 - step.reshape(shape).to(x0.dtype)).clamp(-1, 1)

    return guide


def check_mode_for(gen, seismic: str) -> None:
    """Refuse a mode the generator cannot make: "decoder" and "guided" need a seismic decoder (a
    velocity-space model has none)."""
    if seismic != "solver" and not gen.has_seismic_decoder:
        raise OptionError(
            f"--seismic {seismic} needs a seismic decoder, and {gen.info['checkpoint']!r} is a "
            "velocity-space model: use --seismic solver (gathers simulated from its velocities)"
        )


def mode_options(seismic: str, guidance_scale: float, guidance_steps: int) -> dict[str, Any]:
    """The checked options of a seismic mode, as :func:`sample_for_mode` keyword arguments."""
    if seismic not in SEISMIC_MODES:
        raise ValueError(f"seismic must be one of {SEISMIC_MODES}, got {seismic!r}")
    if seismic != "guided":
        return {"seismic": seismic}
    if not (0 <= guidance_scale < float("inf")) or guidance_steps < 0:
        raise ValueError("the guidance scale must be finite and >= 0, the guidance steps >= 0")
    return {"seismic": seismic, "guidance_scale": guidance_scale, "guidance_steps": guidance_steps}


def sample_for_mode(
    gen,
    m: int,
    *,
    seed: int,
    b: int,
    seismic: str = "decoder",
    sampler: str = "ddim",
    steps: int | None = 50,
    guidance_scale: float = 0.05,
    guidance_steps: int = 10,
    **kwargs: Any,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Batch ``b``'s co-latents (m, latent_dim) for a seismic mode (guided sampling for
    "guided"), and a dict of what was done (mode, parameters, guidance log)."""
    if seismic not in SEISMIC_MODES:
        raise ValueError(f"seismic must be one of {SEISMIC_MODES}, got {seismic!r}")
    check_mode_for(gen, seismic)
    info: dict[str, Any] = {"seismic": seismic}
    if seismic == "guided":
        log: list = []
        total = gen.denoiser.schedule.timesteps
        total = min(steps or (total if sampler == "ddpm" else 50), total)
        kwargs["guide"] = pair_misfit_guide(
            gen, scale=guidance_scale, guidance_steps=guidance_steps, total_steps=total, log=log
        )
        info.update(guidance_scale=guidance_scale, guidance_steps=guidance_steps, log=log)
    z = gen.sample(m, seed=seed, b=b, sampler=sampler, steps=steps, **kwargs)
    return z, info


def decode_pairs(gen, z: torch.Tensor, seismic: str = "decoder") -> tuple[torch.Tensor, ...]:
    """(velocity [m/s] (B, 1, nz, nx), seismic (B, S, nt, R)) of co-latents for a seismic mode:
    the solver's gathers of the decoded velocity for "solver", the decoder's otherwise."""
    v, s = gen.decode(z)
    if seismic == "solver":
        if gen.survey is None:
            raise ValueError("solver seismic needs a generator whose training data has a survey")
        s = simulate(v, gen.survey, boundary=gen.boundary).float()
    return v, s


def generate_pairs(
    gen, m: int, *, seed: int, b: int, seismic: str = "decoder", **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Batch ``b`` of a job: m pairs (velocity [m/s] (m, 1, nz, nx), seismic (m, S, nt, R)) and
    a dict of what was done (``kwargs``: :func:`sample_for_mode`'s)."""
    z, info = sample_for_mode(gen, m, seed=seed, b=b, seismic=seismic, **kwargs)
    v, s = decode_pairs(gen, z, seismic)
    return v, s, info
