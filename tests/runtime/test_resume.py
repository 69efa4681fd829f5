"""Resume points (runtime.resume): a toy trainer interrupted and resumed from its resume point
ends bit-identical to an uninterrupted run (oracle: the uninterrupted run); checkpoints of another
config, of another kind, or torn ones are refused with a one-line user error naming the cause."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ubdiff_phys.runtime.checkpoint import CheckpointError, save_checkpoint, set_rng_state
from ubdiff_phys.runtime.errors import UserError
from ubdiff_phys.runtime.resume import (
    RESUME_FILE,
    config_mismatch,
    load_resume_point,
    save_resume_point,
)

FMT = "ubdiff_phys.test_toy"
CONFIG = {"run": {"seed": 3, "progress": False}, "optim": {"lr": 0.05, "steps": 12}}


def _toy_run(out, config, stop_after: int | None = None) -> torch.Tensor:
    """SGD on a random linear least-squares problem whose batches are drawn from the global
    torch / numpy / python RNGs; saves a resume point every step."""
    ckpt = load_resume_point(out / RESUME_FILE, FMT, "toy", config)
    seed = config["run"]["seed"]
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)
    w, step = torch.zeros(4), 0
    if ckpt is not None:
        w, step = ckpt["w"], ckpt["step"]
        set_rng_state(ckpt["rng"])
    true = torch.arange(4.0)
    while step < config["optim"]["steps"]:
        x = torch.randn(8, 4) * (1 + float(np.random.rand())) + random.random()  # noqa: NPY002
        grad = 2 * x.T @ (x @ w - x @ true) / len(x)
        w = w - config["optim"]["lr"] * grad
        step += 1
        payload = {"format": FMT, "config": config, "w": w, "step": step}
        save_resume_point(out / RESUME_FILE, payload)
        if step == stop_after:
            break
    return w


def test_resumed_run_equals_uninterrupted(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = _toy_run(tmp_path / "a", CONFIG)
    _toy_run(tmp_path / "b", CONFIG, stop_after=5)
    torch.manual_seed(123)  # an unrelated draw between the runs: the resume point restores it
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    resumed = _toy_run(tmp_path / "b", CONFIG)
    assert torch.equal(whole, resumed)
    # the free options (progress, threads, device) may change between a run and its resumption
    free = {**CONFIG, "run": {**CONFIG["run"], "progress": True}}
    assert load_resume_point(tmp_path / "b" / RESUME_FILE, FMT, "toy", free)["step"] == 12


def test_no_resume_point_is_a_fresh_run(tmp_path) -> None:
    assert load_resume_point(tmp_path / RESUME_FILE, FMT, "toy", CONFIG) is None


def test_another_config_is_refused_naming_the_options(tmp_path) -> None:
    path = tmp_path / RESUME_FILE
    save_resume_point(path, {"format": FMT, "config": CONFIG, "n_train": 16})
    other = {"run": {"seed": 4, "progress": False}, "optim": {"lr": 0.05, "steps": 13}}
    with pytest.raises(CheckpointError, match=r"another toy run.*\(optim\.steps, run\.seed\)"):
        load_resume_point(path, FMT, "toy", other)
    with pytest.raises(UserError, match=r"different config \(n_train\); remove it"):
        load_resume_point(path, FMT, "toy", CONFIG, identity={"n_train": 8}, hint="remove it")
    assert load_resume_point(path, FMT, "toy", CONFIG, identity={"n_train": 16}) is not None


def test_another_kind_or_a_torn_file_is_refused(tmp_path) -> None:
    path = tmp_path / RESUME_FILE
    save_checkpoint(path, {"format": "ubdiff_phys.other", "config": CONFIG})
    with pytest.raises(CheckpointError, match="is not a ubdiff_phys toy checkpoint"):
        load_resume_point(path, FMT, "toy", CONFIG)
    save_resume_point(path, {"format": FMT, "config": CONFIG})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_resume_point(path, FMT, "toy", CONFIG)


def test_config_mismatch_of_flat_and_sectioned_configs() -> None:
    assert config_mismatch({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3]}) == ["b"]
    assert config_mismatch({"a": None}, {}) == []  # a missing option counts as None
    a = {"run": {"threads": 1, "seed": 0}, "model": {"w": 1}}
    b = {"run": {"threads": 2, "seed": 0}, "model": {"w": 2}, "extra": {"x": 1}}
    assert config_mismatch(a, b) == ["extra.x", "model.w"]
    assert config_mismatch(a, b, free=()) == ["extra.x", "model.w", "run.threads"]
    assert config_mismatch(a, b, free={("model",)}) == ["extra.x", "run.threads"]
