"""Typed configuration of autoencoder training, loaded from TOML (stdlib ``tomllib``).

Sections: ``[run]`` (:class:`RunConfig`), ``[data]`` (:class:`DataConfig`), ``[model]``
(:class:`~ubdiff_phys.models.AutoencoderConfig`), ``[step1]`` and ``[step2]``
(:class:`StepConfig`). Unknown keys are errors. The resolved config (store-derived values filled
in) is written as ``config.toml`` in the run directory and embedded in every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ubdiff_phys.models.autoencoder import AutoencoderConfig
from ubdiff_phys.runtime.config import (
    SectionedConfig,
    check_hyperparameters,
    dump_toml,
    read_toml,
)

__all__ = [
    "DataConfig",
    "RunConfig",
    "StepConfig",
    "TrainConfig",
    "dump_toml",
    "load_config",
]


@dataclass(frozen=True)
class RunConfig:
    """Attributes:
    out_dir: run directory (checkpoints, config.toml, metrics.jsonl).
    seed: seeds model init, data order and the RNGs.
    device: "cpu", "cuda" or "auto" (CUDA when available; under torchrun each rank uses
        cuda:LOCAL_RANK).
    threads: torch intra-op threads (0: leave torch's default).
    val_every: validate every N epochs (0: never; the last epoch of a step always validates).
    checkpoint_every_steps: also checkpoint every N optimizer steps inside an epoch (0: only at
        epoch ends).
    val_max_samples: validate on at most this many held-out samples (0: all).
    progress: show tqdm progress bars (rank 0 only).
    sync_batchnorm: under DDP on CUDA, convert BatchNorm to SyncBatchNorm.
    init_from: optional checkpoint of a previous run whose weights initialise a fresh run (every
        tensor whose name and shape match; e.g. reuse one step-1 result for several step-2
        variants with ``step1.epochs = 0``). Ignored when resuming.
    init_skip: submodule names (e.g. ``["head_s", "dec_s"]``: the seismic branch) whose tensors
        are *not* taken from ``init_from``; they keep this run's fresh initialisation.
    """

    out_dir: str = "runs/ae"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    val_every: int = 10
    checkpoint_every_steps: int = 0
    val_max_samples: int = 0
    progress: bool = True
    sync_batchnorm: bool = False
    init_from: str = ""
    init_skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "init_skip", tuple(str(n) for n in self.init_skip))
        if self.init_skip and not self.init_from:
            raise ValueError("run.init_skip needs run.init_from")
        for name in ("seed", "threads", "val_every", "checkpoint_every_steps", "val_max_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"run.{name} must be >= 0")


@dataclass(frozen=True)
class DataConfig:
    """Attributes:
    store: dataset HDF5 file (``ubdiff-phys make-dataset`` or ``import-openfwi``); relative paths
        are resolved against the config file's folder.
    n_majority: majority rows for step 1 (0: all available: all training velocity maps, or all
        training rows with gathers when the majority is seismic).
    n_paired: paired rows for step 2 (0: the split recorded in the store).
    split_seed: seed of the row selection (:class:`~ubdiff_phys.data.SplitSpec`).
    paired_only: the "UB-Diff w/o opt" ablation: step 1 uses the paired rows only.
    num_workers, prefetch_factor: DataLoader workers; memory is bounded by
        batch_size x prefetch_factor x num_workers samples.
    """

    store: str = ""
    n_majority: int = 0
    n_paired: int = 0
    split_seed: int = 0
    paired_only: bool = False
    num_workers: int = 0
    prefetch_factor: int = 2

    def __post_init__(self) -> None:
        if not self.store:
            raise ValueError("data.store (the dataset file) is required")
        for name in ("n_majority", "n_paired", "split_seed", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0")
        if self.prefetch_factor < 1:
            raise ValueError("data.prefetch_factor must be >= 1")


@dataclass(frozen=True)
class StepConfig:
    """One training step (Eq. 2 or Eq. 3 of the paper).

    Attributes:
        epochs: epochs of this step (0 skips it).
        batch_size: global batch size (split evenly over DDP ranks).
        lr, weight_decay: AdamW.
        lr_decay, lr_decay_every: lr x lr_decay every lr_decay_every epochs.
        gamma_l1, gamma_l2: weights of L1 and MSE on the step's target modality.
        gamma_grad: weight of the L1 distance of its finite differences along the last two
            axes (:func:`ubdiff_phys.train.losses.gradient_l1`; 0: the paper's loss). It pays
            for smeared interfaces and the overshoot beside them, which pixel losses barely do.
        freeze: step 2 only: F = 1 freezes the encoder and the majority branch (BN in eval
            mode); F = 0 fine-tunes everything with the loss (1 - F) l_ma + g3 L1 + g4 MSE.
        freeze_encoder: step 1 only: train the majority branch (head + decoder) alone, with the
            encoder frozen (BN in eval mode). A decoder-only fine-tune from ``run.init_from``:
            the latent space, and a diffusion model trained on it, stay valid.
    """

    epochs: int = 500
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4
    lr_decay: float = 0.98
    lr_decay_every: int = 10
    gamma_l1: float = 1.0
    gamma_l2: float = 1.0
    gamma_grad: float = 0.0
    gamma_physical: float = 0.0
    freeze: int = 1
    freeze_encoder: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr_decay_every < 1:
            raise ValueError("step: epochs >= 0, batch_size >= 1 and lr_decay_every >= 1 required")
        if self.freeze not in (0, 1):
            raise ValueError(f"step2.freeze must be 0 or 1, got {self.freeze!r}")
        check_hyperparameters(
            "step",
            {"lr": (self.lr, 0.0, 1.0, False), "lr_decay": (self.lr_decay, 0.0, 1.0, False)},
            {
                "weight_decay": self.weight_decay,
                "gamma_l1": self.gamma_l1,
                "gamma_l2": self.gamma_l2,
                "gamma_grad": self.gamma_grad,
                "gamma_physical": self.gamma_physical,
            },
        )


@dataclass(frozen=True)
class TrainConfig(SectionedConfig):
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(store="data.h5"))
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    step1: StepConfig = field(default_factory=StepConfig)
    step2: StepConfig = field(default_factory=StepConfig)

    def __post_init__(self) -> None:
        if self.step2.freeze_encoder:
            raise ValueError("step2.freeze_encoder is a step-1 option (step 2 has step2.freeze)")
        if self.step1.freeze_encoder and self.step1.epochs and not self.run.init_from:
            raise ValueError("step1.freeze_encoder needs run.init_from (a trained encoder)")
        velocity_step = "step1" if self.model.majority == "velocity" else "step2"
        if getattr(self, velocity_step).gamma_physical:
            raise ValueError(f"{velocity_step}.gamma_physical: that step's target is velocity")


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML config; relative ``data.store`` and ``run.out_dir`` are taken relative to the
    current directory (as a user types them), except that a relative store path that does not exist
    there is tried next to the config file."""
    path = Path(path)
    cfg = TrainConfig.from_dict(read_toml(path))
    store = Path(cfg.data.store)
    if not store.is_absolute() and not store.exists() and (path.parent / store).exists():
        cfg = cfg.replace(data=replace(cfg.data, store=str(path.parent / store)))
    return cfg
