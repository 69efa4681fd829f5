"""``resimulate_store`` / ``ubdiff-phys resimulate``: solver seismic for the paired rows of a file.

Oracles: the solver called directly on the same velocity maps, and the residual of the result
(physically consistent pairs give 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ubdiff_phys.pipelines.resimulate as resimulate_module
from ubdiff_phys.cli import main as cli_main
from ubdiff_phys.data import make_dataset, open_store
from ubdiff_phys.data.store import StoreError, StoreWriter, create_store
from ubdiff_phys.physics import Survey, simulate
from ubdiff_phys.pipelines import resimulate_store, validate_store

SURVEY = Survey.openfwi().with_(nt=200)


def _wrong_pairs(path, n=7, seed=0, **attrs):
    """A pairs file like generated pairs: layered velocity maps whose seismic is noise."""
    rng = np.random.default_rng(seed)
    v = np.repeat(np.linspace(1500, 4000, 70, dtype=np.float32)[None, None, :, None], n, 0)
    v = np.ascontiguousarray(
        np.broadcast_to(v, (n, 1, 70, 70)) * rng.uniform(0.9, 1.1, (n, 1, 1, 1))
    )
    shape = (SURVEY.n_sources, SURVEY.nt, SURVEY.n_receivers)
    rows = np.arange(n)
    create_store(
        path,
        n_rows=n,
        grid=(70, 70),
        seismic_shape=shape,
        paired_index=rows,
        train_index=rows,
        test_index=np.zeros(0, dtype=np.int64),
        attrs={"survey": SURVEY.to_dict(), "boundary": "pml", "family": "flatvel-a", **attrs},
    )
    with StoreWriter(path) as w:
        w.write_velocity(0, v.astype(np.float32))
        w.write_seismic(0, rng.normal(size=(n, *shape)).astype(np.float32))
        w.finalize()
    return v.astype(np.float32)


def test_resimulated_seismic_is_the_solvers(tmp_path):
    src, out = tmp_path / "gen.h5", tmp_path / "resim.h5"
    v = _wrong_pairs(src)  # no normalisation constants: physical residual only
    before = validate_store(src, device="cpu", progress=False)
    assert min(before.rel_l2) > 0.5 and before.rel_l2_normalized is None
    assert set(before.distribution) == {"physical"} and "median" in before.describe()
    res = resimulate_store(src, out, device="cpu", batch=3, progress=False)
    assert res["n"] == res["simulated"] == 7
    expected = simulate(torch.from_numpy(v), SURVEY, boundary="pml").numpy()
    with open_store(out) as st:
        assert st.attrs["boundary"] == "pml" and st.survey == SURVEY
        assert len(st.train_index) == 7 and len(st.test_index) == 0
        got_v = np.stack([st.velocity(i) for i in range(7)])
        got_s = np.stack([st.seismic(i) for i in range(7)])
    np.testing.assert_array_equal(got_v, v)
    np.testing.assert_allclose(got_s, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    assert max(validate_store(out, device="cpu", progress=False).rel_l2) < 1e-6
    # complete and from the same source: left alone
    assert resimulate_store(src, out, device="cpu", progress=False)["simulated"] == 0


def test_real_pairs_resimulate_to_themselves(tmp_path):
    src, out = tmp_path / "real.h5", tmp_path / "resim.h5"
    make_dataset(src, family="flatvel-a", n_velocity=6, n_paired=3, n_test=2, survey=SURVEY,
                 boundary="pml", batch=2, progress=False)  # fmt: skip
    resimulate_store(src, out, device="cpu", progress=False)
    with open_store(src) as a, open_store(out) as b:
        assert len(b.paired_index) == len(a.paired_index) == 5  # train and test pairs
        for i, row in enumerate(a.paired_index):
            np.testing.assert_array_equal(b.velocity(i), a.velocity(int(row)))
            np.testing.assert_allclose(b.seismic(i), a.seismic(i), rtol=0, atol=1e-7)


def test_interrupted_resimulation_resumes(tmp_path, monkeypatch):
    src = tmp_path / "gen.h5"
    _wrong_pairs(src)
    resimulate_store(src, tmp_path / "whole.h5", device="cpu", batch=2, progress=False)
    calls = {"n": 0}
    real = resimulate_module.simulate

    def dies_on_third_call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(resimulate_module, "simulate", dies_on_third_call)
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        resimulate_store(src, part, device="cpu", batch=2, progress=False)
    with pytest.raises(StoreError, match="incomplete|not complete|finish"):
        open_store(part)
    monkeypatch.setattr(resimulate_module, "simulate", real)
    res = resimulate_store(src, part, device="cpu", batch=2, progress=False)
    assert res["simulated"] == 3  # rows 4..6; rows 0..3 were committed before the interrupt
    with open_store(part) as a, open_store(tmp_path / "whole.h5") as b:
        for i in range(7):
            np.testing.assert_array_equal(a.seismic(i), b.seismic(i))
            np.testing.assert_array_equal(a.velocity(i), b.velocity(i))


def test_bad_input(tmp_path):
    src = tmp_path / "gen.h5"
    _wrong_pairs(src)
    with pytest.raises(ValueError, match="differ"):
        resimulate_store(src, src, progress=False)
    with pytest.raises(ValueError, match="batch"):
        resimulate_store(src, tmp_path / "o.h5", batch=0, progress=False)
    other = tmp_path / "other.h5"
    _wrong_pairs(other, n=4, seed=1)
    with pytest.raises(FileExistsError, match="not re-simulated from"):
        resimulate_store(src, other, progress=False)
    # a file that records no survey (e.g. an OpenFWI import)
    nosurvey = tmp_path / "nosurvey.h5"
    create_store(nosurvey, n_rows=1, grid=(70, 70), seismic_shape=(5, 200, 70),
                 paired_index=[0], train_index=[0], test_index=[], attrs={})  # fmt: skip
    with StoreWriter(nosurvey) as w:
        w.write_velocity(0, np.full((1, 1, 70, 70), 2000, np.float32))
        w.write_seismic(0, np.zeros((1, 5, 200, 70), np.float32))
        w.finalize()
    with pytest.raises(StoreError, match="records no survey"):
        resimulate_store(nosurvey, tmp_path / "o.h5", progress=False)


def test_cli(tmp_path, capsys):
    src, out = tmp_path / "gen.h5", tmp_path / "resim.h5"
    _wrong_pairs(src, n=3)
    assert cli_main(["resimulate", str(src), str(out), "--device", "cpu", "--quiet"]) == 0
    assert "3 pairs, 3 simulated" in capsys.readouterr().out
    assert max(validate_store(out, device="cpu", progress=False).rel_l2) < 1e-6


def test_train_rows_pair_every_training_map(tmp_path):
    """rows="train": every training velocity map (paired or not) with solver seismic, and none
    of the held-out rows; where the source had seismic, it is reproduced."""
    src, out = tmp_path / "real.h5", tmp_path / "all.h5"
    make_dataset(src, family="flatvel-a", n_velocity=6, n_paired=2, n_test=2, survey=SURVEY,
                 boundary="pml", batch=2, progress=False)  # fmt: skip
    res = resimulate_store(src, out, device="cpu", batch=4, progress=False, rows="train")
    with open_store(src) as a, open_store(out) as b:
        train = np.asarray(a.train_index)
        assert res["n"] == len(train) == len(b.paired_index) == len(b.train_index) == 6
        assert not np.isin(np.asarray(a.test_index), train).any()
        v = np.stack([a.velocity(int(r)) for r in train])
        expected = simulate(torch.from_numpy(v), SURVEY, boundary="pml").numpy()
        got = np.stack([b.seismic(i) for i in range(6)])
        np.testing.assert_array_equal(np.stack([b.velocity(i) for i in range(6)]), v)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
        paired_train = [(i, int(a.seismic_row[r])) for i, r in enumerate(train)
                        if a.seismic_row[r] >= 0]  # fmt: skip
        assert len(paired_train) == 2
        for i, srow in paired_train:
            np.testing.assert_allclose(got[i], a.seismic(srow), rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="rows must be one of"):
        resimulate_store(src, tmp_path / "x.h5", rows="test")
