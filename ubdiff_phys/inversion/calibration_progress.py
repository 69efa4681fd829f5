"""A calibration run's progress on disk: each finished map's conformal scores, so that an
interrupted ``calibrate-interval`` (a map costs minutes to an hour on a CPU) resumes at the map it
stopped at, and a later run with a larger ``--n-maps`` reuses the maps already done.

The file (``<record>.partial.pt`` beside the calibration record it leads to) holds the run's key,
the settings that decide the scores (sampler, sharpening, FWI start, noise, level, seed, which
priors), and per map: a fingerprint of the true map, its scores, its posterior's settings, its
base-interval coverage and its seconds. Maps are reused only under the same key and only where the
fingerprints of the maps asked for match, in order; anything else is refused (the caller decides
whether to start over). Written atomically after every map.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CalibrationProgress",
    "ProgressMismatch",
    "map_fingerprint",
    "progress_key",
    "progress_path",
]

_VERSION = 1


class ProgressMismatch(ValueError):
    """The progress file belongs to a run with other settings or other maps."""


def progress_path(record: Path) -> Path:
    """Where the progress of the run that writes the calibration record ``record`` is kept."""
    return record.with_name(record.name + ".partial.pt")


def map_fingerprint(truth: torch.Tensor) -> str:
    """sha256 of a true map's float32 values (any shape): which map a stored score belongs to."""
    data = truth.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _estimates(prior: Any) -> str:
    """The stored estimates that change a prior's posterior (denoiser error, decoder error, error
    basis), as one sha256; empty when it has none."""
    h, found = hashlib.sha256(), False
    for name in ("denoiser_error", "decoder_error", "error_basis"):
        est = getattr(prior, name, None)
        if est is None:
            continue
        found = True
        h.update(name.encode())
        if hasattr(est, "to_dict"):
            h.update(json.dumps(est.to_dict(), sort_keys=True, default=str).encode())
        else:  # the error basis: its tensors
            for t in (est.mean, est.components):
                h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return f", stored estimates sha256 {h.hexdigest()}" if found else ""


def _canonical(value: Any) -> str:
    """A setting as a stable string (JSON; a prior by the sha256 of its diffusion checkpoint, so
    that moving its folder keeps the key; one built in memory only by its kind)."""

    def default(obj: Any) -> Any:
        info = getattr(obj, "info", None)
        if isinstance(info, dict) and Path(str(info.get("diffusion", ""))).is_file():
            return f"prior sha256 {_file_sha256(str(info['diffusion']))}{_estimates(obj)}"
        return f"{type(obj).__name__} without a checkpoint file"  # in-memory: by kind only

    return json.dumps(value, sort_keys=True, default=default)


@dataclass
class CalibrationProgress:
    """The maps a calibration run has finished (in order), and the key they were made under.

    path: the progress file (None: kept in memory only).
    key: each deciding setting as a canonical string.
    maps: per finished map, ``{"map": fingerprint, "scores": (P,) float64, "settings": dict,
        "coverage": float, "seconds": float}``.
    """

    path: Path | None
    key: dict[str, str]
    maps: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        path: Path | None,
        settings: dict[str, Any],
        fingerprints: list[str],
        *,
        restart: bool = False,
    ) -> CalibrationProgress:
        """The progress at ``path`` usable for a run with ``settings`` over maps ``fingerprints``.

        Raises:
            ProgressMismatch: the file holds another run (other settings, or other maps at the
                same positions) and ``restart`` is False. With ``restart`` it is ignored (and
                replaced at the first save).
        """
        key = {k: _canonical(v) for k, v in settings.items()}
        if path is None or not path.is_file() or restart:
            return cls(path, key)
        d = torch.load(path, weights_only=True)
        if d.get("version") != _VERSION or d.get("key") != key:
            old = d.get("key", {})
            differ = sorted(k for k in key.keys() | old.keys() if key.get(k) != old.get(k))
            raise ProgressMismatch(
                f"{path} holds a calibration run with other settings ({', '.join(differ)})"
            )
        done = d["maps"][: len(fingerprints)]
        for k, (m, fp) in enumerate(zip(done, fingerprints, strict=False)):
            if m["map"] != fp:
                raise ProgressMismatch(f"{path} holds another map at position {k + 1}")
        return cls(path, key, list(done))

    def add(self, entry: dict[str, Any]) -> None:
        """Record one more finished map and write the file (atomically)."""
        self.maps.append(entry)
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        torch.save({"version": _VERSION, "key": self.key, "maps": self.maps}, tmp)
        os.replace(tmp, self.path)


def progress_key(
    prior: Any,
    *,
    noise: float,
    level: float,
    n_samples: int,
    steps: int,
    trust: float | None,
    bands: Sequence[float | None] | None,
    full_band_from: float,
    latent_fit: int,
    sharpen: dict[str, Any] | None,
    fwi: dict[str, Any] | None,
    seed: int,
    keep_best_of: int | None = None,
) -> dict[str, Any]:
    """The settings that decide a calibration run's scores
    (:func:`~ubdiff_phys.inversion.calibration_cli.calibrate_interval`'s, same names), as its
    progress file is keyed by them (:class:`CalibrationProgress`): ``prior``,
    ``sampler`` (``posterior_sample``'s settings), ``sharpen``, ``fwi``, ``noise``, ``level``,
    ``seed`` and ``base`` (the interval kind scaled)."""
    base = "predictive" if prior.decoder_error is None or sharpen else "approximation"
    sampler = {"n_samples": n_samples, "steps": steps, "trust": trust, "bands": bands}
    sampler |= {"full_band_from": full_band_from, "latent_fit": latent_fit}
    sampler |= {} if keep_best_of is None else {"keep_best_of": keep_best_of}
    key = {"prior": prior, "sampler": sampler, "sharpen": sharpen, "fwi": fwi, "noise": noise}
    return key | {"level": level, "seed": seed, "base": base}
