"""One trained UB-Diff generator: load and verify a checkpoint, sample seeded batches of
co-latents, decode them into (velocity, seismic) pairs in physical units, validate them.

Used by ``ubdiff-phys sample`` (:mod:`.sample`) and the main job (:mod:`.generate_and_validate`).

A velocity-space checkpoint (``train-velocity-diffusion``) loads as a :class:`VelocityGenerator`:
it samples velocity maps directly and has no seismic decoder, so its pairs take their gathers
from the solver (``--seismic solver``).

Checkpoints: a folder with ``diffusion.pt`` + ``autoencoder.pt`` (the shipped layout,
:func:`shipped_checkpoint`), or a ``train-diffusion`` run folder / checkpoint file whose config
names its autoencoder (``autoencoder`` overrides it). The autoencoder file's sha256 must be the one
the diffusion model's latents were encoded with.

Seeds: batch ``b`` draws its noise from a generator seeded by ``seed * 1_000_003 + b``
(:func:`batch_generator`), so a job's output depends only on (checkpoint, seed, n, batch, sampler,
steps) and an interrupted job resumes at its first unwritten batch.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ubdiff_phys.data import Normalizer
from ubdiff_phys.diffusion.checkpoint import (
    PACKAGED_VELOCITY_FILE,
    checkpoint_file,
    is_velocity_checkpoint,
    load_denoiser,
    load_diffusion_checkpoint,
    load_velocity_denoiser,
)
from ubdiff_phys.diffusion.config import DiffusionTrainConfig
from ubdiff_phys.diffusion.samplers import sample, sample_latents
from ubdiff_phys.physics import Survey, residual
from ubdiff_phys.runtime.errors import OptionError
from ubdiff_phys.runtime.files import atomic_write_json, file_sha256
from ubdiff_phys.train.checkpoint import load_autoencoder

__all__ = [
    "Generator",
    "VelocityGenerator",
    "batch_generator",
    "load_generator",
    "package_checkpoint",
    "recorded_survey",
    "shipped_checkpoint",
    "shipped_velocity_checkpoint",
]

#: the checkpoint shipped inside the package (trained by docs/shipped_checkpoint.md's commands)
SHIPPED_NAME = "flatvel_a_small"
#: the velocity-space model shipped beside it (docs/shipped_checkpoint.md, "The velocity model")
SHIPPED_VELOCITY_NAME = "flatvel_a_velocity"
SHIPPED_VELOCITY_FILE = PACKAGED_VELOCITY_FILE
BOUNDARIES = ("openfwi", "pml", "none")


def shipped_checkpoint() -> Path:
    """Folder of the checkpoint shipped in the package (``ubdiff_phys/assets/flatvel_a_small``)."""
    return Path(__file__).resolve().parent.parent / "assets" / SHIPPED_NAME


def shipped_velocity_checkpoint() -> Path:
    """File of the velocity-space diffusion model shipped in the package
    (``ubdiff_phys/assets/flatvel_a_velocity/velocity_diffusion.pt``): the main job's default
    generator in its default seismic mode (``solver``)."""
    return shipped_checkpoint().parent / SHIPPED_VELOCITY_NAME / SHIPPED_VELOCITY_FILE


def batch_generator(seed: int, b: int) -> torch.Generator:
    """The noise generator of batch ``b`` of a job seeded with ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + b)


@dataclass
class Generator:
    """A loaded (denoiser, autoencoder) pair and what its training data recorded.

    ``survey`` is None when the training data records none (e.g. an OpenFWI import): such a
    generator samples and decodes but cannot validate."""

    denoiser: Any
    autoencoder: Any
    autoencoder_config: Any
    normalizer: Any
    survey: Any
    boundary: str
    store_attrs: dict[str, Any]
    device: torch.device
    info: dict[str, Any]

    def sample(
        self,
        m: int,
        *,
        seed: int,
        b: int,
        sampler: str = "ddim",
        steps: int | None = 50,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Batch ``b`` of a job seeded with ``seed``: ``m`` co-latents (m, latent_dim) float32 on
        the generator's device (``kwargs``: the sampler's, e.g. ``callback``, ``eta``)."""
        return sample_latents(
            self.denoiser,
            m,
            sampler=sampler,
            steps=steps,
            generator=batch_generator(seed, b),
            device=self.device,
            **kwargs,
        )

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """co-latents (B, latent_dim) -> (velocity [m/s] (B, 1, nz, nx), seismic (B, S, nt, R)),
        float32 on the generator's device; decoder outputs are clamped to the normalised range
        [-1, 1] before denormalising (in float64) with the training store's normaliser."""
        p = next(self.autoencoder.parameters())
        v, s = self.autoencoder.decode(z.to(p.device, p.dtype))
        v = self.normalizer.velocity_inverse(v.float().clamp(-1, 1).double())
        s = self.normalizer.seismic_inverse(s.float().clamp(-1, 1).double())
        return v.float(), s.float()

    #: the decoder makes gathers ("decoder" and "guided" seismic modes are possible)
    has_seismic_decoder = True

    @property
    def seismic_shape(self) -> tuple[int, int, int]:
        """(n_sources, nt, n_receivers) of the gathers it makes."""
        return tuple(self.autoencoder_config.model.seismic_shape)

    def residual(self, v: torch.Tensor, s: torch.Tensor, **kwargs: Any):
        """:func:`ubdiff_phys.physics.residual` with the training data's survey/boundary/norm."""
        if self.survey is None:
            raise ValueError("this generator's training data records no survey")
        return residual(
            v, s, self.survey, boundary=self.boundary, normalizer=self.normalizer, **kwargs
        )


