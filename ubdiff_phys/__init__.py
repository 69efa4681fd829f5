"""ubdiff_phys: physics-checked generation of paired velocity maps and seismic gathers.

Subpackages: ``physics`` (survey geometry, wavelets, the acoustic finite-difference solver),
``data`` (velocity families, the HDF5 store, OpenFWI import, normalisation, datasets),
``ops`` (torch-facing native ops and their pure-PyTorch references).
"""

__version__ = "0.1.0"

from ubdiff_phys import data, physics  # noqa: E402
from ubdiff_phys._native import build_info  # noqa: E402

__all__ = ["__version__", "build_info", "data", "physics"]
