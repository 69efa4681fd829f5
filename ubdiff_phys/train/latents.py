"""Latent cache: the co-latents of a store's majority rows, encoded once by a trained encoder.

File (default ``<store>.latents.h5``, beside the store)::

    latents   (N, latent_dim)  float32   z = E(x) in [-1, 1] (encoder in eval mode)
    rows      (N,)             int64     the store rows encoded (the autoencoder's step-1 rows)

Attributes: ``format`` = "ubdiff_phys.latents", ``autoencoder_sha256`` (hash of the checkpoint
file that encoded them), ``autoencoder``, ``store`` (paths), ``majority``, ``n_committed``,
``complete``. Built in batches and committed after each one (data flushed, then the counter), so an
interrupted build resumes where it stopped; a cache made by another checkpoint is rebuilt.
Training reads random batches from it (:class:`LatentBatches`) without loading it whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from ubdiff_phys.data import open_store
from ubdiff_phys.runtime.files import atomic_path, file_sha256
from ubdiff_phys.train.checkpoint import load_autoencoder
from ubdiff_phys.train.data import make_train_views

__all__ = ["LatentBatches", "PermutedRows", "build_latent_cache", "default_latent_path"]

FORMAT = "ubdiff_phys.latents"


def default_latent_path(store: str | os.PathLike) -> Path:
    return Path(str(store) + ".latents.h5")


def _usable(path: Path, sha: str, n: int) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return (
                f.attrs.get("format") == FORMAT
                and f.attrs.get("autoencoder_sha256") == sha
                and f["latents"].shape[0] == n
            )
    except (OSError, KeyError):
        return False


@torch.no_grad()
def build_latent_cache(
    store_path: str | os.PathLike,
    autoencoder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Encode the autoencoder's majority rows of ``store_path`` into ``out`` (resumable).

    The rows are those step 1 of the autoencoder trained on (its config's ``data`` selection of
    the store's training rows; all of them by default). Returns the cache path.
    """
    out = Path(out) if out else default_latent_path(store_path)
    sha = file_sha256(autoencoder)
    model, ae_cfg = load_autoencoder(autoencoder, device)
    with open_store(store_path) as store:
        d = ae_cfg.data
        views = make_train_views(
            store, ae_cfg.model.majority, d.n_majority, d.n_paired, d.split_seed, d.paired_only
        )
        rows, dataset = views.majority_rows, views.majority
        n = len(rows)
        if not _usable(out, sha, n):
            with atomic_path(out, ".creating") as tmp, h5py.File(tmp, "w") as f:
                f.create_dataset(
                    "latents",
                    shape=(n, ae_cfg.model.latent_dim),
                    dtype=np.float32,
                    chunks=(min(max(n, 1), 1024), ae_cfg.model.latent_dim),
                )
                f.create_dataset("rows", data=np.asarray(rows, dtype=np.int64))
                f.attrs.update(
                    format=FORMAT,
                    autoencoder_sha256=sha,
                    autoencoder=str(Path(autoencoder).resolve()),
                    store=str(Path(store_path).resolve()),
                    majority=ae_cfg.model.majority,
                    n_committed=0,
                    complete=False,
                )
        with h5py.File(out, "r+") as f:
            start = int(f.attrs["n_committed"])
            bar = tqdm(
                total=n, initial=start, desc="encoding latents", disable=not progress, leave=False
            )
            for a in range(start, n, batch_size):
                b = min(a + batch_size, n)
                x = torch.stack([dataset[i] for i in range(a, b)]).to(device)
                z = model.encode(x).reshape(b - a, -1).float().cpu().numpy()
                f["latents"][a:b] = z
                f.flush()
                f.attrs["n_committed"] = b
                f.flush()
                bar.update(b - a)
            bar.close()
            f.attrs["complete"] = True
    return out


class PermutedRows:
    """Which rows of ``n`` make micro-batch ``k``: consecutive slices of per-epoch permutations
    drawn from ``seed``, a pure function of (seed, k), so a resumed run continues the exact
    sequence. Under DDP, rank r of w takes slice r of each global batch."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed = int(n), seed
        self._perm_epoch, self._perm = -1, None

    def _perm_of(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))
            self._perm, self._perm_epoch = rng.permutation(self.n), epoch
        return self._perm

    def indices(self, k: int, global_batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
        local = global_batch // world
        start = k * global_batch + rank * local
        pos = np.arange(start, start + local)
        out = np.empty(local, dtype=np.int64)
        for epoch in np.unique(pos // self.n):
            sel = pos // self.n == epoch
            out[sel] = self._perm_of(int(epoch))[pos[sel] % self.n]
        return out


class LatentBatches(PermutedRows):
    """Random batches of a latent cache as (B, 1, latent_dim) float32 tensors (rows chosen by
    :class:`PermutedRows`)."""

    def __init__(self, path: str | os.PathLike, seed: int = 0):
        self.path = Path(path)
        self._f = h5py.File(self.path, "r")
        if self._f.attrs.get("format") != FORMAT or not self._f.attrs.get("complete"):
            self._f.close()
            raise ValueError(f"{str(self.path)!r} is not a complete latent cache")
        self.latents = self._f["latents"]
        if self.latents.shape[0] == 0:
            self._f.close()
            raise ValueError(f"{str(self.path)!r} holds no latents")
        super().__init__(self.latents.shape[0], seed)
        self.autoencoder_sha256 = str(self._f.attrs["autoencoder_sha256"])

    def batch(self, k: int, global_batch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        idx = self.indices(k, global_batch, rank, world)
        uniq, inverse = np.unique(idx, return_inverse=True)
        z = self.latents[uniq][inverse]
        return torch.from_numpy(np.ascontiguousarray(z)).unsqueeze(1)

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()
