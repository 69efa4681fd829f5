"""Two-step unbalanced training of the 1-in-2-out autoencoder (specs/ubdiff.md §2).

Step 1 trains the encoder and the majority branch on all majority data with
``g1 L1 + g2 MSE``. Step 2 starts from step 1's best checkpoint and trains on the paired subset
with ``(1 - F) l_ma + g3 L1 + g4 MSE`` on the minority modality; F = 1 freezes the encoder and
the majority branch (their BatchNorm in eval mode), F = 0 fine-tunes everything.

Run directory: ``config.toml`` (resolved config), ``last.pt`` (resume point, written every epoch
and every ``checkpoint_every_steps`` steps), ``best_step1.pt`` / ``best_step2.pt`` (best
validation: highest majority SSIM for a velocity majority, else lowest majority MSE, in step 1;
lowest held-out step-2 objective in step 2), ``final.pt`` and ``metrics.jsonl`` (one JSON line per
epoch). Every checkpoint embeds the resolved config.

Resume: ``last.pt`` stores model, optimizer, scheduler, RNG states, the phase, the epoch and the
number of batches done in it; the data order is a pure function of (seed, phase, epoch), so a
resumed run replays exactly the remaining batches.

Distributed: under ``torchrun`` (WORLD_SIZE > 1) the process group is initialised (NCCL on CUDA,
gloo on CPU), the model is wrapped in DDP, each rank reads its shard of every global batch, and
BatchNorm uses per-rank batch statistics (SyncBatchNorm optional on CUDA); running statistics are
averaged over ranks at every epoch end, so all ranks hold identical weights and buffers.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ubdiff_phys.data import open_store
from ubdiff_phys.models import UBDiffAutoencoder, build_autoencoder
from ubdiff_phys.models.metrics import MetricAccumulator
from ubdiff_phys.runtime.checkpoint import set_rng_state
from ubdiff_phys.runtime.config import dump_toml
from ubdiff_phys.runtime.distributed import setup_distributed
from ubdiff_phys.runtime.errors import check_finite_loss, check_finite_weights
from ubdiff_phys.runtime.files import atomic_write_text
from ubdiff_phys.runtime.resume import RESUME_FILE, load_resume_point, save_resume_point
from ubdiff_phys.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from ubdiff_phys.train.config import StepConfig, TrainConfig
from ubdiff_phys.train.data import ResumableSampler, TrainViews, make_train_views
from ubdiff_phys.train.losses import reconstruction_loss

__all__ = ["evaluate_autoencoder", "resolve_config", "train_autoencoder"]

PHASES = ("step1", "step2", "done")
_LOSS_WEIGHTS = ("gamma_l1", "gamma_l2", "gamma_grad", "gamma_physical")  # StepConfig's
_DEBUG_SLEEP_ENV = "UBDIFF_PHYS_TEST_STEP_SLEEP"  # tests only: seconds to sleep per step


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Fill store-derived values (the seismic shape) into ``cfg``."""
    with open_store(cfg.data.store) as store:
        shape = tuple(int(n) for n in store.seismic_shape)
        if tuple(store.grid) != (70, 70):
            raise ValueError(f"the autoencoder needs 70 x 70 velocity maps, store has {store.grid}")
    return cfg.replace(model=replace(cfg.model, seismic_shape=shape))


def _recon_loss(pred, target, step: StepConfig, bounds=None) -> torch.Tensor:
    """The step's loss (``bounds``: the seismic log bounds, for its physical term)."""
    weights = {k: getattr(step, k) for k in _LOSS_WEIGHTS}
    return reconstruction_loss(pred, target, **weights, log_bounds=bounds)


@torch.no_grad()
def evaluate_autoencoder(
    model: UBDiffAutoencoder,
    loader: DataLoader,
    device: torch.device,
    *,
    paired: bool = True,
    modalities: tuple[str, ...] = ("velocity", "seismic"),
) -> dict[str, dict[str, float]]:
    """Held-out reconstruction metrics (specs/ubdiff.md §5) of ``modalities``.

    Velocity: MAE / MSE / RMSE / SSIM on [-1, 1]; seismic: MAE (= L1) / MSE / RMSE.
    ``loader`` yields (velocity, seismic) pairs (``paired``) or velocity maps.
    """
    was_training = model.training
    model.eval()
    acc = {m: MetricAccumulator(with_ssim=(m == "velocity")) for m in modalities}
    for batch in loader:
        if paired:
            v, s = (t.to(device) for t in batch)
        else:
            v, s = batch.to(device), None
        data = {"velocity": v, "seismic": s}
        wanted = tuple(m for m in modalities if data[m] is not None)
        out = model(data[model.majority], outputs=wanted)
        for m in wanted:
            acc[m].update(out[m], data[m])
    model.train(was_training)
    return {m: a.compute() for m, a in acc.items() if a.n}


