"""The diffusion prior of posterior inversion, and the denoiser's error in data space (the
noise-aware likelihood's r_t). Two kinds share one interface (``denoiser``, ``latent_shape``,
``velocity``, ``encode``, ``bounds``, ``survey``, ``boundary``, ``denoiser_error``):

- :class:`LatentPrior`: a trained UB-Diff latent diffusion model and its velocity decoder;
  ``velocity(z)`` maps co-latents to velocity [m/s] differentiably (decoder output clamped to the
  normalised range [-1, 1], then the training store's normaliser);
- :class:`VelocityPrior`: a diffusion model on the normalised velocity maps themselves
  (``train-velocity-diffusion``); ``velocity(x)`` only clamps and denormalises.
 The denoiser error
r_t is the RMS, per data value, of ``F(v(x̂0(z_t))) − F(v(z0))`` over encoded training velocities
z0 and fresh noise at timestep t: what the likelihood of x_t must add to the data noise. It is
estimated once per (prior, survey, boundary) on a grid of timesteps and interpolated in log r.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.diffusion.checkpoint import is_velocity_checkpoint
from ubdiff_phys.diffusion.targets import q_sample, x0_from_v
from ubdiff_phys.inversion.decoder_error import (
    DECODER_ERROR_FILE,
    DecoderError,
    beside_checkpoint,
    decoder_error_path,
    stored_decoder_error,
)
from ubdiff_phys.inversion.error_basis import ErrorBasis, error_basis_path, stored_error_basis
from ubdiff_phys.inversion.interval_calibration import (
    IntervalCalibration,
    interval_calibration_path,
    stored_interval_calibration,
)
from ubdiff_phys.physics.forward import simulate
from ubdiff_phys.physics.survey import Survey
from ubdiff_phys.pipelines.generator import load_generator
from ubdiff_phys.runtime.files import atomic_write_json

__all__ = [
    "DENOISER_ERROR_FILE",
    "DenoiserError",
    "LatentPrior",
    "VelocityPrior",
    "estimate_denoiser_error",
    "load_prior",
]

#: stored beside the prior's ``diffusion.pt`` (the shipped layout) or its checkpoint file
DENOISER_ERROR_FILE = "denoiser_error.json"


@dataclass(frozen=True)
class DenoiserError:
    """RMS data-space error r_t of the denoiser at a grid of timesteps.

    Attributes:
        timesteps: increasing integer timesteps of the grid.
        rms: r_t at those timesteps [physical amplitude per data value].
        boundary, survey: the modelling it was measured with (a posterior on another survey
            cannot use it).
        n_maps: velocities it averages over; source: what they were (e.g. "training maps").
        state_rms: the same error in the prior's own state (RMS of x̂0 − x0 per latent value or
            normalised pixel; ``method="proximal"``'s ρ_t), or None when not measured.
    """

    timesteps: list[int]
    rms: list[float]
    boundary: str
    survey: dict[str, Any]
    n_maps: int
    source: str = "training maps"
    state_rms: list[float] | None = None

    def rms_at(self, t: int) -> float:
        """r_t at timestep t: linear interpolation of log r_t (ends held constant)."""
        return _log_interp(t, self.timesteps, self.rms)

    def state_rms_at(self, t: int) -> float:
        """ρ_t at timestep t, interpolated like :meth:`rms_at` (ValueError when not measured)."""
        if self.state_rms is None:
            raise ValueError("this denoiser error has no state-space RMS (measured before it was)")
        return _log_interp(t, self.timesteps, self.state_rms)

    def matches(self, survey: Survey, boundary: str) -> bool:
        return self.boundary == boundary and self.survey == survey.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "ubdiff_phys.denoiser_error",
            "timesteps": self.timesteps,
            "rms": self.rms,
            "boundary": self.boundary,
            "survey": self.survey,
            "n_maps": self.n_maps,
            "source": self.source,
            "state_rms": self.state_rms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenoiserError:
        return cls(
            timesteps=[int(t) for t in d["timesteps"]],
            rms=[float(r) for r in d["rms"]],
            boundary=str(d["boundary"]),
            survey=dict(d["survey"]),
            n_maps=int(d["n_maps"]),
            source=str(d.get("source", "training maps")),
            state_rms=None if d.get("state_rms") is None else [float(r) for r in d["state_rms"]],
        )


def _log_interp(t: int, grid: list[int], values: list[float]) -> float:
    logs = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-300))
    return float(np.exp(np.interp(float(t), grid, logs)))


def _first_tensor(module: torch.nn.Module) -> torch.Tensor:
    """A parameter (else a buffer) of ``module``: where and in which dtype it computes."""
    for t in (*module.parameters(), *module.buffers()):
        return t
    raise ValueError("the prior's autoencoder has neither parameters nor buffers")


@dataclass(kw_only=True)
class _PriorCommon:
    """What both prior kinds hold and compute alike (keyword-only fields):

    denoiser: the v-prediction model (``denoiser.schedule``) over the prior's states.
    normalizer: the training store's normaliser (velocity range [v_min, v_max] m/s).
    survey, boundary: the training data's modelling (None when it records none).
    device: where the prior computes.
    error_path: where the denoiser error is stored; denoiser_error: the stored estimate, or None.
    decoder_error: the stored pixel-wise approximation error of the decoder
        (:mod:`ubdiff_phys.inversion.decoder_error`), or None.
    interval_calibration: the stored scale of the posterior interval
        (:mod:`ubdiff_phys.inversion.interval_calibration`), or None.
    sharpened_interval_calibration: the stored scale of the interval of this prior's posterior
        after :func:`~ubdiff_phys.inversion.sharpen_samples` (``calibrate-interval --sharpen``),
        or None.
    fwi_sharpened_interval_calibration: (velocity-space priors) the stored scale of the interval
        after this prior sharpens the :func:`~ubdiff_phys.inversion.fwi_start` start
        (``calibrate-interval VELOCITY_PRIOR --sharpen --sharpen-from fwi``), or None.
    fwi_pooled_interval_calibration: the same for chains pooled over several FWI starts
        (``... --sharpen-fwi-pool K``, K > 1), or None.
    error_basis: the stored low-rank model of the decoder error
        (:mod:`ubdiff_phys.inversion.error_basis`), or None.
    info: where it was loaded from.
    """

    denoiser: Any
    normalizer: Any
    survey: Survey | None
    boundary: str
    device: torch.device
    error_path: Path
    denoiser_error: DenoiserError | None = None
    decoder_error: DecoderError | None = None
    interval_calibration: IntervalCalibration | None = None
    sharpened_interval_calibration: IntervalCalibration | None = None
    fwi_sharpened_interval_calibration: IntervalCalibration | None = None
    fwi_pooled_interval_calibration: IntervalCalibration | None = None
    error_basis: ErrorBasis | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float]:
        return float(self.normalizer.v_min), float(self.normalizer.v_max)

    def _denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """normalised maps -> velocity [m/s] float32, clamped to [-1, 1] first."""
        lo, hi = self.bounds
        return (x.float().clamp(-1, 1) + 1) * (0.5 * (hi - lo)) + lo

    def _normalise(self, v: torch.Tensor) -> torch.Tensor:
        lo, hi = self.bounds
        return 2 * (v.float() - lo) / (hi - lo) - 1

    def save_denoiser_error(self, err: DenoiserError) -> None:
        """Store ``err`` beside the checkpoint (atomic) and keep it on the prior."""
        atomic_write_json(self.error_path, err.to_dict())
        self.denoiser_error = err

    @property
    def decoder_error_path(self) -> Path:
        """Where the decoder error is stored (beside the denoiser error)."""
        name = self.error_path.name
        stem = name[: -len(DENOISER_ERROR_FILE)] if name.endswith(DENOISER_ERROR_FILE) else ""
        return self.error_path.parent / f"{stem}{DECODER_ERROR_FILE}"

    def save_decoder_error(self, err: DecoderError) -> None:
        """Store ``err`` beside the checkpoint (atomic) and keep it on the prior."""
        atomic_write_json(self.decoder_error_path, err.to_dict())
        self.decoder_error = err

    @property
    def interval_calibration_path(self) -> Path:
        """Where the interval calibration is stored (beside the checkpoint)."""
        return interval_calibration_path(Path(self.info["diffusion"]))

    @property
    def sharpened_interval_calibration_path(self) -> Path:
        """Where the calibration of the sharpened posterior's interval is stored."""
        return interval_calibration_path(Path(self.info["diffusion"]), sharpened=True)

    @property
    def fwi_sharpened_interval_calibration_path(self) -> Path:
        """Where the calibration of this prior's sharpening of the FWI start is stored."""
        return interval_calibration_path(Path(self.info["diffusion"]), fwi_start=True)

    @property
    def fwi_pooled_interval_calibration_path(self) -> Path:
        """Where the calibration of this prior's sharpening of pooled FWI starts is stored."""
        return interval_calibration_path(Path(self.info["diffusion"]), fwi_start=True, pooled=True)

    def save_interval_calibration(
        self,
        cal: IntervalCalibration,
        *,
        sharpened: bool = False,
        fwi_start: bool = False,
        pooled: bool = False,
    ) -> None:
        """Store ``cal`` beside the checkpoint (atomic) and keep it on the prior (``sharpened``:
        as the calibration of the sharpened posterior; ``fwi_start``: of this prior's
        sharpening of the FWI start; with ``pooled``: of chains pooled over several starts)."""
        if fwi_start and pooled:
            atomic_write_json(self.fwi_pooled_interval_calibration_path, cal.to_dict())
            self.fwi_pooled_interval_calibration = cal
        elif fwi_start:
            atomic_write_json(self.fwi_sharpened_interval_calibration_path, cal.to_dict())
            self.fwi_sharpened_interval_calibration = cal
        elif sharpened:
            atomic_write_json(self.sharpened_interval_calibration_path, cal.to_dict())
            self.sharpened_interval_calibration = cal
        else:
            atomic_write_json(self.interval_calibration_path, cal.to_dict())
            self.interval_calibration = cal

    @property
    def error_basis_path(self) -> Path:
        """Where the decoder error's basis is stored (beside the checkpoint)."""
        return error_basis_path(Path(self.info["diffusion"]))

    def save_error_basis(self, basis: ErrorBasis) -> None:
        """Store ``basis`` beside the checkpoint (atomic) and keep it on the prior."""
        basis.save(self.error_basis_path)
        self.error_basis = basis


