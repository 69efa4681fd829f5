"""Inversion: velocity from observed gathers with the native adjoint: deterministic FWI (one band
or multiscale), posterior sampling with the latent diffusion prior (DPS and the noise-aware
likelihood), sharpening of its samples (or of an FWI start) with the velocity-space prior, and
multi-start FWI from the posterior samples."""

from ubdiff_phys.inversion.fwi import OPTIMIZERS, FWIResult, fwi, smooth_velocity
from ubdiff_phys.inversion.fwi_start import (
    LINEAR_CANDIDATES,
    fwi_start,
    parse_linear_starts,
    pooled_start,
)
from ubdiff_phys.inversion.multiscale import DEFAULT_BANDS, multiscale_fwi
from ubdiff_phys.inversion.posterior import PosteriorResult, modelling_survey, posterior_sample
from ubdiff_phys.inversion.prior import (
    DenoiserError,
    LatentPrior,
    estimate_denoiser_error,
    load_prior,
)
from ubdiff_phys.inversion.refine import RefinedSamples, refine_samples
from ubdiff_phys.inversion.sharpen import DEFAULT_SHARPEN, sharpen_samples

__all__ = [
    "DEFAULT_BANDS",
    "DEFAULT_SHARPEN",
    "OPTIMIZERS",
    "DenoiserError",
    "FWIResult",
    "LINEAR_CANDIDATES",
    "LatentPrior",
    "PosteriorResult",
    "RefinedSamples",
    "estimate_denoiser_error",
    "fwi",
    "fwi_start",
    "parse_linear_starts",
    "pooled_start",
    "load_prior",
    "modelling_survey",
    "multiscale_fwi",
    "posterior_sample",
    "refine_samples",
    "sharpen_samples",
    "smooth_velocity",
]
