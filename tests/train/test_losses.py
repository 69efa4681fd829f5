"""Reconstruction losses against closed-form values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ubdiff_phys.train.config import StepConfig
from ubdiff_phys.train.losses import gradient_l1, reconstruction_loss


def _step_map(h: int = 10, w: int = 6, row: int = 4) -> torch.Tensor:
    t = -torch.ones(1, 1, h, w)
    t[..., row:, :] = 1.0
    return t


def test_gradient_term_ignores_a_constant_offset() -> None:
    t = torch.randn(2, 1, 9, 7, generator=torch.Generator().manual_seed(0))
    assert float(gradient_l1(t + 0.3, t)) == pytest.approx(0.0, abs=1e-7)


def test_gradient_term_of_a_smeared_interface() -> None:
    # the jump from -1 to 1 at row 4 becomes -1, 0, 1: the error is -1 on row 4 only, so each
    # column has two unit differences along depth and none along offset: 2 W / ((H - 1) W).
    h, w, row = 10, 6, 4
    t = _step_map(h, w, row)
    p = t.clone()
    p[..., row, :] = 0.0
    assert float(gradient_l1(p, t)) == pytest.approx(2 / (h - 1))
    assert float(gradient_l1(p.transpose(-1, -2), t.transpose(-1, -2))) == pytest.approx(
        2 / (h - 1)
    )


def test_reconstruction_loss_weights() -> None:
    g = torch.Generator().manual_seed(1)
    p, t = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    paper = F.l1_loss(p, t) + 2.0 * F.mse_loss(p, t)
    assert float(reconstruction_loss(p, t, gamma_l1=1.0, gamma_l2=2.0)) == pytest.approx(
        float(paper)
    )
    with_grad = reconstruction_loss(p, t, gamma_l1=1.0, gamma_l2=2.0, gamma_grad=0.5)
    assert float(with_grad) == pytest.approx(float(paper + 0.5 * gradient_l1(p, t)))


def test_negative_gradient_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="gamma_grad"):
        StepConfig(gamma_grad=-1.0)


def test_physical_term_is_the_squared_relative_residual_in_amplitude() -> None:
    """Oracle: the library's own inverse normalisation and the residual's definition."""
    from ubdiff_phys.data.normalize import Normalizer
    from ubdiff_phys.train.losses import physical_relative_l2

    nm = Normalizer()
    g = torch.Generator().manual_seed(2)
    amp = torch.randn(3, 2, 50, 7, generator=g, dtype=torch.float64) * 20
    t = nm.seismic(amp).float()
    p = (t + 0.05 * torch.randn(t.shape, generator=g)).clamp(-1, 1)
    bounds = (nm.s_log_min, nm.s_log_max)
    pa, ta = nm.seismic_inverse(p.double()), nm.seismic_inverse(t.double())
    rel = ((pa - ta).flatten(1).norm(dim=1) / ta.flatten(1).norm(dim=1)).square().mean()
    assert float(physical_relative_l2(p, t, bounds)) == pytest.approx(float(rel), rel=1e-4)
    assert float(physical_relative_l2(t, t, bounds)) == 0.0
    paper = reconstruction_loss(p, t, gamma_l1=1.0, gamma_l2=1.0)
    both = reconstruction_loss(
        p, t, gamma_l1=1.0, gamma_l2=1.0, gamma_physical=0.5, log_bounds=bounds
    )
    assert float(both) == pytest.approx(float(paper) + 0.5 * float(rel), rel=1e-4)
    with pytest.raises(ValueError, match="gamma_physical"):
        reconstruction_loss(p, t, gamma_l1=1.0, gamma_l2=1.0, gamma_physical=0.5)


def test_physical_term_is_refused_on_a_velocity_step() -> None:
    from ubdiff_phys.train.config import TrainConfig

    with pytest.raises(ValueError, match="step1.gamma_physical"):
        TrainConfig.from_dict({"data": {"store": "x.h5"}, "step1": {"gamma_physical": 1.0}})
    cfg = TrainConfig.from_dict({"data": {"store": "x.h5"}, "step2": {"gamma_physical": 1.0}})
    assert cfg.step2.gamma_physical == 1.0
