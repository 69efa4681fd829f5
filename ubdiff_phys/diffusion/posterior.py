"""Posterior sampling with a diffusion prior: x0 ~ p(x0 | y) ∝ p(y | x0) p(x0) for a data misfit.

The likelihood enters the reverse diffusion through ∇_{x_t} log p(y | x_t), which needs the data
misfit of the denoised estimate x̂0(x_t) and its gradient back through the denoiser. Two ways:

- ``"dps"`` (Chung et al. 2023, Algorithm 1): after each ancestral step
  ``x_s ← x_s − ζ ∇_{x_t} ‖y − G(x̂0(x_t))‖₂`` with a hand-set step size ζ (``step_size``).
- ``"noise_aware"`` (Miele & Linde 2025): the likelihood of x_t is taken as
  ``N(y; G(x̂0(x_t)), (σ_y² + r_t²) I)``, where r_t² is the denoiser's error seen in data space at
  noise level t (``data_variance(t)`` returns σ_y² + r_t², estimated once from training data). The
  conditional score then follows without a step size, and by Tweedie's formula the clean estimate
  conditioned on the data is

      E[x0 | x_t, y] = x̂0(x_t) + (1 − ᾱ_t) / √ᾱ_t · ∇_{x_t} log p(y | x_t),

  which replaces x̂0 in the DDPM posterior step q(x_s | x_t, x0). For a linear-Gaussian problem
  whose data-space error is isotropic this is the exact conditional score (the test oracle).
- ``"proximal"``: the prior's uncertainty is kept in the state's own space instead. With
  p(x0 | x_t) ≈ N(x̂0(x_t), ρ_t² I), ρ_t² the denoiser's mean squared error per state value at
  timestep t (``state_variance(t)``), and the likelihood N(y; G(x0), σ_y² I) (``data_variance``),
  the conditional clean estimate is the minimiser of

      ‖G(x0) − y‖² / (2σ_y²) + ‖x0 − x̂0‖² / (2ρ_t²),

  found by ``inner`` L-BFGS iterations per sample from x̂0 (each a misfit and its gradient with
  respect to x0 only: no gradient through the denoiser). For a linear G and a Gaussian prior the
  minimiser is E[x0 | x_t, y] exactly, whatever the conditioning of G; the noise-aware step's
  single linearised correction is not, and falls short when the state has many free dimensions.

Both use strided ancestral DDPM steps (:func:`~ubdiff_phys.diffusion.samplers.sample_ddpm`), so
samples are random given the data. The state is float64; the denoiser runs in its own dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch

from ubdiff_phys.diffusion.resampling import grouped_resample
from ubdiff_phys.diffusion.samplers import Callback, timestep_sequence
from ubdiff_phys.diffusion.targets import x0_from_v
from ubdiff_phys.runtime.lbfgs import batched_lbfgs

__all__ = ["POSTERIOR_METHODS", "DataMisfit", "sample_posterior"]

#: Likelihood treatments of :func:`sample_posterior`.
POSTERIOR_METHODS = ("dps", "noise_aware", "proximal")
#: ``misfit(x0) -> (B,)``: ½‖G(x0) − y‖² of each clean estimate, differentiable in x0 (float64)
DataMisfit = Callable[[torch.Tensor], torch.Tensor]


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    n = torch.randn(like.shape, generator=generator, dtype=torch.float64, device="cpu")
    return n.to(like.device)


@torch.no_grad()
def _denoise(model, x: torch.Tensor, t: int, ab_t: float, clip: float | None) -> torch.Tensor:
    """x̂0(x_t) (float64), clamped to [-clip, clip] unless ``clip`` is None."""
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    ab = torch.tensor(ab_t, dtype=torch.float64, device=x.device)
    x0 = x0_from_v(x, ab, model(x, tt).double())
    return x0.clamp(-clip, clip) if clip is not None else x0


def _likelihood_step(
    model,
    x: torch.Tensor,
    t: int,
    ab_t: float,
    misfit: DataMisfit,
    method: str,
    var_t: float,
    trust: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x̂0 to step with, the DPS gradient or zeros, the misfit (B,)) at state x, timestep t."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        v = model(x, tt).to(torch.float64)
        x0 = x0_from_v(x, torch.tensor(ab_t, dtype=torch.float64, device=x.device), v)
        r = misfit(x0)
        if method == "noise_aware":
            (g,) = torch.autograd.grad((r / var_t).sum(), x)  # −∇ log p(y | x_t)
            step = (1.0 - ab_t) / ab_t**0.5 * g
            if trust is not None:  # RMS of the correction <= trust * sd of x0 | x_t (N(0, 1) prior)
                rms = step.flatten(1).square().mean(1).sqrt().clamp(min=1e-300)
                cap = trust * ((1.0 - ab_t) / ab_t) ** 0.5
                step = step * (cap / rms).clamp(max=1.0).view(-1, *([1] * (step.dim() - 1)))
            return x0.detach() - step, torch.zeros_like(g), r.detach()
        norm = (2.0 * r).clamp(min=1e-300).sqrt()  # at an exact fit: gradient 0, not NaN
        (g,) = torch.autograd.grad(norm.sum(), x)
    return x0.detach(), g, r.detach()


def _proximal_step(
    x0_hat: torch.Tensor,
    misfit: DataMisfit,
    var_y: float,
    rho2: float,
    inner: int,
    draw: tuple[DataMisfit, torch.Tensor] | None,
    report: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmin of misfit/σ_y² + ‖x0 − x̂0‖²/(2ρ²) per sample by ``inner`` batched L-BFGS
    iterations; its misfit (B,) when ``report``, else NaN, saving a solver call).

    With ``draw`` = (misfit against noise-perturbed data, a standard normal draw like x̂0), the
    perturbed data and x̂0 + ρ·draw are used instead: the minimiser is then a draw of
    x0 | x_t, y rather than its mean (exact for a linear forward operator).

    Solved in u = (x0 − x̂0)/ρ, where the prior term has unit curvature."""
    rho = rho2**0.5
    fit, centre = (misfit, torch.zeros_like(x0_hat)) if draw is None else draw

    def objective(u: torch.Tensor) -> torch.Tensor:
        return fit(x0_hat + rho * u) / var_y + 0.5 * (u - centre).flatten(1).square().sum(1)

    u, _ = batched_lbfgs(objective, centre.clone(), inner)
    x0 = x0_hat + rho * u
    if not report:
        return x0, torch.full(x0.shape[:1], float("nan"), dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        return x0, misfit(x0).detach()


def _draw(x0, i: int, generator, perturbed, step_perturbed) -> tuple | None:
    """The proximal step's (perturbed misfit, standard normal draw like x0) of step i, or None
    when neither ``perturbed`` nor ``step_perturbed`` is given."""
    if step_perturbed is not None:
        return step_perturbed(generator, i), _noise(x0, generator)
    if perturbed is not None:
        return perturbed(generator), _noise(x0, generator)
    return None


def _check_arguments(
    method, data_variance, state_variance, inner, step_size, step_misfit, perturbed, step_perturbed,
    resample_at, resample_ess, resample_groups, batch,
) -> None:  # fmt: skip
    """ValueError for a choice of :func:`sample_posterior` that cannot run."""
    if not all(isinstance(i, int) and i >= 0 for i in resample_at):
        raise ValueError(f"resample_at must hold step indices >= 0, got {resample_at!r}")
    if not (isinstance(resample_groups, int) and resample_groups >= 1):
        raise ValueError(f"resample_groups must be an integer >= 1, got {resample_groups!r}")
    if batch % resample_groups:
        raise ValueError(
            f"resample_groups ({resample_groups}) must divide the batch of {batch} particles"
        )
    if not (0.0 < resample_ess <= 1.0):
        raise ValueError(f"resample_ess must be in (0, 1], got {resample_ess}")
    if method not in POSTERIOR_METHODS:
        raise ValueError(f"method must be one of {POSTERIOR_METHODS}, got {method!r}")
    if method == "noise_aware" and data_variance is None:
        raise ValueError("method 'noise_aware' needs data_variance(t) = sigma_y^2 + r_t^2")
    if method == "proximal" and (data_variance is None or state_variance is None):
        raise ValueError("method 'proximal' needs data_variance(t) and state_variance(t)")
    if not (isinstance(inner, int) and inner >= 0):
        raise ValueError(f"inner must be an integer >= 0, got {inner!r}")
    if step_perturbed and (method != "proximal" or step_misfit is None):
        raise ValueError("step_perturbed_misfit is for 'proximal' with a step_misfit")
    if method == "proximal" and step_misfit is not None and perturbed and not step_perturbed:
        raise ValueError(
            "a 'proximal' step_misfit with perturbed_misfit needs step_perturbed_misfit "
            "(the perturbed data must be in each step's band)"
        )
    if method == "dps" and not (0 <= step_size < float("inf")):
        raise ValueError(f"step_size must be finite and >= 0, got {step_size}")


def _resampled(
    now: bool, state: tuple[torch.Tensor, ...], var_y: float, resampling: tuple, generator
) -> tuple[torch.Tensor | None, ...]:
    """``(*state, ancestors (B,))``: the particles' ``state`` (x, x0, g, r) after misfit resampling
    by their misfits r (B,) when ``now`` (``grouped_resample`` with β ≤ 1/σ_y²; ``resampling``
    = (ess fraction, groups, ancestry: None or a list the ancestors are appended to)), else
    unchanged with ancestors None."""
    if not now:
        return (*state, None)
    ess, groups, ancestry = resampling
    idx = grouped_resample(state[3], 1.0 / var_y, ess, groups, generator)
    if ancestry is not None:
        ancestry.append(idx.cpu())
    return (*(a[idx.to(a.device)] for a in state), idx)


def _positive(variance: Callable[[int], float] | None, t: int, name: str) -> float:
    """``variance(t)`` as a float (ValueError unless positive)."""
    v = float(variance(t))  # type: ignore[misc]
    if not v > 0:
        raise ValueError(f"{name}({t}) must be positive, got {v}")
    return v


def _ancestral(x, x0, ab_t: float, ab_s: float, last: bool, generator) -> torch.Tensor:
    """The DDPM posterior step q(x_s | x_t, x0): its mean at the last step, else a draw."""
    alpha = ab_t / ab_s
    beta = 1.0 - alpha
    mean = (ab_s**0.5 * beta * x0 + alpha**0.5 * (1.0 - ab_s) * x) / (1.0 - ab_t)
    if last:
        return mean
    var = beta * (1.0 - ab_s) / (1.0 - ab_t)
    return mean + var**0.5 * _noise(x, generator)


def _first_timestep(t_start: int | None, timesteps: int) -> int:
    """The timestep the sampler starts at: ``t_start``, or T − 1 when None (ValueError outside
    [0, T))."""
    if t_start is None:
        return timesteps - 1
    if not (isinstance(t_start, int) and 0 <= t_start < timesteps):
        raise ValueError(f"t_start must be an integer in [0, {timesteps}), got {t_start!r}")
    return t_start


def sample_posterior(
    model,
    z: torch.Tensor,
    steps: int,
    *,
    misfit: DataMisfit,
    method: str = "noise_aware",
    data_variance: Callable[[int], float] | None = None,
    step_size: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    clip: float | None = 1.0,
    trust: float | None = 1.0,
    state_variance: Callable[[int], float] | None = None,
    inner: int = 5,
    perturbed_misfit: Callable[[torch.Generator | None], DataMisfit] | None = None,
    t_start: int | None = None,
    step_misfit: Callable[[int], DataMisfit] | None = None,
    step_perturbed_misfit: Callable[[torch.Generator | None, int], DataMisfit] | None = None,
    resample_at: Collection[int] = (),
    resample_ess: float = 0.5,
    ancestry: list[torch.Tensor] | None = None,
    resample_groups: int = 1,
) -> torch.Tensor:
    """Posterior samples from noise ``z`` in ``steps`` denoiser evaluations (each with a misfit).

    Args:
        model: a v-prediction denoiser ``model(x_t, t)`` with ``model.schedule``.
        z: (B, ...) starting noise x_T.
        steps: sampler steps (≤ T), evenly spaced timesteps.
        misfit: ``misfit(x0) -> (B,)`` ½‖G(x0) − y‖², differentiable in x0.
        method: "dps", "noise_aware" or "proximal".
        data_variance: for "noise_aware": ``t -> σ_y² + r_t²`` (per data value, misfit units);
            for "proximal": ``t -> σ_y²`` (the data noise alone).
        step_size: ζ of "dps" (unused by "noise_aware"); generator: the ancestral noise.
        callback: ``callback({"i", "t", "x", "x0", "misfit", "ancestors"})`` after every step
            (``ancestors``: the particles' indices (B,) after a resampling step, else None).
        clip: the clean estimate is clamped to [-clip, clip] (None: not clamped).
        trust: "noise_aware" only: the likelihood's correction of x̂0 is scaled down, per sample,
            to an RMS of at most ``trust`` · √((1 − ᾱ_t)/ᾱ_t), the spread of x0 given x_t under a
            unit-variance prior (None: no cap). It binds only where the Gaussian likelihood's
            linearisation would throw the estimate far past what x_t allows.
        state_variance: for "proximal": ``t -> ρ_t²``, the variance of x0 given x_t per state
            value (the denoiser's mean squared error).
        inner: for "proximal": L-BFGS iterations per step (about as many misfit calls).
        perturbed_misfit: for "proximal": ``perturbed_misfit(generator)`` is the misfit against
            the data plus a fresh draw of their noise N(0, σ_y² I), independent per sample.
            Given, each step draws x0 | x_t, y (perturb-then-optimise) instead of taking its
            mean; the ancestral step then samples exactly for a linear forward operator and a
            Gaussian prior, where plugging in the mean makes the spread too narrow.
        t_start: the timestep ``z`` is at (None: T − 1, pure noise): with a clean map x noised
            to it, ``√ᾱ x + √(1 − ᾱ) ε``, the sampler refines x (SDEdit) instead of drawing from
            scratch; the ``steps`` timesteps are then spread over [0, t_start].
        step_misfit: ``i -> misfit`` of reverse step i (0 … steps − 1) in place of ``misfit``
            (e.g. a likelihood on low-passed data early and the full band late).
        step_perturbed_misfit: "proximal" with ``step_misfit`` and drawing: ``(generator, i)
            -> misfit`` against perturbed data in step i's band, in place of perturbed_misfit.
        resample_at: steps (0 … steps − 1) after whose likelihood step the particles are
            resampled by that step's misfit (:mod:`~ubdiff_phys.diffusion.resampling`: tempered
            to an effective size ≥ ``resample_ess`` · B, in ``resample_groups`` equal groups,
            each on its own like separate runs); the next ancestral step's noise parts copies.
        ancestry: a list each resampling appends the ancestor indices (B,) to (composed, each
            sample's first particle), at no misfit evaluation ("proximal" with a callback: one).

    Returns:
        (B, ...) float64 samples.
    """
    _check_arguments(
        method, data_variance, state_variance, inner, step_size, step_misfit,
        perturbed_misfit is not None, step_perturbed_misfit is not None, resample_at, resample_ess,
        resample_groups, z.shape[0],
    )  # fmt: skip
    resampling = (resample_ess, resample_groups, ancestry)
    ab_all = model.schedule.alphas_cumprod.tolist()
    seq = timestep_sequence(_first_timestep(t_start, model.schedule.timesteps) + 1, steps)
    x = z.to(torch.float64)
    for i, t in enumerate(seq):
        s = seq[i + 1] if i + 1 < len(seq) else -1
        ab_t, ab_s = ab_all[t], (ab_all[s] if s >= 0 else 1.0)
        var_t = _positive(data_variance, t, "data_variance") if data_variance else 1.0
        fit = misfit if step_misfit is None else step_misfit(i)
        if method == "proximal":
            x0 = _denoise(model, x, t, ab_t, clip)
            rho2 = _positive(state_variance, t, "state_variance")
            draw = _draw(x0, i, generator, perturbed_misfit, step_perturbed_misfit)
            report = callback is not None or i in resample_at
            x0, r = _proximal_step(x0, fit, var_t, rho2, inner, draw, report)
            g = torch.zeros_like(x0)
        else:
            x0, g, r = _likelihood_step(model, x, t, ab_t, fit, method, var_t, trust)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        state = (x, x0, g, r)
        x, x0, g, r, ancestors = _resampled(i in resample_at, state, var_t, resampling, generator)
        x = _ancestral(x, x0, ab_t, ab_s, s < 0, generator)
        if method == "dps":
            x = x - step_size * g
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0, "misfit": r, "ancestors": ancestors})
    return x.detach()
