"""Autoencoder checkpoints: the model loader in ``models`` rebuilds the network from the
checkpoint alone (oracle: the saved weights), ``train.load_autoencoder`` still returns the model
with its typed config, and a checkpoint of another kind is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ubdiff_phys.models import (
    AUTOENCODER_CHECKPOINT_FORMAT,
    build_autoencoder,
    load_autoencoder_model,
)
from ubdiff_phys.runtime.checkpoint import CheckpointError, save_checkpoint
from ubdiff_phys.train import TrainConfig, load_autoencoder, load_config
from ubdiff_phys.train.checkpoint import CHECKPOINT_FORMAT

TINY_TOML = Path(__file__).resolve().parents[2] / "configs" / "ae_tiny.toml"


def test_models_loader_rebuilds_the_saved_autoencoder(tmp_path) -> None:
    cfg = load_config(TINY_TOML)
    torch.manual_seed(0)
    model = build_autoencoder(cfg.model)
    path = tmp_path / "final.pt"
    # the payload keys train-ae writes (rng, state, ... are ignored by the loaders)
    save_checkpoint(
        path,
        {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "model": model.state_dict()},
    )
    assert CHECKPOINT_FORMAT == AUTOENCODER_CHECKPOINT_FORMAT  # the tag of older checkpoints
    assert CHECKPOINT_FORMAT == "ubdiff_phys.autoencoder_checkpoint"
    got = load_autoencoder_model(path)
    again, got_cfg = load_autoencoder(path)
    assert not got.training and not again.training
    assert isinstance(got_cfg, TrainConfig) and got_cfg == cfg
    saved = model.state_dict()
    for loaded in (got.state_dict(), again.state_dict()):
        assert loaded.keys() == saved.keys()
        for k in saved:
            assert torch.equal(loaded[k], saved[k]), k


def test_models_loader_refuses_another_kind(tmp_path) -> None:
    path = tmp_path / "x.pt"
    save_checkpoint(path, {"format": "ubdiff_phys.diffusion_checkpoint", "config": {}})
    with pytest.raises(CheckpointError, match="not a ubdiff_phys autoencoder checkpoint"):
        load_autoencoder_model(path)
