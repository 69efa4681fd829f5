"""Latent-diffusion training (specs/ubdiff.md §3): v-prediction U-Net on cached co-latents.

Run directory: ``config.toml`` (resolved config), ``last.pt`` (resume point: U-Net, EMA, Adam,
RNG states, step; every ``run.checkpoint_every`` steps and at the end), ``final.pt`` (U-Net + EMA,
written when training finishes) and ``metrics.jsonl`` (one line every ``run.log_every`` steps:
step, mean weighted loss of the local micro-batches since the last line, lr, grad norm).
Checkpoints are atomic and code-free (``format`` = :data:`CHECKPOINT_FORMAT`) and embed the
config, the autoencoder's sha256 and the survey/normalisation attributes of its training store,
so ``ubdiff-phys sample`` needs only this checkpoint and the autoencoder's.

Determinism: the data order is a pure function of (seed, micro-batch counter), t and noise come
from a generator seeded by (seed, rank) whose state is checkpointed, so a resumed run is
bit-identical to an uninterrupted one (tested). A finished run can be extended: resume it with a
larger ``optim.steps`` (the earlier ``final.pt`` is kept as ``final_step<N>.pt``).

Distributed: under ``torchrun`` the process group is initialised (NCCL on CUDA, gloo on CPU), the
U-Net is wrapped in DDP (gradients of the non-final accumulation micro-steps are not synchronised)
and each rank takes its slice of every global batch; all ranks hold identical weights (tested
with 2 CPU ranks).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ubdiff_phys.data import open_store
from ubdiff_phys.diffusion.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_file,
    load_diffusion_checkpoint,
)
from ubdiff_phys.diffusion.config import DiffusionTrainConfig
from ubdiff_phys.diffusion.denoiser import EMA, VDenoiser
from ubdiff_phys.diffusion.targets import diffusion_loss
from ubdiff_phys.models.unet1d import build_unet1d
from ubdiff_phys.runtime.checkpoint import load_checkpoint as load_checkpoint_file
from ubdiff_phys.runtime.checkpoint import save_checkpoint, set_rng_state
from ubdiff_phys.runtime.config import dump_toml
from ubdiff_phys.runtime.distributed import setup_distributed
from ubdiff_phys.runtime.errors import OptionError, check_finite_loss, check_finite_weights
from ubdiff_phys.runtime.files import atomic_write_text, file_sha256
from ubdiff_phys.runtime.resume import (
    RESUME_FILE,
    RESUME_FREE,
    load_resume_point,
    save_resume_point,
)
from ubdiff_phys.train.checkpoint import load_checkpoint
from ubdiff_phys.train.config import TrainConfig
from ubdiff_phys.train.latents import LatentBatches, build_latent_cache, default_latent_path

__all__ = ["CHECKPOINT_FORMAT", "load_diffusion_checkpoint", "resolve_config", "train_diffusion"]
# store attributes a sampled store inherits (survey geometry, boundary, normalisation, origin)
STORE_ATTRS = ("survey", "boundary", "solver_version", "family", "normalization", "source")


def resolve_config(cfg: DiffusionTrainConfig) -> DiffusionTrainConfig:
    """Fill ``data.store`` (the autoencoder's training store), ``data.latents`` and the U-Net's
    ``seq_len`` (the autoencoder's latent_dim)."""
    ae_cfg = TrainConfig.from_dict(load_checkpoint(cfg.data.autoencoder)["config"])
    store = cfg.data.store or ae_cfg.data.store
    latents = cfg.data.latents or str(default_latent_path(store))
    cfg = cfg.with_("data", store=store, latents=latents)
    if cfg.model.channels != 1:
        raise ValueError("model.channels must be 1 (the latent is a 1-channel sequence)")
    return cfg.with_("model", seq_len=ae_cfg.model.latent_dim)


#: options a resumed diffusion run may change: :data:`RESUME_FREE` and the number of steps (the
#: learning rate is constant, so a finished run can be extended; see ``_Trainer._extend``)
EXTENDABLE = RESUME_FREE | {("optim", "steps"), ("run", "keep_every")}


class _Trainer:
    """The training loop shared by the latent model (this class) and the velocity-space model
    (:mod:`ubdiff_phys.train.velocity_diffusion`, which overrides the ``_resolve``, ``_open_data``,
    ``_build_net`` and ``_payload_extra`` hooks)."""

    fmt, what = CHECKPOINT_FORMAT, "diffusion"

    def __init__(self, cfg, resume: bool):
        ctx = setup_distributed(cfg.run.device, cfg.run.threads)
        self.world, self.rank, self.device = ctx.world, ctx.rank, ctx.device
        self.distributed, self.is_main = ctx.distributed, ctx.is_main
        self.cfg = cfg = self._resolve(cfg)
        o = cfg.optim
        if o.batch_size % self.world:
            raise ValueError(f"optim.batch_size must be divisible by the {self.world} ranks")
        self.out = Path(cfg.run.out_dir)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.data = self._open_data()
        self.schedule = cfg.diffusion.schedule()
        torch.manual_seed(cfg.run.seed)
        self.net = self._build_net().to(self.device)
        self.ema = EMA(self.net, o.ema_decay, o.ema_every)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        self.gen = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + self.rank)
        self.state = {"step": 0}
        last = self.out / RESUME_FILE
        ckpt = None
        if resume:
            ckpt = load_resume_point(
                last,
                self.fmt,
                self.what,
                cfg.to_dict(),
                free=EXTENDABLE,
                map_location=self.device,
                # options added since an older run compare as their defaults
                normalise=lambda d: type(cfg).from_dict(d).to_dict(),
            )
        if ckpt is not None:
            if ckpt["world_size"] != self.world:
                raise ValueError(
                    f"{last} was written by {ckpt['world_size']} ranks; resume with the same number"
                )
            self.net.load_state_dict(ckpt["model"])
            self.ema.load_state_dict(ckpt["ema"])
            if "optimizer" in ckpt:
                self.opt.load_state_dict(ckpt["optimizer"])
            set_rng_state(ckpt["rng"])
            self.gen.set_state(ckpt["generators"][self.rank])
            self.state = dict(ckpt["state"])
            self._extend(self.state["step"])
        elif cfg.run.init_from:
            self._init_from(cfg.run.init_from)
        if self.is_main:
            atomic_write_text(self.out / "config.toml", dump_toml(cfg.to_dict()))
        self.store_attrs = self._store_attrs()

    def _init_from(self, path: str) -> None:
        """Take the U-Net's and the EMA's weights from the checkpoint ``path`` (``run.init_from``),
        which must hold this model (the same ``[model]`` and ``[diffusion]`` config; OptionError
        otherwise); recorded in the run's state as ``init_from`` (file, sha256, its step, and
        ``steps_before``: the optimizer steps its weights had seen, through earlier inits)."""
        src = checkpoint_file(path)
        c = load_checkpoint_file(src, self.fmt, self.what, map_location=self.device)
        mine, theirs = self.cfg.to_dict(), type(self.cfg).from_dict(c["config"]).to_dict()
        for part in ("model", "diffusion"):
            if theirs[part] != mine[part]:
                raise OptionError(f"run.init_from {str(src)!r} has another {part} config")
        self.net.load_state_dict(c["model"])
        self.ema.module.load_state_dict(c["ema"]["module"])
        step = int(c["state"]["step"])
        before = int(c["state"].get("init_from", {}).get("steps_before", 0))
        self.state["init_from"] = {
            "file": str(src),
            "sha256": file_sha256(src),
            "step": step,
            "steps_before": step + before,
        }

    def _resolve(self, cfg):
        return resolve_config(cfg)

    def _open_data(self):
        """The batch source (``batch(k, global_batch, rank, world)``, ``close()``): the latent
        cache, encoded first (rank 0) when missing or made by another autoencoder."""
        cfg = self.cfg
        if self.is_main:
            build_latent_cache(
                cfg.data.store,
                cfg.data.autoencoder,
                cfg.data.latents,
                batch_size=cfg.data.encode_batch,
                device=self.device,
                progress=cfg.run.progress,
            )
        self._barrier()
        return LatentBatches(cfg.data.latents, seed=cfg.run.seed)

    def _build_net(self) -> nn.Module:
        return build_unet1d(self.cfg.model)

    def _payload_extra(self) -> dict[str, Any]:
        return {"autoencoder_sha256": self.data.autoencoder_sha256}

    def _extend(self, done: int) -> None:
        """A resumed run may ask for more steps than it was started with (the learning rate is
        constant, so the steps already taken do not depend on the total): an earlier
        ``final.pt`` is kept as ``final_step<done>.pt``. Fewer steps than done are refused."""
        steps = self.cfg.optim.steps
        if done > steps:
            raise ValueError(
                f"{str(self.out)!r} has already trained {done} steps, more than optim.steps = "
                f"{steps}; ask for at least {done} or use another run.out_dir"
            )
        final = self.out / "final.pt"
        if self.is_main and done < steps and final.exists():
            final.replace(self.out / f"final_step{done}.pt")

    def _store_attrs(self) -> dict[str, Any]:
        with open_store(self.cfg.data.store) as s:
            return {k: s.attrs[k] for k in STORE_ATTRS if k in s.attrs}

    def _barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _generators(self) -> list[torch.Tensor]:
        state = self.gen.get_state()
        if not self.distributed:
            return [state]
        out = [torch.empty_like(state) for _ in range(self.world)]
        dist.all_gather(out, state) if self.device.type == "cpu" else self._gather_cuda(out, state)
        return out

    def _gather_cuda(self, out: list[torch.Tensor], state: torch.Tensor) -> None:
        dev = [t.to(self.device) for t in out]
        dist.all_gather(dev, state.to(self.device))
        for o, d in zip(out, dev, strict=True):
            o.copy_(d.cpu())

    def _payload(self, *, final: bool) -> dict[str, Any]:
        p = {
            "format": self.fmt,
            "config": self.cfg.to_dict(),
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "state": dict(self.state),
            "world_size": self.world,
            "store_attrs": self.store_attrs,
            **self._payload_extra(),
        }
        if not final:
            p["optimizer"] = self.opt.state_dict()
        return p

    def _checkpoint(self, name: str, *, final: bool = False) -> None:
        gens = self._generators()  # collective: every rank calls it
        if self.is_main:
            payload = self._payload(final=final)
            if not final:
                payload["generators"] = gens
            check_finite_weights(self.net.parameters(), f"the {self.what} model ({name})")
            # a resume point carries the RNG state; final.pt holds only what sampling needs
            save = save_checkpoint if final else save_resume_point
            save(self.out / name, payload)
        self._barrier()

    def _due(self, step: int) -> bool:
        """Whether a resume point is written after ``step`` (checkpoint_every or keep_every)."""
        run = self.cfg.run
        return any(n and step % n == 0 for n in (run.checkpoint_every, run.keep_every))

    def _keep(self, step: int) -> None:
        """With ``run.keep_every``: copy the resume point just written to ``step<step>.pt``."""
        keep = self.cfg.run.keep_every
        if self.is_main and keep and step % keep == 0:
            tmp = self.out / f".step{step}.pt.tmp"
            shutil.copyfile(self.out / "last.pt", tmp)
            tmp.replace(self.out / f"step{step}.pt")

    def run(self, stop_after: int | None = None) -> dict[str, Any]:
        cfg, o = self.cfg, self.cfg.optim
        net: nn.Module = self.net
        if self.distributed:
            net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        model = VDenoiser(net, self.schedule)
        self.net.train()
        end = o.steps if stop_after is None else min(o.steps, stop_after)
        bar = tqdm(
            total=o.steps,
            initial=self.state["step"],
            desc=self.what,
            disable=not (cfg.run.progress and self.is_main),
            dynamic_ncols=True,
        )
        # the running sums of the current log interval are part of the resumable state
        loss_sum, loss_n = self.state.get("loss_sum", 0.0), self.state.get("loss_n", 0)
        t0 = time.perf_counter()
        while self.state["step"] < end:
            step = self.state["step"]
            for m in range(o.grad_accum):
                x0 = self.data.batch(step * o.grad_accum + m, o.batch_size, self.rank, self.world)
                x0 = x0.to(self.device)
                sync = m == o.grad_accum - 1 or not self.distributed
                with contextlib.nullcontext() if sync else net.no_sync():
                    loss = diffusion_loss(
                        model,
                        x0,
                        self.schedule,
                        generator=self.gen,
                        min_snr_gamma=cfg.diffusion.min_snr_gamma,
                        weighting=cfg.diffusion.weighting,
                    )
                    check_finite_loss(loss, step)
                    (loss / o.grad_accum).backward()
                loss_sum += float(loss.detach())
                loss_n += 1
            params = self.net.parameters()
            gnorm = torch.nn.utils.clip_grad_norm_(params, o.clip if o.clip > 0 else float("inf"))
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.ema.update(self.net)
            self.state.update(step=step + 1, loss_sum=loss_sum, loss_n=loss_n)
            bar.update(1)
            if self.state["step"] % cfg.run.log_every == 0 or self.state["step"] == o.steps:
                record = {
                    "step": self.state["step"],
                    "loss": loss_sum / max(loss_n, 1),
                    "grad_norm": float(gnorm),
                    "lr": self.opt.param_groups[0]["lr"],
                    "time_s": round(time.perf_counter() - t0, 3),
                }
                bar.set_postfix(loss=f"{record['loss']:.4g}")
                if self.is_main:
                    with open(self.out / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                loss_sum, loss_n = 0.0, 0
                self.state.update(loss_sum=0.0, loss_n=0)
            if self.state["step"] < o.steps and self._due(self.state["step"]):
                self._checkpoint("last.pt")
                self._keep(self.state["step"])
        bar.close()
        self._checkpoint("last.pt")
        self._keep(self.state["step"])
        if self.state["step"] >= o.steps:
            self._checkpoint("final.pt", final=True)
        return {"out_dir": str(self.out), "step": self.state["step"]}

    def close(self) -> None:
        self.data.close()
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def train_diffusion(
    cfg: DiffusionTrainConfig, *, resume: bool = True, stop_after: int | None = None
) -> dict[str, Any]:
    """Train (or resume) the latent diffusion model; returns {"out_dir", "step"}.

    Args:
        cfg: the config (:func:`~ubdiff_phys.diffusion.config.load_diffusion_config`).
        resume: continue from ``<out_dir>/last.pt`` when it exists (its config must match).
        stop_after: stop (with last.pt written) once this many optimizer steps are done, as an
            interruption would; ``None``: train to ``optim.steps``.
    """
    trainer = _Trainer(cfg, resume)
    try:
        return trainer.run(stop_after)
    finally:
        trainer.close()
