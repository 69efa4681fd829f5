"""Physics validation of stored (velocity, seismic) pairs: residuals, filtering, summaries."""

from ubdiff_phys.validate.pairs import ValidationSummary, validate_store

__all__ = ["ValidationSummary", "validate_store"]
