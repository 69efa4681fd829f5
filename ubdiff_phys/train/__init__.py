"""Training: two-step unbalanced autoencoder training (config, checkpoints, DDP, CLI)."""

from ubdiff_phys.train.checkpoint import load_autoencoder, load_checkpoint, save_checkpoint
from ubdiff_phys.train.config import DataConfig, RunConfig, StepConfig, TrainConfig, load_config
from ubdiff_phys.train.loop import evaluate_autoencoder, resolve_config, train_autoencoder

__all__ = [
    "DataConfig",
    "RunConfig",
    "StepConfig",
    "TrainConfig",
    "evaluate_autoencoder",
    "load_autoencoder",
    "load_checkpoint",
    "load_config",
    "resolve_config",
    "save_checkpoint",
    "train_autoencoder",
]
