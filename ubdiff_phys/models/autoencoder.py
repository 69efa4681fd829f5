"""UB-Diff's 1-in-2-out autoencoder: one encoder of the majority modality into the co-latent z,
two modality heads and two decoders (specs/ubdiff.md §1).

    majority x ─E─▶ z (latent_dim, in [-1, 1]) ─┬─ head_v ─▶ D_v ─▶ velocity
                                               └─ head_s ─▶ D_s ─▶ seismic

(heads: Linear → BN → LeakyReLU(0.2))

``majority="velocity"`` (the paper's main setting) encodes velocity maps; ``"seismic"`` encodes
gathers (the paper's reversed direction for seismic generation). All tensors are in normalised
units (specs/data.md §2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ubdiff_phys.models.decoders import PaperSeismicDecoder, TokenSeismicDecoder, VelocityDecoder
from ubdiff_phys.models.encoders import SeismicEncoder, VelocityEncoder
from ubdiff_phys.runtime.config import strict_from_dict

__all__ = ["AutoencoderConfig", "UBDiffAutoencoder", "build_autoencoder", "count_parameters"]

MAJORITIES = ("velocity", "seismic")
SEISMIC_DECODERS = ("token", "paper")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of the autoencoder (saved inside every checkpoint).

    Attributes:
        majority: "velocity" or "seismic": the encoded modality.
        seismic_decoder: "paper" (default: it won the comparison in
            benchmarks/results/ae_decoder_comparison.json on MSE and physics residual) or
            "token" (:class:`TokenSeismicDecoder`, 113x fewer parameters, better L1 there).
        latent_dim: co-latent channels (128).
        velocity_head_dim: width of the velocity head (128).
        seismic_head_dim: width of the seismic head = the paper ViT's width (640).
        width: multiplier on the convolutional channel counts (1.0 = paper; small for tests).
        seismic_shape: (S, nt, R) of the gathers; the velocity grid is fixed at 70 x 70.
        paper_depth, paper_heads, paper_mlp_ratio: the paper ViT (2, 8, 5).
        token_dim, token_depth, token_heads, token_window, token_mlp_ratio, token_time_bottleneck,
            token_refine_channels: the token decoder (128, 4, 4, 40, 4, 32, 16).
        seismic_zero_init: start the seismic decoder's output layer at zero (default False, the
            paper's init; True avoids the collapse to the mean gather described in
            :mod:`ubdiff_phys.models.decoders`). Only the init: checkpoints load either way.
    """

    majority: str = "velocity"
    seismic_decoder: str = "paper"
    latent_dim: int = 128
    velocity_head_dim: int = 128
    seismic_head_dim: int = 640
    width: float = 1.0
    seismic_shape: tuple[int, int, int] = (5, 1000, 70)
    paper_depth: int = 2
    paper_heads: int = 8
    paper_mlp_ratio: float = 5.0
    token_dim: int = 128
    token_depth: int = 4
    token_heads: int = 4
    token_window: int = 40
    token_mlp_ratio: float = 4.0
    token_time_bottleneck: int = 32
    token_refine_channels: int = 16
    seismic_zero_init: bool = False

    def __post_init__(self) -> None:
        if self.majority not in MAJORITIES:
            raise ValueError(f"model.majority must be one of {MAJORITIES}, got {self.majority!r}")
        if self.seismic_decoder not in SEISMIC_DECODERS:
            raise ValueError(
                f"model.seismic_decoder must be one of {SEISMIC_DECODERS}, "
                f"got {self.seismic_decoder!r}"
            )
        shape = tuple(int(n) for n in self.seismic_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"model.seismic_shape must be 3 positive sizes, got {shape}")
        object.__setattr__(self, "seismic_shape", shape)
        if not self.width > 0:
            raise ValueError(f"model.width must be > 0, got {self.width}")
        if self.token_dim % self.token_heads or self.seismic_head_dim % self.paper_heads:
            raise ValueError("transformer widths must be divisible by their head counts")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seismic_shape"] = list(self.seismic_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoencoderConfig:
        return strict_from_dict(cls, d, "model option(s)")


