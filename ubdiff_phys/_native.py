"""Loads the native module ``ubdiff_phys._C``.

Importing ubdiff_phys never fails because the native module is missing or broken: the reason is
recorded and raised, with advice, only when a native op is actually called.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ubdiff_phys.runtime.version import __version__

__all__ = ["native", "native_available", "build_info"]

_module: ModuleType | None = None
_error: str | None = None


def _load() -> ModuleType | None:
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = importlib.import_module("ubdiff_phys._C")
        except ImportError as exc:  # not built, or built for another interpreter
            _error = f"{type(exc).__name__}: {exc}"
    return _module


def native_available() -> bool:
    """True when the compiled module ``ubdiff_phys._C`` could be imported."""
    return _load() is not None


def native() -> ModuleType:
    """The compiled module; raises RuntimeError with the import failure if it is unavailable."""
    module = _load()
    if module is None:
        raise RuntimeError(
            "the native module ubdiff_phys._C is not available "
            f"({_error}). Reinstall the package from source (pip install .), or pass "
            'backend="reference" to use the pure-PyTorch implementation.'
        )
    return module


def build_info() -> dict[str, Any]:
    """Describe this build: version, CUDA on/off, CUDA version, architectures, OpenMP.

    Returns:
        dict with keys ``version`` (str), ``native`` (bool: the compiled module loaded),
        ``native_error`` (str or None), ``cuda`` (bool: CUDA kernels compiled in),
        ``cuda_version`` (str or None), ``cuda_architectures`` (str or None, e.g. "80;90"),
        ``cuda_devices`` (int: devices the CUDA runtime sees), ``openmp`` (bool).
    """
    module = _load()
    info: dict[str, Any] = {
        "version": __version__,
        "native": module is not None,
        "native_error": _error,
        "cuda": False,
        "cuda_version": None,
        "cuda_architectures": None,
        "cuda_devices": 0,
        "openmp": False,
    }
    if module is not None:
        info.update(module.build_info())
        info["version"] = __version__
        info["cuda_devices"] = int(module.cuda_device_count()) if info["cuda"] else 0
    return info
