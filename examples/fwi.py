"""Deterministic FWI with the native adjoint on two OpenFWI-like models.

A FlatVel-A-like and a CurveFault-A-like map are simulated on the OpenFWI survey (70 x 70 cells of
10 m, 5 shots, 70 receivers, 1000 steps of 1 ms); each is then inverted from a heavily smoothed copy
of itself (Gaussian, sigma = 10 cells) with L-BFGS, and SSIM / MAE of the start and of the result
against the truth are reported. Writes ``<out>/fwi_example.json`` and ``<out>/fwi_example.png``.

    python examples/fwi.py --out out/            # ~1-2 min per model on 2 CPU cores ("pml")
    python examples/fwi.py --boundary openfwi    # the OpenFWI files' own modelling (slower)
"""

from __future__ import annotations

import os

# passive OpenMP waiting, set before torch starts its OpenMP runtime (see ubdiff_phys/__init__.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import ubdiff_phys as up  # noqa: E402
from ubdiff_phys.data.families import generate  # noqa: E402
from ubdiff_phys.inversion import fwi, smooth_velocity  # noqa: E402
from ubdiff_phys.models.metrics import ssim  # noqa: E402
from ubdiff_phys.runtime.files import atomic_write_json  # noqa: E402

FAMILIES = ("flatvel-a", "curvefault-a")
V_MIN, V_MAX = 1500.0, 4500.0


def scores(v: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """SSIM on velocities scaled to [-1, 1] over [V_MIN, V_MAX], and MAE [m/s]."""

    def n(x: torch.Tensor) -> torch.Tensor:
        return 2 * (x - V_MIN) / (V_MAX - V_MIN) - 1

    return {"ssim": ssim(n(v), n(truth)), "mae_m_per_s": float((v - truth).abs().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--boundary", choices=("pml", "openfwi"), default="pml")
    ap.add_argument("--sigma", type=float, default=10.0, help="smoothing of the start [cells]")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    survey = up.physics.Survey.openfwi()
    report, panels = {"settings": vars(args) | {"out": str(args.out)}, "models": {}}, []
    for family in FAMILIES:
        truth = torch.as_tensor(generate(family, 1, seed=args.seed)).float()
        observed = up.physics.simulate(truth, survey, boundary=args.boundary)
        start = smooth_velocity(truth, args.sigma)
        t0 = time.perf_counter()
        result = fwi(
            observed,
            survey,
            start,
            boundary=args.boundary,
            iterations=args.iterations,
            bounds=(V_MIN, V_MAX),
        )
        seconds = time.perf_counter() - t0
        inverted = result.velocity.float()
        entry = {
            "start": scores(start, truth),
            "inverted": scores(inverted, truth),
            "misfit_start": float(result.history[0, 0]),
            "misfit_end": float(result.history[-1, 0]),
            "evaluations": result.evaluations,
            "seconds": seconds,
        }
        report["models"][family] = entry
        print(
            f"{family}: SSIM {entry['start']['ssim']:.3f} -> {entry['inverted']['ssim']:.3f}, "
            f"MAE {entry['start']['mae_m_per_s']:.0f} -> {entry['inverted']['mae_m_per_s']:.0f} "
            f"m/s, misfit x{entry['misfit_end'] / entry['misfit_start']:.1e}, "
            f"{result.evaluations} evaluations in {seconds:.0f} s",
            flush=True,
        )
        panels.append((family, truth, start, inverted, result.history[:, 0]))
    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(panels), 4, figsize=(15, 3.4 * len(panels)), squeeze=False)
    for row, (family, truth, start, inverted, history) in enumerate(panels):
        for col, (name, img) in enumerate((("truth", truth), ("start", start), ("FWI", inverted))):
            im = axes[row, col].imshow(img[0, 0], vmin=V_MIN, vmax=V_MAX, cmap="viridis")
            axes[row, col].set_title(f"{family}: {name}")
            axes[row, col].axis("off")
        fig.colorbar(im, ax=axes[row, 2], label="m/s")
        axes[row, 3].semilogy(history.numpy())
        axes[row, 3].set_title("data misfit")
        axes[row, 3].set_xlabel("evaluation")
    fig.tight_layout()
    fig.savefig(args.out / "fwi_example.png", dpi=80)
    atomic_write_json(args.out / "fwi_example.json", report)
    print(f"wrote {args.out / 'fwi_example.json'} and {args.out / 'fwi_example.png'}")


if __name__ == "__main__":
    main()
