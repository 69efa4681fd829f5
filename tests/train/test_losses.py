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
