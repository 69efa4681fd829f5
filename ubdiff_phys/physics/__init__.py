"""Acoustic wave physics: survey geometry, source wavelets and the finite-difference solver."""

from ubdiff_phys.physics.forward import BOUNDARIES, courant_number, simulate
from ubdiff_phys.physics.survey import STABILITY_LIMIT, Survey
from ubdiff_phys.physics.wavelets import ricker_openfwi

__all__ = [
    "BOUNDARIES",
    "STABILITY_LIMIT",
    "Survey",
    "courant_number",
    "ricker_openfwi",
    "simulate",
]
