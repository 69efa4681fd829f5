"""Pairing a diffusion model with a re-trained seismic branch: accepted only when nothing but the
seismic head/decoder differs, and the rebound checkpoint names the new autoencoder file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ubdiff_phys.models.checkpoint import load_autoencoder_checkpoint
from ubdiff_phys.pipelines import load_generator, rebind_diffusion, shipped_checkpoint
from ubdiff_phys.pipelines.seismic_branch import swap_seismic_branch
from ubdiff_phys.runtime.checkpoint import save_checkpoint
from ubdiff_phys.runtime.files import file_sha256

SHIPPED = shipped_checkpoint()


def _variant(tmp_path: Path, name: str, key: str) -> Path:
    """The shipped autoencoder with tensor ``key`` changed."""
    ckpt = load_autoencoder_checkpoint(SHIPPED / "autoencoder.pt")
    ckpt["model"][key] = ckpt["model"][key] + 0.5
    return save_checkpoint(tmp_path / name, ckpt)


def test_swap_takes_the_seismic_branch_and_refuses_anything_else(tmp_path):
    ckpt = load_autoencoder_checkpoint(SHIPPED / "autoencoder.pt")
    seismic = _variant(tmp_path, "seismic.pt", next(k for k in ckpt["model"] if "dec_s." in k))
    encoder = _variant(tmp_path, "encoder.pt", "encoder.blocks.0.0.weight")
    gen = load_generator(None, "cpu")
    z = torch.zeros(2, gen.autoencoder.config.latent_dim)
    with torch.no_grad():
        v0, s0 = gen.autoencoder.decode(z)
    swap_seismic_branch(gen, seismic)
    with torch.no_grad():
        v1, s1 = gen.autoencoder.decode(z)
    assert torch.equal(v0, v1) and not torch.equal(s0, s1)
    assert gen.info["seismic_from"] == str(seismic)
    with pytest.raises(ValueError, match="changes more than the seismic branch"):
        swap_seismic_branch(gen, encoder)


def test_rebind_names_the_new_autoencoder_and_keeps_the_history(tmp_path):
    seismic = _variant(tmp_path, "seismic.pt", "head_s.0.weight")
    entry = rebind_diffusion(
        SHIPPED / "diffusion.pt", SHIPPED / "autoencoder.pt", seismic, tmp_path / "rebound"
    )
    assert entry["previous_autoencoder_sha256"] == file_sha256(SHIPPED / "autoencoder.pt")
    assert entry["autoencoder_sha256"] == file_sha256(seismic)
    gen = load_generator(tmp_path / "rebound", "cpu")  # the config names the new autoencoder
    assert gen.info["autoencoder_sha256"] == file_sha256(seismic)
    with pytest.raises(ValueError, match="sha256 differs"):
        load_generator(
            tmp_path / "rebound" / "final.pt", "cpu", autoencoder=SHIPPED / "autoencoder.pt"
        )
    # the denoiser is untouched
    old = torch.load(SHIPPED / "diffusion.pt", weights_only=True)
    new = torch.load(tmp_path / "rebound" / "final.pt", weights_only=True)
    assert all(torch.equal(old["model"][k], new["model"][k]) for k in old["model"])
    before = [*old.get("seismic_branch_history", []), *old.get("branch_history", [])]
    assert new["branch_history"] == [*before, entry] and entry["branch"] == "seismic"
    with pytest.raises(ValueError, match="is not the autoencoder"):
        rebind_diffusion(SHIPPED / "diffusion.pt", seismic, seismic, tmp_path / "bad")
    encoder = _variant(tmp_path, "encoder.pt", "encoder.blocks.0.0.weight")
    with pytest.raises(ValueError, match="changes more than the seismic branch"):
        rebind_diffusion(
            SHIPPED / "diffusion.pt", SHIPPED / "autoencoder.pt", encoder, tmp_path / "bad"
        )
    assert not (tmp_path / "bad" / "final.pt").exists()


def test_rebind_a_velocity_branch_only_when_asked(tmp_path):
    velocity = _variant(tmp_path, "velocity.pt", "head_v.0.weight")
    with pytest.raises(ValueError, match="changes more than the seismic branch"):
        rebind_diffusion(
            SHIPPED / "diffusion.pt", SHIPPED / "autoencoder.pt", velocity, tmp_path / "bad"
        )
    entry = rebind_diffusion(
        SHIPPED / "diffusion.pt",
        SHIPPED / "autoencoder.pt",
        velocity,
        tmp_path / "rebound",
        branch="velocity",
    )
    assert entry["branch"] == "velocity"
    assert load_generator(tmp_path / "rebound", "cpu").info["autoencoder_sha256"] == file_sha256(
        velocity
    )


def _token_branch(tmp_path: Path) -> Path:
    """The shipped autoencoder with its seismic branch replaced by a (random) token decoder."""
    from ubdiff_phys.models.autoencoder import AutoencoderConfig, build_autoencoder

    ckpt = load_autoencoder_checkpoint(SHIPPED / "autoencoder.pt")
    model_cfg = {**ckpt["config"]["model"], "seismic_decoder": "token", "seismic_head_dim": 16}
    model_cfg.update(token_dim=32, token_depth=2, token_heads=2, token_refine_channels=4)
    torch.manual_seed(0)
    state = build_autoencoder(AutoencoderConfig.from_dict(model_cfg)).state_dict()
    seismic = ("head_s", "dec_s")
    state.update({k: v for k, v in ckpt["model"].items() if k.split(".")[0] not in seismic})
    ckpt["model"] = state
    ckpt["config"] = {**ckpt["config"], "model": model_cfg}
    return save_checkpoint(tmp_path / "token.pt", ckpt)


def test_a_seismic_branch_of_another_architecture_is_accepted(tmp_path):
    token = _token_branch(tmp_path)
    gen = load_generator(None, "cpu")
    z = torch.zeros(2, gen.autoencoder.config.latent_dim)
    with torch.no_grad():
        v0, s0 = gen.autoencoder.decode(z)
    swap_seismic_branch(gen, token)
    assert gen.autoencoder.config.seismic_decoder == "token"
    assert gen.autoencoder_config.model.seismic_decoder == "token"
    with torch.no_grad():
        v1, s1 = gen.autoencoder.decode(z)
    assert torch.equal(v0, v1) and s1.shape == s0.shape and not torch.equal(s0, s1)
    rebind_diffusion(SHIPPED / "diffusion.pt", SHIPPED / "autoencoder.pt", token, tmp_path / "r")
    rebound = load_generator(tmp_path / "r", "cpu")
    assert rebound.autoencoder.config.seismic_decoder == "token"
    # a token branch on another encoder is still refused
    ckpt = load_autoencoder_checkpoint(token)
    ckpt["model"]["encoder.blocks.0.0.weight"] += 0.5
    other = save_checkpoint(tmp_path / "token_other_encoder.pt", ckpt)
    with pytest.raises(ValueError, match="changes more than the seismic branch"):
        swap_seismic_branch(gen, other)
