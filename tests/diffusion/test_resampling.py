"""Misfit resampling of posterior particles: the tempered weights and systematic resampling
against their definitions, and the sampler against a 1-D posterior known by quadrature."""

from __future__ import annotations

import pytest
import torch
from helpers import GaussianDenoiser

from ubdiff_phys.diffusion.posterior import sample_posterior
from ubdiff_phys.diffusion.resampling import (
    effective_sample_size,
    grouped_resample,
    systematic_resample,
    tempered_weights,
)


def test_tempered_weights_keep_the_target_effective_sample_size() -> None:
    f = torch.tensor([0.0, 0.1, 0.2, 5.0, 40.0, 300.0], dtype=torch.float64)
    w, beta = tempered_weights(f, beta_max=100.0, ess_fraction=0.5)
    assert abs(float(w.sum()) - 1.0) < 1e-12
    # β is below β_max and the largest with ESS >= 3: a slightly larger one falls short
    assert beta < 100.0
    assert effective_sample_size(w) >= 3.0 - 1e-6
    d = f - f.min()
    w_up = torch.exp(-beta * 1.001 * d)
    assert effective_sample_size(w_up / w_up.sum()) < 3.0
    # weights are exp(-β Δf), normalised: they decrease with the misfit
    assert torch.allclose(w, torch.exp(-beta * d) / torch.exp(-beta * d).sum())
    # similar misfits: β_max itself keeps enough particles
    w2, beta2 = tempered_weights(torch.tensor([1.0, 1.001, 1.002]), beta_max=10.0)
    assert beta2 == 10.0 and effective_sample_size(w2) > 2.9
    # non-finite misfits get no weight
    w3, _ = tempered_weights(torch.tensor([0.0, float("nan"), 0.0, float("inf")]), 1.0)
    assert w3.tolist() == [0.5, 0.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="ess_fraction"):
        tempered_weights(f, 1.0, ess_fraction=0.0)


