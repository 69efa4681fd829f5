"""The package imports everywhere and describes its build."""

import subprocess
import sys

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


def test_import_needs_no_gpu():
    # a fresh interpreter with CUDA hidden still imports and reports the build
    code = "import ubdiff_phys, json; print(json.dumps(ubdiff_phys.build_info()))"
    env = {"CUDA_VISIBLE_DEVICES": ""}
    import os

    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert '"version"' in result.stdout


def test_cli_version():
    from ubdiff_phys.cli import main

    assert main(["--version"]) == 0
