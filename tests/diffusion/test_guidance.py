"""The samplers' ``guide`` hook corrects the predicted clean sample at every step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ubdiff_phys.diffusion import VDenoiser, cosine_schedule
from ubdiff_phys.diffusion.samplers import SAMPLERS, sample


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


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("guide_noise", ["recompute", "keep"])
def test_samplers_carry_the_correction_as_documented(sampler: str, guide_noise: str) -> None:
    """A correction δ of x0 at one step moves the next state by sqrt(ab_s) δ when the network's
    noise is kept; when it is recomputed, by (sqrt(ab_s) - sqrt(1 - ab_s) sqrt(ab_t / (1 - ab_t)))
    δ for DDIM and by the posterior mean's c0 δ = sqrt(ab_s) (1 - ab_t / ab_s) / (1 - ab_t) δ for
    DDPM (closed forms of the updates); no guide: both are the plain sampler."""
    sched = cosine_schedule()
    model = VDenoiser(_Zero().double(), sched)
    steps, k, delta = 20, 15, 0.01
    states: dict[str, list] = {"plain": [], "guided": []}

    def guide(x0: torch.Tensor, i: int, t: int) -> torch.Tensor:
        return x0 + delta if i == k else x0

    z = torch.randn(4, 1, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = SAMPLERS[sampler]
    for name, g in (("plain", None), ("guided", guide)):
        run(
            model, z, steps, guide=g, guide_noise=guide_noise,
            generator=torch.Generator().manual_seed(1),
            callback=lambda d, name=name: states[name].append((d["t"], d["x"].clone())),
        )  # fmt: skip
    plain = run(model, z, steps, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(states["plain"][-1][1], plain, rtol=0, atol=0)
    ab = sched.alphas_cumprod.double()
    t, s = states["plain"][k][0], states["plain"][k + 1][0]  # step k goes from t to s
    ab_t, ab_s = float(ab[t]), float(ab[s])
    if guide_noise == "keep":
        factor = ab_s**0.5
    elif sampler == "ddpm":
        factor = ab_s**0.5 * (1 - ab_t / ab_s) / (1 - ab_t)
    else:
        factor = ab_s**0.5 - (1 - ab_s) ** 0.5 * (ab_t / (1 - ab_t)) ** 0.5
    shift = states["guided"][k][1] - states["plain"][k][1]
    torch.testing.assert_close(shift, torch.full_like(shift, factor * delta), rtol=1e-9, atol=1e-12)
    assert states["guided"][k - 1][1].equal(states["plain"][k - 1][1])


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_samplers_refuse_an_unknown_guide_noise(sampler: str) -> None:
    model = VDenoiser(_Zero().double(), cosine_schedule())
    with pytest.raises(ValueError, match="guide_noise"):
        SAMPLERS[sampler](model, torch.zeros(1, 2, dtype=torch.float64), 5, guide_noise="drop")
