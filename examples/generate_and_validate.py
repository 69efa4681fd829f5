"""Main job: generate (velocity, seismic) pairs and check them against the wave equation.

By default (--seismic solver) it samples --n velocity maps with DDIM from the velocity-space
diffusion model shipped in the package (ubdiff_phys/assets/flatvel_a_velocity: FlatVel-A-like
maps with the family's layer structure, see docs/shipped_checkpoint.md) and simulates each one's
gathers with the survey and boundary mode of the training data: exact pairs by construction, which
the check confirms (residual 0) beside its reference points. --seismic decoder (UB-Diff's own
gathers, as published) and --seismic guided (the decoder's with solver guidance) use the UB-Diff
checkpoint shipped beside it (ubdiff_phys/assets/flatvel_a_small), or --checkpoint. Every pair's
seismic is compared with the solver's gathers of its velocity (relative L2, fused native path);
pairs are kept by --threshold or --keep-quantile (default: keep all, report the residuals); it
writes

    DIR/pairs.h5        accepted pairs (dataset store format) + `residual` (physical rel. L2)
    DIR/summary.json    counts, residual distribution, threshold, timings, device, checkpoint
    DIR/figure.png      velocity, generated and simulated gathers, difference, residual histogram
    DIR/residual_vs_step.png   with --trace-steps K: residual of the decoded x0 along denoising

    python examples/generate_and_validate.py [--n 256] [--out out/generate] [--threshold 0.3 |
        --keep-quantile 0.5] [--device cpu|cuda] [--checkpoint DIR] [--seed 0] [--steps 50]
        [--trace-steps 8]

The same validation for any pairs file: `ubdiff-phys validate DIR/pairs.h5`.
"""

from __future__ import annotations

import os

# passive OpenMP waiting, set before torch starts its OpenMP runtime (see ubdiff_phys/__init__.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
from pathlib import Path

import torch

from ubdiff_phys.pipelines import generate_and_validate
from ubdiff_phys.pipelines.seismic_modes import add_guidance_options, guidance_options
from ubdiff_phys.runtime.errors import UserError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="pairs to generate (default 256)")
    p.add_argument("--out", type=Path, default=Path("out/generate"), help="output folder")
    crit = p.add_mutually_exclusive_group()
    crit.add_argument("--threshold", type=float, help="keep pairs with relative L2 <= this")
    crit.add_argument(
        "--keep-quantile", type=float, help="keep this fraction with the lowest residual"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="folder with diffusion.pt + autoencoder.pt, a train-diffusion or "
        "train-velocity-diffusion run folder / checkpoint (default: the shipped velocity model "
        "with --seismic solver, the shipped UB-Diff checkpoint with decoder/guided)",
    )
    p.add_argument("--autoencoder", type=Path, default=None, help="override the autoencoder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument(
        "--batch", type=int, default=None, help="pairs per batch (default 64 on CPU, 512 on CUDA)"
    )
    p.add_argument(
        "--compression",
        choices=("gzip", "lzf", "none"),
        default="gzip",
        help="HDF5 compression of pairs.h5 (lzf/none write faster; default gzip)",
    )
    p.add_argument(
        "--trace-steps",
        type=int,
        default=0,
        help="also decode and validate the predicted x0 at this many sampler steps "
        "(residual_vs_step.png); 0: off",
    )
    p.add_argument("--trace-n", type=int, default=16, help="samples traced (default 16)")
    p.add_argument(
        "--trace-on", choices=("x0", "xt"), default="x0", help="decode x0 (default) or x_t"
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="dataset file made like the training data: report the residual of its held-out real "
        "pairs and of their autoencoder reconstructions (the floor) next to the samples'",
    )
    p.add_argument(
        "--seismic",
        choices=("decoder", "solver", "guided"),
        default="solver",
        help="gathers from the solver, simulated from each generated velocity (exact pairs; "
        "default), the decoder (UB-Diff as published) or the decoder with solver guidance "
        "during sampling",
    )
    add_guidance_options(p)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of an earlier run in --out"
    )
    args = p.parse_args(argv)
    if args.n < 1 or args.steps < 1 or (args.batch is not None and args.batch < 1):
        p.error("--n, --steps and --batch must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        s = run(args)
    except UserError as exc:  # a mistake in the options or inputs: one line, exit 2
        print(f"generate_and_validate: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return report(s, args.out)


def run(args: argparse.Namespace) -> dict:
    """The main job with the command line's options."""
    return generate_and_validate(
        args.out,
        args.n,
        checkpoint=args.checkpoint,
        autoencoder=args.autoencoder,
        threshold=args.threshold,
        keep_quantile=args.keep_quantile,
        device=args.device,
        seed=args.seed,
        steps=args.steps,
        batch=args.batch,
        trace_steps=args.trace_steps,
        trace_max=args.trace_n,
        trace_on=args.trace_on,
        compression=None if args.compression == "none" else args.compression,
        reference_store=args.reference,
        progress=not args.quiet,
        seismic=args.seismic,
        **guidance_options(args),
        overwrite=args.overwrite,
    )


def report(s: dict, out: Path) -> int:
    """Print the job's summary lines; 0."""
    r = s["residual"]["all"]
    t = s["timings_s"]
    print(
        f"{s['n_generated']} pairs generated and validated on {s['device']} in "
        f"{t['generate_and_validate']:.1f} s ({s['pairs_per_s']:.1f} pairs/s; sample "
        f"{t['sample']:.1f} s, decode {t['decode']:.1f} s, validate {t['validate']:.1f} s), "
        f"written in {t['write']:.1f} s; total {t['total']:.1f} s"
    )
    print(
        f"relative L2 (physical): min {r['min']:.3f}, median {r['median']:.3f}, "
        f"p95 {r['p95']:.3f}, max {r['max']:.3f}"
    )
    crit_s = json.dumps(s["criterion"])
    print(f"kept {s['n_accepted']} of {s['n_generated']} ({crit_s}) -> {s['outputs']['pairs']}")
    if s["trace"]:
        med = ", ".join(f"{row['step']}:{row['median']:.3f}" for row in s["trace"]["rows"])
        print(f"median residual of decoded x0 by DDIM step: {med}")
    if s["reference"]:
        ref = s["reference"]
        print(
            f"reference ({ref['n']} held-out pairs): real median {ref['real']['median']:.3g}, "
            f"autoencoder reconstruction median {ref['autoencoder']['median']:.3f} (the floor)"
        )
    if s["baselines"]:
        b = s["baselines"]
        print(
            f"reference points ({b['n_pairs']} pairs, {s['seismic']['seismic']} seismic): own "
            f"{b['own']:.3g}, shuffled {b['shuffled']:.3g}, direct wave {b['direct_wave']:.3g}; "
            f"diversity {b['diversity']:.3g} (solver {b['solver_diversity']:.3g})"
        )
        print(f"verdict: {b['verdict']}")
    if s.get("velocity_structure"):
        st = s["velocity_structure"]
        print(
            f"velocity structure ({st['n']:.0f} maps): {st['share_flatvel_like']:.2f} pass all "
            f"three FlatVel-A tests (constant rows {st['share_row_std']:.2f}, non-decreasing "
            f"{st['share_max_decrease']:.2f}, sharp jumps {st['share_jump_share']:.2f}; family: 1)"
        )
    print(f"wrote {out / 'summary.json'}, {out / 'figure.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
