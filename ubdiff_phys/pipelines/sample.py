"""Sample co-latents and decode them into (velocity, seismic) pairs written as a dataset store.

``generate_store(run_dir, "out.h5", n=1000)`` draws z0 with a sampler, decodes with the
autoencoder the diffusion model was trained on (heads -> decoders -> normalised -> physical units
with the training store's :class:`~ubdiff_phys.data.Normalizer`; decoder outputs are clamped to
the normalised range [-1, 1] first) and writes the store format of :mod:`ubdiff_phys.data.store`:
``velocity`` (N, 1, 70, 70) m/s, ``seismic`` (N, S, nt, R), ``paired_index`` = every row,
``train_index`` = every row, empty ``test_index``, and the survey / boundary / normalisation /
family attributes of the training store (``source`` = "ubdiff_phys.sample").

Batch ``b`` uses its own generator seeded by (seed, b), so the output depends only on (checkpoint,
seed, n, batch, sampler, steps) and an interrupted run resumes at the first uncommitted batch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.diffusion.config import DiffusionTrainConfig
from ubdiff_phys.diffusion.denoiser import VDenoiser
from ubdiff_phys.diffusion.samplers import SAMPLERS
from ubdiff_phys.diffusion.train import load_diffusion_checkpoint
from ubdiff_phys.models.unet1d import build_unet1d

__all__ = ["decode_pairs", "generate_store", "load_denoiser", "sample_latents"]


def load_denoiser(
    checkpoint: str | os.PathLike, device: Any = "cpu", *, weights: str = "model"
) -> tuple[VDenoiser, DiffusionTrainConfig, dict[str, Any]]:
    """(denoiser in eval mode, config, checkpoint) from a run directory or checkpoint file.

    ``weights``: "model" (the raw weights, what the official generation script uses) or "ema".
    """
    if weights not in ("model", "ema"):
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    ckpt = load_diffusion_checkpoint(checkpoint)
    cfg = DiffusionTrainConfig.from_dict(ckpt["config"])
    net = build_unet1d(cfg.model)
    net.load_state_dict(ckpt["model"] if weights == "model" else ckpt["ema"]["module"])
    net = net.to(device).eval()
    return VDenoiser(net, cfg.diffusion.schedule()), cfg, ckpt


def sample_latents(
    denoiser: VDenoiser,
    n: int,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    generator: torch.Generator | None = None,
    device: Any = "cpu",
    **kwargs: Any,
) -> torch.Tensor:
    """n co-latents (n, latent_dim) float32 (in [-1, 1]); ``steps=None``: T for DDPM, 50 DDIM."""
    cfg = denoiser.net.config
    z = torch.randn((n, 1, cfg.seq_len), generator=generator, dtype=torch.float64).to(device)
    if steps is None:
        steps = denoiser.schedule.timesteps if sampler == "ddpm" else 50
    x0 = SAMPLERS[sampler](
        denoiser, z, min(steps, denoiser.schedule.timesteps), **kwargs, generator=generator
    )
    return x0.reshape(n, -1).float()


@torch.no_grad()
def decode_pairs(autoencoder, z: torch.Tensor, normalizer) -> tuple[np.ndarray, np.ndarray]:
    """co-latents (B, latent_dim) -> (velocity [m/s] (B, 1, nz, nx), seismic (B, S, nt, R))."""
    p = next(autoencoder.parameters())
    v, s = autoencoder.decode(z.to(p.device, p.dtype))
    v = normalizer.velocity_inverse(v.float().clamp(-1, 1).cpu().double())
    s = normalizer.seismic_inverse(s.float().clamp(-1, 1).cpu().double())
    return v.float().numpy(), s.float().numpy()


def generate_store(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    n: int,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    seed: int = 0,
    device: Any = "cpu",
    batch: int = 64,
    weights: str = "model",
    autoencoder: str | os.PathLike | None = None,
    progress: bool = True,
    eta: float = 0.0,
) -> dict[str, Any]:
    """Write ``n`` generated pairs to the store ``out`` (resumable); returns a summary with
    pairs/s. ``autoencoder`` overrides the checkpoint recorded in the run's config (its sha256
    must match the one the latents were encoded with)."""
    from tqdm.auto import tqdm

    from ubdiff_phys.data import Normalizer
    from ubdiff_phys.data.store import StoreWriter, create_store
    from ubdiff_phys.diffusion.latents import file_sha256
    from ubdiff_phys.train.checkpoint import load_autoencoder

    if n < 1 or batch < 1:
        raise ValueError("n and batch must be >= 1")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    device = torch.device(device)
    denoiser, cfg, ckpt = load_denoiser(checkpoint, device, weights=weights)
    ae_path = Path(autoencoder or cfg.data.autoencoder)
    if file_sha256(ae_path) != ckpt["autoencoder_sha256"]:
        raise ValueError(
            f"{str(ae_path)!r} is not the autoencoder this diffusion model was trained on "
            "(sha256 differs); pass the right one with --autoencoder"
        )
    ae, ae_cfg = load_autoencoder(ae_path, device)
    attrs = dict(ckpt["store_attrs"])
    normalizer = Normalizer.from_dict(attrs["normalization"])
    build_args = {
        "checkpoint_step": int(ckpt["state"]["step"]),
        "autoencoder_sha256": ckpt["autoencoder_sha256"],
        "n": n,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "batch": batch,
        "weights": weights,
        "eta": eta,
    }
    out = Path(out)
    fresh = True
    if out.exists():
        with StoreWriter(out) as w:
            fresh = w.attr("build_args") != build_args
    if fresh:
        grid = (70, 70)
        if attrs.get("survey"):
            grid = (attrs["survey"]["nz"], attrs["survey"]["nx"])
        rows = np.arange(n)
        create_store(
            out,
            n_rows=n,
            grid=grid,
            seismic_shape=tuple(ae_cfg.model.seismic_shape),
            paired_index=rows,
            train_index=rows,
            test_index=np.zeros(0, dtype=np.int64),
            attrs={**attrs, "source": "ubdiff_phys.sample", "build_args": build_args},
        )
    kwargs = {"eta": eta} if sampler == "ddim" else {}
    t0, done = time.perf_counter(), 0
    with StoreWriter(out) as w:
        # velocity is committed before seismic: restart at the first batch without gathers
        start = w.progress.n_seismic_committed
        bar = tqdm(total=n, initial=start, desc="sampling", disable=not progress, leave=False)
        for a in range(start, n, batch):
            b = min(a + batch, n)
            gen = torch.Generator().manual_seed(seed * 1_000_003 + a // batch)
            z = sample_latents(
                denoiser,
                b - a,
                sampler=sampler,
                steps=steps,
                generator=gen,
                device=device,
                **kwargs,
            )
            v, s = decode_pairs(ae, z, normalizer)
            if w.progress.n_velocity_committed == a:
                w.write_velocity(a, v)
            w.write_seismic(a, s)
            done += b - a
            bar.update(b - a)
        bar.close()
        w.finalize()
    dt = time.perf_counter() - t0
    return {
        "out": str(out),
        "n": n,
        "generated": done,
        "seconds": dt,
        "pairs_per_s": done / dt if dt > 0 and done else None,
    }