@dataclass(kw_only=True)
class LatentPrior(_PriorCommon):
    """A latent diffusion prior over velocity (see the module docstring).

    Attributes:
        denoiser: the v-prediction model (``denoiser.schedule``) over (B, 1, latent_dim).
        autoencoder: its UB-Diff autoencoder (``decode_velocity``/``encode`` are used).
        normalizer: the training store's normaliser (velocity range [v_min, v_max] m/s).
        survey, boundary: the training data's modelling (None when it records none).
        error_path: where the denoiser error is stored.
        denoiser_error: the stored estimate, or None.
    """

    autoencoder: Any
    latent_dim: int

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (1, int(self.latent_dim))

    def velocity(self, z: torch.Tensor) -> torch.Tensor:
        """co-latents (B, ...) -> velocity (B, 1, nz, nx) float32 [m/s], differentiable in z."""
        p = _first_tensor(self.autoencoder)
        return self._denormalise(
            self.autoencoder.decode_velocity(z.reshape(z.shape[0], -1).to(p.device, p.dtype))
        )

    @torch.no_grad()
    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """velocity (B, 1, nz, nx) [m/s] -> co-latents (B, 1, latent_dim) float64."""
        p = _first_tensor(self.autoencoder)
        x = self._normalise(v).to(p.device, p.dtype)
        return self.autoencoder.encode(x).reshape(v.shape[0], 1, -1).double()


