"""Solver demo: simulate OpenFWI-style seismic gathers for a few synthetic velocity models.

Generates FlatVel-A, CurveVel-A, FlatFault-A and CurveFault-A-like 70 x 70 maps
(ubdiff_phys.data.families), simulates them on the OpenFWI survey
in both boundary modes ("openfwi": reproduces the OpenFWI data files; "pml": fast absorbing layer),
and writes a PNG with each model and its middle-shot gathers plus a JSON summary with timings.

    python examples/simulate_openfwi.py --out out/ [--n 3] [--device cpu|cuda] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ubdiff_phys  # noqa: E402
from ubdiff_phys.data import families  # noqa: E402
from ubdiff_phys.physics import Survey, simulate  # noqa: E402
from ubdiff_phys.runtime.files import atomic_write_json  # noqa: E402

DEMO_FAMILIES = ("flatvel-a", "curvevel-a", "flatfault-a", "curvefault-a")


def demo_models(n: int, seed: int) -> torch.Tensor:
    """n maps cycling through DEMO_FAMILIES (ubdiff_phys.data.families), (n, 70, 70) m/s."""
    maps = [
        families.generate(DEMO_FAMILIES[k % len(DEMO_FAMILIES)], 1, seed=seed + k)[0, 0]
        for k in range(n)
    ]
    return torch.from_numpy(np.stack(maps))


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
        family = DEMO_FAMILIES[k % len(DEMO_FAMILIES)]
        axes[k, 0].set(title=f"{family}: velocity [m/s]", xlabel="x [m]", ylabel="depth [m]")
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
    atomic_write_json(args.out / "simulate_openfwi.json", summary)
    print(f"wrote {figure} and {args.out / 'simulate_openfwi.json'}")


if __name__ == "__main__":
    main()
