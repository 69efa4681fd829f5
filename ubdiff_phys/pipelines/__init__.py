"""Jobs built on the libraries: sampling a store, the main generate-and-validate job, physics
validation and re-simulation of stored pairs, evaluation and the unbalanced-data experiment.

:mod:`.generator` (one loaded, verified UB-Diff generator), :mod:`.sample` (``sample``),
:mod:`.generate_and_validate` (the main job; :mod:`.trace`, :mod:`.figures`), :mod:`.validate`
(``validate``), :mod:`.resimulate` (``resimulate``), :mod:`.seismic_branch` (pair a diffusion
model with a re-trained seismic branch), :mod:`.evaluate` (``evaluate``),
:mod:`.experiment` (``examples/unbalanced_experiment.py``), :mod:`.cli` (their commands).
"""

from ubdiff_phys.pipelines.generate_and_validate import generate_and_validate, reference_residuals
from ubdiff_phys.pipelines.generator import (
    Generator,
    load_generator,
    package_checkpoint,
    shipped_checkpoint,
)
from ubdiff_phys.pipelines.resimulate import resimulate_store
from ubdiff_phys.pipelines.sample import generate_store
from ubdiff_phys.pipelines.seismic_branch import rebind_diffusion, swap_seismic_branch
from ubdiff_phys.pipelines.trace import residual_trace
from ubdiff_phys.pipelines.validate import ValidationSummary, validate_store

__all__ = [
    "Generator",
    "ValidationSummary",
    "generate_and_validate",
    "generate_store",
    "load_generator",
    "package_checkpoint",
    "rebind_diffusion",
    "reference_residuals",
    "resimulate_store",
    "residual_trace",
    "shipped_checkpoint",
    "swap_seismic_branch",
    "validate_store",
]
