"""Train-on-generated, test-on-real: the pairwise check of specs/ubdiff.md §5.

InversionNet is trained on every paired training row of one store (a generated pairs file, whose
rows are all training rows, or a real store's training split) and tested on the held-out paired
rows (``test_index``) of another store. Training uses AdamW (lr 1e-4, weight decay 1e-4) on
L1 + MSE between the predicted and the true normalised velocity; the test metrics are MAE / MSE /
RMSE on [-1, 1] and SSIM on [0, 1] (:mod:`ubdiff_phys.models.metrics`), global means over the test
set. Each store's own normalisation constants normalise its samples.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ubdiff_phys.data.datasets import HeldOutDataset, PairedDataset
from ubdiff_phys.data.store import Store, StoreError, open_store
from ubdiff_phys.models import InversionNet
from ubdiff_phys.models.metrics import MetricAccumulator
from ubdiff_phys.runtime.checkpoint import set_rng_state
from ubdiff_phys.runtime.config import strict_from_dict
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.resume import load_resume_point, save_resume_point

INVERSION_CHECKPOINT_FORMAT = "ubdiff_phys.inversion_training_state"

__all__ = [
    "ProtocolConfig",
    "ProtocolResult",
    "evaluate_inversion",
    "heldout_pairs",
    "inversion_loss",
    "run_protocol",
    "train_inversionnet",
    "training_pairs",
]


@dataclass(frozen=True)
class ProtocolConfig:
    """InversionNet training and testing options (defaults: specs/ubdiff.md §5).

    Attributes:
        epochs: passes over the training pairs.
        batch: training and test batch size.
        lr, weight_decay: AdamW.
        width: InversionNet channel multiplier (1.0 = the 24.4 M-parameter OpenFWI network).
        max_steps: stop training after this many optimiser steps (None: all epochs).
        seed: initialisation and shuffling seed.
        num_workers: DataLoader worker processes.
    """

    epochs: int = 1
    batch: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-4
    width: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1:
            raise ValueError(f"epochs and batch must be >= 1, got {self.epochs}, {self.batch}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.width > 0):
            raise ValueError("lr and width must be > 0 and weight_decay >= 0")
        if self.seed < 0 or self.num_workers < 0:
            raise ValueError("seed and num_workers must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProtocolConfig:
        return strict_from_dict(cls, d, "protocol option(s)")


@dataclass
class ProtocolResult:
    """Test metrics of InversionNet trained on ``train_path`` and tested on ``test_path``."""

    train_path: str
    test_path: str
    n_train: int
    n_test: int
    steps: int
    metrics: dict[str, float]
    config: dict[str, Any]
    train_loss: list[float] = field(default_factory=list)  # mean loss of each epoch
    seconds: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_store(store: Store | str | os.PathLike) -> Store:
    return store if isinstance(store, Store) else open_store(store)


def training_pairs(store: Store | str | os.PathLike) -> PairedDataset:
    """Paired training rows of ``store`` (every row of a generated pairs file)."""
    st = _as_store(store)
    rows = np.sort(st.train_index[st.seismic_row[st.train_index] >= 0])
    if len(rows) == 0:
        raise StoreError(f"{str(st.path)!r} has no paired training rows to train InversionNet on")
    return PairedDataset(st, rows)


def heldout_pairs(store: Store | str | os.PathLike) -> HeldOutDataset:
    """Held-out paired rows of ``store`` (its ``test_index``; every test row needs gathers)."""
    view = HeldOutDataset(_as_store(store))
    if len(view) == 0 or not view.paired:
        raise StoreError(
            f"{str(view.store.path)!r} has no held-out rows with gathers (test_index) to test on"
        )
    return view


def inversion_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + MSE on normalised velocity (the OpenFWI InversionNet objective)."""
    return F.l1_loss(pred, target) + F.mse_loss(pred, target)


