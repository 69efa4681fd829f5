"""Feature networks for the Fréchet distance (specs/ubdiff.md §5).

Inception weights cannot be downloaded here, so the project trains its own feature network on
real data, reproducibly by one command (``ubdiff-phys train-features --real TRAIN.h5 --out
FEAT.pt``; fixed seed, deterministic on CPU):

* **Input.** A velocity map (1, 70, 70) or the gathers (S, nt, R) of one sample, normalised to
  [-1, 1] with the normalisation constants recorded *in the checkpoint* (those of the real store it
  was trained on, so the same physical sample always gives the same features whichever file it
  comes from), then area-averaged to 64 x 64 per channel.
* **Network.** A convolutional autoencoder: a 3 x 3 stem, four stride-2 4 x 4 stages
  (64 -> 4 pixels, GroupNorm + LeakyReLU(0.2)), flatten, Linear to a ``feature_dim`` code; the
  decoder mirrors it with transposed convolutions and a Tanh output. Objective: MSE
  reconstruction of the 64 x 64 input. It sees only the real store's training rows.
* **Features.** The ``feature_dim``-dimensional code (the Linear bottleneck output, default 64),
  which keeps the spatial layout that a global average pool would discard.

A user-supplied **Inception-v3** state dict is accepted too (:func:`load_feature_extractor`
recognises it): the FID network of pytorch-fid (``pt_inception-2015-12-05-*.pth``, 1008 classes)
or torchvision's ImageNet weights (1000 classes), run by the project's own port
(:mod:`ubdiff_phys.models.inception`, no torchvision needed). Velocity maps are normalised with the
real store's constants, repeated to 3 channels and resized bilinearly to 299 x 299; the features
are the 2048-d pool3 activations. Inception features are for velocity maps only (they were
trained on natural images; gathers are not images of that kind).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ubdiff_phys.data.normalize import Normalizer
from ubdiff_phys.data.store import Store, StoreError, open_store
from ubdiff_phys.models.inception import InceptionV3, inception_from_state_dict
from ubdiff_phys.runtime.checkpoint import save_checkpoint, set_rng_state
from ubdiff_phys.runtime.config import strict_from_dict
from ubdiff_phys.runtime.files import file_sha256
from ubdiff_phys.runtime.resume import load_resume_point, save_resume_point

__all__ = [
    "FEATURE_CHECKPOINT_FORMAT",
    "FEATURE_TRAINING_FORMAT",
    "FeatureAutoencoder",
    "FeatureConfig",
    "FeatureExtractor",
    "InceptionFeatures",
    "load_feature_extractor",
    "store_rows",
    "train_feature_network",
]

FEATURE_CHECKPOINT_FORMAT = "ubdiff_phys.feature_checkpoint"
FEATURE_TRAINING_FORMAT = "ubdiff_phys.feature_training_state"  # resume point, see train_...
INPUT_SIZE = 64
INCEPTION_SIZE = 299
MODALITIES = ("velocity", "seismic")


@dataclass(frozen=True)
class FeatureConfig:
    """Feature network and its training.

    Attributes:
        modality: "velocity" or "seismic".
        feature_dim: size of the code used as features.
        width: channels of the first stage (doubling per stage, capped at 8 x width).
        epochs, batch, lr: Adam training of the reconstruction objective.
        seed: initialisation and shuffling seed.
        max_samples: use at most this many training rows (None: all).
    """

    modality: str = "velocity"
    feature_dim: int = 64
    width: int = 16
    epochs: int = 20
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        for name in ("feature_dim", "width", "epochs", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureConfig.{name} must be >= 1")
        if not self.lr > 0 or self.seed < 0:
            raise ValueError("lr must be > 0 and seed >= 0")
        if self.max_samples is not None and self.max_samples < 2:
            raise ValueError("max_samples must be >= 2 or None")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        return strict_from_dict(cls, d, "feature option(s)")


def _stage(c_in: int, c_out: int, transpose: bool = False) -> nn.Sequential:
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(c_in, c_out, 4, stride=2, padding=1)
    return nn.Sequential(conv, nn.GroupNorm(min(8, c_out), c_out), nn.LeakyReLU(0.2))


class FeatureAutoencoder(nn.Module):
    """(B, C, 64, 64) in [-1, 1] -> code (B, feature_dim) -> reconstruction (B, C, 64, 64)."""

    def __init__(self, in_channels: int, feature_dim: int = 64, width: int = 16):
        super().__init__()
        ch = [min(width * 2**k, 8 * width) for k in range(5)]  # stem, then 4 stages
        self.stem = nn.Sequential(nn.Conv2d(in_channels, ch[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.Sequential(*(_stage(ch[k], ch[k + 1]) for k in range(4)))
        self.bottom = (ch[4], INPUT_SIZE // 16, INPUT_SIZE // 16)
        self.to_code = nn.Linear(int(np.prod(self.bottom)), feature_dim)
        self.from_code = nn.Linear(feature_dim, int(np.prod(self.bottom)))
        self.up = nn.Sequential(*(_stage(ch[k + 1], ch[k], transpose=True) for k in (3, 2, 1, 0)))
        self.head = nn.Conv2d(ch[0], in_channels, 3, padding=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_code(self.down(self.stem(x)).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.from_code(z), 0.2).view(-1, *self.bottom)
        return torch.tanh(self.head(self.up(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _prepare(x: torch.Tensor) -> torch.Tensor:
    """Normalised (B, C, H, W) -> (B, C, 64, 64) by area averaging (bilinear where smaller)."""
    if x.shape[-2] >= INPUT_SIZE and x.shape[-1] >= INPUT_SIZE:
        return F.adaptive_avg_pool2d(x, INPUT_SIZE)
    return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)


def store_rows(store: Store, modality: str, which: str) -> np.ndarray:
    """Velocity rows of ``store`` for features: ``which`` is "train" (training rows), "test"
    (held-out rows) or "all"; for "seismic" only rows with gathers."""
    rows = {"train": store.train_index, "test": store.test_index}.get(which)
    if which == "all":
        rows = np.arange(store.n_velocity)
    if rows is None:
        raise ValueError(f"which must be 'train', 'test' or 'all', got {which!r}")
    if modality == "seismic":
        rows = rows[store.seismic_row[rows] >= 0]
    return np.sort(np.asarray(rows, dtype=np.int64))


class _RowsDataset(Dataset):
    """Normalised samples of one modality of ``rows`` of a store, with a given normaliser."""

    def __init__(self, store: Store, rows: np.ndarray, modality: str, normalizer: Normalizer):
        self.store, self.rows, self.modality, self.normalizer = store, rows, modality, normalizer

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        row = int(self.rows[i])
        if self.modality == "velocity":
            return self.normalizer.velocity(torch.from_numpy(self.store.velocity(row))).float()
        return self.normalizer.seismic(torch.from_numpy(self.store.seismic_of(row))).float()


class AutoencoderFeatures(nn.Module):
    """Normalised samples (B, C, H, W) -> the bottleneck code (B, D) of a
    :class:`FeatureAutoencoder`."""

    def __init__(self, model: FeatureAutoencoder):
        super().__init__()
        self.model = model
        self.feature_dim = model.to_code.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(_prepare(x))


class InceptionFeatures(nn.Module):
    """Normalised velocity maps (B, 1, H, W) in [-1, 1] -> Inception-v3 pool3 features
    (B, 2048): repeated to 3 channels and resized bilinearly to 299 x 299 (the inputs both
    Inception weight sets expect)."""

    feature_dim = 2048

    def __init__(self, inception: InceptionV3):
        super().__init__()
        self.inception = inception

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:
            raise ValueError(f"Inception features take 1-channel velocity maps, got {x.shape[1]}")
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
                          align_corners=False)  # fmt: skip
        return self.inception.features(x.expand(-1, 3, -1, -1).clamp(-1.0, 1.0))


class FeatureExtractor:
    """A feature network (normalised samples (B, C, H, W) -> (B, D)) with the normaliser of its
    inputs and a description of its features."""

    def __init__(
        self,
        network: nn.Module,
        modality: str,
        normalizer: Normalizer,
        info: dict[str, Any],
    ):
        self.network = network.eval()
        self.feature_dim = int(network.feature_dim)
        self.modality = modality
        self.normalizer = normalizer
        self.info = info

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Features (N, D) float64 of normalised samples ``x`` (N, C, H, W)."""
        p = next(self.network.parameters())
        out = [
            self.network(x[i : i + batch].to(p.device, p.dtype)).double().cpu()
            for i in range(0, len(x), batch)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.feature_dim, dtype=torch.float64)

    @torch.no_grad()
    def store_features(
        self, store: Store | str | os.PathLike, rows: np.ndarray | str = "all", batch: int = 64
    ) -> torch.Tensor:
        """Features (N, D) of ``rows`` (indices, or "train" / "test" / "all") of a store, read in
        batches and normalised with this extractor's normaliser."""
        st = store if isinstance(store, Store) else open_store(store)
        if isinstance(rows, str):
            rows = store_rows(st, self.modality, rows)
        ds = _RowsDataset(st, np.asarray(rows, dtype=np.int64), self.modality, self.normalizer)
        feats = [self.features(x, batch) for x in DataLoader(ds, batch_size=batch)]
        return torch.cat(feats) if feats else torch.zeros(0, self.feature_dim, dtype=torch.float64)

    def describe(self) -> dict[str, Any]:
        """What these features are (for reports)."""
        return dict(self.info)


