"""UB-Diff autoencoder: pinned parameter counts of the paper configuration, shapes, ranges."""

from __future__ import annotations

import pytest
import torch

from ubdiff_phys.models import (
    AutoencoderConfig,
    PaperSeismicDecoder,
    TokenSeismicDecoder,
    build_autoencoder,
    count_parameters,
)

# exact counts of the paper configuration (conv biases + BN affine included)
ENCODER = 2_167_648  # spec: 2.17 M
VELOCITY_DECODER = 2_556_771  # spec: 2.56 M
VELOCITY_HEAD = 16_768  # Linear(128, 128) + BN1d
SEISMIC_HEAD = 83_840  # Linear(128, 640) + BN1d
PAPER_SEISMIC_DECODER = 235_839_920  # 2-token ViT (11.6 M) + Linear(640, 350000) (224.35 M)
PAPER_TOTAL = 240_664_947  # paper: ~242 M
TOKEN_SEISMIC_DECODER = 2_089_669


def _meta(**kw):
    return build_autoencoder(AutoencoderConfig(**kw), device="meta")


def test_paper_parameter_counts_on_meta_device():
    m = _meta(seismic_decoder="paper")
    assert count_parameters(m.encoder) == ENCODER
    assert count_parameters(m.dec_v) == VELOCITY_DECODER
    assert count_parameters(m.head_v) == VELOCITY_HEAD
    assert count_parameters(m.head_s) == SEISMIC_HEAD
    assert count_parameters(m.dec_s) == PAPER_SEISMIC_DECODER
    assert count_parameters(m.dec_s.out) == 640 * 350_000 + 350_000
    assert count_parameters(m) == PAPER_TOTAL
    assert all(p.is_meta for p in m.parameters())


def test_token_decoder_is_under_a_tenth_of_paper():
    assert isinstance(_meta().dec_s, PaperSeismicDecoder)  # default follows the comparison
    m = _meta(seismic_decoder="token")
    assert isinstance(m.dec_s, TokenSeismicDecoder)
    assert count_parameters(m.dec_s) == TOKEN_SEISMIC_DECODER
    assert count_parameters(m.dec_s) <= PAPER_SEISMIC_DECODER / 10
    assert count_parameters(m.encoder) == ENCODER


def test_seismic_majority_builds_a_seismic_encoder():
    m = _meta(majority="seismic")
    assert m.majority == "seismic" and m.minority == "velocity"
    assert count_parameters(m.dec_v) == VELOCITY_DECODER


TINY = dict(width=0.125, velocity_head_dim=16, seismic_head_dim=32, token_dim=16, token_heads=2)


@pytest.mark.parametrize("decoder", ["token", "paper"])
@pytest.mark.parametrize("majority", ["velocity", "seismic"])
def test_shapes_and_ranges(decoder, majority):
    torch.manual_seed(0)
    shape = (5, 120, 70)
    cfg = AutoencoderConfig(
        majority=majority, seismic_decoder=decoder, seismic_shape=shape, token_window=40, **TINY
    )
    m = build_autoencoder(cfg).eval()
    x = torch.rand(3, 1, 70, 70) * 2 - 1 if majority == "velocity" else torch.randn(3, *shape)
    out = m(x)
    assert out["z"].shape == (3, 128)
    assert out["z"].abs().max() <= 1
    assert out["velocity"].shape == (3, 1, 70, 70)
    assert out["velocity"].abs().max() <= 1
    assert out["seismic"].shape == (3, *shape)
    v, s = m.decode(out["z"])
    torch.testing.assert_close(v, out["velocity"])
    torch.testing.assert_close(s, out["seismic"])


def test_forward_computes_only_requested_outputs():
    cfg = AutoencoderConfig(seismic_decoder="token", seismic_shape=(5, 80, 70), **TINY)
    m = build_autoencoder(cfg)
    out = m(torch.zeros(2, 1, 70, 70), outputs=("velocity",))
    assert set(out) == {"z", "velocity"}
    out["velocity"].sum().backward()
    assert all(p.grad is None for p in m.branch("seismic").parameters())
    assert all(p.grad is not None for p in m.majority_modules().parameters())


def test_token_decoder_uneven_window_crops_to_nt():
    dec = TokenSeismicDecoder(32, (2, 90, 7), dim=16, depth=2, heads=2, window=40)
    assert dec(torch.randn(2, 32)).shape == (2, 2, 90, 7)


def test_paper_decoder_full_size_output_shape_on_meta():
    with torch.device("meta"):
        dec = PaperSeismicDecoder()
        out = dec(torch.empty(2, 640))
    assert out.shape == (2, 5, 1000, 70)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="majority"):
        AutoencoderConfig(majority="density")
    with pytest.raises(ValueError, match="seismic_decoder"):
        AutoencoderConfig(seismic_decoder="cnn")
    with pytest.raises(ValueError, match="unknown model option"):
        AutoencoderConfig.from_dict({"widht": 1.0})
    with pytest.raises(ValueError, match="70, 70"):
        build_autoencoder(AutoencoderConfig(seismic_decoder="token", **TINY)).encoder(
            torch.zeros(1, 1, 64, 64)
        )


@pytest.mark.parametrize("kind", ["paper", "token"])
def test_zero_started_seismic_decoder_learns_a_latent_dependent_target(kind):
    """Oracle: targets that are a known smooth function of the decoder input (rank 3 around a mean
    gather). A zero-started output layer gives zero gathers at init and must learn the dependence
    (test loss under half the mean predictor's; a collapsed decoder scores 1), not the mean only."""
    torch.manual_seed(0)
    shape, dim = (2, 80, 10), 8
    if kind == "paper":
        dec = PaperSeismicDecoder(dim, shape, depth=1, heads=2, mlp_ratio=2.0, zero_init_out=True)
    else:
        dec = TokenSeismicDecoder(
            dim, shape, dim=16, depth=2, heads=2, window=20, refine_channels=4, zero_init_out=True
        )
    h = torch.randn(512, dim)
    mean = torch.randn(*shape) * 0.5
    basis = torch.randn(3, *shape) * 0.3
    coef = torch.tanh(h[:, :3])
    target = mean + torch.einsum("bk,kstr->bstr", coef, basis)
    assert not dec(h[:4]).any()
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    for _ in range(400):
        i = torch.randint(0, 448, (32,))
        loss = ((dec(h[i]) - target[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        test = slice(448, 512)
        mse = ((dec(h[test]) - target[test]) ** 2).mean()
        mean_mse = ((target[:448].mean(0) - target[test]) ** 2).mean()
    assert mse < 0.5 * mean_mse, (float(mse), float(mean_mse))  # measured 0.20 (paper), 0.38
