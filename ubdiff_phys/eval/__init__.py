"""Evaluation: reconstruction metrics (specs/ubdiff.md §5) and the Fréchet distance."""

from ubdiff_phys.eval.frechet import frechet_distance, gaussian_stats
from ubdiff_phys.eval.metrics import MetricAccumulator, mae, mse, rmse, ssim, ssim_map

__all__ = [
    "MetricAccumulator",
    "frechet_distance",
    "gaussian_stats",
    "mae",
    "mse",
    "rmse",
    "ssim",
    "ssim_map",
]
