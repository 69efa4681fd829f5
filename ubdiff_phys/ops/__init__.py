"""Torch-facing native ops: argument checks, CPU/CUDA dispatch, pure-PyTorch references."""

from ubdiff_phys.ops.acoustic import AcousticProblem, acoustic_forward
from ubdiff_phys.ops.group_norm_film_silu import (
    GroupNormFiLMSiLU,
    group_norm_film_silu,
    is_native_eligible,
    native_ineligible_reason,
)

__all__ = [
    "AcousticProblem",
    "acoustic_forward",
    "GroupNormFiLMSiLU",
    "group_norm_film_silu",
    "is_native_eligible",
    "native_ineligible_reason",
]
