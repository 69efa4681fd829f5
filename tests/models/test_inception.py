"""The plain-PyTorch Inception-v3 (``ubdiff_phys.models.inception``).

Oracles: torchvision's documented parameter count for ``inception_v3`` (27,161,264), and, where
they can be imported, torchvision's ``Inception3`` and pytorch-fid's FID blocks run with the same
weights (these peers are not project dependencies: torchvision's wheels need a torch built for
them, so the peer tests skip visibly when it does not import)."""

from __future__ import annotations

import pytest
import torch

from ubdiff_phys.models.inception import InceptionV3, inception_from_state_dict


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model.eval()


def _import_peer(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except Exception as exc:  # noqa: BLE001 (a broken install also means "no peer here")
        pytest.skip(f"peer {name} not importable here: {type(exc).__name__}: {exc}")


def test_parameter_count_matches_torchvision_docs():
    # torchvision.models.inception_v3 (IMAGENET1K_V1): num_params 27161264, aux classifier included
    assert _n_params(InceptionV3(1000, aux_logits=True)) == 27_161_264


def test_shapes_and_input_checks():
    torch.manual_seed(0)
    model = _randomise_bn(InceptionV3())
    with torch.no_grad():
        x = torch.rand(2, 3, 299, 299) * 2 - 1
        f = model.features(x)
        assert f.shape == (2, 2048) and (f >= 0).all()  # average of ReLU outputs
        assert model(x).shape == (2, 1000)
        # evaluation mode: each sample's features do not depend on the batch
        torch.testing.assert_close(model.features(x[1:]), f[1:], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        model.features(torch.zeros(1, 1, 299, 299))
    with pytest.raises(ValueError, match="75"):
        model.features(torch.zeros(1, 3, 64, 64))


def test_state_dict_loading_and_variant_detection():
    torch.manual_seed(0)
    tv = _randomise_bn(InceptionV3(1000, aux_logits=True))
    sd = tv.state_dict()
    model, variant = inception_from_state_dict(sd)
    assert variant == "torchvision" and not model.fid and model.AuxLogits is not None
    x = torch.rand(1, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        ref = tv.features(x)
        torch.testing.assert_close(model.features(x), ref, rtol=0, atol=0)
        # the same weights in the FID blocks (pools without padding, max pool in Mixed_7c) differ
        fid = InceptionV3(1000, aux_logits=True, fid=True).eval()
        fid.load_state_dict(sd)
        rel = (fid.features(x) - ref).norm() / ref.norm()
        assert rel > 1e-3
    # DataParallel prefix, no aux classifier, and old files without num_batches_tracked
    sd = {f"module.{k}": v for k, v in InceptionV3(1008, fid=True).state_dict().items()
          if not k.endswith("num_batches_tracked")}  # fmt: skip
    model, variant = inception_from_state_dict(sd)
    assert variant == "fid" and model.fid and model.AuxLogits is None
    with pytest.raises(ValueError, match="classes"):
        inception_from_state_dict(InceptionV3(10).state_dict())
    with pytest.raises(ValueError, match="not an Inception-v3"):
        inception_from_state_dict({"fc.weight": torch.zeros(1000, 2048)})
    broken = InceptionV3().state_dict()
    broken.pop("Mixed_6b.branch1x1.conv.weight")
    with pytest.raises(RuntimeError, match="Missing key"):
        inception_from_state_dict(broken)


def test_matches_torchvision_inception3():
    models = _import_peer("torchvision.models")
    torch.manual_seed(0)
    tv = _randomise_bn(models.inception_v3(weights=None, aux_logits=True, init_weights=True))
    ours, variant = inception_from_state_dict(tv.state_dict())
    assert variant == "torchvision"
    x = torch.rand(2, 3, 299, 299, dtype=torch.float64) * 2 - 1
    pooled = {}
    tv.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("f", o.flatten(1)))
    with torch.no_grad():
        logits = tv.double()(x)
        ours.double()
        torch.testing.assert_close(ours.features(x), pooled["f"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ours(x), logits, rtol=1e-12, atol=1e-12)


def test_fid_variant_matches_pytorch_fid():
    pfi = _import_peer("pytorch_fid.inception")
    torch.manual_seed(1)
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in {
        "Mixed_5b": pfi.FIDInceptionA(192, pool_features=32),
        "Mixed_5c": pfi.FIDInceptionA(256, pool_features=64),
        "Mixed_5d": pfi.FIDInceptionA(288, pool_features=64),
        "Mixed_6b": pfi.FIDInceptionC(768, channels_7x7=128),
        "Mixed_6c": pfi.FIDInceptionC(768, channels_7x7=160),
        "Mixed_6d": pfi.FIDInceptionC(768, channels_7x7=160),
        "Mixed_6e": pfi.FIDInceptionC(768, channels_7x7=192),
        "Mixed_7b": pfi.FIDInceptionE_1(1280),
        "Mixed_7c": pfi.FIDInceptionE_2(2048),
    }.items():
        setattr(net, name, block)
    net = _randomise_bn(net).double()
    ours, variant = inception_from_state_dict(net.state_dict())
    assert variant == "fid"
    x = torch.rand(2, 3, 299, 299, dtype=torch.float64) * 2 - 1
    h = x
    order = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
             "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
             "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
             "avgpool"]  # fmt: skip
    with torch.no_grad():
        for name in order:
            h = getattr(net, name)(h)
        torch.testing.assert_close(ours.double().features(x), h.flatten(1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fid", [False, True])
def test_channels_last_matches_the_default_layout(fid):
    """The CPU channels-last path gives the same features as the default memory format (oracle:
    the same weights with ``channels_last`` off), in float64 so that only rounding can differ;
    the layout does change inside the network."""
    torch.manual_seed(0)
    net = InceptionV3(fid=fid).double().eval()
    x = torch.rand(2, 3, 96, 96, dtype=torch.float64) * 2 - 1
    layouts = []
    net.Conv2d_2a_3x3.register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    feats = []
    for cl in (False, True):
        net.channels_last = cl
        with torch.no_grad():
            feats.append(net.features(x))
    assert layouts == [False, True]
    torch.testing.assert_close(feats[1], feats[0], rtol=1e-10, atol=1e-12)
    assert float(feats[0].abs().max()) > 0