class _Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool):
        ctx = setup_distributed(cfg.run.device, cfg.run.threads)
        self.world, self.rank, self.device = ctx.world, ctx.rank, ctx.device
        self.distributed, self.is_main = ctx.distributed, ctx.is_main
        self.cfg = resolve_config(cfg)
        self.out = Path(self.cfg.run.out_dir)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.store = open_store(self.cfg.data.store)
        d = self.cfg.data
        self.views: TrainViews = make_train_views(
            self.store,
            self.cfg.model.majority,
            d.n_majority,
            d.n_paired,
            d.split_seed,
            d.paired_only,
            self.cfg.run.val_max_samples,
        )
        torch.manual_seed(self.cfg.run.seed)
        self.model = build_autoencoder(self.cfg.model).to(self.device)
        if self.cfg.run.sync_batchnorm and self.distributed and self.device.type == "cuda":
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.state = {"phase": "step1", "epoch": 0, "batch": 0, "global_step": 0}
        self.best: dict[str, float] = {}
        self.resume_ckpt = None
        ckpt = None
        if resume:
            ckpt = load_resume_point(
                self.out / RESUME_FILE,
                CHECKPOINT_FORMAT,
                "autoencoder",
                self.cfg.to_dict(),
                map_location=self.device,
            )
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.state = dict(ckpt["state"])
            self.best = dict(ckpt.get("best", {}))
            self.resume_ckpt = ckpt
        elif self.cfg.run.init_from:
            self._init_from(Path(self.cfg.run.init_from))
        if self.is_main:
            atomic_write_text(self.out / "config.toml", dump_toml(self.cfg.to_dict()))
        self.sleep = float(os.environ.get(_DEBUG_SLEEP_ENV, "0") or 0)

    def _init_from(self, path: Path) -> None:
        src = load_checkpoint(path, map_location=self.device)["model"]
        own = self.model.state_dict()
        skip = tuple(f"{name}." for name in self.cfg.run.init_skip)
        unknown = [n for n in self.cfg.run.init_skip if not any(k.startswith(f"{n}.") for k in own)]
        if unknown:
            raise ValueError(f"run.init_skip names no submodule of the model: {unknown}")
        matched = {
            k: v
            for k, v in src.items()
            if k in own and own[k].shape == v.shape and not k.startswith(skip)
        }
        if not matched:
            raise ValueError(f"run.init_from {str(path)!r} has no weights matching this model")
        self.model.load_state_dict(matched, strict=False)
        self.init_info = {
            "init_from": str(path),
            "tensors": len(matched),
            "of": len(own),
            "skipped": list(self.cfg.run.init_skip),
        }

    # -- helpers ---------------------------------------------------------------------------
    def _payload(self, optimizer=None, scheduler=None, **extra: Any) -> dict[str, Any]:
        p = {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "state": dict(self.state),
            "best": dict(self.best),
            "world_size": self.world,
        }
        if optimizer is not None:
            p["optimizer"] = optimizer.state_dict()
            p["scheduler"] = scheduler.state_dict()
        p.update(extra)
        return p

    def _save(self, name: str, payload: dict[str, Any]) -> None:
        """Write a checkpoint (rank 0). Every autoencoder checkpoint carries the RNG state, so
        each is written as a resume point (``last.pt`` is the one a resumed run reads)."""
        if self.is_main:
            check_finite_weights(payload["model"].values(), f"the autoencoder ({name})")
            save_resume_point(self.out / name, payload)

    def _log(self, record: dict[str, Any]) -> None:
        if self.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _sync_buffers(self) -> None:
        if not self.distributed:
            return
        for buf in self.model.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(self.world)

    def _loader(self, dataset, sampler, local_batch: int) -> DataLoader:
        d = self.cfg.data
        kwargs: dict[str, Any] = {}
        if d.num_workers:
            kwargs = {"prefetch_factor": d.prefetch_factor, "persistent_workers": False}
        return DataLoader(
            dataset,
            batch_size=local_batch,
            sampler=sampler,
            num_workers=d.num_workers,
            generator=torch.Generator().manual_seed(self.cfg.run.seed),
            pin_memory=self.device.type == "cuda",
            **kwargs,
        )

    def _validate(self, phase: str) -> dict[str, dict[str, float]]:
        mods = (self.model.majority,) if phase == "step1" else ("velocity", "seismic")
        if not self.views.test_paired:
            mods = tuple(m for m in mods if m == "velocity")
        if not mods or len(self.views.test) == 0:
            return {}
        batch = max(1, min(16, self.step_cfg(phase).batch_size))
        loader = DataLoader(self.views.test, batch_size=batch, num_workers=0)
        return evaluate_autoencoder(
            self.model, loader, self.device, paired=self.views.test_paired, modalities=mods
        )

    def step_cfg(self, phase: str) -> StepConfig:
        return self.cfg.step1 if phase == "step1" else self.cfg.step2

    def _score(self, phase: str, metrics: dict[str, dict[str, float]]) -> float | None:
        """Lower is better."""
        maj, mino = self.model.majority, self.model.minority
        if phase == "step1":
            m = metrics.get(maj)
            if not m:
                return None
            return -m["ssim"] if "ssim" in m else m["mse"]
        s = self.cfg.step2
        m = metrics.get(mino)
        if not m:
            return None
        score = s.gamma_l1 * m["mae"] + s.gamma_l2 * m["mse"]
        if s.freeze == 0 and maj in metrics:
            g = self.cfg.step1
            score += g.gamma_l1 * metrics[maj]["mae"] + g.gamma_l2 * metrics[maj]["mse"]
        return score

    # -- one phase -------------------------------------------------------------------------
    def _setup_phase(self, phase: str):
        model, step = self.model, self.step_cfg(phase)
        for p in model.parameters():
            p.requires_grad_(False)
        if phase == "step1":
            trained: nn.Module = (
                model.branch(model.majority) if step.freeze_encoder else model.majority_modules()
            )
        elif step.freeze:
            trained = model.branch(model.minority)
        else:
            trained = model
        for p in trained.parameters():
            p.requires_grad_(True)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=step.lr, weight_decay=step.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step.lr_decay_every, step.lr_decay)
        net: nn.Module = model
        if self.distributed:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        return net, opt, sched

    def _train_mode(self, phase: str) -> None:
        self.model.train()
        if phase == "step2" and self.cfg.step2.freeze:
            self.model.majority_modules().eval()
        if phase == "step1" and self.cfg.step1.freeze_encoder:
            self.model.encoder.eval()

    def _batch_loss(self, phase: str, net: nn.Module, batch) -> torch.Tensor:
        """The training loss of one batch: step 1 reconstructs the majority modality; step 2 the
        minority one from the majority input (plus the majority's, unless step 1 is frozen)."""
        cfg, step = self.cfg, self.step_cfg(phase)
        maj, mino = self.model.majority, self.model.minority
        if phase == "step1":
            x = batch.to(self.device)
            out = net(x, outputs=(maj,))
            return _recon_loss(out[maj], x, cfg.step1, self._bounds(maj))
        v, s = (t.to(self.device) for t in batch)
        data = {"velocity": v, "seismic": s}
        if step.freeze:
            out = net(data[maj], outputs=(mino,))
            return _recon_loss(out[mino], data[mino], step, self._bounds(mino))
        out = net(data[maj], outputs=(maj, mino))
        return _recon_loss(out[maj], data[maj], cfg.step1, self._bounds(maj)) + _recon_loss(
            out[mino], data[mino], step, self._bounds(mino)
        )

    def _bounds(self, modality: str) -> tuple[float, float] | None:
        """The store's seismic log bounds for the seismic modality (its physical loss term)."""
        nm = self.store.normalizer
        return (nm.s_log_min, nm.s_log_max) if modality == "seismic" else None

    def _run_phase(self, phase: str) -> None:
        cfg, step = self.cfg, self.step_cfg(phase)
        if step.epochs == 0:
            return
        if step.batch_size % self.world:
            raise ValueError(f"{phase}.batch_size must be divisible by the {self.world} ranks")
        local_batch = step.batch_size // self.world
        dataset = self.views.majority if phase == "step1" else self.views.paired
        net, opt, sched = self._setup_phase(phase)
        if self.resume_ckpt is not None and self.resume_ckpt["state"]["phase"] == phase:
            if "optimizer" in self.resume_ckpt:
                opt.load_state_dict(self.resume_ckpt["optimizer"])
                sched.load_state_dict(self.resume_ckpt["scheduler"])
            set_rng_state(self.resume_ckpt["rng"])
            self.resume_ckpt = None
        phase_id = PHASES.index(phase)
        while self.state["epoch"] < step.epochs:
            epoch, start = self.state["epoch"], self.state["batch"]
            sampler = ResumableSampler(
                len(dataset),
                local_batch,
                seed=cfg.run.seed,
                phase=phase_id,
                epoch=epoch,
                rank=self.rank,
                world=self.world,
                start_batch=start,
            )
            loader = self._loader(dataset, sampler, local_batch)
            self._train_mode(phase)
            sums = self.state.get("loss_sum", 0.0), self.state.get("loss_n", 0)
            loss_sum, loss_n = sums if start else (0.0, 0)
            t0 = time.perf_counter()
            bar = tqdm(
                loader,
                total=sampler.batches,
                initial=start,
                desc=f"{phase} epoch {epoch + 1}/{step.epochs}",
                disable=not (cfg.run.progress and self.is_main),
                leave=False,
                dynamic_ncols=True,
            )
            for batch in bar:
                loss = self._batch_loss(phase, net, batch)
                check_finite_loss(loss, self.state["global_step"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach())
                loss_n += 1
                self.state.update(
                    batch=self.state["batch"] + 1,
                    global_step=self.state["global_step"] + 1,
                    loss_sum=loss_sum,
                    loss_n=loss_n,
                )
                bar.set_postfix(loss=f"{loss_sum / loss_n:.4g}")
                every = cfg.run.checkpoint_every_steps
                if every and self.state["global_step"] % every == 0:
                    if self.state["batch"] < sampler.batches:
                        self._save("last.pt", self._payload(opt, sched))
                if self.sleep:
                    time.sleep(self.sleep)
            bar.close()
            sched.step()
            self._sync_buffers()
            self.state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_n=0)
            record: dict[str, Any] = {
                "phase": phase,
                "epoch": epoch + 1,
                "global_step": self.state["global_step"],
                "train_loss": loss_sum / max(loss_n, 1),
                "lr": opt.param_groups[0]["lr"],
                "epoch_time_s": round(time.perf_counter() - t0, 3),
            }
            last_epoch = epoch + 1 == step.epochs
            if self.is_main and (
                last_epoch or (cfg.run.val_every and (epoch + 1) % cfg.run.val_every == 0)
            ):
                metrics = self._validate(phase)
                record["val"] = metrics
                score = self._score(phase, metrics)
                if score is not None and score < self.best.get(phase, math.inf):
                    self.best[phase] = score
                    record["best"] = True
                    self._save(f"best_{phase}.pt", self._payload(val=metrics))
            self._log(record)
            self._save("last.pt", self._payload(opt, sched))
            self._barrier()

    def _start_step2(self) -> None:
        """Step 2 starts from step 1's best weights (if step 1 validated), like the paper."""
        best = self.out / "best_step1.pt"
        self._barrier()
        if self.cfg.step1.epochs and best.exists():  # else: init / resumed weights
            self.model.load_state_dict(load_checkpoint(best, self.device)["model"])
        self.state.update(phase="step2", epoch=0, batch=0, loss_sum=0.0, loss_n=0)
        self._save("last.pt", self._payload())
        self._barrier()

    def run(self) -> dict[str, Any]:
        if self.state["phase"] == "step1":
            self._run_phase("step1")
            self._start_step2()
        if self.state["phase"] == "step2":
            self._run_phase("step2")
            self.state.update(phase="done", epoch=0, batch=0)
            self._save("last.pt", self._payload())
            self._save("final.pt", self._payload())
        self._barrier()
        return {"out_dir": str(self.out), "global_step": self.state["global_step"], **self.best}

    def close(self) -> None:
        self.store.close()
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def train_autoencoder(cfg: TrainConfig, *, resume: bool = True) -> dict[str, Any]:
    """Run (or resume) two-step training; returns a summary (run dir, steps, best scores).

    Args:
        cfg: the training config (:func:`~ubdiff_phys.train.config.load_config`).
        resume: continue from ``<out_dir>/last.pt`` when it exists (its config must match).
    """
    trainer = _Trainer(cfg, resume)
    try:
        return trainer.run()
    finally:
        trainer.close()
