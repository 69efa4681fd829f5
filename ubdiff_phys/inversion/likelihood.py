"""The physics likelihood of posterior sampling: ½‖F(v(x0)) − d‖² of a prior's states, on the
native fused misfit + adjoint, optionally on low-passed data (a band-scheduled likelihood).

A band's misfit is ½‖h ∗ (F(v) − d)‖² / ‖h‖₂², h the band's low-pass
(:func:`~ubdiff_phys.inversion.multiscale.band_problem`: data and source wavelet filtered, exact
by the scheme's linearity). The division by ‖h‖₂², the variance gain of white noise through h,
keeps the misfit of pure noise at its full-band value ½Nσ², so one noise variance serves every
band.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ubdiff_phys.inversion.multiscale import band_problem, band_schedule, gaussian_lowpass_taps
from ubdiff_phys.physics.misfit import misfit_and_grad
from ubdiff_phys.physics.survey import Survey

__all__ = ["NativeMisfit", "StateMisfits", "likelihood_options"]

#: ``misfit(x0) -> (B,)``: the data misfit of each state, differentiable in x0
StateMisfit = Callable[[torch.Tensor], torch.Tensor]


class NativeMisfit(torch.autograd.Function):
    """½‖F(v) − d‖² per model with the native fused misfit + adjoint (one call):
    ``NativeMisfit.apply(v (B, 1, nz, nx) [m/s], observed (B, S, nt, R), survey, boundary)``."""

    @staticmethod
    def forward(ctx, v, observed, survey, boundary):  # type: ignore[override]
        f, g = misfit_and_grad(v.detach(), observed, survey, boundary=boundary)
        ctx.save_for_backward(g)
        return f

    @staticmethod
    def backward(ctx, grad_f):  # type: ignore[override]
        (g,) = ctx.saved_tensors
        return (grad_f[:, None, None, None] * g[:, None]).to(g.dtype), None, None, None


@dataclass
class StateMisfits:
    """½‖F(v(x0)) − d‖² of ``prior``'s states (``prior.velocity(x0)`` [m/s]) against data,
    counting the batched solver calls."""

    prior: Any
    survey: Survey
    boundary: str
    calls: int = 0

    def against(self, data: torch.Tensor, cutoff_hz: float | None = None) -> StateMisfit:
        """``x0 (B, ...) -> (B,)`` against ``data`` (B, S, nt, R), differentiable in x0; with
        ``cutoff_hz``, the band's misfit (module docstring) instead of the full band's."""
        survey, data, gain = self._band(data, cutoff_hz)

        def misfit(x0: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            f = NativeMisfit.apply(self.prior.velocity(x0), data, survey, self.boundary)
            return f if gain == 1.0 else f / gain

        return misfit

    def scheduled(
        self, data: torch.Tensor, steps: int, bands: Sequence[float | None], full_from: float
    ) -> Callable[[int], StateMisfit]:
        """``i -> misfit`` of reverse step i of ``steps``: the band of
        :func:`~ubdiff_phys.inversion.multiscale.band_schedule`."""
        per_step = band_schedule(steps, bands, full_from)
        cache: dict[float | None, StateMisfit] = {}

        def at(i: int) -> StateMisfit:
            cut = per_step[i]
            if cut not in cache:
                cache[cut] = self.against(data, cut)
            return cache[cut]

        return at

    def perturbed(self, data: torch.Tensor, noise_std: float):
        """``generator -> misfit`` against ``data`` plus a fresh N(0, noise_std²) draw."""

        def draw(gen: torch.Generator | None) -> StateMisfit:
            noise = torch.randn(data.shape, generator=gen, dtype=torch.float64)
            return self.against(data + (noise_std * noise).to(data))

        return draw

    def perturbed_scheduled(
        self,
        data: torch.Tensor,
        noise_std: float,
        steps: int,
        bands: Sequence[float | None],
        full_from: float,
    ) -> Callable[[torch.Generator | None, int], StateMisfit]:
        """``(generator, i) -> misfit`` of reverse step i against ``data`` plus a fresh
        N(0, noise_std²) draw, in the band :meth:`scheduled` gives step i (the noise is drawn
        full-band, then low-passed with the data, so the band's misfit keeps its variance)."""
        per_step = band_schedule(steps, bands, full_from)

        def draw(gen: torch.Generator | None, i: int) -> StateMisfit:
            noise = torch.randn(data.shape, generator=gen, dtype=torch.float64)
            return self.against(data + (noise_std * noise).to(data), per_step[i])

        return draw

    def _band(self, data: torch.Tensor, cutoff_hz: float | None):
        """(survey, data, noise variance gain ‖h‖²) of one band (the inputs and 1 for None)."""
        if cutoff_hz is None:
            return self.survey, data, 1.0
        survey, filtered = band_problem(self.survey, data, cutoff_hz)
        gain = float(gaussian_lowpass_taps(cutoff_hz, self.survey.dt).square().sum())
        return survey, filtered.contiguous(), gain


def _data_variance(err: Any, noise_std: float) -> Callable[[int], float]:
    """``t -> σ_d² + r_t²``: the noise-aware likelihood's variance per data value."""

    def variance(t: int) -> float:
        return noise_std**2 + err.rms_at(t) ** 2

    return variance


def likelihood_options(method, err, noise_std, settings, trust, step_size, inner) -> dict:
    """The keyword arguments of :func:`~ubdiff_phys.diffusion.posterior.sample_posterior` that
    ``method`` needs, for the denoiser error ``err`` (a
    :class:`~ubdiff_phys.inversion.prior.DenoiserError`; None for "dps") and noise σ_d
    ``noise_std``; records them in ``settings``."""
    if method == "noise_aware":
        settings["trust"] = trust
        return {"data_variance": _data_variance(err, noise_std), "trust": trust}
    if method == "proximal":
        settings["inner"] = inner
        return {
            "data_variance": lambda t: noise_std**2,
            "state_variance": lambda t: err.state_rms_at(t) ** 2,
            "inner": inner,
        }
    settings["step_size"] = step_size
    return {"step_size": step_size}
