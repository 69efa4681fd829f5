"""A trained InversionNet written and read back (oracle: the network before saving; the options and
data recorded with it)."""

from __future__ import annotations

import pytest
import torch
from helpers import small_store

from ubdiff_phys.eval import load_inversionnet, save_inversionnet
from ubdiff_phys.eval.protocol import ProtocolConfig, train_inversionnet, training_pairs
from ubdiff_phys.physics import Survey
from ubdiff_phys.runtime.checkpoint import CheckpointError, save_checkpoint
from ubdiff_phys.runtime.errors import UserError

TRAINING = {"store": "real.h5", "store_bytes": 1234, "n_train": 16, "noise": 0.06}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, config, held-out gathers): 4 steps on a 16-pair OpenFWI-shaped store."""
    path = tmp_path_factory.mktemp("invnet") / "real.h5"
    store = small_store(path, 16, 16, 4, survey=Survey.openfwi(), device=None)
    cfg = ProtocolConfig(epochs=1, batch=4, width=0.125, lr=1e-3, seed=3)
    model, _, steps = train_inversionnet(training_pairs(store), cfg, progress=False)
    assert steps == 4
    s = torch.stack([training_pairs(store)[i][1] for i in range(4)])
    return model, cfg, s


def test_a_saved_network_predicts_what_it_did(trained, tmp_path):
    """Same outputs bit for bit (eval mode: BatchNorm running statistics included), and the
    options and training data come back as given."""
    model, cfg, s = trained
    path = save_inversionnet(tmp_path / "net.pt", model, cfg, TRAINING)
    got, got_cfg, got_training = load_inversionnet(path, cfg, TRAINING)
    assert not got.training and got_cfg == cfg and got_training == TRAINING
    with torch.no_grad():
        assert torch.equal(got(s), model(s))
    # the running statistics are what make eval mode differ from a fresh network's
    fresh = type(model)(tuple(s.shape[1:]), width=cfg.width).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(s), model(s))


def test_a_network_of_other_options_or_data_is_refused(trained, tmp_path):
    model, cfg, _ = trained
    path = save_inversionnet(tmp_path / "net.pt", model, cfg, TRAINING)
    other = ProtocolConfig(epochs=1, batch=4, width=0.125, lr=1e-3, seed=3, max_steps=7)
    with pytest.raises(CheckpointError, match="max_steps"):
        load_inversionnet(path, other, TRAINING)
    with pytest.raises(CheckpointError, match=r"training\.noise"):
        load_inversionnet(path, cfg, {**TRAINING, "noise": 0.0})
    with pytest.raises(CheckpointError, match=r"training\.seed"):
        load_inversionnet(path, cfg, {**TRAINING, "seed": 1})
    with pytest.raises(CheckpointError, match=r"training\.noise"):  # recorded, not named now
        load_inversionnet(path, cfg, {k: v for k, v in TRAINING.items() if k != "noise"})
    # num_workers changes how the data are read, not the network
    workers = ProtocolConfig(epochs=1, batch=4, width=0.125, lr=1e-3, seed=3, num_workers=2)
    load_inversionnet(path, workers, TRAINING)
    load_inversionnet(path)  # nothing to compare against: accepted


def test_an_existing_file_is_not_replaced_unless_asked(trained, tmp_path):
    model, cfg, s = trained
    path = tmp_path / "net.pt"
    path.write_bytes(b"a user's file")
    with pytest.raises(UserError, match="already exists"):
        save_inversionnet(path, model, cfg, TRAINING)
    assert path.read_bytes() == b"a user's file"
    save_inversionnet(path, model, cfg, TRAINING, overwrite=True)
    with torch.no_grad():
        assert torch.equal(load_inversionnet(path)[0](s), model(s))


def test_files_of_another_kind_are_refused(tmp_path):
    save_checkpoint(tmp_path / "other.pt", {"format": "ubdiff_phys.autoencoder/1"})
    (tmp_path / "torn.pt").write_bytes(b"\x80\x02 not a checkpoint")
    for name in ("other.pt", "torn.pt", "missing.pt"):
        with pytest.raises(CheckpointError):
            load_inversionnet(tmp_path / name)
