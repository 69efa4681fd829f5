"""Model wrapper and exponential moving average.

:class:`VDenoiser` pairs a network ``net(x, t) -> v`` with its :class:`NoiseSchedule`; samplers
call ``model(x_t, t)`` with any float dtype (the state is float64) and read ``model.schedule``.
:class:`EMA` keeps an averaged copy of a module's parameters.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ubdiff_phys.diffusion.schedule import NoiseSchedule

__all__ = ["EMA", "VDenoiser"]


class VDenoiser(nn.Module):
    """``forward(x_t, t) -> v`` in x_t's dtype: casts x_t to the network's parameter dtype, calls
    ``net(x_t, t)`` (t: (B,) int64 timesteps) and casts the prediction back.

    The schedule is a plain attribute (float64, CPU), not a buffer, so ``.to(dtype)`` of the module
    never rounds it and state dicts hold only the network.
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule):
        super().__init__()
        self.net = net
        self.schedule = schedule

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p = next(self.net.parameters())
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        v = self.net(x_t.to(p.dtype), t.to(p.device, torch.long))
        return v.to(x_t.dtype)


class EMA:
    """``ema = decay * ema + (1 - decay) * param`` every ``every`` calls of :meth:`update`
    (UB-Diff: decay 0.995 every 10 optimizer steps); buffers are copied. ``module`` is the averaged
    copy (eval mode, no grad)."""

    def __init__(self, model: nn.Module, decay: float = 0.995, every: int = 10):
        if not 0.0 <= decay <= 1.0 or every < 1:
            raise ValueError("EMA: 0 <= decay <= 1 and every >= 1 required")
        self.decay, self.every = decay, every
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.calls = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> bool:
        """Count one optimizer step; average when the count is a multiple of ``every``."""
        self.calls += 1
        if self.calls % self.every:
            return False
        for e, p in zip(self.module.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers(), strict=True):
            e.copy_(b)
        return True

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.calls = int(state["calls"])
