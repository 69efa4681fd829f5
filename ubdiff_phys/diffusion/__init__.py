"""Latent diffusion (specs/ubdiff.md §3): cosine schedule, v-prediction loss, model wrapper and
EMA, DDPM / DDIM samplers with one signature, the training config and the checkpoint loader.

Pieces: :mod:`.schedule`, :mod:`.targets`, :mod:`.denoiser`, :mod:`.samplers`, :mod:`.config`,
:mod:`.checkpoint`. Training (and the latent cache) is :mod:`ubdiff_phys.train.diffusion`;
generating pairs into a store is :mod:`ubdiff_phys.pipelines.sample`.
"""

from ubdiff_phys.diffusion.checkpoint import load_denoiser, load_diffusion_checkpoint
from ubdiff_phys.diffusion.config import (
    DiffusionConfig,
    DiffusionTrainConfig,
    OptimConfig,
    load_diffusion_config,
)
from ubdiff_phys.diffusion.denoiser import EMA, VDenoiser
from ubdiff_phys.diffusion.samplers import (
    SAMPLERS,
    sample,
    sample_ddim,
    sample_ddpm,
    sample_latents,
)
from ubdiff_phys.diffusion.schedule import NoiseSchedule, cosine_betas, cosine_schedule
from ubdiff_phys.diffusion.targets import (
    diffusion_loss,
    eps_from_v,
    loss_weight,
    q_sample,
    v_target,
    x0_from_v,
)

__all__ = [
    "EMA",
    "SAMPLERS",
    "DiffusionConfig",
    "DiffusionTrainConfig",
    "NoiseSchedule",
    "OptimConfig",
    "VDenoiser",
    "cosine_betas",
    "cosine_schedule",
    "diffusion_loss",
    "eps_from_v",
    "load_denoiser",
    "load_diffusion_checkpoint",
    "load_diffusion_config",
    "loss_weight",
    "q_sample",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_latents",
    "v_target",
    "x0_from_v",
]
