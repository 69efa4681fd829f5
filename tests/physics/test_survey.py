"""Survey geometry and the OpenFWI wavelet, against specs/physics.md §1."""

import math

import numpy as np
import pytest

from ubdiff_phys.physics import Survey, ricker_openfwi


def test_openfwi_geometry():
    s = Survey.openfwi()
    assert (s.nz, s.nx, s.dz, s.dx, s.dt, s.nt) == (70, 70, 10.0, 10.0, 1e-3, 1000)
    assert s.sources == ((1, 0), (1, 17), (1, 34), (1, 52), (1, 69))
    assert s.receivers == tuple((1, j) for j in range(70))
    assert s.frequency == 15.0 and s.sponge_width == 120


def test_ricker_matches_spec_formula():
    w = ricker_openfwi(15.0, 1e-3, 1000)
    assert w.shape == (1000,)
    assert np.argmax(w) == 73 and w[73] == pytest.approx(1.0)
    # hand-evaluated formula of specs/physics.md §1 at a few samples
    for j in (0, 50, 73, 100, 146):
        b = (math.pi * 15.0 * 1e-3 * (73 - j)) ** 2
        assert w[j] == pytest.approx((1 - 2 * b) * math.exp(-b), rel=1e-12, abs=1e-15)
    assert np.all(w[147:] == 0)
    assert np.count_nonzero(w) == 147


def test_json_round_trip():
    s = Survey.openfwi().with_(nt=500, pml_width=10)
    assert Survey.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sources": ((1, 70),)}, "outside"),
        ({"receivers": ((-1, 3),)}, "outside"),
        ({"sources": ()}, "empty"),
        ({"dt": 0.0}, "positive"),
        ({"nt": 0}, "positive integer"),
        ({"wavelet": (1.0, 2.0)}, "nt"),
        ({"pml_reflection": 2.0}, "pml_reflection"),
    ],
)
def test_bad_survey_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Survey(**kwargs)
