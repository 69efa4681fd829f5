"""User mistakes end in one line and exit status 2, before any expensive work; training refuses
hyper-parameters that cannot train and never saves non-finite weights (issue 13, cases 6, 8-10).

Each case reproduced the reported behaviour first (a traceback, a bare EOFError/AssertionError,
exit 0 with NaN checkpoints, or a failure after all the simulation) and passes now.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import small_store

from ubdiff_phys.cli import main
from ubdiff_phys.diffusion.config import OptimConfig
from ubdiff_phys.pipelines import validate as validate_module
from ubdiff_phys.pipelines.generator import shipped_checkpoint
from ubdiff_phys.runtime.errors import (
    NonFiniteError,
    UserError,
    check_finite_loss,
    check_finite_weights,
)
from ubdiff_phys.train.config import StepConfig


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": math.inf},
        {"lr": 1e30},
        {"lr": 0.0},
        {"lr": math.nan},
        {"gamma_l1": math.nan},
        {"gamma_l2": -1.0},
        {"lr_decay": -0.5},
        {"lr_decay": math.inf},
        {"weight_decay": math.inf},
    ],
)
def test_autoencoder_steps_refuse_hyperparameters_that_cannot_train(kwargs) -> None:
    with pytest.raises(ValueError, match="step"):
        StepConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"lr": math.inf}, {"lr": 1e30}, {"clip": -1.0}, {"clip": math.nan}, {"beta1": 1.5}]
)
def test_diffusion_optimiser_refuses_hyperparameters_that_cannot_train(kwargs) -> None:
    with pytest.raises(ValueError, match="optim"):
        OptimConfig(**kwargs)


def test_defaults_and_shipped_settings_still_pass() -> None:
    StepConfig()
    StepConfig(lr=1e-3, lr_decay=0.98, gamma_l1=0.0)
    OptimConfig()
    OptimConfig(clip=0.0, lr=1e-3)


def test_non_finite_loss_and_weights_stop_training() -> None:
    check_finite_loss(torch.tensor(0.5), 3)
    with pytest.raises(NonFiniteError, match="step 7"):
        check_finite_loss(torch.tensor(float("nan")), 7)
    with pytest.raises(NonFiniteError):
        check_finite_loss(float("inf"), 0)
    check_finite_weights([torch.ones(3), torch.arange(3)], "m")
    with pytest.raises(NonFiniteError, match="non-finite"):
        check_finite_weights([torch.ones(3), torch.tensor([1.0, float("inf")])], "m")
    assert issubclass(NonFiniteError, UserError)


def _one_line_error(capsys, argv: list[str], *expect: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for e in expect:
        assert e in err, err
    return err


def test_cli_config_mistakes_are_one_line(tmp_path: Path, capsys) -> None:
    _one_line_error(capsys, ["train-ae", str(tmp_path / "missing.toml")], "not a file")
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nout_dir = "x"\nbogus = 1\n')
    _one_line_error(capsys, ["train-ae", str(bad)], "bogus")
    _one_line_error(capsys, ["train-diffusion", str(bad)], "bogus")
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[run\n")
    _one_line_error(capsys, ["train-ae", str(syntax)], "syntax.toml")
    nan_lr = tmp_path / "nan.toml"
    nan_lr.write_text('[data]\nstore = "x.h5"\n[step1]\nlr = nan\n')
    _one_line_error(capsys, ["train-ae", str(nan_lr)], "lr")


def test_cli_input_mistakes_are_one_line(tmp_path: Path, capsys) -> None:
    _one_line_error(capsys, ["validate", str(tmp_path)], str(tmp_path))
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes((shipped_checkpoint() / "diffusion.pt").read_bytes()[:100_000])
    ae = str(shipped_checkpoint() / "autoencoder.pt")
    argv = ["sample", "--checkpoint", str(truncated), "--autoencoder", ae, "--n", "2"]
    _one_line_error(capsys, [*argv, str(tmp_path / "o.h5")], "truncated or corrupted")
    assert not (tmp_path / "o.h5").exists()
    for bad in ("0", "two"):
        argv = ["sample", "--checkpoint", str(shipped_checkpoint()), "--n", "2", "--seismic"]
        argv += ["guided", "--guidance-shots", bad, str(tmp_path / "g.h5")]
        _one_line_error(capsys, argv, "--guidance-shots")
    for option, bad, words in (("--guidance-refine-every", "0", "refine_every"),
                               ("--guidance-scale", "-1", "guidance scale"),
                               ("--guidance-steps", "-2", "guidance steps")):  # fmt: skip
        argv = ["sample", "--checkpoint", str(shipped_checkpoint()), "--n", "2", "--seismic"]
        argv += ["guided", option, bad, str(tmp_path / "g.h5")]
        _one_line_error(capsys, argv, words)
    assert not (tmp_path / "g.h5").exists()


def test_validate_checks_its_options_before_simulating(tmp_path: Path, capsys, monkeypatch):
    store = small_store(tmp_path / "s.h5", 4, 4, 0)

    def no_simulation(*args, **kwargs):
        raise AssertionError("the residual ran before the options were checked")

    monkeypatch.setattr(validate_module, "residual", no_simulation)
    _one_line_error(capsys, ["validate", str(store), "--keep-quantile", "1.5"], "keep_quantile")
    _one_line_error(capsys, ["validate", str(store), "--threshold", "-1"], "threshold")
    if not torch.cuda.is_available():
        _one_line_error(capsys, ["validate", str(store), "--device", "cuda"], "--device cpu")


def test_train_features_refuses_an_existing_checkpoint(tmp_path: Path, capsys) -> None:
    """Issue 13 case 6: ``train-features --out`` overwrote an existing checkpoint."""
    out = tmp_path / "feat.pt"
    out.write_bytes(b"someone's checkpoint")
    argv = ["train-features", "--real", str(tmp_path / "real.h5"), "--out", str(out)]
    _one_line_error(capsys, argv, "--overwrite")
    assert out.read_bytes() == b"someone's checkpoint"