@dataclass(kw_only=True)
class VelocityPrior(_PriorCommon):
    """A diffusion prior on the normalised velocity maps themselves.

    Attributes:
        denoiser: the v-prediction model over (B, 1, nz, nx) maps in [-1, 1].
        shape: (nz, nx) of its maps.
        normalizer: the training store's normaliser (velocity range [v_min, v_max] m/s).
        survey, boundary: the training data's modelling (None when it records none).
        error_path, denoiser_error: as for :class:`LatentPrior`.
    """

    shape: tuple[int, int]

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (1, int(self.shape[0]), int(self.shape[1]))

    def velocity(self, x: torch.Tensor) -> torch.Tensor:
        """normalised maps (B, 1, nz, nx) -> velocity (B, 1, nz, nx) float32 [m/s]."""
        return self._denormalise(x.to(self.device))

    @torch.no_grad()
    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """velocity (B, 1, nz, nx) [m/s] -> normalised maps float64 (the prior's x0)."""
        return self._normalise(v).to(self.device).double()


def _error_path(diff_path: Path) -> Path:
    """Where a checkpoint file's denoiser error is stored."""
    return beside_checkpoint(diff_path, DENOISER_ERROR_FILE)


def _stored_error(path: Path) -> DenoiserError | None:
    return DenoiserError.from_dict(json.loads(path.read_text())) if path.is_file() else None


def _stored_calibrations(diff_path: Path) -> dict[str, IntervalCalibration | None]:
    """The interval calibrations stored beside ``diff_path``, as the priors' fields."""
    kinds = {
        "interval_calibration": {},
        "sharpened_interval_calibration": {"sharpened": True},
        "fwi_sharpened_interval_calibration": {"fwi_start": True},
        "fwi_pooled_interval_calibration": {"fwi_start": True, "pooled": True},
    }
    return {
        name: stored_interval_calibration(interval_calibration_path(diff_path, **kw))
        for name, kw in kinds.items()
    }