def _load_training_state(
    path: Path, cfg: ProtocolConfig, identity: dict[str, Any]
) -> dict[str, Any] | None:
    """The training state at ``path`` (None when there is none); a checkpoint of another run
    (other options, number of pairs or ``identity`` values) or of another kind is refused
    (CheckpointError)."""
    return load_resume_point(
        path,
        INVERSION_CHECKPOINT_FORMAT,
        "InversionNet",
        cfg.to_dict(),
        identity=identity,
        hint="remove it to start over",
    )


def _dataset_state(dataset: Dataset) -> dict[str, Any] | None:
    """A dataset's own random state, when it has one (``state_dict()``, e.g.
    :class:`~ubdiff_phys.data.NoisyPairedDataset`'s noise stream); None otherwise."""
    get = getattr(dataset, "state_dict", None)
    return get() if callable(get) else None


#: the keys of an InversionNet resume point besides ``identity``'s (which must not reuse them)
_STATE_KEYS = frozenset(
    "format config n_train model optimizer step epoch batch_in_epoch epoch_generator_state "
    "dataset losses loss_sum loss_n rng".split()
)


def _check_training_args(dataset: Dataset, checkpoint_every: int, identity) -> None:
    if len(dataset) == 0:
        raise ValueError("cannot train InversionNet on an empty dataset")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if clash := sorted(_STATE_KEYS.intersection(identity or {}) - {"n_train"}):
        raise ValueError(f"identity may not use the resume point's own keys: {clash}")


def _restore(state: dict[str, Any], model: nn.Module, opt, gen: torch.Generator, dataset) -> None:
    """Put a resume point's weights, optimiser, shuffle generator, dataset random state (e.g.
    NoisyPairedDataset's noise stream) and global RNG state back."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["epoch_generator_state"])
    if state.get("dataset") is not None:
        dataset.load_state_dict(state["dataset"])
    if "rng" in state:  # checkpoints written before the RNG state was saved have none
        set_rng_state(state["rng"])


def _optimizer_step(model: nn.Module, opt, v: torch.Tensor, s: torch.Tensor, step: int):
    """One optimiser step on a batch; returns the (detached) loss."""
    loss = inversion_loss(model(s), v)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"InversionNet loss is {float(loss)} at step {step}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def train_inversionnet(
    dataset: Dataset,
    cfg: ProtocolConfig | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    model: InversionNet | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    identity: dict[str, Any] | None = None,
) -> tuple[InversionNet, list[float], int]:
    """Train InversionNet on a dataset of normalised (velocity, seismic) pairs.

    With ``checkpoint``, the training state (weights, optimiser, position in the epoch, shuffle
    generator, the dataset's own random state when it has a ``state_dict``) is saved there
    atomically every ``checkpoint_every`` steps, and a run that finds the file resumes from it: an
    interrupted and resumed run ends with the same weights as an uninterrupted one. The file is
    left in place at the end (the caller removes it once the result is stored); it must match
    ``identity`` (plain values, e.g. the training-noise level) besides the options and pairs.

    Returns:
        (model in eval mode, mean training loss of each epoch, optimiser steps taken).
    """
    cfg = cfg or ProtocolConfig()
    dev = resolve_device(device)
    _check_training_args(dataset, checkpoint_every, identity)
    torch.manual_seed(cfg.seed)
    _, s0 = dataset[0]
    if model is None:
        model = InversionNet(tuple(s0.shape), width=cfg.width)
    model = model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch, shuffle=True, generator=gen, num_workers=cfg.num_workers
    )
    total = cfg.epochs * len(loader)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    losses: list[float] = []
    step = first_epoch = skip = 0
    loss_sum, n = 0.0, 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    ident = {**(identity or {}), "n_train": len(dataset)}
    state = _load_training_state(ckpt_path, cfg, ident) if ckpt_path else None
    if state is not None:
        _restore(state, model, opt, gen, dataset)
        step, first_epoch, skip = state["step"], state["epoch"], state["batch_in_epoch"]
        losses, loss_sum, n = list(state["losses"]), state["loss_sum"], state["loss_n"]

    def save(epoch: int, batch_in_epoch: int, epoch_gen_state: torch.Tensor, data_state) -> None:
        save_resume_point(
            ckpt_path,
            {
                "format": INVERSION_CHECKPOINT_FORMAT,
                "config": cfg.to_dict(),
                **ident,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "epoch_generator_state": epoch_gen_state,
                "dataset": data_state,
                "losses": losses,
                "loss_sum": loss_sum,
                "loss_n": n,
            },
        )

    with tqdm(
        total=total, initial=step, desc="inversionnet", unit="step", disable=not progress
    ) as bar:
        for epoch in range(first_epoch, cfg.epochs):
            if step >= total:
                break
            # the shuffle of this epoch is drawn from ``gen`` when the loader is iterated:
            # its state here lets a resumed run redraw the same order
            epoch_gen_state = gen.get_state()
            data_state = _dataset_state(dataset)  # the skipped reads of a resume replay from it
            if epoch != first_epoch or state is None:
                loss_sum, n, skip = 0.0, 0, 0
            for k, (v, s) in enumerate(loader):
                if k < skip:  # batches this epoch had done before the interruption
                    continue
                v, s = v.to(dev), s.to(dev)
                loss = _optimizer_step(model, opt, v, s, step)
                loss_sum += float(loss) * len(v)
                n += len(v)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.4f}")
                if step >= total:
                    break
                if ckpt_path is not None and step % checkpoint_every == 0:
                    save(epoch, k + 1, epoch_gen_state, data_state)
            losses.append(loss_sum / n)
    return model.eval(), losses, step


@torch.no_grad()
def evaluate_inversion(
    predict: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset,
    *,
    batch: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
) -> dict[str, float]:
    """MAE / MSE / RMSE / SSIM of ``predict(seismic) -> velocity`` over a paired dataset, in the
    dataset's order (global means; velocity in [-1, 1], SSIM on (x + 1) / 2)."""
    dev = resolve_device(device)
    acc = MetricAccumulator(with_ssim=True)
    for v, s in DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=num_workers):
        pred = predict(s.to(dev))
        acc.update(pred.detach().cpu(), v)
    return acc.compute()


