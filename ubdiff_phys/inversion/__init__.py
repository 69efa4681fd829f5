"""Inversion: velocity from observed gathers with the native adjoint (deterministic FWI)."""

from ubdiff_phys.inversion.fwi import OPTIMIZERS, FWIResult, fwi, smooth_velocity

__all__ = ["OPTIMIZERS", "FWIResult", "fwi", "smooth_velocity"]
