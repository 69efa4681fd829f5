"""Latent diffusion end to end on CPU: latent cache from a tiny autoencoder, train-diffusion CLI
(a few hundred steps), sample CLI -> a store open_store reads, resume bit-exactness, DDP ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers import child_env, small_store

from ubdiff_phys.cli import main
from ubdiff_phys.data import open_store
from ubdiff_phys.diffusion import load_diffusion_checkpoint, load_diffusion_config
from ubdiff_phys.models import build_autoencoder
from ubdiff_phys.runtime import dump_toml, save_checkpoint
from ubdiff_phys.train import LatentBatches, build_latent_cache, train_diffusion
from ubdiff_phys.train.checkpoint import CHECKPOINT_FORMAT, load_autoencoder
from ubdiff_phys.train.config import load_config
from ubdiff_phys.train.loop import resolve_config

REPO = Path(__file__).resolve().parents[2]
TINY_TOML = REPO / "configs" / "diffusion_tiny.toml"


@pytest.fixture(scope="module")
def tiny_ae(tmp_path_factory) -> tuple[Path, Path]:
    """(store, autoencoder checkpoint): a small store and an untrained tiny autoencoder saved in
    train-ae's checkpoint format (the diffusion code path does not care whether it was trained)."""
    root = tmp_path_factory.mktemp("diff_ae")
    store = small_store(root / "tiny.h5", 40, 4, 4)
    from dataclasses import replace

    cfg = load_config(REPO / "configs" / "ae_tiny.toml")
    cfg = resolve_config(cfg.replace(data=replace(cfg.data, store=str(store))))
    torch.manual_seed(0)
    model = build_autoencoder(cfg.model)
    ckpt = root / "ae.pt"
    save_checkpoint(
        ckpt, {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "model": model.state_dict()}
    )
    return store, ckpt


def _cfg(ae: Path, out: Path, **optim):
    cfg = load_diffusion_config(TINY_TOML)
    cfg = cfg.with_("data", autoencoder=str(ae)).with_("run", out_dir=str(out), progress=False)
    return cfg.with_("optim", **optim) if optim else cfg


