"""HDF5 store and make-dataset: contents against their oracles (the family stream, the solver),
kill-and-resume equality (bit-exact, with killed subprocesses), and clear errors on bad files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import child_env

import ubdiff_phys
from ubdiff_phys.cli import main as cli_main
from ubdiff_phys.data import generate, make_dataset, open_store
from ubdiff_phys.data.store import FORMAT_VERSION, StoreError
from ubdiff_phys.physics import Survey, simulate

# 70 x 70 grid (the families' grid), few time steps, 2 shots, 14 receivers: ~3 ms per model
TINY = Survey(nt=300, sources=((1, 0), (1, 35)), receivers=tuple((1, j) for j in range(0, 70, 5)))
ARGS = dict(family="flatfault-a", n_velocity=300, n_paired=120, n_test=40, seed=7, boundary="pml")

CHILD = """
import json, sys
from ubdiff_phys.data.build import make_dataset
from ubdiff_phys.physics import Survey
args = json.loads(sys.argv[1])
survey = Survey.from_dict(args.pop("survey"))
def on_commit(kind, done, total):
    print(kind, done, total, flush=True)
make_dataset(args.pop("out"), survey=survey, on_commit=on_commit, progress=False, batch=4, **args)
print("done", flush=True)
"""


def _build(path: Path, **overrides) -> object:
    return make_dataset(path, **{**ARGS, **overrides}, survey=TINY, batch=4, progress=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    _build(path)
    return path


def _contents(path: Path) -> dict[str, object]:
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out.update({f"@{k}": v for k, v in f.attrs.items() if k not in ("created",)})
    return out


def _assert_same_file(a: Path, b: Path) -> None:
    ca, cb = _contents(a), _contents(b)
    assert ca.keys() == cb.keys()
    for key in ca:
        if isinstance(ca[key], np.ndarray):
            np.testing.assert_array_equal(ca[key], cb[key], err_msg=key)  # bit-exact
        else:
            assert ca[key] == cb[key], key


def _run_child(out: Path, kill_after: int | None, sig: int = signal.SIGKILL) -> int:
    """Run a build in a subprocess; send ``sig`` once ``kill_after`` more gathers are committed."""
    args = {**ARGS, "survey": TINY.to_dict(), "out": str(out)}
    env = child_env(OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=out.parent,
    )
    first = None
    for line in proc.stdout:
        kind, *nums = line.split()
        if kill_after is not None and kind == "seismic":
            first = int(nums[0]) if first is None else first
            if int(nums[0]) - first >= kill_after:
                proc.send_signal(sig)
                break
    proc.stdout.close()
    return proc.wait(timeout=60)


# ---- contents ------------------------------------------------------------------------------
def test_built_file_matches_its_oracles(reference: Path) -> None:
    with open_store(reference) as st:
        n = ARGS["n_velocity"] + ARGS["n_test"]
        assert st.n_velocity == n and st.grid == (70, 70)
        assert st.seismic_shape == (TINY.n_sources, TINY.nt, TINY.n_receivers)
        # velocity rows = the family's seeded stream
        with h5py.File(reference, "r") as f:
            np.testing.assert_array_equal(
                f["velocity"][()], generate("flatfault-a", n, seed=ARGS["seed"])
            )
        # seismic[i] = simulate(velocity[paired_index[i]]) (spot-check a few rows)
        for i in (0, 57, len(st.paired_index) - 1):
            v = torch.from_numpy(st.velocity(int(st.paired_index[i])))[None]
            np.testing.assert_array_equal(
                st.seismic(i), simulate(v, TINY, boundary="pml")[0].numpy()
            )
        # split: disjoint, complete; paired = all test rows + n_paired training rows
        train, test, paired = st.train_index, st.test_index, st.paired_index
        assert len(test) == ARGS["n_test"] and len(train) == ARGS["n_velocity"]
        assert np.array_equal(np.union1d(train, test), np.arange(n))
        assert np.isin(test, paired).all()
        assert np.isin(paired, train).sum() == ARGS["n_paired"]
        # attributes
        assert Survey.from_dict(st.attrs["survey"]) == TINY == st.survey
        assert st.attrs["boundary"] == "pml" and st.attrs["family"] == "flatfault-a"
        assert st.attrs["seed"] == 7 and st.attrs["format_version"] == FORMAT_VERSION
        assert st.attrs["solver_version"] == ubdiff_phys.__version__
        assert st.attrs["split"] == {"n_velocity": 300, "n_paired": 120, "n_test": 40, "seed": 7}
        assert st.normalizer.source == "openfwi:flatfault-a"
        with h5py.File(reference, "r") as f:
            assert f["seismic"].chunks == (1, *st.seismic_shape)
            assert f["velocity"].chunks == (1, 1, 70, 70)
            assert f["seismic"].compression == "gzip"
            assert float(f.attrs["seismic_max"]) == float(f["seismic"][()].max())
        st.verify()


def test_rerun_of_a_complete_build_does_nothing(reference: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.h5"
    copy.write_bytes(reference.read_bytes())
    summary = _build(copy)
    assert summary.already_complete and summary.gathers_simulated == 0
    _assert_same_file(copy, reference)


# ---- interruption ---------------------------------------------------------------------------
def test_sigkill_twice_then_resume_equals_uninterrupted(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    assert _run_child(out, kill_after=8) == -signal.SIGKILL
    with open_store(out, allow_incomplete=True) as st:  # readable after SIGKILL
        p = st.progress
        assert p.n_velocity_committed == p.n_velocity and 0 < p.n_seismic_committed < p.n_seismic
        assert not p.complete
        st.verify()  # committed rows are whole
        first = p.n_seismic_committed
    with pytest.raises(StoreError, match="unfinished build"):
        open_store(out)
    assert _run_child(out, kill_after=8) == -signal.SIGKILL  # resumes, killed again
    with open_store(out, allow_incomplete=True) as st:
        assert first < st.progress.n_seismic_committed < st.progress.n_seismic
    summary = _build(out)  # finish in-process
    assert summary.resumed and summary.gathers_simulated < ARGS["n_paired"] + ARGS["n_test"]
    _assert_same_file(out, reference)


def test_ctrl_c_leaves_a_readable_file_that_resumes(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "interrupted.h5"
    assert _run_child(out, kill_after=4, sig=signal.SIGINT) != 0
    with open_store(out, allow_incomplete=True) as st:
        assert 0 < st.progress.n_seismic_committed < st.progress.n_seismic
    assert _run_child(out, kill_after=None) == 0
    _assert_same_file(out, reference)


# ---- refusals and bad files -----------------------------------------------------------------
def test_resume_with_other_arguments_is_refused(reference: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.h5"
    copy.write_bytes(reference.read_bytes())
    with pytest.raises(StoreError, match=r"seed: file has 7, this run asks 8"):
        _build(copy, seed=8)
    with pytest.raises(StoreError, match="n_paired"):
        _build(copy, n_paired=10)


def test_foreign_corrupt_and_future_files_fail_clearly(reference: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_store(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(StoreError, match="cannot be opened as HDF5"):
        open_store(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(StoreError, match="not a ubdiff_phys dataset"):
        open_store(foreign)
    with pytest.raises(StoreError, match="not written by make-dataset|not a ubdiff_phys"):
        _build(foreign)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(reference.read_bytes()[: reference.stat().st_size // 3])
    with pytest.raises(StoreError):
        open_store(truncated)

    def edited(name: str, edit) -> Path:
        path = tmp_path / name
        path.write_bytes(reference.read_bytes())
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    future = edited("future.h5", lambda f: f.attrs.modify("format_version", FORMAT_VERSION + 1))
    with pytest.raises(StoreError, match="format version 2.*upgrade"):
        open_store(future)
    nan = edited("nan.h5", lambda f: f["seismic"].__setitem__((3, 0, 10, 2), np.nan))
    with open_store(nan) as st:
        st.velocity(0)
        with pytest.raises(StoreError, match="seismic row 3 contains NaN"):
            st.seismic(3)
        with pytest.raises(StoreError, match="seismic row 3"):
            st.verify()

    def bad_index(f):
        del f["paired_index"]
        f["paired_index"] = np.arange(5)

    with pytest.raises(StoreError, match="paired_index has 5 rows but seismic has"):
        open_store(edited("index.h5", bad_index))

    def bad_velocity(f):
        del f["velocity"]
        f.create_dataset("velocity", shape=(340, 1, 60, 70), dtype=np.float32)

    with pytest.raises(StoreError, match="do not match the recorded survey"):
        open_store(edited("shape.h5", bad_velocity))


def test_bad_build_arguments(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    with pytest.raises(ValueError, match="cannot exceed"):
        _build(out, n_paired=400)
    with pytest.raises(ValueError, match="valid families"):
        _build(out, family="marmousi")
    with pytest.raises(ValueError, match="boundary must be one of"):
        _build(out, boundary="abc")
    with pytest.raises(ValueError, match="n_velocity must be >= 0"):
        _build(out, n_velocity=-1)
    with pytest.raises(ValueError, match="survey grid is 20 x 20"):
        make_dataset(
            out,
            **ARGS,
            survey=Survey(nz=20, nx=20, sources=((1, 0),), receivers=((1, 1),)),
            progress=False,
        )
    assert not out.exists()


def test_cli_make_dataset(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.h5"
    argv = [
        "make-dataset",
        "--family",
        "curvevel-a",
        "--n-velocity",
        "6",
        "--n-paired",
        "1",
        "--n-test",
        "1",
        "--boundary",
        "pml",
        "--device",
        "cpu",
        "--batch",
        "2",
        "--quiet",
        str(out),
    ]
    assert cli_main(argv) == 0
    assert "6 training velocity maps (1 paired) + 1 test maps" in capsys.readouterr().out
    with open_store(out) as st:
        assert st.seismic_shape == (5, 1000, 70) and st.survey == Survey.openfwi()
    assert cli_main(argv[:-1] + ["--seed", "3", str(out)]) == 2
    assert "different build arguments" in capsys.readouterr().err
    assert cli_main(["check-dataset", "--full", str(out)]) == 0
