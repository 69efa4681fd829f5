"""``check-dataset --full`` refuses what no reader can use and says when the scan passed
(issue 13 cases 7 and 15): each broken file below exited 0 before."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import small_store

from ubdiff_phys.cli import main


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return small_store(tmp_path_factory.mktemp("check") / "good.h5", 4, 3, 1)


def _inf_bounds(f: h5py.File) -> None:
    norm = json.loads(f.attrs["normalization"])
    norm["s_log_max"] = float("inf")
    f.attrs["normalization"] = json.dumps(norm)


def _bogus_boundary(f: h5py.File) -> None:
    f.attrs["boundary"] = "mirror"


def _unstable(f: h5py.File) -> None:
    f["velocity"][0] = f["velocity"][0] * 4.0


def _duplicate_pairs(f: h5py.File) -> None:
    p = f["paired_index"][()]
    p[1] = p[0]
    f["paired_index"][...] = p


def _integer_velocity(f: h5py.File) -> None:
    v = f["velocity"][()]
    del f["velocity"]
    f.create_dataset("velocity", data=v.astype(np.int32))


def _float16_velocity(f: h5py.File) -> None:
    v = f["velocity"][()]
    del f["velocity"]
    f.create_dataset("velocity", data=v.astype(np.float16))


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (_inf_bounds, "normalisation bounds"),
        (_bogus_boundary, "boundary mode"),
        (_unstable, "unstable"),
        (_duplicate_pairs, "repeats"),
        (_integer_velocity, "int32"),
        (_float16_velocity, "float16"),
    ],
)
def test_full_check_refuses_broken_files(
    good: Path, tmp_path: Path, capsys, breaks: Callable[[h5py.File], None], message: str
) -> None:
    path = tmp_path / "broken.h5"
    shutil.copyfile(good, path)
    with h5py.File(path, "r+") as f:
        breaks(f)
    rc = main(["check-dataset", str(path), "--full"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert err.count("\n") == 1


def test_full_check_says_it_passed(good: Path, capsys) -> None:
    assert main(["check-dataset", str(good), "--full"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "ubdiff_phys.check_dataset"
    assert info["full_scan"].startswith("passed: 5 velocity and 4 seismic rows")
    assert main(["check-dataset", str(good)]) == 0
    assert "not run" in json.loads(capsys.readouterr().out)["full_scan"]


def test_two_builds_of_one_path_cannot_run_at_once(tmp_path: Path) -> None:
    """Issue 13 case 4: two make-dataset runs to one new path with different seeds both said
    "(new)" while the file held one seed. The second now stops at once with one line."""
    import subprocess
    import sys

    from helpers import child_env

    from ubdiff_phys.runtime.files import exclusive_lock

    out = tmp_path / "d.h5"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "make-dataset", "--family", "flatvel-a"]
    cmd += ["--n-velocity", "2", "--n-paired", "1", "--boundary", "pml", "--quiet", str(out)]
    with exclusive_lock(out, "make-dataset"):  # the first build, still running
        r = subprocess.run(
            cmd, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=300
        )
    assert r.returncode == 2 and "another make-dataset is writing" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()
    r = subprocess.run(
        cmd, capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=300
    )
    assert r.returncode == 0 and "(new)" in r.stdout  # the lock is gone with its holder
