"""torch views over a store: unbalanced split sizes, disjointness from the test split,
normalised samples equal to the normalisation of the stored ones, DataLoader workers."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import small_store
from torch.utils.data import DataLoader

from ubdiff_phys.data import (
    HeldOutDataset,
    NoisyPairedDataset,
    PairedDataset,
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


def _noise_fractions(noisy: NoisyPairedDataset, clean: PairedDataset, reads: int) -> np.ndarray:
    """σ̂ / RMS of the added noise, per read of every item (raw views)."""
    out = []
    for _ in range(reads):
        for i in range(len(clean)):
            v, s = noisy[i]
            v0, s0 = clean[i]
            torch.testing.assert_close(v, v0)
            r = (s.double() - s0.double()).flatten()
            out.append(float(r.std() / s0.double().square().mean().sqrt()))
    return np.array(out)


def test_noisy_paired_view_adds_noise_of_the_stated_level(built: Path) -> None:
    """Training-noise augmentation: σ / RMS uniform on [0, max] (mean max / 2, never above max
    beyond the sampling error of a std over 2,000 values), fresh draws per read, the same
    stream for the same seed, and the noise-free case equal to the plain view."""
    _, pair, _ = make_views(built)
    raw = PairedDataset(pair.store, pair.rows, normalize=False)
    f = _noise_fractions(NoisyPairedDataset.of(raw, 0.1, seed=3), raw, reads=6)
    assert f.shape == (60,)
    assert f.max() <= 0.1 * 1.1 and f.min() >= 0
    assert abs(f.mean() - 0.05) < 0.015  # U(0, 0.1): sd of a 60-draw mean ≈ 0.0037
    assert abs(f.std() - 0.1 / np.sqrt(12)) < 0.01
    a, b = NoisyPairedDataset.of(pair, 0.05, seed=1), NoisyPairedDataset.of(pair, 0.05, seed=1)
    s1, s2 = a[0][1], a[0][1]
    assert not torch.equal(s1, s2)
    torch.testing.assert_close(b[0][1], s1)
    torch.testing.assert_close(b[0][1], s2)
    zero = NoisyPairedDataset.of(pair, 0.0)
    for i in (0, 9):
        torch.testing.assert_close(zero[i][1], pair[i][1], rtol=0, atol=1e-6)
        torch.testing.assert_close(zero[i][0], pair[i][0])
    with pytest.raises(ValueError, match="max_fraction"):
        NoisyPairedDataset.of(pair, -0.1)


def _record_worker_seed(folder: Path, worker_id: int) -> None:
    """worker_init_fn: append this worker's torch seed to folder/worker<id>.txt."""
    seed = torch.utils.data.get_worker_info().seed
    with open(folder / f"worker{worker_id}.txt", "a") as f:
        f.write(f"{seed}\n")


def test_noisy_paired_view_workers_draw_from_their_own_streams(built: Path, tmp_path) -> None:
    """In a DataLoader worker the stream restarts from worker_stream_seed(seed, the worker's torch
    seed): the loader's batches equal the same reads done by hand from those seeds; the second
    epoch draws other noise than the first (its workers get other torch seeds), and a loader with
    the same generator seed repeats both epochs exactly."""
    _, pair, _ = make_views(built)
    data = NoisyPairedDataset.of(pair, 0.05, seed=2)

    def two_epochs(folder: Path) -> list[torch.Tensor]:
        folder.mkdir()
        loader = DataLoader(
            data,
            batch_size=5,
            num_workers=2,
            generator=torch.Generator().manual_seed(7),
            worker_init_fn=functools.partial(_record_worker_seed, folder),
        )
        return [s for _ in range(2) for _, s in loader]

    batches = two_epochs(tmp_path / "a")
    seeds = [
        [int(x) for x in (tmp_path / "a" / f"worker{w}.txt").read_text().split()] for w in (0, 1)
    ]
    assert len(batches) == 4 and all(len(x) == 2 for x in seeds)

    def by_hand(worker_seed: int, items: range) -> torch.Tensor:
        d = NoisyPairedDataset.of(pair, 0.05, seed=0)
        d.generator.manual_seed(NoisyPairedDataset.worker_stream_seed(2, worker_seed))
        return torch.stack([d[i][1] for i in items])

    for epoch in (0, 1):  # batch 0 from worker 0 (items 0-4), batch 1 from worker 1 (5-9)
        torch.testing.assert_close(batches[2 * epoch], by_hand(seeds[0][epoch], range(5)))
        torch.testing.assert_close(batches[2 * epoch + 1], by_hand(seeds[1][epoch], range(5, 10)))
    assert not torch.allclose(batches[0], batches[2]) and not torch.allclose(batches[1], batches[3])
    assert not torch.allclose(batches[1], by_hand(seeds[0][0], range(5, 10)))
    for a, b in zip(two_epochs(tmp_path / "b"), batches, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noisy_paired_view_stream_position_round_trips(built: Path) -> None:
    """state_dict / load_state_dict: a view restored to a position draws what the original drew
    from there."""
    _, pair, _ = make_views(built)
    a = NoisyPairedDataset.of(pair, 0.05, seed=4)
    a[0]
    state = {k: v.clone() for k, v in a.state_dict().items()}
    after = [a[i][1] for i in (1, 2)]
    b = NoisyPairedDataset.of(pair, 0.05, seed=9)
    b.load_state_dict(state)
    for i, want in zip((1, 2), after, strict=True):
        torch.testing.assert_close(b[i][1], want, rtol=0, atol=0)
