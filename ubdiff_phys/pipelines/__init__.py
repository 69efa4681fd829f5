"""Physics validation of stored (velocity, seismic) pairs: residuals, filtering, summaries."""

from ubdiff_phys.validate.pairs import ValidationSummary, validate_store
from ubdiff_phys.validate.resimulate import resimulate_store

__all__ = ["ValidationSummary", "resimulate_store", "validate_store"]
from ubdiff_phys.validate.generate import (  # noqa: E402
    generate_and_validate,
    load_generator,
    reference_residuals,
    residual_trace,
    shipped_checkpoint,
)

__all__ += [
    "generate_and_validate",
    "load_generator",
    "reference_residuals",
    "residual_trace",
    "shipped_checkpoint",
]
