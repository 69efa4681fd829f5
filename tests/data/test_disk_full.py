"""A full disk during ``make-dataset`` ends in one clear line (exit 1), not in a claim of success
followed by a segfault (issue 13 case 5: exit 139 after h5py ignored the failed flush).

Needs a real full filesystem: a 3 MB tmpfs, mounted when the test runs as root (it skips
visibly otherwise).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import child_env


@pytest.fixture
def small_fs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip("disk-full test: cannot mount a 3 MB tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_make_dataset_on_a_full_disk_fails_cleanly(small_fs: Path) -> None:
    out = small_fs / "d.h5"
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "make-dataset", "--family", "flatvel-a"]
    cmd += ["--n-velocity", "40", "--n-paired", "4", "--n-test", "2", "--boundary", "pml"]
    cmd += ["--device", "cpu", "--quiet", "--compression", "none", str(out)]
    r = subprocess.run(
        cmd, capture_output=True, text=True, env=child_env(), cwd=small_fs.parent, timeout=600
    )
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "disk is full" in r.stderr and r.stderr.count("\n") == 1, r.stderr[-2000:]
    assert "(new)" not in r.stdout  # no success line
