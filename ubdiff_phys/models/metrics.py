"""Reconstruction metrics of specs/ubdiff.md §5 (the OpenFWI conventions).

* MAE, MSE on normalised data in [-1, 1] (global mean over all elements of all samples);
  RMSE = sqrt(MSE) of that global MSE.
* SSIM on (x + 1) / 2 in [0, 1]: 11 x 11 Gaussian window (sigma 1.5, normalised to sum 1) applied
  per channel with zero padding 5 (borders included), C1 = 0.01^2, C2 = 0.03^2, mean of the SSIM
  map over all pixels of all samples and channels (OpenFWI ``pytorch_ssim``).

:class:`MetricAccumulator` accumulates sums over batches so a test set never has to be in memory;
its result equals the functions applied to the concatenated set.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["MetricAccumulator", "gaussian_window", "mae", "mse", "rmse", "ssim", "ssim_map"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")


def mae(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error over all elements (inputs in [-1, 1])."""
    _check(pred, target)
    return float((pred.double() - target.double()).abs().mean())


def mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error over all elements (inputs in [-1, 1])."""
    _check(pred, target)
    return float((pred.double() - target.double()).square().mean())


def rmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """sqrt of :func:`mse`."""
    return math.sqrt(mse(pred, target))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float64):
    """(size, size) Gaussian window summing to 1."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM map of two (N, C, H, W) batches in [-1, 1], computed on (x + 1) / 2.

    Returns:
        (N, C, H, W) float64 SSIM map (zero padding of 5, so borders are included).
    """
    _check(pred, target)
    if pred.dim() != 4:
        raise ValueError(f"ssim expects (N, C, H, W) tensors, got {tuple(pred.shape)}")
    x = (pred.double() + 1) / 2
    y = (target.double() + 1) / 2
    c = x.shape[1]
    w = gaussian_window(dtype=torch.float64).to(x.device).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)
    pad = SSIM_WINDOW // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sxy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sxx + syy + SSIM_C2)
    return num / den


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM over all pixels of all samples (see module docstring)."""
    return float(ssim_map(pred, target).mean())


class MetricAccumulator:
    """Running global MAE / MSE / RMSE (and SSIM for image-like data) over batches.

    Args:
        with_ssim: also accumulate the SSIM map (velocity maps); off for gathers.
    """

    def __init__(self, with_ssim: bool = True):
        self.with_ssim = with_ssim
        self.n = 0
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.ssim_sum = 0.0
        self.ssim_n = 0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        _check(pred, target)
        d = pred.double() - target.double()
        self.n += d.numel()
        self.abs_sum += float(d.abs().sum())
        self.sq_sum += float(d.square().sum())
        if self.with_ssim:
            m = ssim_map(pred, target)
            self.ssim_sum += float(m.sum())
            self.ssim_n += m.numel()

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            return {}
        out = {"mae": self.abs_sum / self.n, "mse": self.sq_sum / self.n}
        out["rmse"] = math.sqrt(out["mse"])
        if self.with_ssim:
            out["ssim"] = self.ssim_sum / self.ssim_n
        return out
