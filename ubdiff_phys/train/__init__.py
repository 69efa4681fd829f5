"""Training: every trainer of the project (config, checkpoints, DDP, CLI).

Two-step unbalanced autoencoder training (:mod:`.loop`), the latent cache (:mod:`.latents`) and
latent-diffusion training (:mod:`.diffusion`).
"""

from ubdiff_phys.runtime.checkpoint import save_checkpoint
from ubdiff_phys.train.checkpoint import load_autoencoder, load_checkpoint
from ubdiff_phys.train.config import DataConfig, RunConfig, StepConfig, TrainConfig, load_config
from ubdiff_phys.train.diffusion import train_diffusion
from ubdiff_phys.train.latents import LatentBatches, build_latent_cache
from ubdiff_phys.train.loop import evaluate_autoencoder, resolve_config, train_autoencoder

__all__ = [
    "DataConfig",
    "LatentBatches",
    "RunConfig",
    "StepConfig",
    "TrainConfig",
    "build_latent_cache",
    "evaluate_autoencoder",
    "load_autoencoder",
    "load_checkpoint",
    "load_config",
    "resolve_config",
    "save_checkpoint",
    "train_autoencoder",
    "train_diffusion",
]
