"""Pure-PyTorch twins of the native ops: the test oracles and the readable specification."""

from ubdiff_phys.ops.reference.acoustic import acoustic_forward_reference, misfit_sums_reference
from ubdiff_phys.ops.reference.group_norm_film_silu import group_norm_film_silu_reference

__all__ = [
    "acoustic_forward_reference",
    "group_norm_film_silu_reference",
    "misfit_sums_reference",
]
