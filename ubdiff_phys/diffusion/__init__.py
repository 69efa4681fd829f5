"""Latent diffusion (specs/ubdiff.md §3): cosine schedule, v-prediction loss, model wrapper and
EMA, DDPM / DDIM samplers with one signature, the 1-D U-Net's training loop, the latent cache and
generation of (velocity, seismic) pairs into a dataset store.

Pieces: :mod:`.schedule`, :mod:`.targets`, :mod:`.denoiser`, :mod:`.samplers`, :mod:`.config`,
:mod:`.latents`, :mod:`.train`, :mod:`.generate`, :mod:`.cli`.
"""

from ubdiff_phys.diffusion.config import (
    DiffusionConfig,
    DiffusionTrainConfig,
    OptimConfig,
    load_diffusion_config,
)
from ubdiff_phys.diffusion.denoiser import EMA, VDenoiser
from ubdiff_phys.diffusion.generate import decode_pairs, generate_store, load_denoiser
from ubdiff_phys.diffusion.latents import LatentBatches, build_latent_cache
from ubdiff_phys.diffusion.samplers import SAMPLERS, sample, sample_ddim, sample_ddpm
from ubdiff_phys.diffusion.schedule import NoiseSchedule, cosine_betas, cosine_schedule
from ubdiff_phys.diffusion.targets import (
    diffusion_loss,
    eps_from_v,
    loss_weight,
    q_sample,
    v_target,
    x0_from_v,
)
from ubdiff_phys.diffusion.train import load_diffusion_checkpoint, train_diffusion

__all__ = [
    "EMA",
    "SAMPLERS",
    "DiffusionConfig",
    "DiffusionTrainConfig",
    "LatentBatches",
    "NoiseSchedule",
    "OptimConfig",
    "VDenoiser",
    "build_latent_cache",
    "cosine_betas",
    "cosine_schedule",
    "decode_pairs",
    "diffusion_loss",
    "eps_from_v",
    "generate_store",
    "load_denoiser",
    "load_diffusion_checkpoint",
    "load_diffusion_config",
    "loss_weight",
    "q_sample",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "train_diffusion",
    "v_target",
    "x0_from_v",
]
