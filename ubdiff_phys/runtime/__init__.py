"""The base layer: what every other layer may use and nothing here imports from above.

Atomic file writes and hashing (:mod:`.files`), code-free checkpoints and RNG state
(:mod:`.checkpoint`), the resume points every trainer shares (:mod:`.resume`), typed configs from
TOML (:mod:`.config`), device resolution (:mod:`.device`), ``torchrun`` process placement
(:mod:`.distributed`), distribution summaries (:mod:`.stats`) and the package version
(:mod:`.version`). See ``docs/architecture.md``.
"""

from ubdiff_phys.runtime.checkpoint import (
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from ubdiff_phys.runtime.config import (
    dump_toml,
    read_toml,
    section_from_dict,
    sections_from_dict,
    strict_from_dict,
)
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.distributed import DistributedContext, setup_distributed
from ubdiff_phys.runtime.files import atomic_path, atomic_write_json, atomic_write_text, file_sha256
from ubdiff_phys.runtime.resume import load_resume_point, save_resume_point
from ubdiff_phys.runtime.stats import distribution
from ubdiff_phys.runtime.version import __version__

__all__ = [
    "DistributedContext",
    "__version__",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "distribution",
    "dump_toml",
    "file_sha256",
    "get_rng_state",
    "load_checkpoint",
    "load_resume_point",
    "read_toml",
    "resolve_device",
    "save_checkpoint",
    "save_resume_point",
    "section_from_dict",
    "sections_from_dict",
    "set_rng_state",
    "setup_distributed",
    "strict_from_dict",
]
