"""torch Datasets over one dataset store: the unbalanced training views and the test view.

A :class:`SplitSpec` (n_velocity, n_paired, seed) picks, from the store's ``train_index`` only:
``n_paired`` rows that have gathers (the paired view, minority) and ``n_velocity`` rows in all
(the velocity-only view, majority; it contains the paired rows, as UB-Diff's first training step
uses every training velocity map). The test view is the store's ``test_index``; no training view
ever returns a test row. Samples are read from HDF5 one at a time and normalised into new tensors
(specs/data.md §2), so memory stays bounded and the stored data is never modified.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ubdiff_phys.data.store import Store, open_store

__all__ = [
    "NoisyPairedDataset",
    "PairedDataset",
    "SplitSpec",
    "HeldOutDataset",
    "VelocityDataset",
    "make_views",
]


@dataclass(frozen=True)
class SplitSpec:
    """How many training rows each view uses, and the seed that picks them.

    Attributes:
        n_velocity: rows of the velocity-only view (includes the paired rows).
        n_paired: rows of the paired view (rows with gathers).
        seed: non-negative integer.
    """

    n_velocity: int
    n_paired: int
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_velocity", "n_paired", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"SplitSpec.{name} must be a non-negative integer, got {value!r}")
        if self.n_paired > self.n_velocity:
            raise ValueError(
                f"SplitSpec: n_paired ({self.n_paired}) cannot exceed "
                f"n_velocity ({self.n_velocity})"
            )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitSpec:
        return cls(int(d["n_velocity"]), int(d["n_paired"]), int(d.get("seed", 0)))

    @classmethod
    def from_store(cls, store: Store) -> SplitSpec:
        """The split a ``make-dataset`` build recorded (all training rows, all paired ones)."""
        split = store.attrs.get("split") or {}
        if "n_velocity" not in split:
            n_train = len(store.train_index)
            n_paired = int(np.isin(store.train_index, store.paired_index).sum())
            return cls(n_train, n_paired, 0)
        return cls(int(split["n_velocity"]), int(split["n_paired"]), int(split["seed"]))

    def select(self, store: Store) -> tuple[np.ndarray, np.ndarray]:
        """(velocity rows, paired rows) of this split in ``store``, each sorted.

        Raises:
            ValueError: the store's training rows cannot supply the requested counts.
        """
        train = store.train_index
        has_seismic = store.seismic_row[train] >= 0
        cand_paired, cand_other = train[has_seismic], train[~has_seismic]
        if self.n_paired > len(cand_paired):
            raise ValueError(
                f"split asks for {self.n_paired} paired rows but the store's training "
                f"rows have only "
                f"{len(cand_paired)} with gathers"
            )
        if self.n_velocity > len(train):
            raise ValueError(
                f"split asks for {self.n_velocity} velocity rows but the store has only "
                f"{len(train)} training rows"
            )
        rng = np.random.default_rng(
            np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(b"views"),))
        )
        paired = rng.permutation(cand_paired)[: self.n_paired]
        rest = np.setdiff1d(train, paired)
        # prefer rows without gathers for the velocity-only remainder, so that a split of an
        # all-paired OpenFWI import and of a make-dataset build behave the same way
        rest = np.concatenate(
            [
                rng.permutation(np.intersect1d(rest, cand_other)),
                rng.permutation(np.intersect1d(rest, cand_paired)),
            ]
        )
        velocity = np.concatenate([paired, rest[: self.n_velocity - self.n_paired]])
        return np.sort(velocity), np.sort(paired)


class _StoreDataset(Dataset):
    def __init__(
        self,
        store: Store | str | os.PathLike,
        rows: np.ndarray,
        normalize: bool = True,
        spec: SplitSpec | None = None,
    ):
        self.store = store if isinstance(store, Store) else open_store(store)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.spec = spec
        self.normalize = normalize
        self.normalizer = self.store.normalizer
        bad = np.intersect1d(self.rows, self.store.test_index)
        if bad.size and not isinstance(self, HeldOutDataset):
            raise ValueError(f"training view would include {bad.size} held-out test rows")

    def __len__(self) -> int:
        return len(self.rows)

    def _row(self, i: int) -> int:
        if not -len(self.rows) <= i < len(self.rows):
            raise IndexError(f"index {i} out of range for a view of {len(self.rows)} samples")
        return int(self.rows[i])

    def _velocity(self, row: int) -> torch.Tensor:
        v = torch.from_numpy(self.store.velocity(row))
        return self.normalizer.velocity(v).float() if self.normalize else v

    def _seismic(self, row: int) -> torch.Tensor:
        s = torch.from_numpy(self.store.seismic_of(row))
        return self.normalizer.seismic(s).float() if self.normalize else s


class VelocityDataset(_StoreDataset):
    """Velocity-only view: item i is a (1, nz, nx) float32 tensor, normalised to [-1, 1] (or in m/s
    with ``normalize=False``)."""

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._velocity(self._row(i))


class PairedDataset(_StoreDataset):
    """Paired view: item i is (velocity (1, nz, nx), seismic (S, nt, R)) float32 tensors, normalised
    with the store's constants (or raw with ``normalize=False``)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self._row(i)
        return self._velocity(row), self._seismic(row)


