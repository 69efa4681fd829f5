"""What every trainer does to resume a run: find ``<out_dir>/last.pt``, check that it was written
with the same config (options that do not change the numbers may differ), then hand it over.

Writing the resume point (atomically, with the RNG state) is :mod:`ubdiff_phys.runtime.checkpoint`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RESUME_FREE", "config_mismatch", "resume_point"]

#: (section, option) pairs a resumed run may change: they do not change the numbers
RESUME_FREE = frozenset({("run", "progress"), ("run", "threads"), ("run", "device")})


def config_mismatch(a: dict[str, Any], b: dict[str, Any], free=RESUME_FREE) -> list[str]:
    """The ``section.option`` names whose values differ between two config dicts (except
    ``free`` ones), sorted."""
    out = []
    for section in set(a) | set(b):
        for key in set(a.get(section, {})) | set(b.get(section, {})):
            if (section, key) in free:
                continue
            if a.get(section, {}).get(key) != b.get(section, {}).get(key):
                out.append(f"{section}.{key}")
    return sorted(out)


def resume_point(
    out_dir: Path, config: dict[str, Any], load: Callable[[Path], dict[str, Any]]
) -> dict[str, Any] | None:
    """The checkpoint ``out_dir/last.pt`` read with ``load``, or None when there is none.

    Raises:
        ValueError: it was written with a different config (the differing options are named).
    """
    last = Path(out_dir) / "last.pt"
    if not last.exists():
        return None
    ckpt = load(last)
    diff = config_mismatch(ckpt["config"], config)
    if diff:
        raise ValueError(
            f"{last} was written with a different config ({', '.join(diff)}); "
            "use another run.out_dir or --restart"
        )
    return ckpt
