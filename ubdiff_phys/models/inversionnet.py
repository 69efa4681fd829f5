"""InversionNet (Wu & Lin 2019, the OpenFWI baseline): seismic gathers -> velocity map.

Encoder: the layout of :class:`~ubdiff_phys.models.encoders.SeismicEncoder` ((7,1)/(3,1) convs along
time, then 3 x 3 stride-2 stages) to a 512 x 1 x 1 code with LeakyReLU(0.2); decoder: the layout of
:class:`~ubdiff_phys.models.decoders.VelocityDecoder` from 512 channels (first stage 512 wide),
LeakyReLU(0.2), crop 80 -> 70, Tanh output (specs/ubdiff.md §5; ~24.4 M parameters). Used by the
evaluation protocol: train on (generated) pairs, test on held-out real pairs.
"""

from __future__ import annotations

import torch
from torch import nn

from ubdiff_phys.models.decoders import VelocityDecoder
from ubdiff_phys.models.encoders import SeismicEncoder

__all__ = ["InversionNet"]


class InversionNet(nn.Module):
    """Normalised gathers (B, S, nt, R) -> normalised velocity (B, 1, 70, 70) in [-1, 1].

    ``channels_last`` (default True): on the CPU the gathers enter in channels-last memory format,
    where oneDNN's convolutions are faster for the full-width network
    (``benchmarks/bench_channels_last.py``); the same arithmetic up to float rounding. Other
    devices keep the default format (not measured there).
    """

    channels_last: bool = True

    def __init__(self, seismic_shape=(5, 1000, 70), code_dim: int = 512, width: float = 1.0):
        super().__init__()
        self.encoder = SeismicEncoder(
            seismic_shape, code_dim, width, final_act="leaky", spatial_stages=3
        )
        self.decoder = VelocityDecoder(code_dim, width, first_width=code_dim, act="leaky")

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if self.channels_last and s.device.type == "cpu" and s.ndim == 4:
            s = s.contiguous(memory_format=torch.channels_last)
        return self.decoder(self.encoder(s)).contiguous()