def run_protocol(
    train_store: Store | str | os.PathLike,
    test_store: Store | str | os.PathLike,
    cfg: ProtocolConfig | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
) -> ProtocolResult:
    """Train InversionNet on ``train_store``'s paired training rows, test on ``test_store``'s
    held-out pairs (specs/ubdiff.md §5). ``checkpoint``: resumable training state (see
    :func:`train_inversionnet`)."""
    cfg = cfg or ProtocolConfig()
    dev = resolve_device(device)
    start = time.perf_counter()
    train_ds, test_ds = training_pairs(train_store), heldout_pairs(test_store)
    tr_shape, te_shape = train_ds.store.seismic_shape, test_ds.store.seismic_shape
    if tr_shape != te_shape or train_ds.store.grid != test_ds.store.grid:
        raise ValueError(
            f"training and test stores differ in shape: seismic {tr_shape} vs {te_shape}, "
            f"grid {train_ds.store.grid} vs {test_ds.store.grid}"
        )
    model, losses, steps = train_inversionnet(
        train_ds,
        cfg,
        device=dev,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )
    metrics = evaluate_inversion(
        model, test_ds, batch=cfg.batch, device=dev, num_workers=cfg.num_workers
    )
    if not all(math.isfinite(x) for x in metrics.values()):
        raise FloatingPointError(f"non-finite test metrics: {metrics}")
    return ProtocolResult(
        train_path=str(train_ds.store.path),
        test_path=str(test_ds.store.path),
        n_train=len(train_ds),
        n_test=len(test_ds),
        steps=steps,
        metrics=metrics,
        config=cfg.to_dict(),
        train_loss=losses,
        seconds=time.perf_counter() - start,
        device=str(dev),
    )
