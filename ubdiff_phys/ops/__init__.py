"""Torch-facing native ops: argument checks, CPU/CUDA dispatch, pure-PyTorch references."""

from ubdiff_phys.ops.acoustic import AcousticProblem, acoustic_forward

__all__ = ["AcousticProblem", "acoustic_forward"]
