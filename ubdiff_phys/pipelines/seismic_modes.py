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
  RMS misfit gradient. ``guidance_noise`` says how the sampler carries the corrected ẑ0 to its
  next state (:mod:`ubdiff_phys.diffusion.samplers`): "keep" (default since 2026-11-30) re-noises
  it with the network's own noise prediction, so the whole correction persists; "recompute" (the
  rule before, with scale 0.05) recomputes the noise from the corrected ẑ0, which keeps about a
  third of the correction. On the shipped checkpoint (64 pairs, seed 0) "keep" at scale 0.02
  takes the median residual from 0.120 to 0.095 (decoder mode 0.165) at the same cost, with the
  velocity maps moved about as far as before (median 3.7 % against 3.4 %) but fewer of them
  keeping FlatVel-A's layering (0.05 against 0.09); ``benchmarks/bench_guided.py`` measures it.
  ``guidance_gradient`` says what the misfit's gradient passes through: "full" (both decoders
  and the solver, exactly) or "no_refine" (default since 2026-11-30): the token seismic decoder's
  refinement convolutions add their correction to D_s(ẑ0) as a constant, so the gradient skips
  them (their Jacobian dropped, the residual path's identity kept; the misfit itself is exact).
  That backward is the most expensive part of a guided step after the solver's, so a step costs
  less and one more fits in the same time. With "no_refine", ``guidance_refine_every`` = k
  computes that constant afresh at every k-th guided step only and reuses it in between (the
  co-latent moves little from one guided step to the next; the refinement's forward pass is
  then the dearest part of a guided step after the solver); k = 1 recomputes it every step, so
  the misfit is exact. The generated pairs are decoded exactly either way. On the shipped
  checkpoint (64 pairs, seed 0) the defaults (no_refine, k = 2, 11 guided steps) score 0.094 at
  4.4x the decoder mode's time per pair, the exact gradient with 10 steps 0.095 at 5.4x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from ubdiff_phys.diffusion.samplers import GUIDE_NOISE, Guide
from ubdiff_phys.models.decoders import HeldCorrection, refine_gradient
from ubdiff_phys.ops.reference.acoustic import openfwi_normalise
from ubdiff_phys.physics import simulate
from ubdiff_phys.runtime.errors import OptionError

__all__ = [
    "DEFAULT_GUIDANCE_GRADIENT",
    "DEFAULT_GUIDANCE_NOISE",
    "DEFAULT_GUIDANCE_REFINE_EVERY",
    "DEFAULT_GUIDANCE_SCALE",
    "DEFAULT_GUIDANCE_SHOTS",
    "DEFAULT_GUIDANCE_STEPS",
    "GUIDANCE_GRADIENTS",
    "GUIDANCE_KEYS",
    "SEISMIC_MODES",
    "add_guidance_options",
    "check_guidance",
    "checked_guidance",
    "check_mode_for",
    "decode_pairs",
    "generate_pairs",
    "guidance_options",
    "guidance_shot_cycle",
    "mode_options",
    "pair_misfit_guide",
    "parse_guidance_shots",
    "sample_for_mode",
]

SEISMIC_MODES = ("decoder", "solver", "guided")
#: shots simulated per guided step by default (None: all); see :func:`pair_misfit_guide`
DEFAULT_GUIDANCE_SHOTS: int | None = 1
#: how the sampler carries a guided correction by default (module docstring)
DEFAULT_GUIDANCE_NOISE = "keep"
#: the guided mode's default step on ẑ0 per unit RMS gradient (see :func:`pair_misfit_guide`)
DEFAULT_GUIDANCE_SCALE = 0.02
#: guided steps (the last sampler steps that are guided) by default
DEFAULT_GUIDANCE_STEPS = 11
#: what the guidance gradient passes through (module docstring)
GUIDANCE_GRADIENTS = ("full", "no_refine")
DEFAULT_GUIDANCE_GRADIENT = "no_refine"
#: with "no_refine": guided steps between fresh refinement corrections (module docstring)
DEFAULT_GUIDANCE_REFINE_EVERY = 2
#: the guided mode's options, as recorded in files and summaries
GUIDANCE_KEYS = (
    "guidance_scale",
    "guidance_steps",
    "guidance_shots",
    "guidance_noise",
    "guidance_gradient",
    "guidance_refine_every",
)


def _decode_differentiable(
    gen, z: torch.Tensor, gradient: str = "full", held: HeldCorrection | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, latent_dim) -> (velocity [m/s] (B, nz, nx) float32, normalised seismic), with grad
    (``gradient``: one of :data:`GUIDANCE_GRADIENTS`, module docstring; ``held``: with
    "no_refine", the refinement correction to reuse unless it asks for a refresh)."""
    p = next(gen.autoencoder.parameters())
    with refine_gradient(gen.autoencoder, gradient == "full", held):
        v_n, s_n = gen.autoencoder.decode(z.to(p.device, p.dtype))
    nm = gen.normalizer
    v = nm.v_min + (v_n.float().clamp(-1, 1) + 1) * (0.5 * (nm.v_max - nm.v_min))
    return v[:, 0], s_n.float()


def pair_misfit(
    gen,
    z: torch.Tensor,
    shots: Sequence[int] | None = None,
    gradient: str = "full",
    held: HeldCorrection | None = None,
) -> torch.Tensor:
    """(B,) RMS of D_s(z) − n(F(D_v(z))) in normalised seismic units, differentiable in z.

    ``shots``: simulate and compare these shots (indices into the survey's sources) only; None:
    all of them. ``gradient``: what its gradient passes through (:data:`GUIDANCE_GRADIENTS`);
    ``held``: with "no_refine", a refinement correction to reuse (then D_s is the token path
    plus that correction) unless it asks for a refresh."""
    v, s_n = _decode_differentiable(gen, z, gradient, held)
    survey = gen.survey
    if shots is not None:
        survey = dataclasses.replace(survey, sources=tuple(survey.sources[k] for k in shots))
        s_n = s_n[:, list(shots)]
    sim = simulate(v, survey, boundary=gen.boundary)
    lo, hi = gen.normalizer.s_log_min, gen.normalizer.s_log_max
    r = s_n - openfwi_normalise(sim, lo, hi)
    return r.square().mean(dim=(1, 2, 3)).sqrt()


def guidance_shot_cycle(n_sources: int, shots: int | None, k: int) -> list[int] | None:
    """The shots the ``k``-th guided step simulates: ``shots`` consecutive sources starting at
    ``k * shots`` (mod ``n_sources``), so that successive steps cycle through the survey; None
    (all sources) when ``shots`` is None or covers them all."""
    if shots is None or shots >= n_sources:
        return None
    return [(k * shots + q) % n_sources for q in range(shots)]


def pair_misfit_guide(
    gen,
    *,
    scale: float,
    guidance_steps: int,
    total_steps: int,
    log: list | None = None,
    shots: int | None = None,
    gradient: str = "full",
    refine_every: int = 1,
) -> Guide:
    """The sampler ``guide`` of the ``guided`` mode (see the module docstring).

    Args:
        gen: a loaded :class:`~ubdiff_phys.pipelines.generator.Generator` with a survey.
        scale: step on ẑ0 per unit RMS gradient (0 disables guidance).
        guidance_steps: guide only the last this-many sampler steps (the early ẑ0 are blurry).
        total_steps: the sampler's number of steps.
        log: if given, receives (step, median misfit before the correction) per guided step.
        shots: simulate this many of the survey's shots per guided step, cycling through them
            (:func:`guidance_shot_cycle`; stochastic-source FWI's saving: the solver's cost per
            step falls with the shots); None: every shot at every step.
        gradient: what the misfit's gradient passes through (:data:`GUIDANCE_GRADIENTS`).
        refine_every: with "no_refine", compute the refinement's correction afresh at every
            this-many-th guided step (the first included) and reuse it in between; 1: always.
    """
    if gen.survey is None:
        raise ValueError("guided seismic needs a generator whose training data records a survey")
    if not (scale >= 0 and scale < float("inf")):
        raise ValueError(f"guidance scale must be finite and >= 0, got {scale}")
    if shots is not None and shots < 1:
        raise ValueError(f"guidance shots must be >= 1 or None, got {shots}")
    if gradient not in GUIDANCE_GRADIENTS:
        raise ValueError(f"guidance gradient must be one of {GUIDANCE_GRADIENTS}, got {gradient!r}")
    if refine_every < 1:
        raise ValueError(f"guidance refine_every must be >= 1, got {refine_every}")
    first = max(total_steps - guidance_steps, 0)
    n_sources = len(gen.survey.sources)
    held = HeldCorrection() if gradient == "no_refine" else None

    def guide(x0: torch.Tensor, i: int, t: int) -> torch.Tensor:
        if i < first or scale == 0:
            return x0
        shape = x0.shape
        with torch.enable_grad():
            z = x0.detach().reshape(shape[0], -1).float().requires_grad_()
            cycle = guidance_shot_cycle(n_sources, shots, i - first)
            if held is not None:
                held.refresh = (i - first) % refine_every == 0
            misfit = pair_misfit(gen, z, cycle, gradient, held)
            (grad,) = torch.autograd.grad(misfit.sum(), z)
        if log is not None:
            log.append((i, float(misfit.detach().median())))
        rms = grad.square().mean(dim=1, keepdim=True).sqrt().clamp(min=1e-30)
        step = scale * grad / rms
        return (x0 - step.reshape(shape).to(x0.dtype)).clamp(-1, 1)

    return guide


def parse_guidance_shots(text: str) -> int | None:
    """``--guidance-shots``'s value: None for "all", else an integer >= 1 (OptionError: one line,
    exit 2, otherwise)."""
    if text == "all":
        return None
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise OptionError(f"--guidance-shots must be 'all' or an integer >= 1, got {text!r}")
    return k


def add_guidance_options(parser: Any) -> None:
    """Add the guided mode's options to an argparse parser: ``--guidance-scale``,
    ``--guidance-steps``, ``--guidance-shots`` ('all' or k >= 1, a string for
    :func:`parse_guidance_shots`), ``--guidance-noise``, ``--guidance-gradient`` and
    ``--guidance-refine-every``, with this module's defaults; :func:`guidance_options` turns the
    parsed values into keyword arguments."""
    shots = "all" if DEFAULT_GUIDANCE_SHOTS is None else str(DEFAULT_GUIDANCE_SHOTS)
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=DEFAULT_GUIDANCE_SCALE,
        help=f"guided: step per RMS gradient (default {DEFAULT_GUIDANCE_SCALE})",
    )
    parser.add_argument(
        "--guidance-steps",
        type=int,
        default=DEFAULT_GUIDANCE_STEPS,
        help=f"guided: guide the last N sampler steps (default {DEFAULT_GUIDANCE_STEPS})",
    )
    parser.add_argument(
        "--guidance-shots",
        default=shots,
        help=f"guided: shots simulated per guided step, cycling through the survey's ('all' or "
        f"k; default {shots}: same residual as all shots at a fraction of the solver time)",
    )
    parser.add_argument(
        "--guidance-noise",
        choices=GUIDE_NOISE,
        default=DEFAULT_GUIDANCE_NOISE,
        help="guided: how the sampler carries the corrected latent to its next state: "
        "'keep' the network's noise prediction (the whole correction persists) or 'recompute' "
        f"the noise from the corrected latent (about a third of it; the rule before "
        f"2026-11-30); default {DEFAULT_GUIDANCE_NOISE}",
    )
    parser.add_argument(
        "--guidance-gradient",
        choices=GUIDANCE_GRADIENTS,
        default=DEFAULT_GUIDANCE_GRADIENT,
        help="guided: what the misfit's gradient passes through: 'full' (both decoders and the "
        "solver) or 'no_refine' (the seismic decoder's refinement convolutions as a constant: "
        f"a cheaper, approximate gradient; the misfit stays exact); default "
        f"{DEFAULT_GUIDANCE_GRADIENT}",
    )
    parser.add_argument(
        "--guidance-refine-every",
        type=int,
        default=DEFAULT_GUIDANCE_REFINE_EVERY,
        help="guided, with --guidance-gradient no_refine: compute the refinement's correction "
        "afresh every k-th guided step and reuse it in between (1: every step, the misfit "
        f"exact; the pairs are decoded exactly either way); default "
        f"{DEFAULT_GUIDANCE_REFINE_EVERY}",
    )


def guidance_options(args: Any) -> dict[str, Any]:
    """The ``guidance_*`` keyword arguments of parsed :func:`add_guidance_options` values, checked
    (OptionError, one line and exit 2 at the command line, for a bad value)."""
    options = {
        "guidance_scale": args.guidance_scale,
        "guidance_steps": args.guidance_steps,
        "guidance_shots": parse_guidance_shots(args.guidance_shots),
        "guidance_noise": args.guidance_noise,
        "guidance_gradient": args.guidance_gradient,
        "guidance_refine_every": args.guidance_refine_every,
    }
    try:
        check_guidance(*options.values())
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return options


def check_mode_for(gen, seismic: str) -> None:
    """Refuse a mode the generator cannot make: "decoder" and "guided" need a seismic decoder (a
    velocity-space model has none)."""
    if seismic != "solver" and not gen.has_seismic_decoder:
        raise OptionError(
            f"--seismic {seismic} needs a seismic decoder, and {gen.info['checkpoint']!r} is a "
            "velocity-space model: use --seismic solver (gathers simulated from its velocities)"
        )


def mode_options(
    seismic: str,
    guidance_scale: float,
    guidance_steps: int,
    guidance_shots: int | None = DEFAULT_GUIDANCE_SHOTS,
    guidance_noise: str = DEFAULT_GUIDANCE_NOISE,
    guidance_gradient: str = DEFAULT_GUIDANCE_GRADIENT,
    guidance_refine_every: int = DEFAULT_GUIDANCE_REFINE_EVERY,
) -> dict[str, Any]:
    """The checked options of a seismic mode, as :func:`sample_for_mode` keyword arguments."""
    if seismic not in SEISMIC_MODES:
        raise ValueError(f"seismic must be one of {SEISMIC_MODES}, got {seismic!r}")
    if seismic != "guided":
        return {"seismic": seismic}
    values = (guidance_scale, guidance_steps, guidance_shots, guidance_noise, guidance_gradient)
    return {"seismic": seismic, **checked_guidance(*values, guidance_refine_every)}


def checked_guidance(
    scale: float,
    steps: int,
    shots: int | None = DEFAULT_GUIDANCE_SHOTS,
    noise: str = DEFAULT_GUIDANCE_NOISE,
    gradient: str = DEFAULT_GUIDANCE_GRADIENT,
    refine_every: int = DEFAULT_GUIDANCE_REFINE_EVERY,
) -> dict[str, Any]:
    """The guided mode's options as ``guidance_*`` keyword arguments (the :data:`GUIDANCE_KEYS`),
    after :func:`check_guidance`."""
    check_guidance(scale, steps, shots, noise, gradient, refine_every)
    values = (scale, steps, shots, noise, gradient, refine_every)
    return dict(zip(GUIDANCE_KEYS, values, strict=True))


def check_guidance(
    scale: float,
    steps: int,
    shots: int | None,
    noise: str = DEFAULT_GUIDANCE_NOISE,
    gradient: str = DEFAULT_GUIDANCE_GRADIENT,
    refine_every: int = DEFAULT_GUIDANCE_REFINE_EVERY,
) -> None:
    """Raise ValueError unless the guidance scale is finite and >= 0, the guided steps >= 0, the
    shots per guided step None or >= 1, ``noise`` one of the samplers' ``GUIDE_NOISE``,
    ``gradient`` one of :data:`GUIDANCE_GRADIENTS` and ``refine_every`` an integer >= 1."""
    if not (0 <= scale < float("inf")) or steps < 0 or (shots is not None and shots < 1):
        raise ValueError(
            "the guidance scale must be finite and >= 0, the guidance steps >= 0 and the "
            f"guidance shots >= 1 (got {scale}, {steps}, {shots})"
        )
    if noise not in GUIDE_NOISE:
        raise ValueError(f"guidance noise must be one of {GUIDE_NOISE}, got {noise!r}")
    if gradient not in GUIDANCE_GRADIENTS:
        raise ValueError(f"guidance gradient must be one of {GUIDANCE_GRADIENTS}, got {gradient!r}")
    if isinstance(refine_every, bool) or not isinstance(refine_every, int) or refine_every < 1:
        raise ValueError(f"guidance refine_every must be an integer >= 1, got {refine_every!r}")


def sample_for_mode(
    gen,
    m: int,
    *,
    seed: int,
    b: int,
    seismic: str = "decoder",
    sampler: str = "ddim",
    steps: int | None = 50,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    guidance_steps: int = DEFAULT_GUIDANCE_STEPS,
    guidance_shots: int | None = DEFAULT_GUIDANCE_SHOTS,
    guidance_noise: str = DEFAULT_GUIDANCE_NOISE,
    guidance_gradient: str = DEFAULT_GUIDANCE_GRADIENT,
    guidance_refine_every: int = DEFAULT_GUIDANCE_REFINE_EVERY,
    **kwargs: Any,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Batch ``b``'s co-latents (m, latent_dim) for a seismic mode (guided sampling for
    "guided"; ``guidance_shots``: shots simulated per guided step, :func:`pair_misfit_guide`;
    ``guidance_noise``: the sampler's ``guide_noise``; ``guidance_gradient``: what the misfit's
    gradient passes through; ``guidance_refine_every``: its ``refine_every``), and a dict of what
    was done (mode,
    parameters, guidance log)."""
    if seismic not in SEISMIC_MODES:
        raise ValueError(f"seismic must be one of {SEISMIC_MODES}, got {seismic!r}")
    check_mode_for(gen, seismic)
    info: dict[str, Any] = {"seismic": seismic}
    if seismic == "guided":
        log: list = []
        total = gen.denoiser.schedule.timesteps
        total = min(steps or (total if sampler == "ddpm" else 50), total)
        kwargs["guide"] = pair_misfit_guide(
            gen,
            scale=guidance_scale,
            guidance_steps=guidance_steps,
            total_steps=total,
            log=log,
            shots=guidance_shots,
            gradient=guidance_gradient,
            refine_every=guidance_refine_every,
        )
        kwargs["guide_noise"] = guidance_noise
        info.update(
            guidance_scale=guidance_scale,
            guidance_steps=guidance_steps,
            guidance_shots=guidance_shots,
            guidance_noise=guidance_noise,
            guidance_gradient=guidance_gradient,
            guidance_refine_every=guidance_refine_every,
            log=log,
        )
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
