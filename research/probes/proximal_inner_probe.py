"""Probe: the proximal posterior step's inner solve on its own, on a real-size map, unbounded
(the state moves freely and the velocity is clamped to its range) against bounded (x0 = tanh(w)).

One proximal step  argmin ‖F(v(x0)) − d‖²/(2σ²) + ‖x0 − x̂0‖²/(2ρ²)  for several ρ and
inner-iteration counts, from x̂0 = the normalised truth smoothed with σ = ``--smooth`` cells (a
clean estimate that holds the long wavelengths, as the denoiser's does late in the reverse
diffusion) or, ``--start family``, another map of the family (a sharp prior draw with the wrong
layers, as early in the reverse diffusion), on the first FlatVel-A map of
examples/posterior_inversion.py at 1 % noise (its map and noise seeds). No prior checkpoint is
needed. Reports the solution's SSIM, MAE, misfit over the noise level, the share of state values
outside [−1, 1] and the largest change of one value.

    PYTHONPATH=. python research/probes/proximal_inner_probe.py \
        --results benchmarks/results/proximal_inner_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from posterior_inversion import score  # noqa: E402

from ubdiff_phys.data.families import generate  # noqa: E402
from ubdiff_phys.diffusion.posterior import _proximal_step  # noqa: E402
from ubdiff_phys.inversion.fwi import smooth_velocity  # noqa: E402
from ubdiff_phys.inversion.likelihood import StateMisfits
from ubdiff_phys.inversion.posterior import modelling_survey  # noqa: E402
from ubdiff_phys.inversion.posterior_cli import add_noise  # noqa: E402
from ubdiff_phys.physics import Survey, simulate  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, run_record  # noqa: E402
from ubdiff_phys.runtime.lbfgs import batched_lbfgs  # noqa: E402

LO, HI = 1500.0, 4500.0


class _Box:
    """The normalised-velocity state of a velocity-space prior: x in [-1, 1] <-> [LO, HI] m/s."""

    @staticmethod
    def velocity(x: torch.Tensor) -> torch.Tensor:
        return (x.float().clamp(-1, 1) + 1) * (0.5 * (HI - LO)) + LO


def bounded_step(x_hat, misfit, var_y: float, rho: float, inner: int) -> torch.Tensor:
    """The proximal step's minimiser in the bounded parametrisation x0 = tanh(w) (from x̂0
    clamped inside (−1, 1)): no iterate leaves the range and the gradient never dies at a
    clamp."""

    def objective(w: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(w)
        return misfit(x) / var_y + 0.5 * ((x - x_hat) / rho).flatten(1).square().sum(1)

    w, _ = batched_lbfgs(objective, torch.atanh(x_hat.clamp(-1 + 1e-6, 1 - 1e-6)), inner)
    return torch.tanh(w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rhos", default="0.3,0.1,0.03")
    ap.add_argument("--inners", default="5,20")
    ap.add_argument("--start", default="smooth", choices=("smooth", "family"))
    ap.add_argument("--smooth", type=float, default=10.0)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--map", type=int, default=0)
    ap.add_argument("--results", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    survey, boundary = Survey.openfwi(), "pml"
    msurvey = modelling_survey(survey, boundary, HI)
    truth = torch.as_tensor(generate("flatvel-a", 3, seed=args.seed)).float()[args.map]
    truth = truth.reshape(1, 1, survey.nz, survey.nx)
    clean = simulate(truth, survey, boundary=boundary).float()[0]
    obs, sigma = add_noise(clean, args.noise, seed=args.seed * 1_000_003 + args.map)
    misfits = StateMisfits(_Box(), msurvey, boundary)
    misfit = misfits.against(obs[None].double())
    noise_misfit = 0.5 * sigma**2 * obs.numel()
    if args.start == "smooth":
        start = smooth_velocity(truth.double(), args.smooth)
    else:  # another map of the family: a sharp prior draw with the wrong layers
        other = generate("flatvel-a", 1, seed=args.seed + 1 + args.map)
        start = torch.as_tensor(other).double().reshape(truth.shape)
    x_hat = 2 * (start - LO) / (HI - LO) - 1
    rows = [{"what": "start", **score(start.float(), truth, LO, HI)}]
    print(json.dumps(rows[0]), flush=True)
    for rho in (float(r) for r in args.rhos.split(",")):
        for inner in (int(k) for k in args.inners.split(",")):
            for clip in (None, 1.0):
                t0 = time.perf_counter()
                if clip is None:
                    x0, r = _proximal_step(x_hat, misfit, sigma**2, rho**2, inner, None, True)
                else:
                    x0 = bounded_step(x_hat, misfit, sigma**2, rho, inner)
                    r = misfit(x0).detach()
                v = _Box.velocity(x0)
                row = {"rho": rho, "inner": inner, "bounded": clip is not None}
                row |= score(v, truth, LO, HI)
                row |= {
                    "misfit_over_noise": float(r[0]) / noise_misfit,
                    "outside_share": float((x0.abs() > 1).double().mean()),
                    "max_change": float((x0 - x_hat).abs().max()),
                    "seconds": time.perf_counter() - t0,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.results is not None:
        record = {"what": __doc__.split("\n\n")[0], "rows": rows}
        record["settings"] = {k: str(v) for k, v in vars(args).items()}
        append_json_record(args.results, record | run_record())


if __name__ == "__main__":
    main()
