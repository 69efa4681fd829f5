"""Importing ubdiff_phys chooses passive OpenMP waiting before torch starts its OpenMP runtime
(spinning threads made the main job 4.7x slower on a busy 2-core machine), unless the user set a
policy."""

from __future__ import annotations

import subprocess
import sys

from helpers import child_env

CODE = "import sys, os, ubdiff_phys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"


def _run(**env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=child_env(**env), cwd="/", capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_passive_by_default_and_set_before_torch_loads() -> None:
    base = child_env()
    base.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=base, cwd="/", capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.strip().split()[0] == "PASSIVE"
    # the package sets it in its first statements, before any module that imports torch
    import ubdiff_phys

    source = open(ubdiff_phys.__file__).read()
    assert source.index("OMP_WAIT_POLICY") < source.index("from ubdiff_phys import")


def test_user_policy_wins() -> None:
    assert _run(OMP_WAIT_POLICY="ACTIVE").startswith("ACTIVE")
