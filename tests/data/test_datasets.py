"""torch views over a store: unbalanced split sizes, disjointness from the test split,
normalised samples equal to the normalisation of the stored ones, DataLoader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import small_store
from torch.utils.data import DataLoader

from ubdiff_phys.data import (
    HeldOutDataset,
    SplitSpec,
    VelocityDataset,
    import_openfwi,
    make_views,
    open_store,
)
from ubdiff_phys.data.normalize import normalize_seismic, normalize_velocity
from ubdiff_phys.physics import Survey

TINY = Survey(nt=100, sources=((1, 0), (1, 35)), receivers=tuple((1, j) for j in range(0, 70, 7)))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("views") / "b.h5"
    return small_store(path, 60, 10, 8, family="curvevel-a", seed=1, survey=TINY, batch=8)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """An all-paired OpenFWI-like store: data1-2 train (20 samples), data49 test (5)."""
    root = tmp_path_factory.mktemp("openfwi")
    (root / "data").mkdir()
    (root / "model").mkdir()
    rng = np.random.default_rng(0)
    for i, k in ((1, 10), (2, 10), (49, 5)):
        np.save(root / "data" / f"data{i}.npy", rng.standard_normal((k, 5, 30, 70)).astype("f4"))
        np.save(
            root / "model" / f"model{i}.npy", rng.uniform(1500, 4500, (k, 1, 70, 70)).astype("f4")
        )
    out = root / "o.h5"
    import_openfwi(root, out, family="curvevel-a", progress=False)
    return out


def test_recorded_split_views(built: Path) -> None:
    vel, pair, test = make_views(built)
    assert vel.spec == pair.spec == SplitSpec(60, 10, 1)
    assert len(vel) == 60 and len(pair) == 10 and len(test) == 8 and test.paired
    st = open_store(built)
    assert not np.intersect1d(vel.rows, st.test_index).size  # no training view sees test rows
    assert not np.intersect1d(pair.rows, st.test_index).size
    assert np.isin(pair.rows, vel.rows).all()  # paired rows are also velocity rows
    v, s = pair[3]
    row = int(pair.rows[3])
    assert v.shape == (1, 70, 70) and s.shape == (2, 100, 10)
    assert v.dtype == torch.float32 and s.dtype == torch.float32
    # oracle: the normalisation of the stored sample, with the store's constants
    torch.testing.assert_close(v, normalize_velocity(torch.from_numpy(st.velocity(row))))
    lo, hi = st.normalizer.s_log_min, st.normalizer.s_log_max
    torch.testing.assert_close(
        s, normalize_seismic(torch.from_numpy(st.seismic_of(row)), log_min=lo, log_max=hi)
    )
    assert -1 <= float(vel[0].min()) and float(vel[0].max()) <= 1
    raw = VelocityDataset(built, vel.rows, normalize=False)
    np.testing.assert_array_equal(raw[5].numpy(), st.velocity(int(vel.rows[5])))  # m/s, untouched


def test_spec_on_an_all_paired_import(imported: Path) -> None:
    spec = SplitSpec(n_velocity=16, n_paired=4, seed=3)
    vel, pair, test = make_views(imported, spec)
    assert len(vel) == 16 and len(pair) == 4 and len(test) == 5
    assert np.isin(pair.rows, vel.rows).all()
    st = open_store(imported)
    assert np.isin(vel.rows, st.train_index).all()
    # same seed, same rows; another seed, other rows
    vel2, pair2, _ = make_views(imported, spec)
    np.testing.assert_array_equal(pair.rows, pair2.rows)
    _, pair3, _ = make_views(imported, SplitSpec(16, 4, seed=4))
    assert not np.array_equal(pair.rows, pair3.rows)
    with pytest.raises(ValueError, match="only 20 training rows"):
        make_views(imported, SplitSpec(25, 4))
    with pytest.raises(ValueError, match="cannot exceed"):
        SplitSpec(3, 4)
    with pytest.raises(ValueError, match="non-negative"):
        SplitSpec(3, -1)


def test_paired_request_beyond_the_gathers_is_refused(built: Path) -> None:
    with pytest.raises(ValueError, match="only 10 with gathers"):
        make_views(built, SplitSpec(60, 11))


def test_test_view_and_index_errors(built: Path) -> None:
    test = HeldOutDataset(built)
    v, s = test[-1]
    assert v.shape == (1, 70, 70) and s.shape == (2, 100, 10)
    with pytest.raises(IndexError):
        test[len(test)]
    st = open_store(built)
    with pytest.raises(ValueError, match="held-out test rows"):
        VelocityDataset(built, st.test_index[:2])


def test_dataloader_with_worker_processes(built: Path) -> None:
    _, pair, _ = make_views(built)
    batches = list(DataLoader(pair, batch_size=4, num_workers=2, shuffle=False))
    v = torch.cat([b[0] for b in batches])
    assert v.shape == (10, 1, 70, 70)
    torch.testing.assert_close(v, torch.stack([pair[i][0] for i in range(10)]))