def test_latent_cache_encodes_the_majority_rows_once(tiny_ae, tmp_path):
    store, ae = tiny_ae
    path = build_latent_cache(store, ae, tmp_path / "lat.h5", batch_size=16, progress=False)
    model, _ = load_autoencoder(ae)
    with h5py.File(path, "r") as f, open_store(store) as s:
        z, rows = f["latents"][()], f["rows"][()]
        assert f.attrs["complete"] and f.attrs["n_committed"] == len(rows)
        np.testing.assert_array_equal(np.sort(rows), np.sort(s.train_index))
        v = torch.from_numpy(s.normalizer.velocity(s.velocity(int(rows[3])))).float()
    with torch.no_grad():
        want = model.encode(v[None]).reshape(-1).numpy()
    np.testing.assert_allclose(z[3], want, rtol=1e-5, atol=1e-6)
    assert z.shape == (len(rows), 128) and np.abs(z).max() <= 1
    # an interrupted build resumes (rows past the counter are rewritten); a finished one is kept
    with h5py.File(path, "r+") as f:
        f.attrs["n_committed"], f.attrs["complete"] = 16, False
        f["latents"][16:] = 0
    build_latent_cache(store, ae, path, batch_size=16, progress=False)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["latents"][()], z)
    # batches: pure function of (seed, k), sharded by rank
    data = LatentBatches(path, seed=3)
    b = data.batch(5, 8)
    assert b.shape == (8, 1, 128) and torch.equal(b, LatentBatches(path, seed=3).batch(5, 8))
    halves = torch.cat([data.batch(5, 8, 0, 2), data.batch(5, 8, 1, 2)])
    assert torch.equal(halves, b)
    epoch = np.concatenate([data.indices(k, 4) for k in range(len(rows) // 4)])
    assert sorted(epoch.tolist()) == list(range(len(rows)))  # one epoch visits every row once
    data.close()


def test_train_then_sample_via_cli(tiny_ae, tmp_path, capsys):
    store, ae = tiny_ae
    out = tmp_path / "run"
    args = ["train-diffusion", str(TINY_TOML), "--autoencoder", str(ae), "--out-dir", str(out)]
    assert main([*args, "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 300
    assert {"last.pt", "final.pt", "config.toml", "metrics.jsonl"} <= {
        p.name for p in out.iterdir()
    }
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(20, 301, 20))
    assert np.mean([r["loss"] for r in log[-3:]]) < 0.7 * np.mean([r["loss"] for r in log[:2]])
    ckpt = load_diffusion_checkpoint(out)  # weights_only, the final checkpoint
    assert ckpt["state"]["step"] == 300 and ckpt["config"]["data"]["store"] == str(store)
    assert load_diffusion_config(out / "config.toml").to_dict() == ckpt["config"]
    assert Path(str(store) + ".latents.h5").exists()

    gen = tmp_path / "gen.h5"
    cmd = ["sample", "--checkpoint", str(out), "--n", "5", "--batch", "2", "--sampler", "ddim"]
    assert main([*cmd, "--steps", "10", "--device", "cpu", "--no-progress", str(gen)]) == 0
    with open_store(gen) as g, open_store(store) as s:
        assert g.n_velocity == 5 and g.grid == (70, 70) and g.seismic_shape == s.seismic_shape
        np.testing.assert_array_equal(g.paired_index, np.arange(5))
        assert g.attrs["survey"] == s.attrs["survey"]
        assert g.attrs["normalization"] == s.attrs["normalization"]
        assert g.attrs["boundary"] == s.attrs["boundary"]
        v = np.stack([g.velocity(i) for i in range(5)])
        n = s.normalizer
        assert v.min() >= n.v_min - 1e-3 and v.max() <= n.v_max + 1e-3  # physical units
        assert np.isfinite(g.seismic(4)).all()
        g.verify()
        first = v.copy()
    # same seed -> same file; another seed -> other pairs
    gen2 = tmp_path / "gen2.h5"
    assert main([*cmd, "--steps", "10", "--device", "cpu", "--no-progress", str(gen2)]) == 0
    gen3 = tmp_path / "gen3.h5"
    assert main([*cmd, "--steps", "10", "--seed", "1", "--no-progress", str(gen3)]) == 0
    with open_store(gen2) as a, open_store(gen3) as b:
        assert np.array_equal(np.stack([a.velocity(i) for i in range(5)]), first)
        assert not np.array_equal(np.stack([b.velocity(i) for i in range(5)]), first)


@pytest.mark.slow
def test_interrupted_training_resumes_bit_exact(tiny_ae, tmp_path):
    _, ae = tiny_ae
    kw = {"steps": 12, "grad_accum": 2}
    ref = _cfg(ae, tmp_path / "ref", **kw).with_("run", checkpoint_every=5)
    cut = ref.with_("run", out_dir=str(tmp_path / "cut"))
    train_diffusion(ref)
    assert train_diffusion(cut, stop_after=7)["step"] == 7  # "killed" after step 7
    assert not (tmp_path / "cut" / "final.pt").exists()
    assert train_diffusion(cut)["step"] == 12
    a = load_diffusion_checkpoint(tmp_path / "ref" / "final.pt")
    b = load_diffusion_checkpoint(tmp_path / "cut" / "final.pt")
    for key in ("model",):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), k
    for k in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]), k
    ra = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    rb = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(r).items() if k != "time_s"} for r in ra]
    assert strip == [{k: v for k, v in json.loads(r).items() if k != "time_s"} for r in rb]
    # another config in the same run directory is refused
    with pytest.raises(ValueError, match="different config"):
        train_diffusion(cut.with_("optim", lr=1e-4))


