"""The prior's approximation error in velocity: what its decoder cannot express.

A latent prior's samples are decoder outputs D(z); a true map v is not, in general, any D(z):
even its own encoding comes back as D(E(v)) = v − e(v). Posterior samples therefore agree on
the decoder's best reconstructions and their spread cannot show e. Following the Bayesian
approximation-error approach (Kaipio & Somersalo), this module measures e per pixel on held-out
maps, ``e_rms = sqrt(mean_maps (D(E(v)) − v)²)`` [m/s], stores it beside the checkpoint
(``decoder_error.json``) and lets :meth:`ubdiff_phys.inversion.PosteriorResult.interval` widen the
prediction interval with it (``kind="approximation"``). A velocity-space prior has e = 0 apart
from clamping to its range.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DECODER_ERROR_FILE",
    "DecoderError",
    "beside_checkpoint",
    "decoder_error_path",
    "estimate_decoder_error",
]

#: stored beside the prior's ``diffusion.pt`` (the shipped layout) or its checkpoint file
DECODER_ERROR_FILE = "decoder_error.json"


@dataclass(frozen=True)
class DecoderError:
    """Pixel-wise RMS of the prior's reconstruction error D(E(v)) − v.

    Attributes:
        rms: (nz, nx) nested lists, the RMS error per pixel [m/s].
        n_maps: maps it averages over; source: what they were (e.g. "held-out store rows").
    """

    rms: list[list[float]]
    n_maps: int
    source: str

    def tensor(self) -> torch.Tensor:
        """The RMS map as a (1, nz, nx) float32 tensor [m/s]."""
        return torch.tensor(self.rms, dtype=torch.float32)[None]

    @property
    def mean_rms(self) -> float:
        """sqrt of the mean squared error over all pixels [m/s]."""
        return math.sqrt(float(self.tensor().double().square().mean()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "ubdiff_phys.decoder_error",
            "rms": self.rms,
            "n_maps": self.n_maps,
            "source": self.source,
            "mean_rms": self.mean_rms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecoderError:
        if d.get("kind") != "ubdiff_phys.decoder_error":
            raise ValueError(f"not a decoder error record (kind {d.get('kind')!r})")
        return cls(
            rms=[[float(x) for x in row] for row in d["rms"]],
            n_maps=int(d["n_maps"]),
            source=str(d["source"]),
        )


def beside_checkpoint(diff_path: Path, name: str) -> Path:
    """Where a record ``name`` of the diffusion checkpoint file ``diff_path`` is stored: ``name``
    itself beside a shipped ``diffusion.pt``, else ``<stem>.<name>`` beside the file."""
    shipped = diff_path.name == "diffusion.pt"
    return diff_path.parent / (name if shipped else f"{diff_path.stem}.{name}")


def decoder_error_path(diff_path: Path) -> Path:
    """Where the decoder error of a diffusion checkpoint file ``diff_path`` is stored."""
    return beside_checkpoint(diff_path, DECODER_ERROR_FILE)


def stored_decoder_error(path: Path) -> DecoderError | None:
    """The record at ``path``, or None when there is none."""
    return DecoderError.from_dict(json.loads(path.read_text())) if path.is_file() else None


@torch.no_grad()
def estimate_decoder_error(
    prior: Any, velocities: torch.Tensor, *, source: str = "held-out maps", batch: int = 32
) -> DecoderError:
    """Measure the pixel-wise RMS of ``prior.velocity(prior.encode(v)) − v``.

    Args:
        prior: a :class:`~ubdiff_phys.inversion.prior.LatentPrior` or ``VelocityPrior``.
        velocities: (N, 1, nz, nx) maps [m/s], N ≥ 2, ideally maps the autoencoder did not train
            on (its training maps understate the error).
        source: what ``velocities`` are (recorded); batch: maps per decoder call.

    Returns:
        :class:`DecoderError` with ``rms`` of shape (nz, nx) [m/s].
    """
    if velocities.dim() != 4 or velocities.shape[1] != 1 or velocities.shape[0] < 2:
        raise ValueError(f"velocities must be (N >= 2, 1, nz, nx), got {tuple(velocities.shape)}")
    total = torch.zeros(velocities.shape[2:], dtype=torch.float64)
    for i in range(0, velocities.shape[0], batch):
        v = velocities[i : i + batch].float()
        r = prior.velocity(prior.encode(v)).float().cpu() - v
        total += r.double().square().sum((0, 1))
    rms = (total / velocities.shape[0]).sqrt()
    rounded = [[round(x, 2) for x in row] for row in rms.tolist()]  # 0.01 m/s: ample
    return DecoderError(rms=rounded, n_maps=int(velocities.shape[0]), source=source)
