"""Diffusion maths: schedule values, v-target identities, loss weight, samplers against the exact
denoiser of a Gaussian, a trained tiny model recovering a Gaussian, determinism under a seed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ubdiff_phys.diffusion import (
    EMA,
    VDenoiser,
    cosine_betas,
    cosine_schedule,
    diffusion_loss,
    eps_from_v,
    loss_weight,
    q_sample,
    sample,
    sample_ddim,
    sample_ddpm,
    v_target,
    x0_from_v,
)
from ubdiff_phys.diffusion.samplers import timestep_sequence

MU, SIGMA = 0.3, 0.2  # the 1-D Gaussian data of the sampler tests (inside the clamp [-1, 1])


# -- schedule ---------------------------------------------------------------------------------
def test_cosine_schedule_values_from_the_closed_form():
    sched = cosine_schedule(256, 0.008, 0.999)
    T, s = 256, 0.008
    f = [math.cos(((t / T) + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    betas = [min(1 - f[t + 1] / f[t], 0.999) for t in range(T)]
    assert sched.betas.dtype == torch.float64 and sched.timesteps == 256
    torch.testing.assert_close(sched.betas, torch.tensor(betas, dtype=torch.float64))
    ab = sched.alphas_cumprod
    # alpha_bar_t = f(t+1)/f(0) while no beta is clipped; the last beta is clipped to 0.999
    torch.testing.assert_close(
        ab[:-1], torch.tensor(f[1:-1], dtype=torch.float64) / f[0], rtol=1e-12, atol=1e-15
    )
    assert sched.betas[-1] == 0.999 and (sched.betas[:-1] < 0.999).all()
    assert (ab[1:] < ab[:-1]).all() and 0.9998 < ab[0] < 1.0
    # a few hand-checked numbers
    assert sched.betas[0].item() == pytest.approx(1.88827e-4, rel=1e-5)
    assert ab[127].item() == pytest.approx(0.493844, rel=1e-5)  # ~ cos^2(pi/4) mid-way
    # the clipped last step: alpha_bar_255 = alpha_bar_254 * (1 - 0.999)
    assert ab[-1].item() == pytest.approx(ab[-2].item() * 1e-3, rel=1e-12)
    assert ab[-1].item() == pytest.approx(3.70596e-8, rel=1e-5)
    # alpha_bar(-1) = 1 (clean data) and snr
    t = torch.tensor([-1, 0, 255])
    assert sched.alpha_bar(t)[0] == 1.0
    torch.testing.assert_close(sched.snr(t[1:]), ab[[0, 255]] / (1 - ab[[0, 255]]))


def test_cosine_betas_rejects_bad_t():
    with pytest.raises(ValueError):
        cosine_betas(0)


def test_timestep_sequences():
    assert timestep_sequence(256, 256) == list(range(255, -1, -1))
    seq = timestep_sequence(256, 50)
    assert len(seq) == 50 and seq[0] == 255 and seq[-1] == 0 and seq == sorted(seq, reverse=True)
    with pytest.raises(ValueError):
        timestep_sequence(256, 257)


# -- v identities -------------------------------------------------------------------------------
def test_v_identities_float64():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(64, 1, 16, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(64, 1, 16, generator=g, dtype=torch.float64)
    ab = cosine_schedule().alpha_bar(torch.randint(0, 256, (64,), generator=g))
    x_t = q_sample(x0, ab, eps)
    v = v_target(x0, ab, eps)
    a = ab.sqrt()[:, None, None]
    b = (1 - ab).sqrt()[:, None, None]
    torch.testing.assert_close(v, a * eps - b * x0)  # the definition
    torch.testing.assert_close(x0_from_v(x_t, ab, v), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_from_v(x_t, ab, v), eps, rtol=0, atol=1e-12)
    # (x_t, v) is a rotation of (x0, eps): norms are preserved
    torch.testing.assert_close(x_t**2 + v**2, x0**2 + eps**2)


def test_loss_weight_is_alpha_bar_and_loss_is_zero_for_the_exact_v():
    sched = cosine_schedule()
    ab = sched.alphas_cumprod
    snr = ab / (1 - ab)
    torch.testing.assert_close(loss_weight(ab), snr / (snr + 1))
    torch.testing.assert_close(loss_weight(ab, 5.0), snr.clamp(max=5) / (snr + 1))
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(8, 1, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 256, (8,), generator=g)
    eps = torch.randn(8, 1, 4, generator=g, dtype=torch.float64)
    target = v_target(x0, sched.alpha_bar(t), eps)
    oracle = VDenoiser(_Lookup(target), sched)
    assert diffusion_loss(oracle, x0, sched, t=t, eps=eps).item() == pytest.approx(0, abs=1e-12)
    # predicting zero costs exactly mean_b ab_b * mean(v_b^2)
    zero = VDenoiser(_Lookup(torch.zeros_like(target)), sched)
    want = (sched.alpha_bar(t) * target.pow(2).flatten(1).mean(1)).mean()
    got = diffusion_loss(zero, x0, sched, t=t, eps=eps)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    # uniform weighting: the plain mean of the per-sample v-MSE
    want = target.pow(2).flatten(1).mean(1).mean()
    got = diffusion_loss(zero, x0, sched, t=t, eps=eps, weighting="uniform")
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert torch.equal(loss_weight(ab, weighting="uniform"), torch.ones_like(ab))
    with pytest.raises(ValueError, match="weighting"):
        loss_weight(ab, weighting="snr")


class _Lookup(nn.Module):
    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.out = out

    def forward(self, x, t):
        return self.out + 0 * self.dummy


# -- samplers against the exact denoiser of N(MU, SIGMA^2) -------------------------------------
class _GaussianOracle(nn.Module):
    """The Bayes-optimal v-predictor for data x0 ~ N(mu, sigma^2) per coordinate."""

    def __init__(self, sched, mu: float, sigma: float, flip_v: bool = False):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.ab = sched.alphas_cumprod
        self.mu, self.var, self.sign = mu, sigma**2, -1.0 if flip_v else 1.0

    def forward(self, x, t):
        ab = self.ab.to(x.device)[t].reshape(-1, *([1] * (x.ndim - 1)))
        x0 = self.mu + ab.sqrt() * self.var / (ab * self.var + 1 - ab) * (x - ab.sqrt() * self.mu)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return self.sign * (ab.sqrt() * eps - (1 - ab).sqrt() * x0) + 0 * self.dummy


def _linear_gaussian_std(sched, sampler: str, steps: int) -> float:
    """Exact std of the sampler's output for N(MU, SIGMA^2) data and the exact (linear) denoiser,
    by propagating the variance through each step; the clamp is inactive at these values."""
    ab = sched.alphas_cumprod.tolist()
    seq = timestep_sequence(sched.timesteps, steps)
    var0, V = SIGMA**2, 1.0
    for i, t in enumerate(seq):
        a_t = ab[t]
        a_s = ab[seq[i + 1]] if i + 1 < len(seq) else 1.0
        k = a_t**0.5 * var0 / (a_t * var0 + 1 - a_t)  # d x0_hat / d x_t
        if sampler == "ddpm":  # posterior mean coefficients and variance
            alpha = a_t / a_s
            gain = a_s**0.5 * (1 - alpha) / (1 - a_t) * k + alpha**0.5 * (1 - a_s) / (1 - a_t)
            V = gain**2 * V + (1 - alpha) * (1 - a_s) / (1 - a_t)
        else:  # DDIM eta = 0: x_s = sqrt(a_s) x0 + sqrt(1 - a_s) eps(x0)
            gain = a_s**0.5 * k + (1 - a_s) ** 0.5 * (1 - a_t**0.5 * k) / (1 - a_t) ** 0.5
            V = gain**2 * V
    return V**0.5


@pytest.mark.parametrize(("sampler", "steps"), [("ddpm", 256), ("ddpm", 64), ("ddim", 50)])
def test_samplers_recover_a_gaussian_with_the_exact_denoiser(sampler, steps):
    sched = cosine_schedule()
    model = VDenoiser(_GaussianOracle(sched, MU, SIGMA).double(), sched)
    g = torch.Generator().manual_seed(0)
    x = sample(model, (2000, 1, 4), sampler=sampler, steps=steps, generator=g)
    # 8000 draws: the standard error of the mean is 0.0022, of the std 0.8 %
    assert x.mean().item() == pytest.approx(MU, abs=0.01)
    want = _linear_gaussian_std(sched, sampler, steps)
    assert x.std().item() == pytest.approx(want, rel=0.025)
    # the discretisation bias of the samplers themselves: DDPM's posterior variance loses 3.3 %
    # of the std at T = 256 (10 % at 64 steps), DDIM-50 6 %
    assert want == pytest.approx(
        SIGMA, rel={"ddpm": 0.04 if steps == 256 else 0.12}.get(sampler, 0.08)
    )
    # the same check fails with a sign error in v
    bad = VDenoiser(_GaussianOracle(sched, MU, SIGMA, flip_v=True).double(), sched)
    y = sample(bad, (2000, 1, 4), sampler=sampler, steps=steps, generator=g)
    assert abs(y.mean().item() - MU) > 0.05 or abs(y.std().item() / want - 1) > 0.1


# -- a trained tiny model -----------------------------------------------------------------------
class _TinyMLP(nn.Module):
    """Per-coordinate denoiser: [x, sin/cos(t features)] -> MLP -> v (through the same
    VDenoiser / loss / sampler path as the U-Net)."""

    def __init__(self, timesteps: int, hidden: int = 64):
        super().__init__()
        self.timesteps = timesteps
        self.freqs = torch.tensor([1.0, 2.0, 4.0, 8.0]) * math.pi / 2
        self.net = nn.Sequential(
            nn.Linear(9, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x, t):
        b, c, n = x.shape
        s = (t.float() / self.timesteps)[:, None] * self.freqs
        feats = torch.cat([s.sin(), s.cos()], 1)[:, None, None, :].expand(b, c, n, 8)
        return self.net(torch.cat([x[..., None], feats], -1)).squeeze(-1)


def test_trained_tiny_model_recovers_gaussian_mean_and_std():
    """Train on x0 ~ N(0.3, 0.2^2) for 600 steps; 2000 DDPM and DDIM samples must have mean
    within 0.04 and std within 20 % of the data's. (Checked to fail when the sign of v is
    flipped in ``v_target``; a wrong loss weight, 1 - alpha_bar, still passes: the weight only
    reweights an objective whose minimiser is the same.)"""
    torch.manual_seed(0)
    sched = cosine_schedule()
    net = _TinyMLP(sched.timesteps)
    model = VDenoiser(net, sched)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(600):
        x0 = MU + SIGMA * torch.randn(256, 1, 1, generator=g)
        loss = diffusion_loss(model, x0, sched, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    for sampler, steps in (("ddpm", 256), ("ddim", 50)):
        x = sample(model, (2000, 1, 1), sampler=sampler, steps=steps, generator=g)
        assert x.mean().item() == pytest.approx(MU, abs=0.04), sampler
        assert x.std().item() == pytest.approx(SIGMA, rel=0.2), sampler


# -- determinism ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", [sample_ddpm, sample_ddim])
def test_same_seed_same_samples_other_seed_other_samples(sampler):
    sched = cosine_schedule(32)
    torch.manual_seed(0)
    model = VDenoiser(_TinyMLP(32), sched).eval()

    def run(seed, eta=0.0):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(16, 1, 8, generator=g, dtype=torch.float64)
        seen = []
        kw = {"eta": eta} if sampler is sample_ddim else {}
        out = sampler(model, z, 10, generator=g, callback=lambda d: seen.append(d["t"]), **kw)
        return out, seen

    a, seen = run(1)
    b, _ = run(1)
    c, _ = run(2)
    assert a.dtype == torch.float64 and torch.equal(a, b) and not torch.equal(a, c)
    assert seen == timestep_sequence(32, 10)
    if sampler is sample_ddim:  # eta > 0 draws noise from the generator: still reproducible
        assert torch.equal(run(1, 0.5)[0], run(1, 0.5)[0])
        assert not torch.equal(run(1, 0.5)[0], a)


def test_ema_averages_every_k_steps():
    net = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(net.weight)
    ema = EMA(net, decay=0.9, every=2)
    with torch.no_grad():
        net.weight.fill_(1.0)
    assert not ema.update(net)  # step 1: no update
    assert torch.equal(ema.module.weight, torch.zeros(1, 2))
    assert ema.update(net)  # step 2: 0.9 * 0 + 0.1 * 1
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.1))
    state = ema.state_dict()
    other = EMA(net, 0.9, 2)
    other.load_state_dict(state)
    assert other.calls == 2 and torch.equal(other.module.weight, ema.module.weight)
