"""Reference points for residuals against sets whose answer is known by construction."""

from __future__ import annotations

import torch

from ubdiff_phys.physics import Survey, simulate
from ubdiff_phys.physics.baselines import (
    baselines,
    direct_wave_residual,
    gather_diversity,
    verdict,
)

SURVEY = Survey(
    nz=20, nx=20, dz=10.0, dx=10.0, dt=0.001, nt=200, sources=((1, 3), (1, 16)),
    receivers=tuple((1, j) for j in range(0, 20, 2)), frequency=15.0, pml_width=8,
)  # fmt: skip


def layered(n: int) -> torch.Tensor:
    """n distinct two-layer maps (interface depth and lower velocity vary)."""
    v = torch.full((n, 20, 20), 2000.0, dtype=torch.float64)
    for k in range(n):
        v[k, 6 + k :, :] = 2600.0 + 150.0 * k
    return v


def test_exact_pairs_beat_every_baseline() -> None:
    v = layered(4)
    s = simulate(v, SURVEY, boundary="pml")
    b = baselines(v, s, SURVEY, boundary="pml")
    assert b.own < 1e-12
    assert b.shuffled > 0.05 and b.direct_wave > 0.05
    assert abs(b.diversity - b.solver_diversity) < 1e-12
    assert verdict(b).startswith("consistent")


def test_collapsed_generator_is_called_out() -> None:
    v = layered(4)
    one = simulate(v[:1], SURVEY, boundary="pml")
    s = one.expand(4, *one.shape[1:]).contiguous()  # the same gather for every sample
    b = baselines(v, s, SURVEY, boundary="pml")
    assert gather_diversity(s) == 0.0 and b.diversity == 0.0
    assert b.solver_diversity > 0.05
    text = verdict(b)
    assert "collapsed" in text and "ignore their velocity" in text


def test_direct_wave_of_a_homogeneous_map_is_exact() -> None:
    v = torch.full((2, 20, 20), 2500.0, dtype=torch.float64)
    assert float(direct_wave_residual(v, SURVEY, boundary="pml").max()) < 1e-12
    assert float(direct_wave_residual(layered(2), SURVEY, boundary="pml").min()) > 0.01
