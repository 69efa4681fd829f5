"""Multiscale FWI: frequency continuation from low-passed data to the full band (Bunks et al.
1995), the usual remedy for FWI's cycle skipping from a start whose long wavelengths are off.

Each band low-passes the observed gathers with a causal Gaussian FIR filter h and models with the
source wavelet filtered by the same h. The finite-difference scheme is linear and time-invariant
in its source term (zero initial state), so F(v; h ∗ w) = h ∗ F(v; w) exactly, to float
round-off: the band's misfit ½‖h ∗ (F(v) − d)‖² is the native fused misfit of the filtered
problem and costs what a full-band evaluation costs. Only the physical misfit is supported: the
OpenFWI log normalisation is not linear, so it does not commute with the filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ubdiff_phys.inversion.fwi import FWIResult, fwi
from ubdiff_phys.physics.survey import Survey

__all__ = [
    "DEFAULT_BANDS",
    "band_problem",
    "band_schedule",
    "gaussian_lowpass_taps",
    "lowpass_time",
    "multiscale_fwi",
    "parse_bands",
]

#: low-pass corner frequencies [Hz] of the default continuation; None is the full band. Chosen
#: for the OpenFWI 15 Hz Ricker survey (its spectrum peaks at 15 Hz; 3 Hz keeps a fifth of the
#: peak amplitude).
DEFAULT_BANDS: tuple[float | None, ...] = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, None)


def gaussian_lowpass_taps(cutoff_hz: float, dt: float) -> torch.Tensor:
    """Causal Gaussian FIR low-pass (float64 taps, summing to 1): amplitude response
    exp(−(2π f s)²/2) with s chosen so that it is ½ (−6 dB) at ``cutoff_hz``; the kernel spans
    ±3 s and is delayed by 3 s (``dt`` [s] the sampling interval) so that it is causal (the
    truncation moves the response by < 1 % of the peak: 0.503 at a 3 Hz cut-off)."""
    if not (cutoff_hz > 0 and math.isfinite(cutoff_hz)):
        raise ValueError(f"cutoff must be a positive frequency in Hz, got {cutoff_hz!r}")
    if cutoff_hz >= 0.5 / dt:
        raise ValueError(f"cutoff {cutoff_hz} Hz is at or above the Nyquist frequency {0.5 / dt}")
    s = math.sqrt(2.0 * math.log(2.0)) / (2.0 * math.pi * cutoff_hz)
    half = max(int(math.ceil(3.0 * s / dt)), 1)
    t = (torch.arange(2 * half + 1, dtype=torch.float64) - half) * dt
    h = torch.exp(-0.5 * (t / s) ** 2)
    return h / h.sum()


def lowpass_time(x: torch.Tensor, taps: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Causal convolution of ``x`` along ``dim`` with ``taps`` (1-D), truncated to the input's
    length (y[n] = Σ_k h[k] x[n − k], x = 0 before the first sample); computed in float64 by FFT,
    returned in ``x``'s dtype."""
    xm = x.movedim(dim, -1)
    n = xm.shape[-1]
    size = n + taps.numel()
    spec = torch.fft.rfft(xm.double(), n=size) * torch.fft.rfft(taps.to(x.device), n=size)
    return torch.fft.irfft(spec, n=size)[..., :n].to(x.dtype).movedim(-1, dim).contiguous()


def band_problem(
    survey: Survey, observed: torch.Tensor, cutoff_hz: float | None
) -> tuple[Survey, torch.Tensor]:
    """(survey whose wavelet is low-passed, observed gathers (…, nt, R) low-passed along time) for
    one band of the continuation; ``cutoff_hz`` None returns the inputs unchanged."""
    if cutoff_hz is None:
        return survey, observed
    taps = gaussian_lowpass_taps(cutoff_hz, survey.dt)
    wavelet = lowpass_time(torch.as_tensor(survey.source_wavelet()), taps)
    return survey.with_(wavelet=tuple(wavelet.tolist())), lowpass_time(observed, taps, dim=-2)


