"""Evaluation: reconstruction metrics (specs/ubdiff.md §5)."""

from ubdiff_phys.eval.metrics import MetricAccumulator, mae, mse, rmse, ssim, ssim_map

__all__ = ["MetricAccumulator", "mae", "mse", "rmse", "ssim", "ssim_map"]
