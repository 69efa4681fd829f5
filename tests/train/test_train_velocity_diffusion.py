"""Velocity-space diffusion: the 2-D U-Net's shape contract, the store batches (rows, normalisation,
mirror flips, rank slices), the trainer's resume bit-exactness and its checkpoint loader, the
CLI's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import small_store

from ubdiff_phys.cli import main
from ubdiff_phys.data import open_store
from ubdiff_phys.diffusion.checkpoint import is_velocity_checkpoint, load_velocity_denoiser
from ubdiff_phys.diffusion.config import VelocityDiffusionConfig
from ubdiff_phys.inversion.prior import VelocityPrior, load_prior
from ubdiff_phys.models.unet2d import UNet2D, UNet2DConfig
from ubdiff_phys.physics import Survey, simulate
from ubdiff_phys.pipelines.generate_and_validate import generate_and_validate
from ubdiff_phys.pipelines.generator import load_generator
from ubdiff_phys.pipelines.shipped_velocity import package_velocity_checkpoint
from ubdiff_phys.runtime import dump_toml
from ubdiff_phys.runtime.errors import OptionError
from ubdiff_phys.runtime.resume import save_resume_point
from ubdiff_phys.train.velocity_diffusion import VelocityBatches, train_velocity_diffusion


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # CurveVel-A: its maps are not mirror images of themselves, so flips are visible
    return small_store(tmp_path_factory.mktemp("vdiff") / "v.h5", 24, 2, 2, family="curvevel-a")


def _cfg(store, out, **optim) -> VelocityDiffusionConfig:
    d = {
        "run": {"out_dir": str(out), "device": "cpu", "threads": 1, "progress": False,
                "checkpoint_every": 3, "log_every": 2},
        "data": {"store": str(store), "flip_lr": True},
        "model": {"dim": 8, "dim_mults": [1, 2], "attn_heads": 2},
        "optim": {"steps": 6, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "ema_every": 1,
                  **optim},
    }  # fmt: skip
    return VelocityDiffusionConfig.from_dict(d)


@pytest.mark.parametrize("nz,nx,mults", [(70, 70, (1, 2, 4, 4)), (35, 50, (1, 2)), (9, 13, (1,))])
def test_unet2d_keeps_the_map_shape_and_starts_at_zero(nz, nx, mults):
    cfg = UNet2DConfig(dim=8, dim_mults=mults, nz=nz, nx=nx, attn_heads=2)
    m = 2 ** (len(mults) - 1)
    left, right, top, bottom = cfg.padding
    assert (nz + top + bottom) % m == 0 and (nx + left + right) % m == 0
    net = UNet2D(cfg)
    x, t = torch.randn(3, 1, nz, nx), torch.tensor([0, 100, 255])
    y = net(x, t)
    assert y.shape == x.shape and torch.count_nonzero(y) == 0  # zero-initialised output layer
    torch.nn.init.normal_(net.out[-1].weight)
    y = net(x, t)
    assert torch.isfinite(y).all() and y.abs().sum() > 0
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match="must be"):
        net(torch.randn(1, 1, nz + 1, nx), t[:1])


def test_unet2d_channels_last_matches_the_default_layout():
    """The CPU channels-last path computes the same function and gradients as the default memory
    format (oracle: the same weights with ``channels_last`` off), up to float rounding."""
    torch.manual_seed(0)
    net = UNet2D(UNet2DConfig(dim=8, dim_mults=(1, 2, 4), nz=70, nx=70, attn_heads=2))
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    x, t = torch.randn(2, 1, 70, 70), torch.tensor([3, 700])
    outs, grads, layouts = [], [], []
    net.down[0].register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    for cl in (False, True):
        net.channels_last = cl
        net.zero_grad()
        y = net(x, t)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        assert y.is_contiguous()
        outs.append(y.detach())
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert layouts == [False, True]  # the feature maps did change layout
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    # summation order differs: the whole gradient agrees to float rounding (the biases of the
    # convolutions before a GroupNorm have a zero true gradient, pure rounding noise either way)
    assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 1e-4
    assert float(outs[0].abs().max()) > 1e-2  # a non-trivial output


def test_uniform_weighting_trains_and_refuses_min_snr(store, tmp_path):
    cfg = _cfg(store, tmp_path / "u", steps=2).with_("diffusion", weighting="uniform")
    assert train_velocity_diffusion(cfg)["step"] == 2
    _, back, _ = load_velocity_denoiser(tmp_path / "u")
    assert back.diffusion.weighting == "uniform"
    with pytest.raises(ValueError, match="min_snr_gamma"):
        cfg.with_("diffusion", min_snr_gamma=5.0)


def test_unet2d_config_refusals():
    with pytest.raises(ValueError, match="groups"):
        UNet2DConfig(dim=12)
    with pytest.raises(ValueError, match="attn_heads"):
        UNet2DConfig(dim=8, dim_mults=(1,), attn_heads=3)
    with pytest.raises(ValueError, match="unknown"):
        UNet2DConfig.from_dict({"dim": 8, "seq_len": 4})


def test_velocity_batches_are_normalised_training_maps(store):
    data = VelocityBatches(store, seed=3, flip_lr=True)
    with open_store(store) as st:
        maps = {
            int(r): st.normalizer.velocity(torch.from_numpy(st.velocity(int(r))).double()).float()
            for r in st.train_index
        }
    k, flips = 0, 0
    for k in range(6):
        b = data.batch(k, 8)
        assert b.shape == (8, 1, 70, 70) and b.dtype == torch.float32
        assert torch.equal(b, VelocityBatches(store, seed=3, flip_lr=True).batch(k, 8))
        for x, r in zip(b, data.rows[data.indices(k, 8)], strict=True):
            m = maps[int(r)]
            same, mirrored = torch.equal(x, m), torch.equal(x, m.flip(-1))
            assert same or mirrored
            flips += mirrored and not same
        halves = torch.cat([data.batch(k, 8, 0, 2), data.batch(k, 8, 1, 2)])
        assert torch.equal(halves, b)
    assert 0 < flips < 48  # about half are mirrored
    assert float(b.min()) >= -1 and float(b.max()) <= 1
    plain = VelocityBatches(store, seed=3)
    for x, r in zip(plain.batch(2, 8), plain.rows[plain.indices(2, 8)], strict=True):
        assert torch.equal(x, maps[int(r)])
    data.close()
    plain.close()


def test_resumed_run_is_bit_identical_and_loads_as_a_velocity_denoiser(store, tmp_path):
    full = train_velocity_diffusion(_cfg(store, tmp_path / "full"))
    assert full["step"] == 6
    cut = _cfg(store, tmp_path / "cut")
    assert train_velocity_diffusion(cut, stop_after=3)["step"] == 3
    assert train_velocity_diffusion(cut)["step"] == 6
    a, cfg, ckpt = load_velocity_denoiser(tmp_path / "full")
    b, _, _ = load_velocity_denoiser(tmp_path / "cut")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert ckpt["state"]["step"] == 6 and cfg.model.dim == 8
    assert ckpt["store_attrs"]["family"] == "curvevel-a" and "normalization" in ckpt["store_attrs"]
    assert is_velocity_checkpoint(tmp_path / "full") and not is_velocity_checkpoint(store)
    x = torch.randn(2, 1, 70, 70, dtype=torch.float64)
    assert a(x, torch.tensor([5, 9])).dtype == torch.float64
    # as a posterior prior: load_prior tells the kinds apart
    prior = load_prior(tmp_path / "full")
    assert isinstance(prior, VelocityPrior) and prior.latent_shape == (1, 70, 70)
    assert prior.boundary == "pml" and prior.survey is not None and prior.denoiser_error is None
    with open_store(store) as st:
        v = torch.from_numpy(st.velocity(int(st.train_index[0])))[None]
        assert prior.bounds == (st.normalizer.v_min, st.normalizer.v_max)
    torch.testing.assert_close(prior.velocity(prior.encode(v)), v, atol=1e-3, rtol=0)
    assert prior.error_path == tmp_path / "full" / "final.denoiser_error.json"
    # another model size cannot resume this run
    other = _cfg(store, tmp_path / "cut", steps=8).with_("model", dim=16)
    with pytest.raises(ValueError, match="model.dim"):
        train_velocity_diffusion(other)
    # a resume point written before diffusion.weighting existed resumes (absent = its default)
    old = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    del old["config"]["diffusion"]["weighting"]
    save_resume_point(tmp_path / "cut" / "last.pt", old)
    # a longer run extends it
    assert train_velocity_diffusion(_cfg(store, tmp_path / "cut", steps=8))["step"] == 8
    assert (tmp_path / "cut" / "final_step6.pt").exists()


def test_cli_trains_and_refuses_a_missing_store_and_a_wrong_grid(store, tmp_path, capsys):
    cfg = _cfg(store, tmp_path / "run", steps=2)
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(cfg.to_dict()))
    assert main(["train-velocity-diffusion", str(path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert main(["train-velocity-diffusion", str(path), "--store", str(tmp_path / "no.h5")]) == 2
    assert "is not a file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(dump_toml(cfg.with_("model", nz=64).to_dict()))
    assert main(["train-velocity-diffusion", str(bad), "--out-dir", str(tmp_path / "r2")]) == 2
    assert "model.nz, model.nx = 64, 70" in capsys.readouterr().err
    # run.init_from: a missing file, another model: one line, exit 2, before training
    for init, msg in ((tmp_path / "none.pt", "is not a file"), (tmp_path / "run", "another model")):
        wrong = cfg.with_("run", init_from=str(init), out_dir=str(tmp_path / "r3"))
        bad.write_text(
            dump_toml((wrong.with_("model", dim=16) if init.is_dir() else wrong).to_dict())
        )
        assert main(["train-velocity-diffusion", str(bad)]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r3" / "last.pt").exists()


def test_sample_makes_exact_pairs_from_a_velocity_model_and_refuses_decoder_modes(
    store, tmp_path, capsys
):
    train_velocity_diffusion(_cfg(store, tmp_path / "run", steps=2))
    out = tmp_path / "gen.h5"
    args = ["sample", "--checkpoint", str(tmp_path / "run"), "--n", "3", "--batch", "2"]
    args += ["--sampler", "ddim", "--steps", "3", "--no-progress", "--device", "cpu"]
    assert main([*args, "--seismic", "decoder", str(out)]) == 2
    assert "velocity-space model: use --seismic solver" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, str(out)]) == 0
    with open_store(out) as g, open_store(store) as st:
        assert g.attrs["generated"] and g.attrs["seismic_mode"] == "solver"
        assert g.attrs["family"] == st.attrs["family"]
        v = torch.from_numpy(np.stack([g.velocity(i) for i in range(3)]))
        s = torch.from_numpy(np.stack([g.seismic_of(i) for i in range(3)]))
        lo, hi = st.normalizer.v_min, st.normalizer.v_max
        survey, boundary = Survey.from_dict(g.attrs["survey"]), g.attrs["boundary"]
    assert float(v.min()) >= lo - 1e-3 and float(v.max()) <= hi + 1e-3
    torch.testing.assert_close(s, simulate(v, survey, boundary=boundary).float())
    # the same seed gives the same maps (batches seeded by (seed, b))
    gen = load_generator(tmp_path / "run")
    x = gen.sample(1, seed=0, b=1, sampler="ddim", steps=3)
    torch.testing.assert_close(gen.decode(x)[0], v[2:3].to(x.device), atol=1e-3, rtol=0)
    # the main job takes it in solver mode (exact pairs, confirmed); refuses what needs a decoder
    job = dict(checkpoint=tmp_path / "run", device="cpu", steps=3, figure=False, progress=False)
    summary = generate_and_validate(tmp_path / "job", 2, **job)
    assert summary["checkpoint"]["kind"] == "velocity" and not summary["checkpoint"]["shipped"]
    assert summary["residual"]["all"]["max"] < 1e-6
    for bad, match in (({"seismic": "decoder"}, "needs a seismic decoder"),
                       ({"trace_steps": 2}, "--trace-steps and --reference"),
                       ({"reference_store": store}, "--trace-steps and --reference")):  # fmt: skip
        with pytest.raises(OptionError, match=match):
            generate_and_validate(tmp_path / "job2", 2, **job, **bad)
        assert not (tmp_path / "job2" / "summary.json").exists()


def test_export_writes_one_set_of_weights_that_loads_like_the_run(store, tmp_path, capsys):
    run = tmp_path / "run"
    train_velocity_diffusion(_cfg(store, run, steps=4))
    ema, _, src = load_velocity_denoiser(run, weights="ema")
    raw, _, _ = load_velocity_denoiser(run, weights="model")
    out = tmp_path / "slim.pt"
    assert main(["export-velocity-diffusion", str(run), str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 4 and info["weights"] == "ema" and is_velocity_checkpoint(out)
    # the EMA weights, stored once: about half the run's weights and none of its optimiser
    full = (run / "final.pt").stat().st_size
    n_bytes = 4 * sum(p.numel() for p in ema.parameters())
    assert n_bytes < out.stat().st_size < 1.3 * n_bytes < full
    slim = torch.load(out, weights_only=True)
    assert "optimizer" not in slim and slim["exported_from"]["weights"] == "ema"
    x, t = torch.randn(2, 1, 70, 70, dtype=torch.float64), torch.tensor([3, 200])
    for weights in ("model", "ema"):
        back, cfg, ck = load_velocity_denoiser(out, weights=weights)
        torch.testing.assert_close(back(x, t), ema(x, t), rtol=0, atol=0)
        assert ck["store_attrs"] == src["store_attrs"] and cfg.model.dim == 8
    assert not torch.equal(raw(x, t), ema(x, t))  # EMA and raw weights differ after 4 steps
    # it serves as a prior and as a generator
    assert isinstance(load_prior(out), VelocityPrior)
    assert load_generator(out).info["diffusion_step"] == 4
    # the raw weights on request
    raw_out = tmp_path / "raw.pt"
    assert main(["export-velocity-diffusion", str(run), str(raw_out), "--weights", "model"]) == 0
    torch.testing.assert_close(load_velocity_denoiser(raw_out)[0](x, t), raw(x, t))
    # half-precision storage: half the size, the same denoiser up to float16 rounding
    half = tmp_path / "half.pt"
    assert main(["export-velocity-diffusion", str(run), str(half), "--dtype", "float16"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["dtype"] == "float16"
    assert 0.4 < half.stat().st_size / out.stat().st_size < 0.6
    den16 = load_velocity_denoiser(half)[0]
    assert next(den16.parameters()).dtype == torch.float32
    with torch.no_grad():
        y16, y32 = den16(x, t), ema(x, t)
    assert not torch.equal(y16, y32)
    torch.testing.assert_close(y16, y32, rtol=0, atol=2e-3 * float(y32.abs().max()))
    # refusals: an existing OUT (unchanged), a run without checkpoint, a non-velocity file
    before = out.read_bytes()
    assert main(["export-velocity-diffusion", str(run), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["export-velocity-diffusion", str(tmp_path / "none"), str(tmp_path / "a.pt")]) == 2
    assert main(["export-velocity-diffusion", str(store), str(tmp_path / "b.pt")]) == 2
    assert "not a velocity diffusion checkpoint" in capsys.readouterr().err
    assert main(["export-velocity-diffusion", str(run), str(out), "--overwrite"]) == 0


def test_export_averages_the_weights_of_several_checkpoints(store, tmp_path, capsys):
    """Post-hoc averaging: the exported weights are the mean of the sources' (oracle: the mean
    of the state dicts computed here), with the first source's step; another model is refused."""
    run = tmp_path / "run"
    train_velocity_diffusion(_cfg(store, run, steps=3))  # checkpoint_every 3: final.pt at 3
    train_velocity_diffusion(_cfg(store, run, steps=6))  # extended: final_step3.pt kept
    a = torch.load(run / "final.pt", weights_only=True)["ema"]["module"]
    b = torch.load(run / "final_step3.pt", weights_only=True)["ema"]["module"]
    out = tmp_path / "avg.pt"
    argv = ["export-velocity-diffusion", str(run), str(out)]
    argv += ["--average", str(run / "final_step3.pt")]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["averaged_steps"] == [6, 3]
    got = torch.load(out, weights_only=True)
    assert got["state"]["step"] == 6 and got["exported_from"]["averaged"][0]["step"] == 3
    for k, v in got["model"].items():
        torch.testing.assert_close(v, ((a[k].double() + b[k].double()) / 2).to(v.dtype))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the two sources differ
    # a checkpoint of another model cannot be averaged in (exit 2, nothing written)
    other = tmp_path / "other"
    cfg = _cfg(store, other, steps=1).to_dict()
    cfg["model"]["attn_heads"] = 4
    train_velocity_diffusion(VelocityDiffusionConfig.from_dict(cfg))
    bad = tmp_path / "bad.pt"
    assert main(["export-velocity-diffusion", str(run), str(bad), "--average", str(other)]) == 2
    assert "another model config" in capsys.readouterr().err and not bad.exists()
    assert main(["export-velocity-diffusion", str(run), str(bad), "--average", str(store)]) == 2


