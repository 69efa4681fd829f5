"""Decoders from a modality latent (the output of a modality head) to data, normalised units.

* :class:`VelocityDecoder` — the official UB-Diff velocity decoder (InversionNet's decoder layout
  from 128 channels, 2,556,771 parameters at width 1): 128 x 1 x 1 -> 1 x 70 x 70, Tanh output.
* :class:`PaperSeismicDecoder` — the official "transformer decoder": a 2-token pre-LN ViT (a
  learned class token + the 640-d seismic latent; width 640, depth 2, 8 heads, MLP x 5) whose class
  token goes through one Linear(640 -> S*nt*R) (224 M parameters for 5 x 1000 x 70). No output
  activation.
* :class:`TokenSeismicDecoder` — this project's small alternative (``seismic_decoder="token"``):
  one token per (shot, time window), axial attention (along time within each shot, then across
  shots), a linear "unpatchify" of each token to its window x receivers patch and a small residual
  convolution over (time, receiver) that smooths patch seams. 2,089,669 parameters for
  5 x 1000 x 70 (under 1 % of the paper variant). No output activation either (targets are in
  [-1, 1]; the loss keeps outputs there).

Both seismic decoders can start their output layer at zero (``zero_init_out``). That layer maps a
small feature (6 wide in the shipped model) to 350,000 gather samples. From the default random
init, any variation of the feature across samples adds random gathers to every output, so the first
optimizer steps lower the loss fastest by making the feature constant, and the decoder stays at the
mean gather (measured on the shipped decoder: the feature's std across 256 maps was ~2e-4 of its
mean, and the train loss equal to the mean gather's). From zero, the layer's gradient is the
correlation of the feature with the residual gathers, so it grows only along directions that
explain them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ubdiff_phys.models.blocks import ConvBlock, DeconvBlock, scaled

__all__ = [
    "HeldCorrection",
    "PaperSeismicDecoder",
    "TokenSeismicDecoder",
    "TransformerBlock",
    "VelocityDecoder",
    "refine_gradient",
]


class VelocityDecoder(nn.Module):
    """Velocity latent (B, in_dim) -> velocity map (B, 1, 70, 70) in [-1, 1].

    Deconv 5/2/0 (1 -> 5) and a 3 x 3 Conv at 128 channels, then Deconv 4/2/1 to 10, 20, 40, 80
    with widths 256, 128, 64, 32, each followed by a 3 x 3 Conv; crop 5 cells per side (80 -> 70);
    Conv -> BN -> Tanh to one channel.
    """

    def __init__(
        self, in_dim: int = 128, width: float = 1.0, first_width: int = 128, act: str = "relu"
    ):
        """``first_width`` and ``act`` default to UB-Diff's decoder; InversionNet's decoder is
        ``first_width=512, act="leaky"`` (LeakyReLU 0.2) from a 512-d code."""
        super().__init__()
        w0, w1, w2, w3, w4 = (scaled(c, width) for c in (first_width, 256, 128, 64, 32))
        self.blocks = nn.Sequential(
            DeconvBlock(in_dim, w0, 5, 2, 0, act=act),
            ConvBlock(w0, w0, act=act),
            DeconvBlock(w0, w1, act=act),
            ConvBlock(w1, w1, act=act),
            DeconvBlock(w1, w2, act=act),
            ConvBlock(w2, w2, act=act),
            DeconvBlock(w2, w3, act=act),
            ConvBlock(w3, w3, act=act),
            DeconvBlock(w3, w4, act=act),
            ConvBlock(w4, w4, act=act),
        )
        self.out = ConvBlock(w4, 1, act="tanh")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.blocks(h[:, :, None, None])
        return self.out(x[:, :, 5:-5, 5:-5])


class TransformerBlock(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)), then x + MLP(LN(x)) (GELU)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class PaperSeismicDecoder(nn.Module):
    """Seismic latent (B, dim) -> gathers (B, S, nt, R): the official 2-token ViT + one Linear."""

    def __init__(
        self,
        dim: int = 640,
        seismic_shape=(5, 1000, 70),
        depth: int = 2,
        heads: int = 8,
        mlp_ratio: float = 5.0,
        zero_init_out: bool = False,
    ):
        """``zero_init_out`` starts the output Linear at zero (module docstring)."""
        super().__init__()
        self.seismic_shape = tuple(seismic_shape)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2, dim))
        self.blocks = nn.Sequential(
            *(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, math.prod(self.seismic_shape))
        if not self.cls_token.is_meta:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            if zero_init_out:
                nn.init.zeros_(self.out.weight)
                nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([self.cls_token.expand(len(h), -1, -1), h[:, None, :]], dim=1)
        x = self.norm(self.blocks(tokens + self.pos_embed))
        return self.out(x[:, 0]).view(len(h), *self.seismic_shape)


class TokenSeismicDecoder(nn.Module):
    """Seismic latent (B, in_dim) -> gathers (B, S, nt, R) through S x ceil(nt / window) tokens.

    Token (s, t) starts as shot_content[s] + time_content[t] + learned positions, where both
    contents are linear maps of the latent (time content through a narrow bottleneck). ``depth``
    axial blocks alternate attention along time (within a shot) and across shots. Each token is
    mapped linearly to its (window x R) patch; a residual 2-layer 5 x 5 convolution over
    (time, receiver), shots as channels, removes patch seams.

    ``refine_in_graph`` (default True; set it with :func:`refine_gradient`): when False and
    autograd is on, the refinement's correction is added as a constant, so gradients skip its
    convolutions (their Jacobian taken as zero, the residual path's identity kept): the same
    output, a cheaper and approximate gradient (physics guidance uses it,
    :mod:`ubdiff_phys.pipelines.seismic_modes`). ``refine_held`` (a :class:`HeldCorrection`,
    also set by :func:`refine_gradient`) lets such calls reuse the last computed correction
    until it is marked for refreshing.
    """

    refine_in_graph: bool = True
    refine_held: HeldCorrection | None = None

    def __init__(
        self,
        in_dim: int = 640,
        seismic_shape=(5, 1000, 70),
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        window: int = 40,
        mlp_ratio: float = 4.0,
        time_bottleneck: int = 32,
        refine_channels: int = 16,
        zero_init_out: bool = False,
    ):
        """``zero_init_out`` starts ``to_patch`` at zero (module docstring)."""
        super().__init__()
        self.seismic_shape = n_shots, nt, nr = tuple(seismic_shape)
        self.window = window
        self.n_windows = n_win = -(-nt // window)
        self.dim = dim
        self.shot_content = nn.Linear(in_dim, n_shots * dim)
        self.time_content = nn.Sequential(
            nn.Linear(in_dim, n_win * time_bottleneck), nn.Unflatten(1, (n_win, time_bottleneck))
        )
        self.time_up = nn.Linear(time_bottleneck, dim)
        self.shot_pos = nn.Parameter(torch.zeros(n_shots, 1, dim))
        self.time_pos = nn.Parameter(torch.zeros(1, n_win, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.to_patch = nn.Linear(dim, window * nr)
        self.refine = (
            nn.Sequential(
                nn.Conv2d(n_shots, refine_channels, 5, 1, 2),
                nn.GELU(),
                nn.Conv2d(refine_channels, n_shots, 5, 1, 2),
            )
            if refine_channels
            else None
        )
        if not self.shot_pos.is_meta:
            nn.init.trunc_normal_(self.shot_pos, std=0.02)
            nn.init.trunc_normal_(self.time_pos, std=0.02)
            if self.refine is not None:  # start as identity
                nn.init.zeros_(self.refine[2].weight)
                nn.init.zeros_(self.refine[2].bias)
            if zero_init_out:
                nn.init.zeros_(self.to_patch.weight)
                nn.init.zeros_(self.to_patch.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b = len(h)
        n_shots, nt, nr = self.seismic_shape
        n_win, d = self.n_windows, self.dim
        shot = self.shot_content(h).view(b, n_shots, 1, d)
        time = self.time_up(self.time_content(h)).view(b, 1, n_win, d)
        x = shot + time + self.shot_pos + self.time_pos  # (B, S, T, d)
        for i, block in enumerate(self.blocks):
            if i % 2 == 0:  # along time, within each shot
                x = block(x.reshape(b * n_shots, n_win, d)).view(b, n_shots, n_win, d)
            else:  # across shots, per time window
                x = block(x.transpose(1, 2).reshape(b * n_win, n_shots, d))
                x = x.view(b, n_win, n_shots, d).transpose(1, 2)
        patches = self.to_patch(self.norm(x))  # (B, S, T, window * R)
        out = patches.view(b, n_shots, n_win * self.window, nr)[:, :, :nt]
        if self.refine is not None:
            # channels-last input: oneDNN's convolutions over (time, receiver) with 5-16 channels
            # run 1.7x faster forward + backward that way on CPU (measured, batch 8, 2 cores)
            if self.refine_in_graph or not torch.is_grad_enabled():
                x = out.contiguous(memory_format=torch.channels_last)
                out = out + self.refine(x).contiguous()
            else:
                out = out + self._constant_correction(out)
        return out

    def _constant_correction(self, out: torch.Tensor) -> torch.Tensor:
        """The refinement's correction of ``out`` (B, S, nt, R) outside the graph; the held one
        while ``refine_held`` says so and its shape fits, else computed (and held)."""
        held = self.refine_held
        if held is not None and not held.refresh and held.value is not None:
            if held.value.shape == out.shape:
                return held.value
        with torch.no_grad():
            x = out.detach().contiguous(memory_format=torch.channels_last)
            correction = self.refine(x).contiguous()
        if held is not None:
            held.value = correction
        return correction


@dataclass
class HeldCorrection:
    """The refinement correction a :class:`TokenSeismicDecoder` computed last outside the graph
    (``value``), and whether its next such call must compute it afresh (``refresh``)."""

    value: torch.Tensor | None = None
    refresh: bool = True


@contextlib.contextmanager
def refine_gradient(
    module: nn.Module, enabled: bool, held: HeldCorrection | None = None
) -> Iterator[None]:
    """Within the block, every :class:`TokenSeismicDecoder` in ``module`` passes gradients
    through its refinement convolutions (``enabled``) or not (their correction a constant: same
    outputs), then reusing ``held``'s correction unless it asks for a refresh (``module`` is
    meant to hold one such decoder); restored on exit. No effect on other decoders."""
    decoders = [m for m in module.modules() if isinstance(m, TokenSeismicDecoder)]
    before = [(d.refine_in_graph, d.refine_held) for d in decoders]
    try:
        for d in decoders:
            d.refine_in_graph, d.refine_held = enabled, held
        yield
    finally:
        for d, (b, h) in zip(decoders, before, strict=True):
            d.refine_in_graph, d.refine_held = b, h