def load_velocity_prior(
    checkpoint: str | os.PathLike, device: Any = "cpu", *, weights: str = "model"
) -> VelocityPrior:
    """Load a velocity-space diffusion checkpoint (run folder or file) as a
    :class:`VelocityPrior`, with its stored denoiser error when there is one."""
    gen = load_generator(checkpoint, device, weights=weights, require_survey=False)
    if gen.has_seismic_decoder:
        raise ValueError(f"{str(checkpoint)!r} is not a velocity-space checkpoint")
    error_path = _error_path(Path(gen.info["diffusion"]))
    c = gen.denoiser.net.config
    return VelocityPrior(
        denoiser=gen.denoiser,
        shape=(c.nz, c.nx),
        normalizer=gen.normalizer,
        survey=gen.survey,
        boundary=gen.boundary,
        device=gen.device,
        error_path=error_path,
        denoiser_error=_stored_error(error_path),
        decoder_error=stored_decoder_error(decoder_error_path(Path(gen.info["diffusion"]))),
        **_stored_calibrations(Path(gen.info["diffusion"])),
        error_basis=stored_error_basis(error_basis_path(Path(gen.info["diffusion"]))),
        info=dict(gen.info),
    )


def load_prior(
    checkpoint: str | os.PathLike | None = None, device: Any = "cpu"
) -> LatentPrior | VelocityPrior:
    """Load a checkpoint (default: the shipped one) as a prior, with its stored denoiser error
    when there is one: a UB-Diff checkpoint as a :class:`LatentPrior`, a velocity-space one
    (``train-velocity-diffusion``) as a :class:`VelocityPrior`."""
    if checkpoint is not None and is_velocity_checkpoint(checkpoint):
        return load_velocity_prior(checkpoint, device)
    gen = load_generator(checkpoint, device, require_survey=False)
    gen.autoencoder.eval()
    gen.denoiser.eval()
    error_path = _error_path(Path(gen.info["diffusion"]))
    return LatentPrior(
        denoiser=gen.denoiser,
        autoencoder=gen.autoencoder,
        normalizer=gen.normalizer,
        latent_dim=int(gen.denoiser.net.config.seq_len),
        survey=gen.survey,
        boundary=gen.boundary,
        device=gen.device,
        error_path=error_path,
        denoiser_error=_stored_error(error_path),
        decoder_error=stored_decoder_error(decoder_error_path(Path(gen.info["diffusion"]))),
        **_stored_calibrations(Path(gen.info["diffusion"])),
        error_basis=stored_error_basis(error_basis_path(Path(gen.info["diffusion"]))),
        info=dict(gen.info),
    )


@torch.no_grad()
def estimate_denoiser_error(
    prior: LatentPrior | VelocityPrior,
    velocities: torch.Tensor,
    survey: Survey,
    *,
    boundary: str,
    n_timesteps: int = 12,
    seed: int = 0,
    source: str = "training maps",
) -> DenoiserError:
    """Measure r_t on ``n_timesteps`` timesteps spread over [0, T−1] (denser at low noise, where
    r_t changes fastest).

    Args:
        velocities: (N, 1, nz, nx) training velocities [m/s] (encoded to z0).
        survey, boundary: the modelling of the posterior it will serve.
        seed: the noise draws; source: what ``velocities`` are (recorded).

    Returns:
        :class:`DenoiserError` with the state-space RMS too (each timestep costs N solver runs).
    """
    T = prior.denoiser.schedule.timesteps
    grid = np.unique(np.round((T - 1) * np.linspace(0, 1, n_timesteps) ** 2).astype(int))
    z0 = prior.encode(velocities)
    d0 = simulate(prior.velocity(z0), survey, boundary=boundary).double()
    g = torch.Generator().manual_seed(seed)
    ab_all = prior.denoiser.schedule.alphas_cumprod
    rms: list[float] = []
    state_rms: list[float] = []
    for t in grid.tolist():
        eps = torch.randn(z0.shape, generator=g, dtype=torch.float64).to(z0.device)
        ab = ab_all[t].to(torch.float64).to(z0.device)
        zt = q_sample(z0, ab, eps)
        tt = torch.full((z0.shape[0],), t, dtype=torch.long, device=z0.device)
        x0 = x0_from_v(zt, ab, prior.denoiser(zt, tt).double()).clamp(-1, 1)
        d = simulate(prior.velocity(x0), survey, boundary=boundary).double()
        rms.append(math.sqrt(float((d - d0).square().mean())))
        state_rms.append(math.sqrt(float((x0 - z0).square().mean())))
    return DenoiserError(
        timesteps=grid.tolist(),
        rms=rms,
        boundary=boundary,
        survey=survey.to_dict(),
        n_maps=int(velocities.shape[0]),
        source=source,
        state_rms=state_rms,
    )
