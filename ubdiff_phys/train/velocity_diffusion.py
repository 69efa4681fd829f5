"""Velocity-space diffusion training: a 2-D U-Net (:class:`~ubdiff_phys.models.UNet2D`) denoises
the normalised velocity maps of a store's training rows, with the latent model's schedule,
v-prediction loss, optimiser, EMA, resume points and ``torchrun`` support (the loop is
:mod:`ubdiff_phys.train.diffusion`'s).

Why a second kind of prior: the latent model's samples cannot be sharper than UB-Diff's velocity
decoder (its reconstructions of FlatVel-A-like maps carry their interfaces in single-row jumps
for 31 % of the maps only). A model on the maps themselves has no decoder in the way; the pairs it
makes get their gathers from the solver (``--seismic solver``), and as a posterior prior it
needs no decoder backward.

Run directory and determinism are the latent trainer's: ``config.toml``, ``last.pt`` (resume
point), ``final.pt``, ``metrics.jsonl``; the batch rows and their mirror flips are pure functions
of (seed, micro-batch counter), so a resumed run is bit-identical to an uninterrupted one.
Checkpoints carry ``format`` = :data:`VELOCITY_CHECKPOINT_FORMAT` and the store's survey and
normalisation attributes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ubdiff_phys.data import open_store
from ubdiff_phys.diffusion.checkpoint import VELOCITY_CHECKPOINT_FORMAT, checkpoint_file
from ubdiff_phys.diffusion.config import VelocityDiffusionConfig
from ubdiff_phys.models.unet2d import build_unet2d
from ubdiff_phys.runtime.checkpoint import load_checkpoint, save_checkpoint
from ubdiff_phys.runtime.errors import OptionError
from ubdiff_phys.runtime.files import file_sha256
from ubdiff_phys.train.diffusion import _Trainer
from ubdiff_phys.train.latents import PermutedRows

__all__ = ["VelocityBatches", "export_velocity_checkpoint", "train_velocity_diffusion"]


class VelocityBatches(PermutedRows):
    """Random batches of a store's training velocity maps, normalised to [-1, 1] with the store's
    velocity range: (B, 1, nz, nx) float32, read row by row (never the whole set in memory).

    With ``flip_lr``, each map of micro-batch ``k`` is mirrored left-right with probability 1/2,
    drawn from (seed, k) like the rows."""

    def __init__(self, store: str | os.PathLike, seed: int = 0, flip_lr: bool = False):
        self._store = open_store(store)
        self.rows = np.asarray(self._store.train_index, dtype=np.int64)
        if self.rows.size == 0:
            self._store.close()
            raise ValueError(f"{str(store)!r} has no training rows")
        super().__init__(self.rows.size, seed)
        self.normalizer = self._store.normalizer
        self.flip_lr = flip_lr

    def batch(self, k: int, global_batch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        idx = self.rows[self.indices(k, global_batch, rank, world)]
        v = torch.from_numpy(np.stack([self._store.velocity(int(r)) for r in idx]))
        x = self.normalizer.velocity(v.double()).float()
        if self.flip_lr:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(k, 1)))
            local = global_batch // world
            flip = torch.from_numpy(rng.random(global_batch)[rank * local : (rank + 1) * local])
            x = torch.where((flip < 0.5)[:, None, None, None], x.flip(-1), x)
        return x

    def close(self) -> None:
        self._store.close()


class _VelocityTrainer(_Trainer):
    fmt, what = VELOCITY_CHECKPOINT_FORMAT, "velocity diffusion"

    def _resolve(self, cfg: VelocityDiffusionConfig) -> VelocityDiffusionConfig:
        with open_store(cfg.data.store) as st:
            nz, nx = st.velocity(int(st.train_index[0])).shape[-2:]
        if (cfg.model.nz, cfg.model.nx) != (nz, nx):
            raise OptionError(
                f"model.nz, model.nx = {cfg.model.nz}, {cfg.model.nx} but the maps of "
                f"{cfg.data.store!r} are {nz} x {nx}"
            )
        return cfg

    def _open_data(self) -> VelocityBatches:
        d = self.cfg.data
        return VelocityBatches(d.store, seed=self.cfg.run.seed, flip_lr=d.flip_lr)

    def _build_net(self) -> nn.Module:
        return build_unet2d(self.cfg.model)

    def _payload_extra(self) -> dict[str, Any]:
        return {}


def train_velocity_diffusion(
    cfg: VelocityDiffusionConfig, *, resume: bool = True, stop_after: int | None = None
) -> dict[str, Any]:
    """Train (or resume) the velocity-space diffusion model; returns {"out_dir", "step"}.

    Args:
        cfg: the config (:func:`~ubdiff_phys.diffusion.config.load_velocity_diffusion_config`).
        resume: continue from ``<out_dir>/last.pt`` when it exists (its config must match; a
            finished run may be extended with a larger ``optim.steps``).
        stop_after: stop (with last.pt written) once this many optimizer steps are done.
    """
    trainer = _VelocityTrainer(cfg, resume)
    try:
        return trainer.run(stop_after)
    finally:
        trainer.close()


def export_velocity_checkpoint(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    weights: str = "ema",
    dtype: str = "float32",
    average: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Write one set of a velocity diffusion run's weights as a self-contained checkpoint file
    for sampling, posterior inversion or shipping: the run's config, step and store attributes,
    with ``weights`` ("ema" or "model") as both the raw and the EMA weights (one copy on disk:
    the two entries share their tensors), and no optimiser or RNG state (it cannot resume
    training). ``dtype`` "float16" stores the floating-point weights at half size (loading
    casts them back to the model's float32; the rounding, ~5e-4 relative, is the only change).
    ``average``: further checkpoints of the same model (other steps of the run) whose
    ``weights`` are averaged with ``run``'s, uniformly, in float64 (post-hoc weight averaging:
    a longer averaging window than the run's EMA); the file keeps ``run``'s config and step.
    Written atomically; the caller decides whether ``out`` may be replaced.

    Returns {"out", "bytes", "step", "weights", "dtype", "averaged_steps", "source",
    "source_sha256"}."""
    if weights not in ("model", "ema"):
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    src = checkpoint_file(run)
    ckpt = load_checkpoint(src, VELOCITY_CHECKPOINT_FORMAT, "velocity diffusion")
    state, steps = _averaged_weights(ckpt, weights, [checkpoint_file(a) for a in average])
    if dtype == "float16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    source = {"file": str(src), "sha256": file_sha256(src), "weights": weights, "dtype": dtype}
    source["averaged"] = [
        {"file": str(checkpoint_file(a)), "step": n}
        for a, n in zip(average, steps[1:], strict=True)
    ]
    payload = {k: ckpt[k] for k in ("format", "config", "state", "world_size", "store_attrs")}
    payload |= {"model": state, "ema": {"module": state}, "exported_from": source}
    save_checkpoint(out, payload)
    return {
        "out": str(out),
        "bytes": Path(out).stat().st_size,
        "step": int(ckpt["state"]["step"]),
        "weights": weights,
        "dtype": dtype,
        "averaged_steps": steps,
        "source": source["file"],
        "source_sha256": source["sha256"],
    }


def _averaged_weights(
    ckpt: dict[str, Any], weights: str, others: list[Path]
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """(``weights`` of ``ckpt``, averaged uniformly with those of ``others``; the steps of all),
    refusing a checkpoint of another model or schedule (OptionError)."""

    def pick(c: dict[str, Any]) -> dict[str, torch.Tensor]:
        return c["model"] if weights == "model" else c["ema"]["module"]

    state, steps = pick(ckpt), [int(ckpt["state"]["step"])]
    if not others:
        return state, steps
    total = {k: v.double() for k, v in state.items() if v.is_floating_point()}
    for path in others:
        c = load_checkpoint(path, VELOCITY_CHECKPOINT_FORMAT, "velocity diffusion")
        for part in ("model", "diffusion"):
            if c["config"][part] != ckpt["config"][part]:
                raise OptionError(f"{str(path)!r} has another {part} config: cannot average")
        for k in total:
            total[k] += pick(c)[k].double()
        steps.append(int(c["state"]["step"]))
    n = len(steps)
    return {k: (total[k] / n).to(v.dtype) if k in total else v for k, v in state.items()}, steps
