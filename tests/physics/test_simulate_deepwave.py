"""Agreement with deepwave 0.1.0 (the peer) run with matched conventions (specs/physics.md §5)."""

import pytest
import torch
from helpers import layered_models, rel_l2

from ubdiff_phys.physics import Survey, simulate

deepwave = pytest.importorskip("deepwave", reason="deepwave not installed (pip install .[test])")
from ubdiff_phys.physics.deepwave_peer import simulate_deepwave  # noqa: E402

SURVEY = Survey.openfwi()


@pytest.mark.parametrize("kind", ["homogeneous", "layered"])
def test_pml_mode_agrees_with_deepwave(kind):
    if kind == "homogeneous":
        v = torch.full((1, 70, 70), 4500.0, dtype=torch.float64)
    else:
        v = layered_models(1, seed=9, dtype=torch.float64)
    ours = simulate(v, SURVEY, boundary="pml")
    peer = simulate_deepwave(v, SURVEY)
    truth = simulate(v, SURVEY, boundary="none")
    # same physics and conventions: the two C-PML solvers differ only by their layers' residual
    # reflections (each ~1e-3 or less from the unbounded medium); a sign, scaling or one-sample
    # convention error would be O(1e-1..1)
    assert rel_l2(peer, truth) < 2e-3
    assert rel_l2(ours, peer) < 2e-3
    assert rel_l2(ours, truth) < 1e-3


def test_openfwi_sponge_differs_from_deepwave_by_the_sponge():
    # spec: the OpenFWI mode differs from deepwave by 2-11 % on layered models, and that difference
    # is the sponge's: deepwave ~ the unbounded medium, so both differences must be nearly equal
    v = torch.full((1, 70, 70), 4500.0, dtype=torch.float64)
    v[:, :30] = 3000.0
    sponge = simulate(v, SURVEY, boundary="openfwi")
    vs_peer = rel_l2(sponge, simulate_deepwave(v, SURVEY))
    vs_truth = rel_l2(sponge, simulate(v, SURVEY, boundary="none"))
    assert vs_peer > 5e-3
    assert abs(vs_peer - vs_truth) < 0.1 * vs_truth
