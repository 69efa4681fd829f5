"""Former name of the validation jobs, kept as an alias: they live in
:mod:`ubdiff_phys.pipelines` (pipelines layer, see ``docs/architecture.md``)."""

from ubdiff_phys.pipelines import (
    ValidationSummary,
    generate_and_validate,
    load_generator,
    reference_residuals,
    residual_trace,
    resimulate_store,
    shipped_checkpoint,
    validate_store,
)

__all__ = [
    "ValidationSummary",
    "generate_and_validate",
    "load_generator",
    "reference_residuals",
    "resimulate_store",
    "residual_trace",
    "shipped_checkpoint",
    "validate_store",
]
