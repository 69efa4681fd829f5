"""Solver demo: simulate OpenFWI-style seismic gathers for a few synthetic velocity models.

Builds flat-layered, curved-layered and faulted 70 x 70 models, simulates them on the OpenFWI survey
in both boundary modes ("openfwi": reproduces the OpenFWI data files; "pml": fast absorbing layer),
and writes a PNG with each model and its middle-shot gathers plus a JSON summary with timings.

    python examples/simulate_openfwi.py --out out/ [--n 3] [--device cpu|cuda] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ubdiff_phys  # noqa: E402
from ubdiff_phys.physics import Survey, simulate  # noqa: E402


def demo_models(n: int, seed: int) -> torch.Tensor:
    """n models cycling through flat layers, curved layers and a faulted stack; (n, 70, 70) m/s."""
    rng = np.random.default_rng(seed)
    z = np.arange(70)[:, None].astype(np.float64)
    x = np.arange(70)[None, :].astype(np.float64)
    models = []
    for k in range(n):
        n_layers = int(rng.integers(3, 7))
        vel = np.sort(rng.uniform(1500, 4500, n_layers)).round()
        depths = np.sort(rng.uniform(8, 66, n_layers - 1))
        kind = k % 3
        if kind == 0:  # flat
            shift = np.zeros_like(x)
        elif kind == 1:  # curved: a smooth lateral displacement of the whole stack
            shift = 6 * np.sin(2 * np.pi * x / rng.uniform(25, 70) + rng.uniform(0, 6))
        else:  # fault: a dipping plane that shifts the hanging wall down
            dip = np.tan(np.deg2rad(rng.uniform(45, 80)))
            x0 = rng.uniform(20, 50)
            shift = np.where(z > dip * (x - x0), rng.uniform(4, 9), 0.0) * np.ones_like(x)
        m = np.full((70, 70), vel[0])
        for i, d in enumerate(depths):
            m = np.where(z >= d + shift, vel[i + 1], m)
        models.append(m)
    return torch.tensor(np.stack(models), dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="number of models (default 3)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)

    survey = Survey.openfwi()
    v = demo_models(args.n, args.seed).to(args.device)
    gathers, timings = {}, {}
    for boundary in ("openfwi", "pml"):
        simulate(v[:1], survey.with_(nt=10), boundary=boundary)  # warm-up
        if v.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        gathers[boundary] = simulate(v, survey, boundary=boundary).cpu()
        if v.is_cuda:
            torch.cuda.synchronize()
        timings[boundary] = (time.perf_counter() - start) / args.n
        print(
            f"{boundary:>8}: {1000 * timings[boundary]:7.1f} ms per model "
            f"(5 shots x 1000 steps) on {args.device}; gathers {tuple(gathers[boundary].shape)}"
        )

    n_show = min(args.n, 4)
    fig, axes = plt.subplots(n_show, 4, figsize=(13, 3.2 * n_show), squeeze=False)
    t_max = survey.nt * survey.dt
    for k in range(n_show):
        axes[k, 0].imshow(v[k].cpu(), cmap="viridis", extent=(0, 700, 700, 0))
        axes[k, 0].set(title=f"model {k}: velocity [m/s]", xlabel="x [m]", ylabel="depth [m]")
        for j, boundary in enumerate(("openfwi", "pml")):
            g = gathers[boundary][k, 2].numpy()
            clip = np.percentile(np.abs(g), 99)
            axes[k, 1 + j].imshow(
                g, cmap="gray", aspect="auto", vmin=-clip, vmax=clip, extent=(0, 700, t_max, 0)
            )
            axes[k, 1 + j].set(
                title=f'shot 3, boundary="{boundary}"', xlabel="receiver x [m]", ylabel="time [s]"
            )
        ref = gathers["openfwi"][k, 2].numpy()
        diff = ref - gathers["pml"][k, 2].numpy()
        rel = np.linalg.norm(diff) / np.linalg.norm(ref)
        clip = np.percentile(np.abs(diff), 99.5)
        axes[k, 3].imshow(
            diff, cmap="seismic", aspect="auto", vmin=-clip, vmax=clip, extent=(0, 700, t_max, 0)
        )
        axes[k, 3].set(
            title=f"openfwi - pml: {rel:.2%} rel. L2", xlabel="receiver x [m]", ylabel="time [s]"
        )
    fig.tight_layout()
    figure = args.out / "simulate_openfwi.png"
    fig.savefig(figure, dpi=90)
    summary = {
        "n_models": args.n,
        "device": args.device,
        "ms_per_model": {b: 1000 * t for b, t in timings.items()},
        "amplitude_range": {b: [float(g.min()), float(g.max())] for b, g in gathers.items()},
        "build": ubdiff_phys.build_info(),
        "figure": str(figure),
    }
    (args.out / "simulate_openfwi.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {figure} and {args.out / 'simulate_openfwi.json'}")


if __name__ == "__main__":
    main()