@pytest.mark.slow
def test_finished_run_extended_equals_one_longer_run(tiny_ae, tmp_path):
    """A run trained to 5 steps, copied to another folder and resumed there with steps = 9
    ends bit-identical to a 9-step run; the 5-step final.pt is kept; fewer steps are refused."""
    _, ae = tiny_ae
    ref = _cfg(ae, tmp_path / "ref", steps=9)
    short = _cfg(ae, tmp_path / "short", steps=5)
    train_diffusion(ref)
    train_diffusion(short)
    first = load_diffusion_checkpoint(tmp_path / "short" / "final.pt")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "last.pt").write_bytes((tmp_path / "short" / "last.pt").read_bytes())
    (tmp_path / "moved" / "final.pt").write_bytes((tmp_path / "short" / "final.pt").read_bytes())
    longer = ref.with_("run", out_dir=str(tmp_path / "moved"))
    assert train_diffusion(longer)["step"] == 9
    a = load_diffusion_checkpoint(tmp_path / "ref" / "final.pt")
    b = load_diffusion_checkpoint(tmp_path / "moved" / "final.pt")
    kept = load_diffusion_checkpoint(tmp_path / "moved" / "final_step5.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(kept["model"][k], first["model"][k]), k
    assert any(not torch.equal(a["model"][k], first["model"][k]) for k in a["model"])
    with pytest.raises(ValueError, match="already trained 9 steps"):
        train_diffusion(longer.with_("optim", steps=6))


@pytest.mark.slow
def test_ddp_two_cpu_ranks_end_identical(tiny_ae, tmp_path):
    _, ae = tiny_ae
    cfg = _cfg(ae, tmp_path / "ddp", steps=4, batch_size=8).with_("run", checkpoint_every=2)
    cfg_path = tmp_path / "cfg.toml"
    cfg_path.write_text(dump_toml(cfg.to_dict()))
    build_latent_cache(cfg.data.store or str(tiny_ae[0]), ae, progress=False)  # no race on it
    script = (
        "import sys, torch, torch.distributed as dist\n"
        "from ubdiff_phys.cli import main\n"
        "from ubdiff_phys.train import diffusion as T\n"
        "orig = T._Trainer.close\n"
        "def close(self):\n"
        "    w = torch.cat([p.detach().flatten() for p in self.net.parameters()])\n"
        "    out = [torch.empty_like(w) for _ in range(self.world)]\n"
        "    dist.all_gather(out, w)\n"
        "    assert all(torch.equal(out[0], o) for o in out), 'ranks differ'\n"
        "    orig(self)\n"
        "T._Trainer.close = close\n"
        "sys.exit(main(['train-diffusion', sys.argv[1], '--no-progress']))\n"
    )
    (tmp_path / "ddp_child.py").write_text(script)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tmp_path / "ddp_child.py"),
        str(cfg_path),
    ]
    r = subprocess.run(
        cmd,
        env=child_env(OMP_NUM_THREADS="1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = load_diffusion_checkpoint(tmp_path / "ddp" / "final.pt")
    assert ckpt["world_size"] == 2 and ckpt["state"]["step"] == 4


def test_init_from_starts_the_latent_model_from_another_runs_weights(tiny_ae, tmp_path):
    """The latent trainer shares run.init_from with the velocity one: before its first step the
    new run holds the source's raw and EMA weights (oracle: the source's tensors)."""
    _, ae = tiny_ae
    train_diffusion(_cfg(ae, tmp_path / "src", steps=3))
    cfg = _cfg(ae, tmp_path / "b", steps=3).with_("run", init_from=str(tmp_path / "src"))
    assert train_diffusion(cfg, stop_after=0)["step"] == 0
    src = torch.load(tmp_path / "src" / "final.pt", weights_only=True)
    new = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for k, v in src["model"].items():
        assert torch.equal(new["model"][k], v)
    for k, v in src["ema"]["module"].items():
        assert torch.equal(new["ema"]["module"][k], v)
    assert new["state"]["init_from"]["steps_before"] == 3