@dataclass
class VelocityGenerator:
    """A velocity-space diffusion model (``train-velocity-diffusion``) as a generator of velocity
    maps; the gathers of its pairs come from the solver. Same seeds and batches as
    :class:`Generator`."""

    denoiser: Any
    normalizer: Any
    survey: Any
    boundary: str
    store_attrs: dict[str, Any]
    device: torch.device
    info: dict[str, Any]

    has_seismic_decoder = False

    @property
    def seismic_shape(self) -> tuple[int, int, int]:
        if self.survey is None:
            raise ValueError("this generator's training data records no survey")
        return (self.survey.n_sources, self.survey.nt, self.survey.n_receivers)

    def sample(
        self, m: int, *, seed: int, b: int, sampler: str = "ddim", steps: int | None = 50,
        **kwargs: Any,
    ) -> torch.Tensor:  # fmt: skip
        """Batch ``b`` of a job seeded with ``seed``: ``m`` normalised maps (m, 1, nz, nx) float32
        on the generator's device (``kwargs``: the sampler's)."""
        c = self.denoiser.net.config
        steps = None if steps is None else min(steps, self.denoiser.schedule.timesteps)
        x = sample(
            self.denoiser,
            (m, 1, c.nz, c.nx),
            sampler=sampler,
            steps=steps,
            generator=batch_generator(seed, b),
            device=self.device,
            **kwargs,
        )
        return x.float()

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """normalised maps -> (velocity [m/s] (B, 1, nz, nx) float32, None: no seismic decoder);
        clamped to [-1, 1] before denormalising, as :meth:`Generator.decode` does."""
        v = self.normalizer.velocity_inverse(x.float().clamp(-1, 1).double())
        return v.float(), None

    residual = Generator.residual


def _load_velocity_generator(path: Path, device: torch.device, weights: str, require: bool):
    den, _, ckpt = load_velocity_denoiser(path, device, weights=weights)
    attrs = dict(ckpt["store_attrs"])
    diff_path = checkpoint_file(path)
    survey, boundary = recorded_survey(attrs, diff_path, require)
    info = {
        "checkpoint": str(path),
        "diffusion": str(diff_path),
        "kind": "velocity",
        "diffusion_step": int(ckpt["state"]["step"]),
        "weights": weights,
        "shipped": diff_path.resolve() == shipped_velocity_checkpoint().resolve(),
    }
    return VelocityGenerator(
        denoiser=den,
        normalizer=Normalizer.from_dict(attrs["normalization"]),
        survey=survey,
        boundary=boundary,
        store_attrs=attrs,
        device=device,
        info=info,
    )


def _autoencoder_path(path: Path, shipped_layout: bool, cfg, autoencoder) -> Path:
    if autoencoder is not None:
        ae_path = Path(autoencoder)
    elif shipped_layout:
        ae_path = path / "autoencoder.pt"
    else:
        ae_path = Path(cfg.data.autoencoder)
    if not ae_path.exists():
        raise FileNotFoundError(
            f"autoencoder {str(ae_path)!r} not found; pass the one the diffusion model was "
            "trained on with --autoencoder"
        )
    return ae_path


def recorded_survey(attrs: dict[str, Any], diff_path: Path, require: bool):
    """(Survey or None, boundary) a checkpoint's training-store attributes record; ``require``:
    refuse a checkpoint that records none."""
    if not attrs.get("survey"):
        if not require:
            return None, str(attrs.get("boundary", ""))
        raise ValueError(
            f"{str(diff_path)!r} records no survey for its training data (e.g. an OpenFWI "
            "import): the pairs cannot be validated against the data's own solver settings"
        )
    boundary = str(attrs.get("boundary", ""))
    if boundary not in BOUNDARIES:
        raise ValueError(f"{str(diff_path)!r} records an unknown boundary mode {boundary!r}")
    return Survey.from_dict(attrs["survey"]), boundary


