"""The samplers' ``guide`` hook corrects the predicted clean sample at every step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ubdiff_phys.diffusion import VDenoiser, cosine_schedule
from ubdiff_phys.diffusion.samplers import sample


class _Zero(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, t):
        return torch.zeros_like(x) + 0 * self.dummy


@pytest.mark.parametrize(("sampler", "steps"), [("ddim", 20), ("ddpm", 20)])
def test_guide_sets_the_clean_estimate(sampler: str, steps: int) -> None:
    sched = cosine_schedule()
    model = VDenoiser(_Zero().double(), sched)
    calls = []

    def guide(x0: torch.Tensor, i: int, t: int) -> torch.Tensor:
        calls.append((i, t))
        return torch.full_like(x0, 0.3)

    g = torch.Generator().manual_seed(0)
    x = sample(model, (8, 1, 4), sampler=sampler, steps=steps, generator=g, guide=guide)
    # after the last step the state is the (guided) clean estimate
    torch.testing.assert_close(x, torch.full_like(x, 0.3))
    assert [i for i, _ in calls] == list(range(steps))
    assert calls[0][1] > calls[-1][1] == 0
    unguided = sample(model, (8, 1, 4), sampler=sampler, steps=steps, generator=g)
    assert (unguided - 0.3).abs().max() > 0.1
