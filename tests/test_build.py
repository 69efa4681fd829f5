"""The package imports everywhere and describes its build."""

import json
import subprocess
import sys

from helpers import child_env

import ubdiff_phys
from ubdiff_phys import build_info


def test_build_info_keys_and_types():
    info = build_info()
    assert info["version"] == ubdiff_phys.__version__
    assert isinstance(info["cuda"], bool)
    assert isinstance(info["openmp"], bool)
    assert info["native"], f"native module failed to load: {info['native_error']}"
    if info["cuda"]:
        assert info["cuda_version"] and info["cuda_architectures"]
    else:
        assert info["cuda_version"] is None


def test_import_needs_no_gpu(tmp_path):
    # a fresh interpreter with CUDA hidden imports the same package and reports the same build
    code = "import ubdiff_phys, json; print(json.dumps(ubdiff_phys.build_info()))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(CUDA_VISIBLE_DEVICES=""),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["version"] == ubdiff_phys.__version__
    assert info["native"] == build_info()["native"] and info["cuda"] == build_info()["cuda"]


def test_cli_version():
    from ubdiff_phys.cli import main

    assert main(["--version"]) == 0
