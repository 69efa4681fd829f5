"""ubdiff_phys: physics-checked generation of paired velocity maps and seismic gathers.

Subpackages: ``physics`` (survey geometry, wavelets, the acoustic finite-difference solver),
``data`` (velocity families, the HDF5 store, OpenFWI import, normalisation, datasets),
``models`` (the UB-Diff 1-in-2-out autoencoder), ``train`` (two-step training, ``train-ae``),
``eval`` (MAE/MSE/RMSE/SSIM), ``ops`` (torch-facing native ops and their pure-PyTorch references).
"""

import os

# OpenMP threads that spin while they wait collapse throughput on a shared, busy machine: the main
# job took 146 s instead of 31 s for 64 pairs on 2 loaded cores. The policy must be chosen before
# the OpenMP runtime starts (when torch is imported); an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ubdiff_phys import data, models, physics  # noqa: E402
from ubdiff_phys._native import build_info  # noqa: E402
from ubdiff_phys.runtime.version import __version__  # noqa: E402

__all__ = ["__version__", "build_info", "data", "models", "physics"]
