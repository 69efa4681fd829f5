"""A low-rank Gaussian model of the decoder's approximation error, and its fit to the data.

A latent prior's samples are decoder outputs D(z); the true map is v = D(z) + e with e what the
decoder cannot draw (:mod:`~ubdiff_phys.inversion.decoder_error` stores its pixel-wise RMS). The
Bayesian approximation-error approach (Kaipio & Somersalo) models e as Gaussian; here its mean ē
and covariance come from e = v − D(E(v)) over many maps, the covariance as its first k principal
components: e = ē + Σ_j c_j s_j b_j, c ~ N(0, I), with b_j the components and s_j their standard
deviations [m/s]. On the shipped FlatVel-A prior 64 components hold 98 % of the error's variance
(512 fresh maps): the error is structured (smeared, misplaced interfaces), not pixel noise.

:func:`fit_error` fits c to the data for each posterior sample D(z_i) by randomised maximum
likelihood: minimise ½‖F(D(z_i) + e(c)) − d̃_i‖²/σ² + ½‖c − η_i‖² with d̃_i the data plus fresh
noise N(0, σ²) and η_i ~ N(0, I) (for a linear forward operator each minimiser is an exact draw
from p(c | z_i, d)); ``draw=False`` fits d and 0 instead (each sample's most likely correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.inversion.decoder_error import beside_checkpoint
from ubdiff_phys.inversion.likelihood import NativeMisfit
from ubdiff_phys.physics.survey import Survey
from ubdiff_phys.runtime.files import atomic_path
from ubdiff_phys.runtime.lbfgs import batched_lbfgs

__all__ = [
    "ERROR_BASIS_FILE",
    "ErrorBasis",
    "error_basis_path",
    "estimate_error_basis",
    "fit_error",
    "stored_error_basis",
]

#: stored beside the prior's ``diffusion.pt`` (the shipped layout) or its checkpoint file
ERROR_BASIS_FILE = "decoder_error_basis.npz"


@dataclass(frozen=True)
class ErrorBasis:
    """Mean and scaled principal components of the decoder error e = v − D(E(v)).

    Attributes:
        mean: (nz, nx) float32 mean error ē [m/s].
        components: (k, nz, nx) float32 s_j b_j: unit components times their standard
            deviations [m/s] (stored as float16: a prior's covariance needs no more).
        n_maps: maps it was measured on; source: what they were; explained: share of the
            error's variance (about its mean) the k components hold.
    """

    mean: torch.Tensor
    components: torch.Tensor
    n_maps: int
    source: str
    explained: float

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    def field(self, c: torch.Tensor) -> torch.Tensor:
        """(B, k) coefficients -> (B, 1, nz, nx) error fields ē + Σ_j c_j s_j b_j [m/s], in the
        dtype of ``c``."""
        comps = self.components.to(c).flatten(1)
        e = self.mean.to(c).flatten() + c @ comps
        return e.reshape(c.shape[0], 1, *self.mean.shape)

    def save(self, path: Path) -> None:
        """Write the basis to ``path`` (``.npz``) atomically."""
        with atomic_path(path, suffix=".tmp.npz") as tmp:
            np.savez(
                tmp,
                mean=self.mean.float().numpy(),
                components=self.components.half().numpy(),
                n_maps=np.int64(self.n_maps),
                source=np.str_(self.source),
                explained=np.float64(self.explained),
            )

    @classmethod
    def load(cls, path: Path) -> ErrorBasis:
        with np.load(path) as z:
            return cls(
                mean=torch.from_numpy(z["mean"]).float(),
                components=torch.from_numpy(z["components"]).float(),
                n_maps=int(z["n_maps"]),
                source=str(z["source"]),
                explained=float(z["explained"]),
            )

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (for reports)."""
        return {"k": self.k, "n_maps": self.n_maps, "source": self.source}


def error_basis_path(diff_path: Path) -> Path:
    """Where the error basis of a diffusion checkpoint file ``diff_path`` is stored."""
    return beside_checkpoint(diff_path, ERROR_BASIS_FILE)


def stored_error_basis(path: Path) -> ErrorBasis | None:
    """The basis at ``path``, or None when there is none."""
    return ErrorBasis.load(path) if path.is_file() else None


@torch.no_grad()
def estimate_error_basis(
    prior: Any, velocities: torch.Tensor, k: int = 64, *, source: str = "maps", batch: int = 32
) -> ErrorBasis:
    """Mean and first ``k`` principal components of ``v − prior.velocity(prior.encode(v))``.

    Args:
        prior: a :class:`~ubdiff_phys.inversion.prior.LatentPrior` (or anything with ``encode``
            and ``velocity``).
        velocities: (N, 1, nz, nx) maps [m/s], N > k, ideally maps the autoencoder did not
            train on (its training maps understate the error).
        k: principal components kept; source: what ``velocities`` are (recorded).

    Returns:
        :class:`ErrorBasis` with ``explained`` the share of variance the k components hold.
    """
    n = velocities.shape[0]
    if velocities.dim() != 4 or velocities.shape[1] != 1 or not 0 < k < n:
        raise ValueError(
            f"velocities must be (N, 1, nz, nx) with N > k = {k} > 0, got {tuple(velocities.shape)}"
        )
    errs = []
    for i in range(0, n, batch):
        v = velocities[i : i + batch].float()
        errs.append(v - prior.velocity(prior.encode(v)).float().cpu())
    e = torch.cat(errs).double().flatten(1)
    mean = e.mean(0)
    _, sv, vh = torch.linalg.svd(e - mean, full_matrices=False)
    explained = float(sv[:k].square().sum() / sv.square().sum().clamp(min=1e-300))
    comps = (sv[:k, None] / math.sqrt(n - 1)) * vh[:k]
    shape = velocities.shape[2:]
    return ErrorBasis(
        mean=mean.reshape(shape).float(),
        components=comps.reshape(k, *shape).float(),
        n_maps=n,
        source=source,
        explained=explained,
    )


def fit_error(
    samples: torch.Tensor,
    observed: torch.Tensor,
    survey: Survey,
    boundary: str,
    basis: ErrorBasis,
    noise_std: float,
    bounds: tuple[float, float],
    iterations: int,
    *,
    draw: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Add to each sample the error field that best explains the data under the basis's prior.

    Args:
        samples: (n, 1, nz, nx) decoder outputs [m/s].
        observed: (n, S, nt, R) observed gathers, one copy per sample [amplitude].
        survey, boundary: the modelling (the C-PML pinned as the sampler's).
        basis: the prior's :class:`ErrorBasis`; noise_std: σ [amplitude].
        bounds: (v_min, v_max) [m/s]: the corrected maps are clamped to them.
        iterations: batched L-BFGS iterations (each one or more batched solver calls: 51-68
            calls for 40 iterations on the shipped prior).
        draw: randomised maximum likelihood (a posterior draw per sample); False: the mode.
        generator: draws of the perturbations (float64, CPU).

    Returns:
        (corrected samples (n, 1, nz, nx) float32 [m/s], batched solver calls made).
    """
    n = samples.shape[0]
    data = observed.double()
    eta = torch.zeros(n, basis.k, dtype=torch.float64)
    if draw:
        noise = torch.randn(data.shape, generator=generator, dtype=torch.float64)
        data = data + noise_std * noise.to(data.device)
        eta = torch.randn(eta.shape, generator=generator, dtype=torch.float64)
    data = data.float().contiguous()
    base = samples.double()
    eta = eta.to(base.device)

    def velocity(c: torch.Tensor) -> torch.Tensor:
        return (base + basis.field(c)).clamp(*bounds)

    def objective(c: torch.Tensor) -> torch.Tensor:
        f = NativeMisfit.apply(velocity(c).float(), data, survey, boundary).double()
        return f / noise_std**2 + 0.5 * (c - eta).square().sum(1)

    c, calls = batched_lbfgs(objective, eta.clone(), iterations)
    with torch.no_grad():
        return velocity(c).float(), calls