def test_systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w_times() -> None:
    w = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    n = w.numel()
    total = torch.zeros(n, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    draws = 4000
    for _ in range(draws):
        idx = systematic_resample(w, g)
        counts = torch.bincount(idx, minlength=n).double()
        assert bool(((counts >= torch.floor(n * w)) & (counts <= torch.ceil(n * w))).all())
        total += counts
    # unbiased: the expected count of particle i is n w_i (Monte-Carlo error ~0.01)
    assert torch.allclose(total / draws, n * w, atol=0.03)


def _double_well(sigma2: float):
    """Misfit ½‖r(x)‖², r = ((x − 1)(x + 1), 0.3 (x − 1)): exact fit at x = 1, a local minimum
    near x = −1 with misfit ≈ 0.18 (18 units of log-likelihood at σ² = 0.01), a barrier of
    ≈ 0.55 at x = 0."""

    def misfit(x0: torch.Tensor) -> torch.Tensor:
        x = x0.reshape(x0.shape[0])
        return 0.5 * (((x - 1) * (x + 1)).square() + 0.09 * (x - 1).square())

    grid = torch.linspace(-4, 4, 200_001, dtype=torch.float64)
    logp = -misfit(grid[:, None, None]) / sigma2 - 0.5 * grid.square()  # prior N(0, 1)
    p = torch.exp(logp - logp.max())
    p /= p.sum()
    return misfit, float(p[grid < 0].sum()), float((p * grid).sum())


def test_resampling_drops_particles_stuck_in_a_worse_basin() -> None:
    """1-D prior N(0, 1), a double-well misfit: the exact posterior (quadrature) puts < 1e-6 of
    its mass at x < 0, but proximal chains whose early clean estimate is negative stay in the
    local minimum near −1. Resampling by misfit mid-way removes them; the mean then matches the
    quadrature's."""
    sigma2, n = 0.01, 64
    misfit, mass_negative, post_mean = _double_well(sigma2)
    assert mass_negative < 1e-6
    model = GaussianDenoiser(torch.zeros(1, dtype=torch.float64), 1.0)
    z = torch.randn((n, 1, 1), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    seen = []
    kw = dict(
        misfit=misfit, method="proximal", data_variance=lambda t: sigma2,
        state_variance=model.posterior_var, inner=10, clip=None,
    )  # fmt: skip
    plain = sample_posterior(model, z, 20, generator=torch.Generator().manual_seed(4), **kw)
    resampled = sample_posterior(
        model, z, 20, generator=torch.Generator().manual_seed(4), resample_at={8, 12},
        callback=lambda info: seen.append(info["ancestors"]), **kw,
    )  # fmt: skip
    stuck = float((plain < 0).double().mean())
    assert stuck > 0.2, stuck  # the chains do get stuck without resampling
    assert float((resampled < 0).double().mean()) == 0.0
    assert abs(float(resampled.mean()) - post_mean) < 0.03, (float(resampled.mean()), post_mean)
    # ancestors are reported at the resampling steps only
    assert [i for i, a in enumerate(seen) if a is not None] == [8, 12]
    assert seen[8].shape == (n,)


def test_equal_misfits_keep_every_particle() -> None:
    model = GaussianDenoiser(torch.zeros(2, dtype=torch.float64), 0.5)
    z = torch.randn((8, 1, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    seen = []
    sample_posterior(
        model, z, 6, misfit=lambda x0: torch.zeros(x0.shape[0], dtype=torch.float64),
        method="proximal", data_variance=lambda t: 1.0, state_variance=model.posterior_var,
        generator=torch.Generator().manual_seed(1), resample_at=[2],
        callback=lambda info: seen.append(info["ancestors"]),
    )  # fmt: skip
    assert seen[2].tolist() == list(range(8))
    with pytest.raises(ValueError, match="resample_at"):
        sample_posterior(model, z, 6, misfit=lambda x0: x0.sum((1, 2)), resample_at=[-1],
                         method="noise_aware", data_variance=lambda t: 1.0)  # fmt: skip
    with pytest.raises(ValueError, match="resample_ess"):
        sample_posterior(model, z, 6, misfit=lambda x0: x0.sum((1, 2)), resample_ess=1.5,
                         method="noise_aware", data_variance=lambda t: 1.0)  # fmt: skip


def test_grouped_resampling_is_each_group_resampled_on_its_own() -> None:
    """The oracle: tempered weights and systematic resampling applied to each group's misfits
    separately (one uniform draw per group, in order), offset back; one group is exactly the
    population-wide resampling."""
    f = torch.tensor([0.0, 9.0, 0.1, 50.0, 3.0, 3.0, 0.0, 800.0], dtype=torch.float64)
    idx = grouped_resample(f, 2.0, 0.5, 2, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    expect = []
    for j in range(2):
        w, _ = tempered_weights(f[4 * j : 4 * j + 4], 2.0, 0.5)
        expect.append(systematic_resample(w, g) + 4 * j)
    assert idx.tolist() == torch.cat(expect).tolist()
    # a particle is only ever replaced by one of its own group, so the groups never mix: group 0
    # keeps its copies of particle 0 although the best of group 1 (particle 6) fits as well
    assert all(i < 4 for i in idx[:4].tolist()) and all(i >= 4 for i in idx[4:].tolist())
    one = grouped_resample(f, 2.0, 0.5, 1, torch.Generator().manual_seed(5))
    w, _ = tempered_weights(f, 2.0, 0.5)
    assert one.tolist() == systematic_resample(w, torch.Generator().manual_seed(5)).tolist()
    # as many groups as particles: nothing to choose from, every particle kept
    assert grouped_resample(f, 2.0, 0.5, 8, None).tolist() == list(range(8))
    for bad in (3, 0, 1.5):
        with pytest.raises(ValueError, match="groups"):
            grouped_resample(f, 2.0, 0.5, bad, None)


def test_grouped_resampling_in_the_sampler_keeps_groups_independent() -> None:
    """sample_posterior(resample_groups=2) where group 0's chains fit better than group 1's by a
    constant (e^-300 of weight at σ² = 0.01): one population replaces every chain of group 1 by
    copies of group 0's, two groups resample each within itself (equal misfits: all kept)."""
    n, sigma2 = 8, 0.01
    offset = torch.tensor([0.0] * 4 + [3.0] * 4, dtype=torch.float64)

    def misfit(x0: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x0.reshape(n) - 1.0).square() + offset

    model = GaussianDenoiser(torch.zeros(1, dtype=torch.float64), 1.0)
    z = torch.randn((n, 1, 1), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kw = dict(
        misfit=misfit, method="proximal", data_variance=lambda t: sigma2,
        state_variance=model.posterior_var, inner=5, clip=None, resample_at={3},
    )  # fmt: skip
    runs = {}
    for groups in (None, 1, 2):
        anc: list[torch.Tensor] = []
        extra = {} if groups is None else {"resample_groups": groups}
        x = sample_posterior(
            model, z, 8, generator=torch.Generator().manual_seed(4), ancestry=anc, **kw, **extra
        )
        runs[groups] = (x, anc[0].tolist())
    assert all(a < 4 for a in runs[1][1]), runs[1][1]
    assert runs[2][1] == list(range(n))
    assert torch.equal(runs[None][0], runs[1][0]) and runs[None][1] == runs[1][1]
    with pytest.raises(ValueError, match="resample_groups"):
        sample_posterior(model, z, 8, resample_groups=3, **kw)