def _head(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out), nn.LeakyReLU(0.2))


class UBDiffAutoencoder(nn.Module):
    """The 1-in-2-out autoencoder.

    Submodules: ``encoder``, ``head_v``, ``dec_v``, ``head_s``, ``dec_s``.
    ``forward(x, outputs=("velocity", "seismic"))`` returns a dict with the requested outputs
    (and ``"z"``), so a training step computes only the branch it trains (DDP needs every
    trainable parameter to receive a gradient).
    """

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        cfg = self.config = config or AutoencoderConfig()
        if cfg.majority == "velocity":
            self.encoder = VelocityEncoder(cfg.latent_dim, cfg.width)
        else:
            self.encoder = SeismicEncoder(cfg.seismic_shape, cfg.latent_dim, cfg.width)
        self.head_v = _head(cfg.latent_dim, cfg.velocity_head_dim)
        self.dec_v = VelocityDecoder(cfg.velocity_head_dim, cfg.width)
        self.head_s = _head(cfg.latent_dim, cfg.seismic_head_dim)
        if cfg.seismic_decoder == "paper":
            self.dec_s = PaperSeismicDecoder(
                cfg.seismic_head_dim,
                cfg.seismic_shape,
                cfg.paper_depth,
                cfg.paper_heads,
                cfg.paper_mlp_ratio,
                zero_init_out=cfg.seismic_zero_init,
            )
        else:
            self.dec_s = TokenSeismicDecoder(
                cfg.seismic_head_dim,
                cfg.seismic_shape,
                cfg.token_dim,
                cfg.token_depth,
                cfg.token_heads,
                cfg.token_window,
                cfg.token_mlp_ratio,
                cfg.token_time_bottleneck,
                cfg.token_refine_channels,
                zero_init_out=cfg.seismic_zero_init,
            )

    # -- modality bookkeeping ------------------------------------------------------------------
    @property
    def majority(self) -> str:
        return self.config.majority

    @property
    def minority(self) -> str:
        return "seismic" if self.config.majority == "velocity" else "velocity"

    def branch(self, modality: str) -> nn.ModuleList:
        """Head + decoder of ``modality``."""
        if modality == "velocity":
            return nn.ModuleList([self.head_v, self.dec_v])
        if modality == "seismic":
            return nn.ModuleList([self.head_s, self.dec_s])
        raise ValueError(f"unknown modality {modality!r}")

    def majority_modules(self) -> nn.ModuleList:
        """Encoder + majority branch: what step 1 trains and what F = 1 freezes."""
        return nn.ModuleList([self.encoder, *self.branch(self.majority)])

    # -- forward ---------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Majority-modality batch -> co-latent z (B, latent_dim) in [-1, 1]."""
        return self.encoder(x)

    def decode_velocity(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> velocity (B, 1, 70, 70), normalised."""
        return self.dec_v(self.head_v(z))

    def decode_seismic(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> gathers (B, S, nt, R), normalised."""
        return self.dec_s(self.head_s(z))

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z -> (velocity, seismic) pair."""
        return self.decode_velocity(z), self.decode_seismic(z)

    def forward(self, x: torch.Tensor, outputs=("velocity", "seismic")) -> dict[str, torch.Tensor]:
        z = self.encode(x)
        out = {"z": z}
        for name in outputs:
            if name == "velocity":
                out[name] = self.decode_velocity(z)
            elif name == "seismic":
                out[name] = self.decode_seismic(z)
            else:
                raise ValueError(f"unknown output {name!r}")
        return out


def build_autoencoder(config: AutoencoderConfig | None = None, device=None) -> UBDiffAutoencoder:
    """Instantiate the autoencoder (``device="meta"`` counts parameters without allocating)."""
    if device is None:
        return UBDiffAutoencoder(config)
    with torch.device(device):
        return UBDiffAutoencoder(config)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())
