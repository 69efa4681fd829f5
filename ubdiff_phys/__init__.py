"""ubdiff_phys: physics-checked generation of paired velocity maps and seismic gathers.

Subpackages: ``physics`` (survey geometry, wavelets, the acoustic finite-difference solver),
``data`` (velocity families, the HDF5 store, OpenFWI import, normalisation, datasets),
``models`` (the UB-Diff 1-in-2-out autoencoder), ``train`` (two-step training, ``train-ae``),
``eval`` (MAE/MSE/RMSE/SSIM), ``ops`` (torch-facing native ops and their pure-PyTorch references).
"""

from ubdiff_phys import data, models, physics
from ubdiff_phys._native import build_info
from ubdiff_phys.runtime.version import __version__

__all__ = ["__version__", "build_info", "data", "models", "physics"]
