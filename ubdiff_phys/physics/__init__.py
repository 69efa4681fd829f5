"""Acoustic wave physics: survey geometry, wavelets, the finite-difference solver (differentiable
in the velocity), misfits and residuals."""

from ubdiff_phys.physics.baselines import Baselines, baselines, verdict
from ubdiff_phys.physics.forward import BOUNDARIES, courant_number, simulate
from ubdiff_phys.physics.misfit import misfit, misfit_and_grad
from ubdiff_phys.physics.residual import Residual, keep_mask, residual
from ubdiff_phys.physics.survey import STABILITY_LIMIT, Survey
from ubdiff_phys.physics.wavelets import ricker_openfwi

__all__ = [
    "BOUNDARIES",
    "Baselines",
    "STABILITY_LIMIT",
    "Residual",
    "Survey",
    "baselines",
    "courant_number",
    "keep_mask",
    "misfit",
    "misfit_and_grad",
    "residual",
    "ricker_openfwi",
    "simulate",
    "verdict",
]