def test_keep_every_keeps_the_resume_points_of_those_steps(store, tmp_path):
    """run.keep_every: step<N>.pt copies of the resume point; each equals the state an
    uninterrupted run reaches at that step (oracle: a run stopped there)."""
    d = _cfg(store, tmp_path / "a", steps=4).to_dict()
    d["run"]["keep_every"] = 2
    train_velocity_diffusion(VelocityDiffusionConfig.from_dict(d))
    kept = sorted(p.name for p in (tmp_path / "a").glob("step*.pt"))
    assert kept == ["step2.pt", "step4.pt"]
    train_velocity_diffusion(_cfg(store, tmp_path / "b", steps=4), stop_after=2)
    a = torch.load(tmp_path / "a" / "step2.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 2
    for k, v in b["ema"]["module"].items():
        assert torch.equal(a["ema"]["module"][k], v), k
    # it may be switched on when a run is extended
    d["optim"]["steps"], d["run"]["keep_every"] = 6, 3
    train_velocity_diffusion(VelocityDiffusionConfig.from_dict(d))
    assert (tmp_path / "a" / "step6.pt").is_file() and not (tmp_path / "a" / "step3.pt").exists()


def test_a_packaged_folder_loads_like_its_weights_file(store, tmp_path):
    """``package_velocity_checkpoint``'s folder (and the shipped one) serves as a checkpoint path
    wherever its ``velocity_diffusion.pt`` does: prior, generator, the kind test."""
    from ubdiff_phys.inversion.prior import load_velocity_prior
    from ubdiff_phys.pipelines.generator import shipped_velocity_checkpoint
    from ubdiff_phys.pipelines.shipped_velocity import package_velocity_checkpoint

    run = tmp_path / "run"
    train_velocity_diffusion(_cfg(store, run, steps=3))
    package_velocity_checkpoint(run, tmp_path / "pkg", dtype="float32")
    shipped = shipped_velocity_checkpoint()
    x, t = torch.randn(2, 1, 70, 70, dtype=torch.float64), torch.tensor([3, 200])
    for folder in (tmp_path / "pkg", shipped.parent):
        assert is_velocity_checkpoint(folder)
        by_dir, by_file = load_velocity_prior(folder), load_velocity_prior(folder / shipped.name)
        with torch.no_grad():
            torch.testing.assert_close(
                by_dir.denoiser(x, t), by_file.denoiser(x, t), rtol=0, atol=0
            )
        assert by_dir.error_path == by_file.error_path
        assert load_generator(folder).info["diffusion"] == str(folder / shipped.name)
    # the shipped folder's stored denoiser error is found through the folder too
    assert load_velocity_prior(shipped.parent).denoiser_error is not None
    # the EMA weights of the run, not its raw ones
    ema = load_velocity_denoiser(run, weights="ema")[0]
    with torch.no_grad():
        torch.testing.assert_close(
            load_velocity_prior(tmp_path / "pkg").denoiser(x, t), ema(x, t), rtol=0, atol=0
        )


def _weights(path, part: str) -> dict[str, torch.Tensor]:
    c = torch.load(path, weights_only=True)
    return c["model"] if part == "model" else c["ema"]["module"]


def test_init_from_starts_a_fresh_run_from_another_runs_weights(store, tmp_path, capsys):
    """run.init_from: the new run's U-Net holds the source's raw weights and its EMA the source's
    EMA weights before its first step (oracle: the source checkpoint's tensors), trains on from
    there with its own optimiser and step count, records the lineage, is not re-initialised when
    resumed (bit-identical to an uninterrupted run), takes an exported float16 file, and refuses
    another model."""
    src = tmp_path / "src"
    train_velocity_diffusion(_cfg(store, src))
    start = _cfg(store, tmp_path / "b").with_("run", init_from=str(src))
    assert train_velocity_diffusion(start, stop_after=0)["step"] == 0
    last = tmp_path / "b" / "last.pt"
    for part in ("model", "ema"):
        mine, theirs = _weights(last, part), _weights(src / "final.pt", part)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    raw, ema = (_weights(src / "final.pt", p) for p in ("model", "ema"))
    assert not all(torch.equal(raw[k], ema[k]) for k in raw)  # the two sets differ
    lineage = torch.load(last, weights_only=True)["state"]["init_from"]
    assert lineage["step"] == 6 and lineage["steps_before"] == 6
    assert lineage["file"] == str(src / "final.pt") and len(lineage["sha256"]) == 64
    # resumed from its last.pt: the init is not applied again
    assert train_velocity_diffusion(start)["step"] == 6
    whole = _cfg(store, tmp_path / "whole").with_("run", init_from=str(src))
    assert train_velocity_diffusion(whole)["step"] == 6
    b, w = (
        _weights(tmp_path / "b" / "final.pt", "ema"),
        _weights(tmp_path / "whole" / "final.pt", "ema"),
    )
    assert all(torch.equal(b[k], w[k]) for k in w)
    fresh = _cfg(store, tmp_path / "fresh")
    train_velocity_diffusion(fresh)
    f = _weights(tmp_path / "fresh" / "final.pt", "ema")
    assert not all(torch.equal(b[k], f[k]) for k in f)  # it trained on from src, not from scratch
    # a chain counts every step its weights have seen
    chain = _cfg(store, tmp_path / "c").with_("run", init_from=str(tmp_path / "b"))
    train_velocity_diffusion(chain, stop_after=0)
    assert (
        torch.load(tmp_path / "c" / "last.pt", weights_only=True)["state"]["init_from"][
            "steps_before"
        ]
        == 12
    )
    # packaged, the manifest carries the lineage
    m = package_velocity_checkpoint(tmp_path / "b", tmp_path / "pkg")
    assert m["diffusion_step"] == 6 and m["steps_in_all"] == 12 and m["init_from"]["step"] == 6
    assert "init_from" not in package_velocity_checkpoint(src, tmp_path / "pkg_src")
    # an exported float16 file: its weights, cast to float32, in both the U-Net and the EMA
    half = tmp_path / "half.pt"
    assert main(["export-velocity-diffusion", str(src), str(half), "--dtype", "float16"]) == 0
    capsys.readouterr()
    h = _cfg(store, tmp_path / "h").with_("run", init_from=str(half))
    train_velocity_diffusion(h, stop_after=0)
    exported = _weights(half, "ema")
    for part in ("model", "ema"):
        got = _weights(tmp_path / "h" / "last.pt", part)
        assert all(
            torch.equal(got[k], exported[k].float())
            for k in exported
            if exported[k].is_floating_point()
        )
    # another model size is refused before any training
    other = _cfg(store, tmp_path / "o").with_("run", init_from=str(src)).with_("model", dim=16)
    with pytest.raises(OptionError, match="another model config"):
        train_velocity_diffusion(other)
