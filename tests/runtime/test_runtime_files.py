"""Atomic writes: a failed write leaves the old file; records append to a JSON list."""

from __future__ import annotations

import json

import pytest

from ubdiff_phys.runtime.files import append_json_record, atomic_path, atomic_write_json


def test_append_json_record_builds_a_list(tmp_path) -> None:
    path = tmp_path / "results.json"
    append_json_record(path, {"run": 1})
    append_json_record(path, {"run": 2}, indent=1)
    assert json.loads(path.read_text()) == [{"run": 1}, {"run": 2}]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_failed_atomic_write_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"old": True})
    with pytest.raises(OSError), atomic_path(path) as tmp:
        tmp.write_text('{"new": tru')  # torn write, then the disk fills
        raise OSError(28, "No space left on device")
    assert json.loads(path.read_text()) == {"old": True}
    assert list(tmp_path.iterdir()) == [path]
