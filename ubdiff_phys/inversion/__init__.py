"""Inversion: velocity from observed gathers with the native adjoint: deterministic FWI (one band
or multiscale), posterior sampling with the latent diffusion prior (DPS and the noise-aware
likelihood), and multi-start FWI from the posterior samples."""

from ubdiff_phys.inversion.fwi import OPTIMIZERS, FWIResult, fwi, smooth_velocity
from ubdiff_phys.inversion.multiscale import DEFAULT_BANDS, multiscale_fwi
from ubdiff_phys.inversion.posterior import PosteriorResult, modelling_survey, posterior_sample
from ubdiff_phys.inversion.prior import (
    DenoiserError,
    LatentPrior,
    estimate_denoiser_error,
    load_prior,
)
from ubdiff_phys.inversion.refine import RefinedSamples, refine_samples

__all__ = [
    "DEFAULT_BANDS",
    "OPTIMIZERS",
    "DenoiserError",
    "FWIResult",
    "LatentPrior",
    "PosteriorResult",
    "RefinedSamples",
    "estimate_denoiser_error",
    "fwi",
    "load_prior",
    "modelling_survey",
    "multiscale_fwi",
    "posterior_sample",
    "refine_samples",
    "smooth_velocity",
]
