"""Train-on-generated / test-on-real protocol and the Fréchet feature network (oracles:
ubdiff_phys.eval.metrics on the same predictions, the ground truth as prediction, FD of a set with
itself, determinism under a seed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import small_store

from ubdiff_phys.data import NoisyPairedDataset, open_store
from ubdiff_phys.eval import frechet_distance, gaussian_stats, mae, mse, rmse, ssim
from ubdiff_phys.eval.features import (
    FeatureConfig,
    load_feature_extractor,
    store_rows,
    train_feature_network,
)
from ubdiff_phys.eval.protocol import (
    INVERSION_CHECKPOINT_FORMAT,
    ProtocolConfig,
    evaluate_inversion,
    heldout_pairs,
    run_protocol,
    train_inversionnet,
    training_pairs,
)
from ubdiff_phys.models import InversionNet
from ubdiff_phys.physics import Survey
from ubdiff_phys.runtime.checkpoint import save_checkpoint
from ubdiff_phys.runtime.errors import UserError


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    """OpenFWI-shaped store: 16 paired training rows, 8 held-out paired rows (~1 s to build)."""
    path = tmp_path_factory.mktemp("eval") / "real.h5"
    return small_store(path, 16, 16, 8, survey=Survey.openfwi(), device=None)


def test_training_reduces_loss(real_store):
    """Mean training loss (train mode, as recorded per epoch) falls; InversionNet's BatchNorm
    makes eval-mode loss after a handful of steps meaningless, so the recorded losses are used."""
    ds = training_pairs(real_store)
    cfg = ProtocolConfig(epochs=6, batch=8, width=0.125, lr=1e-3, seed=0)
    model, losses, steps = train_inversionnet(ds, cfg, device="cpu", progress=False)
    assert steps == 12 and len(losses) == 6 and not model.training
    assert losses[-1] < 0.8 * losses[0], losses


def test_default_optimiser_settings_reduce_loss(real_store):
    """The specs' AdamW lr 1e-4 / wd 1e-4 also trains (a few steps on the tiny store)."""
    ds = training_pairs(real_store)
    cfg = ProtocolConfig(epochs=4, batch=4, width=0.125)
    _, losses, steps = train_inversionnet(ds, cfg, device="cpu", progress=False)
    assert steps == 16 and losses[-1] < losses[0], losses


def test_max_steps(real_store):
    cfg = ProtocolConfig(epochs=5, batch=4, width=0.125, max_steps=3)
    _, losses, steps = train_inversionnet(training_pairs(real_store), cfg, progress=False)
    assert steps == 3 and len(losses) == 1


