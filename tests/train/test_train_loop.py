"""Two-step autoencoder training: tiny end-to-end run, kill-and-resume determinism, DDP ranks,
freeze flag, the "w/o opt" ablation, seismic majority, config and checkpoint handling."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import child_env, small_store

from ubdiff_phys.cli import main
from ubdiff_phys.train import TrainConfig, load_checkpoint, load_config, train_autoencoder
from ubdiff_phys.train.config import dump_toml

REPO = Path(__file__).resolve().parents[2]
TINY_TOML = REPO / "configs" / "ae_tiny.toml"


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> Path:
    return small_store(tmp_path_factory.mktemp("ae_store") / "tiny.h5", 64, 16, 8)


def _cfg(store: Path, out: Path, **sections) -> TrainConfig:
    cfg = load_config(TINY_TOML)
    cfg = cfg.replace(
        data=replace(cfg.data, store=str(store)),
        run=replace(cfg.run, out_dir=str(out), progress=False),
    )
    for name, changes in sections.items():
        cfg = cfg.replace(**{name: replace(getattr(cfg, name), **changes)})
    return cfg


def _write(cfg: TrainConfig, path: Path) -> Path:
    path.write_text(dump_toml(cfg.to_dict()))
    return path


def _env(**extra) -> dict[str, str]:
    # the children import the same ubdiff_phys as this test run (they run with cwd=tmp_path)
    return child_env(OMP_NUM_THREADS="1", **extra)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_tiny_config_trains_end_to_end_via_cli(tiny_store, tmp_path, capsys):
    t0 = time.perf_counter()
    out = tmp_path / "run"
    rc = main(["train-ae", str(TINY_TOML), "--store", str(tiny_store), "--out-dir", str(out)])
    assert rc == 0
    assert time.perf_counter() - t0 < 120
    assert {"last.pt", "final.pt", "best_step1.pt", "best_step2.pt", "config.toml"} <= {
        p.name for p in out.iterdir()
    }
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["step1", "step1", "step2", "step2"]
    assert set(records[0]["val"]["velocity"]) == {"mae", "mse", "rmse", "ssim"}
    assert set(records[-1]["val"]["seismic"]) == {"mae", "mse", "rmse"}
    # the resolved config is next to and inside the checkpoints; weights load code-free
    saved = load_config(out / "config.toml")
    ckpt = torch.load(out / "final.pt", weights_only=True)
    assert TrainConfig.from_dict(ckpt["config"]) == saved
    assert saved.model.seismic_shape == (5, 1000, 70)
    # F = 1: step 2 leaves the encoder and velocity branch exactly at step 1's best
    best1, final = _weights(out / "best_step1.pt"), _weights(out / "final.pt")
    for k in best1:
        if k.startswith(("encoder.", "head_v.", "dec_v.")):
            assert torch.equal(best1[k], final[k]), k
    assert not torch.equal(best1["head_s.0.weight"], final["head_s.0.weight"])
    # a finished run resumes to a no-op
    capsys.readouterr()
    args = ["train-ae", str(TINY_TOML), "--store", str(tiny_store), "--out-dir", str(out)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["global_step"] == 24


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_is_bit_exact(tiny_store, tmp_path):
    cfg = _cfg(
        tiny_store,
        tmp_path / "unused",
        run={"checkpoint_every_steps": 3, "val_every": 1},
        step1={"epochs": 2},
        step2={"epochs": 1},
    )
    cfg_path = _write(cfg, tmp_path / "cfg.toml")
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "train-ae", str(cfg_path), "--no-progress"]
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref = subprocess.Popen([*cmd, "--out-dir", str(ref_dir)], env=_env(), cwd=tmp_path)
    cut = subprocess.Popen(
        [*cmd, "--out-dir", str(cut_dir)],
        env=_env(UBDIFF_PHYS_TEST_STEP_SLEEP="0.25"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    last, deadline = cut_dir / "last.pt", time.time() + 90
    try:
        while time.time() < deadline:
            if last.exists():
                state = load_checkpoint(last)["state"]
                if state["phase"] == "step1" and state["batch"] > 0:
                    break
            time.sleep(0.02)
        else:
            pytest.fail("no mid-epoch checkpoint appeared")
    finally:
        cut.send_signal(signal.SIGKILL)
        cut.wait()
    state = load_checkpoint(last)["state"]
    assert state["phase"] == "step1" and state["batch"] > 0, state  # killed mid-epoch
    assert not (cut_dir / "final.pt").exists()
    subprocess.run([*cmd, "--out-dir", str(cut_dir)], env=_env(), cwd=tmp_path, check=True)
    assert ref.wait() == 0
    _assert_same(_weights(ref_dir / "final.pt"), _weights(cut_dir / "final.pt"))
    ref_log = (ref_dir / "metrics.jsonl").read_text().splitlines()
    cut_log = (cut_dir / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(r).items() if k != "epoch_time_s"} for r in ref_log]
    assert strip == [
        {k: v for k, v in json.loads(r).items() if k != "epoch_time_s"} for r in cut_log
    ]


@pytest.mark.slow
def test_ddp_two_cpu_ranks_end_identical(tiny_store, tmp_path):
    cfg = _cfg(
        tiny_store,
        tmp_path / "ddp",
        run={"val_every": 1},
        step1={"epochs": 1, "batch_size": 8},
        step2={"epochs": 1, "batch_size": 4, "freeze": 0},
    )
    cfg_path = _write(cfg, tmp_path / "cfg.toml")
    script = tmp_path / "ddp_rank.py"
    script.write_text(
        "import os, sys, torch\n"
        "from ubdiff_phys.train import load_config\n"
        "from ubdiff_phys.train.loop import _Trainer\n"
        "t = _Trainer(load_config(sys.argv[1]), resume=False)\n"
        "t.run()\n"
        "torch.save(t.model.state_dict(), sys.argv[2] + f'/rank{t.rank}.pt')\n"
        "t.close()\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        str(script),
        str(cfg_path),
        str(tmp_path),
    ]
    subprocess.run(cmd, env=_env(), cwd=tmp_path, check=True, timeout=180)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    _assert_same(r0, r1)
    _assert_same(r0, _weights(tmp_path / "ddp" / "final.pt"))
    ckpt = load_checkpoint(tmp_path / "ddp" / "final.pt")
    assert ckpt["world_size"] == 2 and ckpt["state"]["global_step"] == 64 // 8 + 16 // 4


def test_freeze_zero_and_paired_only_ablation(tiny_store, tmp_path):
    cfg = _cfg(
        tiny_store,
        tmp_path / "f0",
        run={"val_every": 0},
        data={"paired_only": True},
        step1={"epochs": 1},
        step2={"epochs": 1, "freeze": 0},
    )
    summary = train_autoencoder(cfg)
    # w/o opt: step 1 sees the 16 paired maps only (2 batches of 8), step 2 the 16 pairs (4 of 4)
    assert summary["global_step"] == 2 + 4
    best1 = _weights(tmp_path / "f0" / "best_step1.pt")
    final = _weights(tmp_path / "f0" / "final.pt")
    assert not torch.equal(best1["encoder.blocks.0.0.weight"], final["encoder.blocks.0.0.weight"])


def test_seismic_majority_trains(tiny_store, tmp_path):
    cfg = _cfg(
        tiny_store,
        tmp_path / "seis",
        run={"val_every": 0},
        model={"majority": "seismic"},
        data={"n_paired": 8},
        step1={"epochs": 1, "batch_size": 8},
        step2={"epochs": 1, "batch_size": 4},
    )
    summary = train_autoencoder(cfg)
    assert summary["global_step"] == 16 // 8 + 8 // 4  # majority = the 16 rows with gathers
    rec = json.loads((tmp_path / "seis" / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(rec["val"]) == {"velocity", "seismic"}


def test_config_errors_and_resume_mismatch(tiny_store, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nout_dir = "x"\nsed = 1\n[data]\nstore = "s.h5"\n')
    with pytest.raises(ValueError, match="unknown option"):
        load_config(bad)
    bad.write_text('[data]\nstore = "s.h5"\n[step2]\nfreeze = 2\n')
    with pytest.raises(ValueError, match="freeze"):
        load_config(bad)
    cfg = _cfg(tiny_store, tmp_path / "r", step1={"epochs": 1}, step2={"epochs": 0})
    train_autoencoder(cfg)
    other = cfg.replace(step1=replace(cfg.step1, lr=5e-4))
    with pytest.raises(ValueError, match="step1.lr"):
        train_autoencoder(other)
    # init_from: reuse that step-1 result for a step-2-only run (F = 1 keeps it exactly)
    init = tmp_path / "r" / "best_step1.pt"
    cfg2 = _cfg(
        tiny_store,
        tmp_path / "r2",
        run={"init_from": str(init), "val_every": 0},
        step1={"epochs": 0},
        step2={"epochs": 1},
    )
    assert train_autoencoder(cfg2)["global_step"] == 4
    src, got = _weights(init), _weights(tmp_path / "r2" / "final.pt")
    assert torch.equal(src["encoder.blocks.0.0.weight"], got["encoder.blocks.0.0.weight"])
    assert torch.equal(src["dec_v.out.1.running_var"], got["dec_v.out.1.running_var"])
    # init_skip: the seismic branch keeps this run's fresh (zero-started) init, the rest is copied
    cfg3 = _cfg(
        tiny_store,
        tmp_path / "r3",
        run={"init_from": str(init), "init_skip": ("head_s", "dec_s"), "val_every": 0},
        model={"seismic_zero_init": True},
        step1={"epochs": 0},
        step2={"epochs": 0},
    )
    train_autoencoder(cfg3)
    got = _weights(tmp_path / "r3" / "final.pt")
    assert torch.equal(src["encoder.blocks.0.0.weight"], got["encoder.blocks.0.0.weight"])
    out_w = "dec_s.to_patch.weight"  # the tiny config's token decoder: its output layer
    assert not torch.equal(src[out_w], got[out_w])
    assert not got[out_w].any()  # zero-started output layer, untouched by 0 epochs
    # step1.freeze_encoder: a decoder-only step 1 keeps the encoder (and its BN statistics)
    cfg5 = _cfg(
        tiny_store,
        tmp_path / "r5",
        run={"init_from": str(init), "val_every": 0},
        step1={"epochs": 1, "freeze_encoder": True},
        step2={"epochs": 0},
    )
    train_autoencoder(cfg5)
    got = _weights(tmp_path / "r5" / "final.pt")
    for k in src:
        if k.startswith("encoder."):
            assert torch.equal(src[k], got[k]), k
    assert not torch.equal(src["head_v.0.weight"], got["head_v.0.weight"])
    with pytest.raises(ValueError, match="freeze_encoder needs run.init_from"):
        cfg5.replace(run=replace(cfg5.run, init_from=""))
    with pytest.raises(ValueError, match="step-1 option"):
        cfg5.replace(step2=replace(cfg5.step2, freeze_encoder=True))
    bad = cfg3.replace(run=replace(cfg3.run, init_skip=("dec_x",), out_dir=str(tmp_path / "r4")))
    with pytest.raises(ValueError, match="init_skip names no submodule"):
        train_autoencoder(bad)
    with pytest.raises(ValueError, match="init_skip needs run.init_from"):
        replace(cfg3.run, init_from="")


def test_full_scale_config_is_valid():
    cfg = load_config(REPO / "configs" / "ae_flatvel_a_full.toml")
    assert cfg.step1.epochs == 500 and cfg.step1.batch_size == 64
    assert cfg.model.width == 1.0 and cfg.model.latent_dim == 128


def test_step2_physical_term_uses_the_store_bounds(tiny_store, tmp_path):
    """The step-2 loss with ``gamma_physical`` is the paper's plus that weight times the squared
    relative residual in amplitude, the gathers' inverse normalisation taken from the store."""
    from ubdiff_phys.data import open_store
    from ubdiff_phys.train.loop import _Trainer
    from ubdiff_phys.train.losses import physical_relative_l2, reconstruction_loss

    cfg = _cfg(tiny_store, tmp_path / "phys", step2={"gamma_physical": 0.7, "freeze": 1})
    trainer = _Trainer(cfg, resume=False)
    try:
        items = [trainer.views.paired[i] for i in range(4)]
        v, s = torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])
        trainer.model.eval()
        with torch.no_grad():
            loss = trainer._batch_loss("step2", trainer.model, (v, s))
            pred = trainer.model(v, outputs=("seismic",))["seismic"]
    finally:
        trainer.close()
    with open_store(tiny_store) as st:
        bounds = (st.normalizer.s_log_min, st.normalizer.s_log_max)
    paper = reconstruction_loss(pred, s, gamma_l1=cfg.step2.gamma_l1, gamma_l2=cfg.step2.gamma_l2)
    expected = float(paper) + 0.7 * float(physical_relative_l2(pred, s, bounds))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(loss) > float(paper)