def _fit(
    model: FeatureAutoencoder,
    loader: DataLoader,
    gen: torch.Generator,
    cfg: FeatureConfig,
    dev: torch.device,
    progress: bool,
    checkpoint: Path | None,
    identity: dict[str, Any],
) -> list[float]:
    """Adam on the MSE reconstruction of the (B, C, 64, 64) inputs for ``cfg.epochs`` epochs;
    the mean loss of each epoch. ``checkpoint``: resume from it, save to it after every epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses: list[float] = []
    state = None
    if checkpoint is not None:
        state = load_resume_point(
            checkpoint,
            FEATURE_TRAINING_FORMAT,
            "feature network",
            cfg.to_dict(),
            identity=identity,
            hint="remove it to start over",
        )
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        set_rng_state(state["rng"])
        losses = list(state["losses"])
    header = {"format": FEATURE_TRAINING_FORMAT, "config": cfg.to_dict(), **identity}
    steps, done = cfg.epochs * len(loader), len(losses) * len(loader)
    with tqdm(total=steps, initial=done, desc="features", disable=not progress) as bar:
        for _ in range(len(losses), cfg.epochs):
            total, n = 0.0, 0
            for x in loader:
                x = _prepare(x.to(dev))
                loss = F.mse_loss(model(x), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
                n += len(x)
                bar.update(1)
            losses.append(total / n)
            if checkpoint is not None:
                now = {"model": model.state_dict(), "optimizer": opt.state_dict()}
                now.update(generator=gen.get_state(), losses=losses)
                save_resume_point(checkpoint, {**header, **now})
    return losses


def train_feature_network(
    real: Store | str | os.PathLike,
    out: str | os.PathLike,
    cfg: FeatureConfig | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
) -> FeatureExtractor:
    """Train the feature autoencoder on the training rows of a real store and save it (atomic,
    weights_only-loadable checkpoint at ``out``). Deterministic for a seed on CPU.

    With ``checkpoint``, the training state (weights, Adam, epoch losses, shuffle generator, RNG)
    is saved there atomically after every epoch, and a run that finds the file resumes from it:
    an interrupted and resumed run ends with the same weights as an uninterrupted one. A
    checkpoint of another run (other options or rows) is refused. The file is left in place.
    """
    cfg = cfg or FeatureConfig()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    st = real if isinstance(real, Store) else open_store(real)
    rows = store_rows(st, cfg.modality, "train")
    if cfg.max_samples is not None:
        rows = rows[: cfg.max_samples]
    if len(rows) < 2:
        raise StoreError(f"{str(st.path)!r} has fewer than 2 {cfg.modality} training rows")
    normalizer = st.normalizer
    ds = _RowsDataset(st, rows, cfg.modality, normalizer)
    in_channels = int(ds[0].shape[0])
    torch.manual_seed(cfg.seed)
    model = FeatureAutoencoder(in_channels, cfg.feature_dim, cfg.width).to(dev).train()
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(ds, batch_size=cfg.batch, shuffle=True, generator=gen)
    start = time.perf_counter()
    ckpt = Path(checkpoint) if checkpoint is not None else None
    losses = _fit(model, loader, gen, cfg, dev, progress, ckpt, {"n_rows": int(len(rows))})
    model.eval()
    payload = {
        "format": FEATURE_CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "in_channels": in_channels,
        "normalization": normalizer.to_dict(),
        "trained_on": {
            "path": str(st.path),
            "family": st.family,
            "rows": int(len(rows)),
            "split": "train",
        },
        "train_loss": losses,
        "seconds": time.perf_counter() - start,
    }
    save_checkpoint(out, payload)
    return load_feature_extractor(out, device=dev)


def _inception_state(ckpt: Any) -> dict[str, torch.Tensor] | None:
    """The Inception-v3 state dict inside a loaded file (plain, or under "state_dict"/"model"),
    or None."""
    if not isinstance(ckpt, dict):
        return None
    for cand in (ckpt, ckpt.get("state_dict"), ckpt.get("model")):
        if isinstance(cand, dict) and any(
            str(k).removeprefix("module.") == "Mixed_7c.branch_pool.conv.weight" for k in cand
        ):
            return cand
    return None


def load_feature_extractor(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    normalizer: Normalizer | None = None,
) -> FeatureExtractor:
    """Load a feature network: a checkpoint of :func:`train_feature_network`, or an Inception-v3
    state dict (the FID network's 1008-class weights or torchvision's; see the module docstring).

    Args:
        path: the file (read with ``weights_only=True``).
        device: where the network runs.
        normalizer: the velocity normalisation for Inception weights (they record none; use the
            real store's). Ignored for project checkpoints, which record their own.

    Raises:
        ValueError: the file is neither, or an Inception file without ``normalizer``.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unreadable file gets the same explanation)
        raise ValueError(
            f"{str(path)!r} cannot be read as a torch checkpoint with weights_only=True ({exc})"
        ) from exc
    inception_state = _inception_state(ckpt)
    if inception_state is not None:
        if normalizer is None:
            raise ValueError(
                f"{str(path)!r} holds Inception-v3 weights, which record no velocity "
                "normalisation: pass normalizer= (the real store's)"
            )
        net, variant = inception_from_state_dict(inception_state)
        info = {
            "kind": f"Inception-v3 ({variant} weights)",
            "modality": "velocity",
            "features": "2048-d pool3 of Inception-v3 on velocity maps normalised to [-1, 1], "
            f"repeated to 3 channels and resized bilinearly to {INCEPTION_SIZE}x{INCEPTION_SIZE}",
            "feature_dim": InceptionFeatures.feature_dim,
            "checkpoint": str(path),
            "sha256": file_sha256(path),
            "variant": variant,
            "normalization": normalizer.to_dict(),
        }
        return FeatureExtractor(InceptionFeatures(net).to(device), "velocity", normalizer, info)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FEATURE_CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is neither a ubdiff_phys feature checkpoint nor an Inception-v3 state "
            "dict. Train a project feature network with "
            "`ubdiff-phys train-features --real TRAIN.h5 --out FEAT.pt`, or pass Inception-v3 "
            "weights (pytorch-fid's pt_inception-2015-12-05 or torchvision's inception_v3)."
        )
    cfg = FeatureConfig.from_dict(ckpt["config"])
    model = FeatureAutoencoder(int(ckpt["in_channels"]), cfg.feature_dim, cfg.width)
    model.load_state_dict(ckpt["model"])
    info = {
        "kind": "ubdiff_phys feature autoencoder",
        "modality": cfg.modality,
        "features": f"{cfg.feature_dim}-d Linear bottleneck code of a convolutional autoencoder "
        f"on {INPUT_SIZE}x{INPUT_SIZE} area-averaged normalised inputs",
        "feature_dim": cfg.feature_dim,
        "checkpoint": str(path),
        "sha256": file_sha256(path),
        "trained_on": ckpt["trained_on"],
        "config": cfg.to_dict(),
        "final_train_loss": float(ckpt["train_loss"][-1]),
    }
    return FeatureExtractor(
        AutoencoderFeatures(model).to(device),
        cfg.modality,
        Normalizer.from_dict(ckpt["normalization"]),
        info,
    )
