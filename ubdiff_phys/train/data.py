"""Training views of a dataset store and a resumable, DDP-sharded sampler.

Everything streams from HDF5 one sample at a time (:mod:`ubdiff_phys.data.datasets`); a DataLoader
holds at most batch_size x prefetch_factor x num_workers samples.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, Subset

from ubdiff_phys.data import HeldOutDataset, PairedDataset, SplitSpec, Store, VelocityDataset
from ubdiff_phys.runtime.errors import UserError

__all__ = ["ResumableSampler", "TrainViews", "make_train_views"]


class DataTooSmallError(UserError, ValueError):
    """The data cannot fill one batch of the configured size (a config/data mismatch)."""


class _Pick(Dataset):
    """Item ``index`` of each tuple item of ``base`` (e.g. the gathers of a PairedDataset)."""

    def __init__(self, base: Dataset, index: int):
        self.base, self.index = base, index

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return self.base[i][self.index]


@dataclass
class TrainViews:
    """majority: step-1 items (majority modality tensor); paired: step-2 items (velocity,
    seismic); test: held-out (velocity, seismic) pairs (or velocity only)."""

    majority: Dataset
    paired: Dataset
    test: Dataset
    test_paired: bool
    majority_rows: np.ndarray
    paired_rows: np.ndarray


def make_train_views(
    store: Store,
    majority: str,
    n_majority: int = 0,
    n_paired: int = 0,
    split_seed: int = 0,
    paired_only: bool = False,
    val_max_samples: int = 0,
) -> TrainViews:
    """Select rows and build the datasets of both training steps (see :class:`DataConfig`)."""
    recorded = SplitSpec.from_store(store)
    n_paired = n_paired or recorded.n_paired
    train = store.train_index
    if majority == "velocity":
        spec = SplitSpec(n_majority or len(train), n_paired, split_seed)
        maj_rows, paired_rows = spec.select(store)
        if paired_only:
            maj_rows = paired_rows
        maj = VelocityDataset(store, maj_rows)
    else:
        _, paired_rows = SplitSpec(n_paired, n_paired, split_seed).select(store)
        with_gathers = train[store.seismic_row[train] >= 0]
        rest = np.setdiff1d(with_gathers, paired_rows)
        rng = np.random.default_rng(
            np.random.SeedSequence(split_seed, spawn_key=(zlib.crc32(b"seismic-majority"),))
        )
        n_rest = (n_majority or len(with_gathers)) - len(paired_rows)
        if n_rest > len(rest):
            raise ValueError(
                f"n_majority asks for {n_majority} seismic rows but the store's training rows "
                f"have {len(with_gathers)} with gathers"
            )
        maj_rows = (
            paired_rows
            if paired_only
            else np.sort(np.concatenate([paired_rows, rng.permutation(rest)[: max(n_rest, 0)]]))
        )
        maj = _Pick(PairedDataset(store, maj_rows), 1)
    paired = PairedDataset(store, paired_rows)
    test = HeldOutDataset(store)
    test_paired = test.paired
    if majority == "seismic" and not test_paired:
        raise ValueError("seismic-majority training needs a test split with gathers")
    if val_max_samples and len(test) > val_max_samples:
        test = Subset(test, range(val_max_samples))
    return TrainViews(maj, paired, test, test_paired, np.asarray(maj_rows), paired_rows)


class ResumableSampler(Sampler[int]):
    """Seeded, sharded, resumable sample order of one epoch.

    The permutation is a function of (seed, phase, epoch) only; it is cut to a whole number of
    global batches (``drop_last``), rank r takes every ``world``-th index starting at r (the
    DistributedSampler convention), and the first ``start_batch`` local batches are skipped, so a
    resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(
        self,
        n: int,
        local_batch: int,
        *,
        seed: int,
        phase: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        start_batch: int = 0,
    ):
        self.n, self.local_batch, self.rank, self.world = n, local_batch, rank, world
        self.batches = n // (local_batch * world)
        if self.batches == 0:
            raise DataTooSmallError(
                f"{n} samples cannot fill one global batch of {local_batch} x {world} ranks"
            )
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + phase * 10_007 + epoch)
        perm = torch.randperm(n, generator=g)[: self.batches * local_batch * world]
        self.indices = perm[rank::world][start_batch * local_batch :].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