class NoisyPairedDataset(PairedDataset):
    """Paired view with noisy gathers, for training a network that must read noisy records
    (training-noise augmentation): item i is (velocity (1, nz, nx), seismic (S, nt, R)) as in
    :class:`PairedDataset`, with N(0, σ²) added to the gathers in physical units before the
    store's log normalisation, σ = f · RMS(gathers of row i) and f drawn uniformly from
    [0, ``max_fraction``]. Every read draws afresh (each epoch sees other noise) from one stream
    seeded with ``seed``. In a DataLoader worker the stream is re-seeded from ``seed`` and the
    worker's torch seed (:meth:`worker_stream_seed`), which the loader draws afresh for every
    epoch's workers from its generator: workers do not repeat each other's draws, nor an earlier
    epoch's. :meth:`state_dict` / :meth:`load_state_dict` hold the stream's position, so a
    resumed training run (:func:`ubdiff_phys.eval.protocol.train_inversionnet`) draws the noise
    the uninterrupted one did.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike,
        rows: np.ndarray,
        max_fraction: float,
        seed: int = 0,
        normalize: bool = True,
        spec: SplitSpec | None = None,
    ):
        super().__init__(store, rows, normalize, spec)
        if not 0 <= max_fraction < float("inf"):
            raise ValueError(f"max_fraction must be finite and >= 0, got {max_fraction}")
        self.max_fraction = float(max_fraction)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._worker: int | None = None

    @classmethod
    def of(cls, view: PairedDataset, max_fraction: float, seed: int = 0) -> NoisyPairedDataset:
        """The noisy version of a paired view (same store, rows, normalisation and spec)."""
        return cls(view.store, view.rows, max_fraction, seed, view.normalize, view.spec)

    @staticmethod
    def worker_stream_seed(seed: int, worker_seed: int) -> int:
        """The stream seed in a DataLoader worker whose torch seed is ``worker_seed``
        (``torch.utils.data.get_worker_info().seed``: distinct per worker and per epoch)."""
        return (seed * 1_000_003 + worker_seed) % 2**63

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The noise stream's position (this process's; workers re-seed as above)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue the stream from a :meth:`state_dict`."""
        self.generator.set_state(state["generator"])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and self._worker != worker.id:
            self._worker = worker.id
            self.generator.manual_seed(self.worker_stream_seed(self.seed, worker.seed))
        row = self._row(i)
        s = torch.from_numpy(self.store.seismic_of(row)).double()
        f = float(torch.rand((), generator=self.generator, dtype=torch.float64)) * self.max_fraction
        sigma = f * float(s.square().mean().sqrt())
        s = s + torch.randn(s.shape, generator=self.generator, dtype=torch.float64) * sigma
        s = self.normalizer.seismic(s) if self.normalize else s
        return self._velocity(row), s.float()


class HeldOutDataset(_StoreDataset):
    """Held-out view over ``test_index``: (velocity, seismic) pairs, or velocity alone for test rows
    without gathers (``paired`` tells which)."""

    def __init__(self, store: Store | str | os.PathLike, normalize: bool = True):
        st = store if isinstance(store, Store) else open_store(store)
        super().__init__(st, st.test_index, normalize)
        self.paired = bool(len(self.rows)) and bool((st.seismic_row[self.rows] >= 0).all())

    def __getitem__(self, i: int):
        row = self._row(i)
        return (self._velocity(row), self._seismic(row)) if self.paired else self._velocity(row)


def make_views(
    store: Store | str | os.PathLike, spec: SplitSpec | None = None, *, normalize: bool = True
) -> tuple[VelocityDataset, PairedDataset, HeldOutDataset]:
    """The three views of one store under ``spec`` (default: the split the store recorded).

    Returns:
        (velocity-only training view, paired training view, test view).
    """
    st = store if isinstance(store, Store) else open_store(store)
    spec = SplitSpec.from_store(st) if spec is None else spec
    v_rows, p_rows = spec.select(st)
    return (
        VelocityDataset(st, v_rows, normalize, spec),
        PairedDataset(st, p_rows, normalize, spec),
        HeldOutDataset(st, normalize),
    )