def test_metrics_equal_direct_computation(real_store):
    test = heldout_pairs(real_store)
    torch.manual_seed(1)
    model = InversionNet(tuple(test[0][1].shape), width=0.125).eval()
    got = evaluate_inversion(model, test, batch=3, device="cpu")  # batches of uneven size
    v = torch.stack([test[i][0] for i in range(len(test))])
    s = torch.stack([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        pred = model(s)
    want = {"mae": mae(pred, v), "mse": mse(pred, v), "rmse": rmse(pred, v), "ssim": ssim(pred, v)}
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), k


def test_perfect_prediction(real_store):
    """The ground truth fed through the same code path (test order is deterministic)."""
    test = heldout_pairs(real_store)
    truth = iter([torch.stack([test[i][0] for i in range(j, min(j + 3, len(test)))])
                  for j in range(0, len(test), 3)])  # fmt: skip
    got = evaluate_inversion(lambda s: next(truth), test, batch=3, device="cpu")
    assert got["mae"] == 0 and got["mse"] == 0 and got["rmse"] == 0
    assert got["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_run_protocol(real_store):
    cfg = ProtocolConfig(epochs=1, batch=8, width=0.125)
    res = run_protocol(real_store, real_store, cfg, device="cpu", progress=False)
    assert (res.n_train, res.n_test, res.steps) == (16, 8, 2)
    assert set(res.metrics) == {"mae", "mse", "rmse", "ssim"}
    assert res.metrics["rmse"] == pytest.approx(np.sqrt(res.metrics["mse"]))
    assert 0 < res.metrics["mae"] <= 2 and -1 <= res.metrics["ssim"] <= 1
    assert res.config == cfg.to_dict()


def test_protocol_config_validation():
    with pytest.raises(ValueError):
        ProtocolConfig(batch=0)
    with pytest.raises(ValueError, match="unknown"):
        ProtocolConfig.from_dict({"lr": 1e-4, "momentum": 0.9})


@pytest.fixture(scope="module")
def feature_ckpt(real_store, tmp_path_factory):
    path = tmp_path_factory.mktemp("feat") / "feat.pt"
    cfg = FeatureConfig(epochs=3, batch=8, width=8, feature_dim=16, seed=3)
    train_feature_network(real_store, path, cfg, device="cpu", progress=False)
    return path


def test_features_deterministic_under_seed(real_store, feature_ckpt, tmp_path):
    cfg = FeatureConfig(epochs=3, batch=8, width=8, feature_dim=16, seed=3)
    other = train_feature_network(real_store, tmp_path / "f2.pt", cfg, progress=False)
    a = load_feature_extractor(feature_ckpt).store_features(real_store, "test")
    b = other.store_features(real_store, "test")
    assert a.shape == (8, 16)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_feature_training_resumes_exactly(real_store, feature_ckpt, tmp_path, monkeypatch):
    """Killed right after its 2nd epoch's resume point, then resumed: the same network and
    losses as the uninterrupted run (``feature_ckpt``); another config is refused."""
    import ubdiff_phys.eval.features as features

    cfg = FeatureConfig(epochs=3, batch=8, width=8, feature_dim=16, seed=3)
    state, saves = tmp_path / "state.pt", []
    save = features.save_resume_point

    def save_then_die(path, payload):
        save(path, payload)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(features, "save_resume_point", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_feature_network(real_store, tmp_path / "f.pt", cfg, progress=False, checkpoint=state)
    monkeypatch.undo()
    assert not (tmp_path / "f.pt").exists()
    train_feature_network(real_store, tmp_path / "f.pt", cfg, progress=False, checkpoint=state)
    a = torch.load(feature_ckpt, weights_only=True)
    b = torch.load(tmp_path / "f.pt", weights_only=True)
    assert a["train_loss"] == b["train_loss"] and len(b["train_loss"]) == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    other = FeatureConfig(epochs=4, batch=8, width=8, feature_dim=16, seed=3)
    with pytest.raises(UserError, match=r"another feature network run.*\(epochs\)"):
        train_feature_network(real_store, tmp_path / "g", other, progress=False, checkpoint=state)


def test_frechet_of_features(real_store, feature_ckpt):
    ext = load_feature_extractor(feature_ckpt)
    info = ext.describe()
    assert info["modality"] == "velocity" and info["feature_dim"] == 16
    assert info["trained_on"]["split"] == "train" and len(info["sha256"]) == 64
    with open_store(real_store) as st:
        rows = store_rows(st, "velocity", "all")
        x = torch.stack([ext.normalizer.velocity(torch.from_numpy(st.velocity(int(r))))
                         for r in rows]).float()  # fmt: skip
    f = ext.features(x)
    torch.testing.assert_close(f, ext.store_features(real_store, "all"))
    same = frechet_distance(*gaussian_stats(f), *gaussian_stats(f))
    assert same == pytest.approx(0.0, abs=1e-6)
    shifted = ext.features((x + 0.3).clamp(-1, 1))
    noisy = ext.features(x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    fd_shift = frechet_distance(*gaussian_stats(f), *gaussian_stats(shifted))
    fd_noise = frechet_distance(*gaussian_stats(f), *gaussian_stats(noisy))
    assert fd_shift > 1e3 * max(same, 1e-9) and fd_shift > 1e-3
    assert fd_noise > 1e3 * max(same, 1e-9) and fd_noise > 1e-3


def test_inception_state_dict_is_a_feature_network(real_store, tmp_path):
    from ubdiff_phys.models.inception import InceptionV3

    torch.manual_seed(0)
    path = tmp_path / "pt_inception.pth"
    torch.save({"state_dict": InceptionV3(1008, fid=True).state_dict()}, path)
    with open_store(real_store) as st:
        normalizer = st.normalizer
        x = torch.stack([normalizer.velocity(torch.from_numpy(st.velocity(int(r))))
                         for r in st.test_index[:3]]).float()  # fmt: skip
    with pytest.raises(ValueError, match="normalizer"):
        load_feature_extractor(path)
    ext = load_feature_extractor(path, normalizer=normalizer)
    info = ext.describe()
    assert info["kind"] == "Inception-v3 (fid weights)" and info["feature_dim"] == 2048
    f = ext.store_features(real_store, np.asarray(st.test_index[:3]))
    assert f.shape == (3, 2048) and f.dtype == torch.float64
    # the same maps given directly: 1 channel repeated to 3, bilinear 70 -> 299
    rgb = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear").expand(-1, 3, -1, -1)
    with torch.no_grad():
        direct = ext.network.inception.features(rgb).double()
    torch.testing.assert_close(f, direct, rtol=1e-5, atol=1e-6)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights_only"):
        load_feature_extractor(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither"):
        load_feature_extractor(tmp_path / "other.pt")


class _Interrupting(torch.utils.data.Dataset):
    """Wraps a dataset and raises KeyboardInterrupt at the n-th item read."""

    def __init__(self, base, at: int | None):
        self.base, self.at, self.reads = base, at, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.at is not None and self.reads == self.at:
            raise KeyboardInterrupt
        return self.base[i]

    def __getattr__(self, name):  # the base's state_dict / load_state_dict, where it has them
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


# 16 pairs in batches of 4: 4 steps per epoch, item read 23 is in step 6, read 37 in step 10;
# checkpoints every 3 steps resume mid-epoch, every 2 steps from the end of an epoch; "legacy":
# the checkpoint lacks the RNG state, as those written before runtime.resume did
@pytest.mark.parametrize(
    ("interrupt_at", "every", "legacy"), [(23, 3, False), (37, 3, False), (23, 2, True)]
)
def test_inversionnet_training_resumes_exactly(real_store, tmp_path, interrupt_at, every, legacy):
    base = training_pairs(real_store)
    cfg = ProtocolConfig(epochs=3, batch=4, width=0.125, lr=1e-3, max_steps=10)
    whole, losses, steps = train_inversionnet(_Interrupting(base, None), cfg, progress=False)
    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_inversionnet(_Interrupting(base, interrupt_at), cfg, progress=False,
                           checkpoint=ckpt, checkpoint_every=every)  # fmt: skip
    assert ckpt.exists()
    if legacy:
        state = torch.load(ckpt, weights_only=True)
        del state["rng"]
        torch.save(state, ckpt)
    resumed, losses2, steps2 = train_inversionnet(
        _Interrupting(base, None), cfg, progress=False, checkpoint=ckpt, checkpoint_every=every
    )
    assert steps2 == steps == 10 and losses2 == pytest.approx(losses, rel=1e-6)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = ProtocolConfig(epochs=3, batch=4, width=0.125, lr=1e-3, max_steps=9)
    with pytest.raises(ValueError, match=r"another InversionNet run.*\(max_steps\)"):
        train_inversionnet(base, other, progress=False, checkpoint=ckpt)


# resume points in the 3rd epoch (step 9) and at the end of the 2nd (step 8): a fresh view's stream
# differs from the one at those epochs' starts (in the 1st epoch it would not: the reads a resume
# skips are replayed)
@pytest.mark.parametrize(("interrupt_at", "every"), [(37, 3), (37, 2)])
def test_noisy_inversionnet_training_resumes_exactly(real_store, tmp_path, interrupt_at, every):
    """With training noise (NoisyPairedDataset) the resume point carries the noise stream: the
    resumed run draws the noise the uninterrupted one drew and ends with its weights (without
    the stream's state it would not: the last assertion). The resume point carries the noise
    level as ``identity``: resuming it with another level is refused."""
    cfg = ProtocolConfig(epochs=3, batch=4, width=0.125, lr=1e-3, max_steps=10)
    level = {"noise": 0.05}

    def noisy(at):
        return _Interrupting(NoisyPairedDataset.of(training_pairs(real_store), 0.05, seed=5), at)

    with pytest.raises(ValueError, match="own keys"):
        train_inversionnet(noisy(None), cfg, progress=False, identity={"model": 1})
    whole, losses, _ = train_inversionnet(noisy(None), cfg, progress=False)
    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_inversionnet(noisy(interrupt_at), cfg, progress=False, checkpoint=ckpt,
                           checkpoint_every=every, identity=level)  # fmt: skip
    saved = torch.load(ckpt, weights_only=True)
    with pytest.raises(ValueError, match=r"another InversionNet run.*\(noise\)"):
        train_inversionnet(noisy(None), cfg, progress=False, checkpoint=ckpt,
                           identity={"noise": 0.06})  # fmt: skip
    resumed, losses2, _ = train_inversionnet(
        noisy(None), cfg, progress=False, checkpoint=ckpt, checkpoint_every=every, identity=level
    )
    assert losses2 == pytest.approx(losses, rel=1e-6)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    saved["dataset"] = None  # a resume point without the stream's position
    torch.save(saved, ckpt)
    blind, _, _ = train_inversionnet(
        noisy(None), cfg, progress=False, checkpoint=ckpt, identity=level
    )
    assert not all(
        torch.equal(a, b)
        for a, b in zip(whole.state_dict().values(), blind.state_dict().values(), strict=True)
    )


def test_inversionnet_checkpoint_of_another_kind_is_refused(real_store, tmp_path):
    """The training state is read with the tag check of runtime.checkpoint: a checkpoint of
    another kind, a torn file, or one written for another number of pairs is refused."""
    base = training_pairs(real_store)
    cfg = ProtocolConfig(epochs=1, batch=4, width=0.125)
    ckpt = tmp_path / "state.pt"
    save_checkpoint(ckpt, {"format": "ubdiff_phys.autoencoder_checkpoint", "config": {}})
    with pytest.raises(UserError, match="not a ubdiff_phys InversionNet checkpoint"):
        train_inversionnet(base, cfg, progress=False, checkpoint=ckpt)
    state = {"format": INVERSION_CHECKPOINT_FORMAT, "config": cfg.to_dict(), "n_train": 8}
    save_checkpoint(ckpt, state)
    with pytest.raises(UserError, match=r"another InversionNet run.*\(n_train\)"):
        train_inversionnet(base, cfg, progress=False, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:64])
    with pytest.raises(UserError, match="truncated or corrupted"):
        train_inversionnet(base, cfg, progress=False, checkpoint=ckpt)


def test_inversionnet_channels_last_matches_the_default_layout():
    """The CPU channels-last path computes the same function and gradients as the default memory
    format (oracle: the same weights with ``channels_last`` off), in float64 so that only
    rounding (~1e-13) can differ; the layout does change inside the network."""
    torch.manual_seed(0)
    net = InversionNet(width=0.25).double().train()
    s = torch.randn(3, 5, 1000, 70, dtype=torch.float64)
    outs, grads, layouts = [], [], []
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    for cl in (False, True):
        net.channels_last = cl
        net.zero_grad()
        y = net(s)
        assert y.is_contiguous()
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert layouts == [False, True]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-9, atol=1e-10)
    assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 1e-9