def load_generator(
    checkpoint: str | os.PathLike | None = None,
    device: Any = "cpu",
    *,
    autoencoder: str | os.PathLike | None = None,
    weights: str = "model",
    require_survey: bool = True,
) -> Generator | VelocityGenerator:
    """Load a checkpoint (default: the shipped one) on ``device``; check the autoencoder's sha256.
    A velocity-space checkpoint loads as a :class:`VelocityGenerator` (``autoencoder`` must then
    be None).

    ``require_survey``: refuse a checkpoint whose training data records no survey (it could not
    be validated)."""
    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    device = torch.device(device)
    if is_velocity_checkpoint(path):
        if autoencoder is not None:
            raise OptionError(f"{str(path)!r} is a velocity-space model: it takes no autoencoder")
        return _load_velocity_generator(path, device, weights, require_survey)
    shipped_layout = path.is_dir() and (path / "diffusion.pt").exists()
    diff_path = path / "diffusion.pt" if shipped_layout else path
    denoiser, cfg, ckpt = load_denoiser(diff_path, device, weights=weights)
    ae_path = _autoencoder_path(path, shipped_layout, cfg, autoencoder)
    sha = file_sha256(ae_path)
    if sha != ckpt["autoencoder_sha256"]:
        raise ValueError(
            f"{str(ae_path)!r} is not the autoencoder this diffusion model was trained on "
            "(sha256 differs); pass the right one with --autoencoder"
        )
    ae, ae_cfg = load_autoencoder(ae_path, device)
    attrs = dict(ckpt["store_attrs"])
    survey, boundary = recorded_survey(attrs, diff_path, require_survey)
    info = {
        "checkpoint": str(path),
        "diffusion": str(diff_path),
        "autoencoder": str(ae_path),
        "autoencoder_sha256": sha,
        "diffusion_step": int(ckpt["state"]["step"]),
        "weights": weights,
        "shipped": path.resolve() == shipped_checkpoint().resolve(),
    }
    return Generator(
        denoiser=denoiser,
        autoencoder=ae,
        autoencoder_config=ae_cfg,
        normalizer=Normalizer.from_dict(attrs["normalization"]),
        survey=survey,
        boundary=boundary,
        store_attrs=attrs,
        device=device,
        info=info,
    )


#: the training store's attributes a shipped checkpoint's manifest records
MANIFEST_DATA_KEYS = ("family", "seed", "boundary", "survey", "normalization", "solver_version")


def manifest_files(folder: Path) -> dict[str, dict[str, Any]]:
    """{name: {"bytes", "sha256"}} of every file in ``folder`` but its ``manifest.json``."""
    return {
        p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }


def manifest_data(attrs: dict[str, Any]) -> dict[str, Any]:
    """The training data a manifest records: :data:`MANIFEST_DATA_KEYS` of the store attributes."""
    return {k: attrs.get(k) for k in MANIFEST_DATA_KEYS}


def package_checkpoint(
    diffusion: str | os.PathLike,
    out: str | os.PathLike,
    *,
    autoencoder: str | os.PathLike | None = None,
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy a trained (diffusion, autoencoder) pair into the shipped layout: ``out/diffusion.pt``,
    ``out/autoencoder.pt`` (byte copies, so the recorded autoencoder sha256 still matches), their
    ``*_config.toml`` and ``manifest.json`` (files with bytes + sha256, parameter counts, the
    training data's family/survey/boundary/normaliser, and ``notes``: e.g. the commands)."""
    src = Path(diffusion)
    diff_file = src if src.is_file() else src / "final.pt"
    cfg = DiffusionTrainConfig.from_dict(load_diffusion_checkpoint(diff_file)["config"])
    ae_file = Path(autoencoder or cfg.data.autoencoder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(diff_file, out / "diffusion.pt")
    shutil.copyfile(ae_file, out / "autoencoder.pt")
    for run, name in ((diff_file.parent, "diffusion"), (ae_file.parent, "autoencoder")):
        if (run / "config.toml").exists():
            shutil.copyfile(run / "config.toml", out / f"{name}_config.toml")
    gen = load_generator(out, "cpu")
    attrs = gen.store_attrs
    manifest = {
        "name": out.name,
        "files": manifest_files(out),
        "parameters": {
            "autoencoder": sum(p.numel() for p in gen.autoencoder.parameters()),
            "diffusion_unet": sum(p.numel() for p in gen.denoiser.net.parameters()),
        },
        "diffusion_step": gen.info["diffusion_step"],
        "autoencoder_sha256": gen.info["autoencoder_sha256"],
        "data": manifest_data(attrs),
        "notes": notes or {},
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
