"""OpenFWI import on small synthetic .npy files laid out like OpenFWI's (specs/data.md §1); the
oracle is the files themselves and the official split rules."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from ubdiff_phys.cli import main as cli_main
from ubdiff_phys.data import find_openfwi_pairs, import_openfwi, open_store
from ubdiff_phys.data.store import StoreError
from ubdiff_phys.physics import Survey

SMALL = (5, 40, 70)  # (sources, time samples, receivers) of the small synthetic gathers


def _pair(rng, k: int, seismic_shape=SMALL, grid=(70, 70)) -> tuple[np.ndarray, np.ndarray]:
    seis = rng.standard_normal((k, *seismic_shape)).astype(np.float32)
    vel = rng.uniform(1500, 4500, (k, 1, *grid)).astype(np.float32)
    return seis, vel


def make_vel_family(root: Path, numbers: dict[int, int], seismic_shape=SMALL) -> dict:
    """data/data{i}.npy + model/model{i}.npy with numbers[i] samples each."""
    rng = np.random.default_rng(sum(numbers))
    (root / "data").mkdir(parents=True)
    (root / "model").mkdir()
    files = {}
    for i, k in numbers.items():
        seis, vel = _pair(rng, k, seismic_shape)
        np.save(root / "data" / f"data{i}.npy", seis)
        np.save(root / "model" / f"model{i}.npy", vel)
        files[i] = (seis, vel)
    return files


def make_fault_family(root: Path, keys: dict[tuple[int, int], int]) -> dict:
    """seis{n}_1_{j}.npy + vel{n}_1_{j}.npy in one folder."""
    rng = np.random.default_rng(7)
    root.mkdir(parents=True)
    files = {}
    for (n, j), k in keys.items():
        seis, vel = _pair(rng, k)
        np.save(root / f"seis{n}_1_{j}.npy", seis)
        np.save(root / f"vel{n}_1_{j}.npy", vel)
        files[(n, j)] = (seis, vel)
    return files


def _rows(files: dict, order: list) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.concatenate([files[k][0] for k in order]),
        np.concatenate([files[k][1] for k in order]),
    )


def test_vel_naming_official_split_and_contents(tmp_path: Path) -> None:
    files = make_vel_family(tmp_path / "anything", {1: 2, 2: 1, 48: 2, 49: 1, 60: 2})
    summary = import_openfwi(
        tmp_path / "anything", tmp_path / "fv.h5", family="flatvel-a", progress=False
    )
    assert (summary.scheme, summary.n_train, summary.n_test) == ("data-model", 5, 3)
    seis, vel = _rows(files, [1, 2, 48, 49, 60])  # rows follow the file numbers
    with open_store(tmp_path / "fv.h5") as st, h5py.File(tmp_path / "fv.h5", "r") as f:
        np.testing.assert_array_equal(f["velocity"][()], vel)
        np.testing.assert_array_equal(f["seismic"][()], seis)
        np.testing.assert_array_equal(st.paired_index, np.arange(8))
        np.testing.assert_array_equal(st.train_index, np.arange(5))  # data1, data2, data48
        np.testing.assert_array_equal(st.test_index, [5, 6, 7])  # data49, data60
        assert st.family == "flatvel-a" and st.normalizer.source == "openfwi:flatvel-a"
        assert st.attrs["source"] == "openfwi-import" and st.survey is None  # not OpenFWI shapes
        assert [r[0] for r in st.attrs["source_files"]["files"]] == [
            f"data{i}.npy" for i in (1, 2, 48, 49, 60)
        ]


def test_style_split_and_openfwi_shapes_record_the_survey(tmp_path: Path) -> None:
    make_vel_family(tmp_path / "Style_B", {120: 1, 121: 1}, seismic_shape=(5, 1000, 70))
    summary = import_openfwi(tmp_path / "Style_B", tmp_path / "s.h5", progress=False)
    assert summary.subset == "style-b" and (summary.n_train, summary.n_test) == (1, 1)
    with open_store(tmp_path / "s.h5") as st:
        assert st.survey == Survey.openfwi() and st.attrs["boundary"] == "openfwi"
        assert st.normalizer.source == "openfwi:style-b"


def test_fault_naming_with_family_from_folder_name(tmp_path: Path) -> None:
    keys = {(2, 0): 2, (2, 31): 1, (2, 32): 2, (3, 35): 1, (3, 1): 3, (4, 10): 1}
    files = make_fault_family(tmp_path / "CurveFault_A", keys)
    summary = import_openfwi(tmp_path / "CurveFault_A", tmp_path / "cf.h5", progress=False)
    assert (summary.scheme, summary.subset) == ("seis-vel", "curvefault-a")
    order = sorted(keys)  # (2,0) (2,31) (2,32) (3,1) (3,35) (4,10)
    seis, vel = _rows(files, order)
    with open_store(tmp_path / "cf.h5") as st, h5py.File(tmp_path / "cf.h5", "r") as f:
        np.testing.assert_array_equal(f["velocity"][()], vel)
        np.testing.assert_array_equal(f["seismic"][()], seis)
        # j <= 31 train: (2,0) rows 0-1, (2,31) row 2, (3,1) rows 5-7, (4,10) row 9
        np.testing.assert_array_equal(st.train_index, [0, 1, 2, 5, 6, 7, 9])
        np.testing.assert_array_equal(st.test_index, [3, 4, 8])


def test_split_file_val_and_train(tmp_path: Path) -> None:
    make_vel_family(tmp_path / "fam", {1: 1, 2: 1, 3: 1})
    val = tmp_path / "flatvel_a_val.txt"
    val.write_text("/somewhere/else/data/data2.npy\t/somewhere/else/model/model2.npy\n\n")
    import_openfwi(tmp_path / "fam", tmp_path / "v.h5", split_file=val, progress=False)
    with open_store(tmp_path / "v.h5") as st:
        np.testing.assert_array_equal(st.test_index, [1])
        assert st.attrs["split"]["official"] is False
    train = tmp_path / "flatvel_a_train.txt"
    train.write_text("data/data3.npy\tmodel/model3.npy\n")
    import_openfwi(tmp_path / "fam", tmp_path / "t.h5", split_file=train, progress=False)
    with open_store(tmp_path / "t.h5") as st:
        np.testing.assert_array_equal(st.train_index, [2])
    bad = tmp_path / "bad_val.txt"
    bad.write_text("data/data9.npy\tmodel/model9.npy\n")
    with pytest.raises(ValueError, match="data9.npy"):
        import_openfwi(tmp_path / "fam", tmp_path / "b.h5", split_file=bad, progress=False)
    with pytest.raises(FileNotFoundError, match="split file"):
        import_openfwi(tmp_path / "fam", tmp_path / "b.h5", split_file=tmp_path / "nope.txt")


def test_bad_folders_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no OpenFWI files"):
        find_openfwi_pairs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_openfwi_pairs(tmp_path / "missing")
    make_vel_family(tmp_path / "unmatched", {1: 1, 2: 1})
    (tmp_path / "unmatched" / "model" / "model2.npy").unlink()
    with pytest.raises(ValueError, match="unmatched OpenFWI files.*data2.npy"):
        find_openfwi_pairs(tmp_path / "unmatched")
    make_vel_family(tmp_path / "counts", {1: 2})
    np.save(tmp_path / "counts" / "model" / "model1.npy", np.full((3, 1, 70, 70), 2000.0, "f4"))
    with pytest.raises(ValueError, match="mismatched pair: data1.npy has 2 samples"):
        find_openfwi_pairs(tmp_path / "counts")
    make_vel_family(tmp_path / "unknown_subset", {1: 1})
    with pytest.raises(ValueError, match="pass --family"):
        import_openfwi(tmp_path / "unknown_subset", tmp_path / "u.h5", progress=False)
    with pytest.raises(ValueError, match="unknown OpenFWI subset"):
        import_openfwi(tmp_path / "unknown_subset", tmp_path / "u.h5", family="flatvel-z")
    make_vel_family(tmp_path / "normalised", {1: 1})
    np.save(tmp_path / "normalised" / "model" / "model1.npy", np.zeros((1, 1, 70, 70), "f4"))
    with pytest.raises(ValueError, match="normalised data"):
        import_openfwi(
            tmp_path / "normalised", tmp_path / "n.h5", family="flatvel-a", progress=False
        )


def test_interrupted_import_resumes_to_the_same_file(tmp_path: Path) -> None:
    make_vel_family(tmp_path / "fam", {1: 2, 2: 2, 49: 2})
    import_openfwi(tmp_path / "fam", tmp_path / "whole.h5", family="flatvel-a", progress=False)

    def stop_after_first(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_openfwi(
            tmp_path / "fam",
            tmp_path / "part.h5",
            family="flatvel-a",
            progress=False,
            on_commit=stop_after_first,
        )
    with open_store(tmp_path / "part.h5", allow_incomplete=True) as st:
        assert st.progress.n_velocity_committed == 2 and not st.progress.complete
    with pytest.raises(StoreError, match="not an import of the same files"):
        import_openfwi(tmp_path / "fam", tmp_path / "part.h5", family="curvevel-a")
    assert import_openfwi(
        tmp_path / "fam", tmp_path / "part.h5", family="flatvel-a", progress=False
    ).resumed
    with h5py.File(tmp_path / "whole.h5", "r") as a, h5py.File(tmp_path / "part.h5", "r") as b:
        for key in a:
            np.testing.assert_array_equal(a[key][()], b[key][()])


def test_cli_import(tmp_path: Path, capsys) -> None:
    make_fault_family(tmp_path / "FlatFault_B", {(6, 0): 1, (7, 33): 1})
    assert (
        cli_main(
            ["import-openfwi", str(tmp_path / "FlatFault_B"), str(tmp_path / "o.h5"), "--quiet"]
        )
        == 0
    )
    assert "1 train, 1 test" in capsys.readouterr().out
    assert cli_main(["import-openfwi", str(tmp_path / "nowhere"), str(tmp_path / "x.h5")]) == 2
    assert "not a directory" in capsys.readouterr().err
