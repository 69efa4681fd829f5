"""Datasets: OpenFWI-like velocity families, OpenFWI import, the HDF5 store, normalisation and
torch Datasets with unbalanced (velocity-only majority / paired minority) splits.

Modules: ``families`` (synthetic velocity maps), ``normalize`` (specs/data.md §2), ``store``
(HDF5 format, resumable writer, checked reader), ``build`` (make-dataset), ``openfwi_import``,
``datasets`` (torch views), ``family_stats`` (statistics measured like the real-data tables),
``cli`` (command-line entry points).
"""

from ubdiff_phys.data.build import BuildSummary, make_dataset, split_rows
from ubdiff_phys.data.datasets import (
    HeldOutDataset,
    NoisyPairedDataset,
    PairedDataset,
    SplitSpec,
    VelocityDataset,
    make_views,
)
from ubdiff_phys.data.families import FAMILIES, check_family, generate
from ubdiff_phys.data.normalize import (
    Normalizer,
    denormalize_seismic,
    denormalize_velocity,
    normalize_seismic,
    normalize_velocity,
)
from ubdiff_phys.data.openfwi_import import find_openfwi_pairs, import_openfwi
from ubdiff_phys.data.store import FORMAT_VERSION, Store, StoreError, StoreWriter, open_store

__all__ = [
    "FAMILIES",
    "FORMAT_VERSION",
    "BuildSummary",
    "HeldOutDataset",
    "Normalizer",
    "NoisyPairedDataset",
    "PairedDataset",
    "SplitSpec",
    "Store",
    "StoreError",
    "StoreWriter",
    "VelocityDataset",
    "check_family",
    "denormalize_seismic",
    "denormalize_velocity",
    "find_openfwi_pairs",
    "generate",
    "import_openfwi",
    "make_dataset",
    "make_views",
    "normalize_seismic",
    "normalize_velocity",
    "open_store",
    "split_rows",
]
