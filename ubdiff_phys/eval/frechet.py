"""Fréchet distance between two sets of feature vectors (the "FID" formula).

``FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})`` for the Gaussians
fitted to the two feature sets. The matrix square root goes through symmetric eigendecompositions
in float64 (``Tr((S_1 S_2)^{1/2})`` equals the trace of the symmetric form above), so no SciPy is
needed and the result is real by construction. Which features (a project-trained network, or a
user-supplied Inception checkpoint) is the caller's choice and must be reported with the number.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["frechet_distance", "gaussian_stats"]


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D), float64, of features of shape (N, D), N >= 2."""
    x = torch.as_tensor(features).double()
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("features contain NaN or infinite values")
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64, >= 0).

    Args:
        mu1, mu2: (D,) means; sigma1, sigma2: (D, D) symmetric positive semi-definite covariances.
    """
    mu1, mu2, s1, s2 = (torch.as_tensor(t).double() for t in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {tuple(mu1.shape)}, mu2 {tuple(mu2.shape)}, sigma1 "
            f"{tuple(s1.shape)}, sigma2 {tuple(s2.shape)}"
        )
    r1 = _sqrt_psd(s1)
    inner = r1 @ s2 @ r1
    w = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0)
    fd = (mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * w.sqrt().sum()
    return max(float(fd), 0.0)
