"""Reference points for pair residuals: what a residual means is only clear next to what a pair
with *no* information scores.

- **shuffled**: each gather against *another* sample's velocity (a cyclic shift of the batch). A
  generator whose gathers ignore their velocity scores the same as against its own.
- **direct wave**: the gathers of a homogeneous model at each map's top-layer velocity (physics,
  but no subsurface) scored against the map's own velocity: a gather worth keeping must beat it.
- **diversity**: the median relative L2 difference between the gathers of distinct samples; a
  collapsed generator (one gather for every sample) has diversity near 0, while the solver's
  gathers of the same velocities show how much they should differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ubdiff_phys.physics.forward import check_velocity, simulate
from ubdiff_phys.physics.residual import residual
from ubdiff_phys.physics.survey import Survey

__all__ = [
    "Baselines",
    "baselines",
    "direct_wave_residual",
    "gather_diversity",
    "shuffled_residual",
    "verdict",
]


def shuffled_residual(
    v: torch.Tensor, seismic: torch.Tensor, survey: Survey, *, boundary: str, shift: int = 1
) -> torch.Tensor:
    """(B,) relative L2 of gather ``i`` against velocity ``(i + shift) mod B`` (B >= 2)."""
    v = check_velocity(v, survey)
    if v.shape[0] < 2:
        raise ValueError("the shuffled baseline needs at least 2 pairs")
    return residual(torch.roll(v, shifts=-shift, dims=0), seismic, survey, boundary=boundary).rel_l2


def direct_wave_residual(v: torch.Tensor, survey: Survey, *, boundary: str) -> torch.Tensor:
    """(B,) relative L2 of the direct-wave gather (homogeneous model at the mean velocity of each
    map's top row) against the solver's gathers of the map itself."""
    v = check_velocity(v, survey)
    top = v[:, :1, :].mean(dim=2, keepdim=True).expand_as(v).contiguous()
    direct = simulate(top, survey, boundary=boundary)
    return residual(v, direct, survey, boundary=boundary).rel_l2


def gather_diversity(seismic: torch.Tensor, max_pairs: int = 256, seed: int = 0) -> float:
    """Median over distinct sample pairs (i, j) of ``||s_i - s_j|| / ||s_j||`` (at most
    ``max_pairs`` pairs, drawn with a fixed seed); 0 for a collapsed set, NaN for B < 2."""
    b = seismic.shape[0]
    if b < 2:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    pairs = torch.combinations(torch.arange(b), r=2)
    if len(pairs) > max_pairs:
        pairs = pairs[torch.randperm(len(pairs), generator=g)[:max_pairs]]
    flat = seismic.reshape(b, -1).double()
    diff = (flat[pairs[:, 0]] - flat[pairs[:, 1]]).norm(dim=1)
    ref = flat[pairs[:, 1]].norm(dim=1).clamp(min=torch.finfo(torch.float64).tiny)
    return float((diff / ref).median())


@dataclass(frozen=True)
class Baselines:
    """Medians of the pairs' own residual and of the reference points (see module docstring)."""

    own: float
    shuffled: float
    direct_wave: float
    diversity: float
    solver_diversity: float

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def baselines(
    v: torch.Tensor, seismic: torch.Tensor, survey: Survey, *, boundary: str
) -> Baselines:
    """All reference points for a batch of pairs (B >= 2): v (B, [1,] nz, nx) [m/s], seismic
    (B, S, nt, R). Costs three solver passes over the batch."""
    v = check_velocity(v, survey)
    own = residual(v, seismic, survey, boundary=boundary).rel_l2
    solver = simulate(v, survey, boundary=boundary)
    return Baselines(
        own=float(own.median()),
        shuffled=float(shuffled_residual(v, seismic, survey, boundary=boundary).median()),
        direct_wave=float(direct_wave_residual(v, survey, boundary=boundary).median()),
        diversity=gather_diversity(seismic),
        solver_diversity=gather_diversity(solver),
    )


def verdict(b: Baselines) -> str:
    """A plain-words reading of :class:`Baselines`."""
    notes = []
    if b.own >= 0.9 * b.shuffled:
        notes.append(
            f"the gathers ignore their velocity: own residual {b.own:.3g} is no better than "
            f"against another sample's velocity ({b.shuffled:.3g})"
        )
    if b.solver_diversity > 0 and b.diversity < b.solver_diversity / 3:
        notes.append(
            f"the gathers have collapsed: they differ by {b.diversity:.3g} (median relative L2) "
            f"where the solver's gathers of the same velocities differ by {b.solver_diversity:.3g}"
        )
    if b.own >= b.direct_wave:
        notes.append(
            f"a direct-wave-only gather scores better ({b.direct_wave:.3g}) than the pairs' own "
            f"seismic ({b.own:.3g})"
        )
    if not notes:
        return (
            f"consistent: own residual {b.own:.3g} beats the shuffled ({b.shuffled:.3g}) and "
            f"direct-wave ({b.direct_wave:.3g}) baselines"
        )
    return "; ".join(notes)
