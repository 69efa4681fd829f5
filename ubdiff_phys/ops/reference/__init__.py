"""Pure-PyTorch twins of the native ops: the test oracles and the readable specification."""

from ubdiff_phys.ops.reference.acoustic import acoustic_forward_reference

__all__ = ["acoustic_forward_reference"]