def band_schedule(
    steps: int, bands: Sequence[float | None], full_from: float
) -> list[float | None]:
    """The cut-off [Hz] of each of ``steps`` reverse-diffusion steps (None: the full band) for a
    band-scheduled likelihood: the cut-offs of ``bands`` in order, each for an equal share of
    the first round(``full_from`` × steps) steps, the full band for the rest (and for every step
    where ``bands`` holds no cut-off). ValueError for bad bands or ``full_from`` outside [0, 1]."""
    _check_bands(list(bands))
    if not 0.0 <= full_from <= 1.0:
        raise ValueError(f"full_from must be in [0, 1], got {full_from!r}")
    cuts = [b for b in bands if b is not None]
    n_cont = int(round(full_from * steps)) if cuts else 0
    return [cuts[i * len(cuts) // n_cont] if i < n_cont else None for i in range(steps)]


def parse_bands(text: str) -> tuple[float | None, ...]:
    """ "3,5,8,full" -> (3.0, 5.0, 8.0, None) (ValueError for anything else: cut-offs must be
    positive and increasing, "full" only last)."""
    out: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "full":
            out.append(None)
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise ValueError(f"bands must be frequencies in Hz or 'full', got {part!r}") from None
    _check_bands(out)
    return tuple(out)


def _check_bands(bands: Sequence[float | None]) -> None:
    if not bands:
        raise ValueError("bands is empty: give at least one cut-off or 'full'")
    if any(b is None for b in bands[:-1]):
        raise ValueError("the full band (None / 'full') can only be the last band")
    cuts = [b for b in bands if b is not None]
    if any(not (c > 0 and math.isfinite(c)) for c in cuts) or any(
        b <= a for a, b in zip(cuts, cuts[1:], strict=False)
    ):
        raise ValueError(f"band cut-offs must be positive and increasing, got {list(bands)}")


def multiscale_fwi(
    observed: torch.Tensor,
    survey: Survey | None,
    v_init: torch.Tensor,
    *,
    bands: Sequence[float | None] = DEFAULT_BANDS,
    iterations: int = 20,
    **kwargs: Any,
) -> FWIResult:
    """FWI over a sequence of low-pass bands, each started from the previous band's model.

    Args:
        observed: (B, n_sources, nt, n_receivers) gathers [physical amplitude].
        survey: the geometry the data were recorded with (default OpenFWI).
        v_init: (B, nz, nx) or (B, 1, nz, nx) starting model [m/s].
        bands: low-pass cut-offs [Hz] in increasing order, None (the full band) only last.
        iterations: L-BFGS iterations (or Adam steps) per band.
        **kwargs: :func:`~ubdiff_phys.inversion.fwi.fwi`'s other options (``normalizer`` is
            refused: the normalised misfit does not commute with the filter).

    Returns:
        :class:`FWIResult`: the last band's model; ``history`` the misfits of every band's
        evaluations, each against that band's filtered data; ``settings`` adds ``bands`` and
        ``band_evaluations`` (evaluations per band).
    """
    if kwargs.get("normalizer") is not None:
        raise ValueError("multiscale FWI needs the physical misfit (normalizer=None)")
    _check_bands(list(bands))
    survey = Survey.openfwi() if survey is None else survey
    v = v_init
    histories, counts = [], []
    result = None
    for cutoff in bands:
        band_survey, band_obs = band_problem(survey, observed, cutoff)
        result = fwi(band_obs, band_survey, v, iterations=iterations, **kwargs)
        v = result.velocity
        histories.append(result.history)
        counts.append(result.evaluations)
    assert result is not None
    settings = {**result.settings, "bands": list(bands), "band_evaluations": counts}
    return FWIResult(
        velocity=result.velocity,
        history=torch.cat(histories),
        evaluations=sum(counts),
        settings=settings,
    )
