"""Inversion: velocity from observed gathers with the native adjoint: deterministic FWI, and
posterior sampling with the latent diffusion prior (DPS and the noise-aware likelihood)."""

from ubdiff_phys.inversion.fwi import OPTIMIZERS, FWIResult, fwi, smooth_velocity
from ubdiff_phys.inversion.posterior import PosteriorResult, modelling_survey, posterior_sample
from ubdiff_phys.inversion.prior import (
    DenoiserError,
    LatentPrior,
    estimate_denoiser_error,
    load_prior,
)

__all__ = [
    "OPTIMIZERS",
    "DenoiserError",
    "FWIResult",
    "LatentPrior",
    "PosteriorResult",
    "estimate_denoiser_error",
    "fwi",
    "load_prior",
    "modelling_survey",
    "posterior_sample",
    "smooth_velocity",
]
