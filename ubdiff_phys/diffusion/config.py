"""Typed configuration of latent-diffusion training, loaded from TOML.

Sections: ``[run]`` (:class:`RunConfig`), ``[data]`` (:class:`DataConfig`), ``[model]``
(:class:`~ubdiff_phys.models.UNet1DConfig`), ``[diffusion]`` (:class:`DiffusionConfig`),
``[optim]`` (:class:`OptimConfig`). Unknown keys are errors. The resolved config is written as
``config.toml`` in the run directory and embedded in every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ubdiff_phys.diffusion.schedule import cosine_schedule
from ubdiff_phys.diffusion.targets import WEIGHTINGS
from ubdiff_phys.models.unet1d import UNet1DConfig
from ubdiff_phys.models.unet2d import UNet2DConfig
from ubdiff_phys.runtime.config import (
    SectionedConfig,
    check_hyperparameters,
    dump_toml,
    read_toml,
)

__all__ = [
    "DataConfig",
    "DiffusionConfig",
    "DiffusionTrainConfig",
    "OptimConfig",
    "RunConfig",
    "VelocityDataConfig",
    "VelocityDiffusionConfig",
    "dump_toml",
    "load_diffusion_config",
    "load_velocity_diffusion_config",
]


@dataclass(frozen=True)
class RunConfig:
    """Attributes:
    out_dir: run directory (last.pt, final.pt, config.toml, metrics.jsonl).
    seed: seeds the U-Net init, the data order, t and the noise.
    device: "cpu", "cuda" or "auto" (under torchrun each rank uses cuda:LOCAL_RANK).
    threads: torch intra-op threads (0: torch's default).
    checkpoint_every: write last.pt every N optimizer steps (0: only at the end).
    keep_every: also keep a copy of the resume point as ``step<N>.pt`` every N optimizer steps
        (0: off), e.g. for post-hoc averaging (``export-velocity-diffusion --average``); may be
        changed when resuming.
    log_every: one metrics.jsonl line every N optimizer steps.
    progress: tqdm bar (rank 0).
    init_from: a checkpoint of the same model (a run's ``final.pt``/``last.pt``/``step<N>.pt``,
        its folder, or an exported file) whose weights start a fresh run: its raw weights the
        U-Net's, its EMA weights the EMA's; the optimiser, the step count and the RNGs start
        afresh (e.g. to train a finished or exported model further on new data or for more
        steps when its resume point is gone). Ignored when resuming from ``last.pt``.
    """

    out_dir: str = "runs/diffusion"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    checkpoint_every: int = 1000
    keep_every: int = 0
    log_every: int = 100
    progress: bool = True
    init_from: str = ""

    def __post_init__(self) -> None:
        counts = (self.seed, self.threads, self.checkpoint_every, self.keep_every)
        if min(counts) < 0 or self.log_every < 1:
            raise ValueError(
                "run: seed, threads, checkpoint_every, keep_every >= 0 and log_every >= 1"
            )


@dataclass(frozen=True)
class DataConfig:
    """Attributes:
    autoencoder: trained autoencoder checkpoint (``train-ae``'s final.pt); required.
    store: the dataset whose majority rows are encoded ("": the autoencoder's training store).
    latents: latent cache file ("": ``<store>.latents.h5``); built on first use, rebuilt when it
        was made by another autoencoder (see :mod:`ubdiff_phys.diffusion.latents`).
    encode_batch: batch size of the one-off encoding pass.
    """

    autoencoder: str = ""
    store: str = ""
    latents: str = ""
    encode_batch: int = 64

    def __post_init__(self) -> None:
        if not self.autoencoder:
            raise ValueError("data.autoencoder (a train-ae checkpoint) is required")
        if self.encode_batch < 1:
            raise ValueError("data.encode_batch must be >= 1")


@dataclass(frozen=True)
class DiffusionConfig:
    """Attributes:
    timesteps: T (256).
    cosine_s: offset s of the cosine schedule (0.008).
    max_beta: beta clip (0.999).
    min_snr_gamma: 0 (default, the spec): loss weight snr/(snr+1) = alpha_bar_t; > 0: Min-SNR
        weight min(snr, gamma)/(snr+1).
    weighting: "alpha_bar" (default: the spec's weight above) or "uniform" (every timestep's
        v-MSE weighs 1: the high-noise steps, which fix a sample's large-scale layout and mean,
        are trained as much as the rest; alpha_bar_t gives them almost nothing).
    """

    timesteps: int = 256
    cosine_s: float = 0.008
    max_beta: float = 0.999
    min_snr_gamma: float = 0.0
    weighting: str = "alpha_bar"

    def __post_init__(self) -> None:
        if self.timesteps < 2 or not 0 < self.max_beta <= 1 or self.min_snr_gamma < 0:
            raise ValueError("diffusion: timesteps >= 2, 0 < max_beta <= 1, min_snr_gamma >= 0")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"diffusion.weighting must be one of {WEIGHTINGS}")
        if self.weighting == "uniform" and self.min_snr_gamma:
            raise ValueError("diffusion.min_snr_gamma applies to weighting = 'alpha_bar' only")

    def schedule(self):
        return cosine_schedule(self.timesteps, self.cosine_s, self.max_beta)


@dataclass(frozen=True)
class OptimConfig:
    """Adam and the training length (defaults: the paper's, specs/ubdiff.md §3).

    Attributes:
        steps: optimizer steps (150 000).
        batch_size: global batch per micro-step (16), split evenly over DDP ranks.
        grad_accum: micro-steps per optimizer step (2): effective batch 32.
        lr, beta1, beta2: Adam (8e-5, 0.9, 0.99).
        clip: gradient-norm clip (1.0; 0: off).
        ema_decay, ema_every: EMA 0.995 every 10 optimizer steps.
    """

    steps: int = 150_000
    batch_size: int = 16
    grad_accum: int = 2
    lr: float = 8e-5
    beta1: float = 0.9
    beta2: float = 0.99
    clip: float = 1.0
    ema_decay: float = 0.995
    ema_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.grad_accum < 1 or self.ema_every < 1:
            raise ValueError("optim: steps >= 0, batch_size, grad_accum, ema_every >= 1")
        check_hyperparameters(
            "optim",
            {
                "lr": (self.lr, 0.0, 1.0, False),
                "beta1": (self.beta1, 0.0, 1.0, True),
                "beta2": (self.beta2, 0.0, 1.0, True),
                "ema_decay": (self.ema_decay, 0.0, 1.0, True),
            },
            {"clip": self.clip},
        )


@dataclass(frozen=True)
class DiffusionTrainConfig(SectionedConfig):
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(autoencoder="ae.pt"))
    model: UNet1DConfig = field(default_factory=UNet1DConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    SECTIONS = ("run", "data", "model", "diffusion", "optim")


def _beside_config(path: Path, cls, keys: tuple[str, ...]):
    """``cls`` read from the TOML at ``path``; each relative ``data.<key>`` path that does not
    exist relative to the current directory but does next to the config file is taken from there."""
    cfg = cls.from_dict(read_toml(path))
    for key in keys:
        p = Path(getattr(cfg.data, key))
        if str(p) and not p.is_absolute() and not p.exists() and (path.parent / p).exists():
            cfg = cfg.with_("data", **{key: str(path.parent / p)})
    return cfg


def load_diffusion_config(path: str | Path) -> DiffusionTrainConfig:
    """Read a TOML config; a relative ``data.autoencoder`` / ``data.store`` that does not exist
    relative to the current directory is tried next to the config file."""
    return _beside_config(Path(path), DiffusionTrainConfig, ("autoencoder", "store"))


@dataclass(frozen=True)
class VelocityDataConfig:
    """Data of a velocity-space diffusion run.

    Attributes:
        store: the dataset; every row of its ``train_index`` is a training map (normalised to
            [-1, 1] with the store's velocity range).
        flip_lr: also train on left-right mirrored maps (each batch mirrored with probability
            1/2): right for families whose law is mirror-symmetric, as every family generator of
            this library is.
    """

    store: str = ""
    flip_lr: bool = False

    def __post_init__(self) -> None:
        if not self.store:
            raise ValueError("data.store is required (the dataset of training velocity maps)")


@dataclass(frozen=True)
class VelocityDiffusionConfig(SectionedConfig):
    """A diffusion model in velocity space: ``[run]``, ``[data]`` (:class:`VelocityDataConfig`),
    ``[model]`` (:class:`~ubdiff_phys.models.UNet2DConfig`), ``[diffusion]``, ``[optim]``."""

    run: RunConfig = field(default_factory=RunConfig)
    data: VelocityDataConfig = field(default_factory=lambda: VelocityDataConfig(store="data.h5"))
    model: UNet2DConfig = field(default_factory=UNet2DConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    SECTIONS = ("run", "data", "model", "diffusion", "optim")


def load_velocity_diffusion_config(path: str | Path) -> VelocityDiffusionConfig:
    """Read a velocity-space TOML config; a relative ``data.store`` that does not exist relative
    to the current directory is tried next to the config file."""
    return _beside_config(Path(path), VelocityDiffusionConfig, ("store",))
