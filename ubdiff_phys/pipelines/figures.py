"""Figures of the main job: an example pair against the solver, the residual histogram, and the
residual along the reverse diffusion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.physics import simulate
from ubdiff_phys.pipelines.generator import Generator

__all__ = ["plot_pair", "plot_trace"]


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (imported when a figure is made)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_trace(trace: dict[str, Any], path: Path) -> None:
    """Median and quartiles of the traced residual per sampler step, to ``path``."""
    plt = _pyplot()
    rows = trace["rows"]
    step = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.fill_between(step, [r["p25"] for r in rows], [r["p75"] for r in rows], alpha=0.3)
    ax.plot(step, [r["median"] for r in rows], "o-", label="median (band: p25-p75)")
    ax.set_yscale("log")
    ax.set_xlabel(
        f"DDIM step (of {trace['steps']}); diffusion t = "
        + ", ".join(str(r["t"]) for r in rows[:: max(1, len(rows) // 4)])
        + ", ..."
    )
    ax.set_ylabel("relative L2 ||s - F(v)|| / ||F(v)||")
    what = "predicted x0" if trace["on"] == "x0" else "x_t"
    ax.set_title(f"Physics residual of the decoded {what} along reverse diffusion (n={trace['n']})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pair(
    gen: Generator,
    v: torch.Tensor,
    s: torch.Tensor,
    rel: np.ndarray,
    example_rel: float,
    threshold: float | None,
    path: Path,
    floor: np.ndarray | None = None,
    seismic: str = "decoder",
) -> None:
    """The example pair (velocity, the pair's and the simulated gathers, their difference) and the
    histogram of all residuals (with the autoencoder's ``floor`` when given), to ``path``;
    ``seismic``: where the pair's gathers came from (its panel's title)."""
    plt = _pyplot()
    sim = simulate(v.to(gen.device), gen.survey, boundary=gen.boundary)[0].cpu().numpy()
    vel = v[0, 0].cpu().numpy()
    gath = s[0].cpu().numpy()
    shot = gath.shape[0] // 2
    survey = gen.survey
    extent_g = [0, gath.shape[2], survey.nt * survey.dt, 0]
    lim = float(np.abs(sim[shot]).max()) * 0.05 or 1.0
    fig, axes = plt.subplots(1, 5, figsize=(20, 4.6), constrained_layout=True)
    im = axes[0].imshow(
        vel, cmap="viridis", extent=[0, vel.shape[1] * survey.dx, vel.shape[0] * survey.dz, 0]
    )
    axes[0].set_title("generated velocity [m/s]")
    axes[0].set_xlabel("x [m]")
    axes[0].set_ylabel("z [m]")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    for ax, data, title in (
        (axes[1], gath[shot], f"the pair's gather ({seismic}, shot {shot})"),
        (axes[2], sim[shot], f"simulated F(v) ({gen.boundary})"),
        (axes[3], gath[shot] - sim[shot], f"difference (rel L2 {example_rel:.3f})"),
    ):
        im = ax.imshow(data, cmap="seismic", vmin=-lim, vmax=lim, aspect="auto", extent=extent_g)
        ax.set_title(title)
        ax.set_xlabel("receiver")
        ax.set_ylabel("t [s]")
    fig.colorbar(im, ax=axes[1:4], shrink=0.8, label="amplitude (clipped at 5% of max)")
    finite = rel[np.isfinite(rel)]
    both = finite if floor is None else np.concatenate([finite, floor[np.isfinite(floor)]])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    if lo > 0 and hi / lo > 3:
        bins = np.logspace(np.log10(lo), np.log10(hi), 30)
        axes[4].set_xscale("log")
    else:
        pad = max(0.05 * (hi - lo), 1e-3)
        bins = np.linspace(lo - pad, hi + pad, 30)
    dens = floor is not None  # two sets of different sizes: compare densities
    axes[4].hist(finite, bins=bins, color="0.4", density=dens, label="generated pairs")
    if floor is not None:
        axes[4].hist(
            floor, bins=bins, color="tab:orange", alpha=0.6, density=True, label="AE reconstruction"
        )
    if threshold is not None:
        axes[4].axvline(threshold, color="r", ls="--", label=f"threshold {threshold:.3g}")
    if threshold is not None or floor is not None:
        axes[4].legend()
    axes[4].set_title(f"residual of all {rel.size} samples")
    axes[4].set_xlabel("relative L2 (physical)")
    axes[4].set_ylabel("density" if dens else "pairs")
    fig.savefig(path, dpi=90)
    plt.close(fig)
