"""CPU speed of the networks that run their feature maps in channels-last memory format
(``UNet2D.channels_last``, ``InversionNet.channels_last``, on by default on the CPU) against the
default format, measured in the same run.

Cases (``--cases``):
- ``velocity_sampling``: DDIM sampling of ``--n`` maps with the shipped velocity-space model (the
  main job's default generator);
- ``inversionnet``: training steps (forward, MSE loss, backward) of InversionNet at ``--width`` on
  random gathers of the OpenFWI shape, batch ``--batch``, as the evaluation protocol trains it;
- ``inception``: Inception-v3 pool3 features of ``--batch`` random 299 x 299 images (the Fréchet
  distance's features with Inception weights), random weights.

Each case checks first that both layouts compute the same outputs (max abs difference, normalised
units), then times them interleaved repeat by repeat (a shared machine's slow spells then fall on
both) and reports the best time of each and their ratio. Appends JSON to
``benchmarks/results/channels_last_<device>.json``.

    PYTHONPATH=. python benchmarks/bench_channels_last.py --repeats 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from ubdiff_phys.models.inception import InceptionV3
from ubdiff_phys.models.inversionnet import InversionNet
from ubdiff_phys.pipelines.generator import load_generator, shipped_velocity_checkpoint
from ubdiff_phys.runtime.files import append_json_record, run_record

CASES = ("velocity_sampling", "inversionnet", "inception")


def velocity_sampling(args) -> tuple[Callable[[bool], torch.Tensor], dict]:
    """(run(channels_last) -> maps, settings) of the shipped velocity model's DDIM sampling."""
    gen = load_generator(shipped_velocity_checkpoint(), device="cpu")

    def run(cl: bool, n: int = args.n, steps: int = args.steps) -> torch.Tensor:
        gen.denoiser.net.channels_last = cl
        return gen.sample(n, seed=0, b=0, steps=steps)

    settings = {"checkpoint": str(shipped_velocity_checkpoint()), "n": args.n, "steps": args.steps}
    return run, settings


def inversionnet(args) -> tuple[Callable[[bool], torch.Tensor], dict]:
    """(run(channels_last) -> output, settings) of one InversionNet training step."""
    torch.manual_seed(0)
    net = InversionNet(width=args.width).train()
    s = torch.randn(args.batch, 5, 1000, 70)
    target = torch.rand(args.batch, 1, 70, 70) * 2 - 1

    def run(cl: bool) -> torch.Tensor:
        net.channels_last = cl
        net.zero_grad(set_to_none=True)
        y = net(s)
        torch.nn.functional.mse_loss(y, target).backward()
        return y.detach()

    return run, {"width": args.width, "batch": args.batch}


def inception(args) -> tuple[Callable[[bool], torch.Tensor], dict]:
    """(run(channels_last) -> features, settings) of Inception-v3's pool3 features."""
    torch.manual_seed(0)
    net = InceptionV3().eval()
    x = torch.rand(args.batch, 3, 299, 299) * 2 - 1

    def run(cl: bool) -> torch.Tensor:
        net.channels_last = cl
        with torch.no_grad():
            return net.features(x)

    return run, {"batch": args.batch}


def measure(run: Callable[[bool], torch.Tensor], repeats: int) -> dict:
    """Check that both layouts agree, then time them interleaved."""
    reference = run(False)
    max_diff = float((run(True) - reference).abs().max())
    scale = float(reference.abs().max())
    seconds: dict[str, list[float]] = {"default": [], "channels_last": []}
    for _ in range(repeats):
        for name in seconds:
            t0 = time.perf_counter()
            run(name == "channels_last")
            seconds[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in seconds.items()}
    return {
        "check_max_abs_diff": max_diff,
        "check_max_abs_output": scale,
        "seconds": seconds,
        "best_s": best,
        "speedup_channels_last": best["default"] / best["channels_last"],
    }


CASE_FUNCTIONS = {
    "velocity_sampling": velocity_sampling,
    "inversionnet": inversionnet,
    "inception": inception,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {CASES}")
    ap.add_argument("--n", type=int, default=64, help="velocity_sampling: maps (the main job's)")
    ap.add_argument("--steps", type=int, default=50, help="velocity_sampling: DDIM steps")
    ap.add_argument("--width", type=float, default=1.0, help="inversionnet: channel multiplier")
    ap.add_argument("--batch", type=int, default=32, help="inversionnet, inception: batch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/channels_last_cpu.json")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if any(c not in CASES for c in cases):
        ap.error(f"--cases must name some of {CASES}")
    if min(args.n, args.steps, args.batch, args.repeats) < 1 or args.width <= 0:
        ap.error("--n, --steps, --batch, --repeats must be >= 1 and --width > 0")
    for case in cases:
        run, settings = CASE_FUNCTIONS[case](args)
        result = measure(run, args.repeats)
        best = result["best_s"]
        print(
            f"{case}: default {best['default']:.3f} s, channels-last {best['channels_last']:.3f}"
            f" s: {result['speedup_channels_last']:.2f}x (outputs up to"
            f" {result['check_max_abs_output']:.1e} differ by at most"
            f" {result['check_max_abs_diff']:.1e})"
        )
        record = {
            "benchmark": f"channels_last_{case}",
            "device": "cpu",
            **settings,
            **result,
            **run_record(),
        }
        print(f"appended to {append_json_record(args.out, record)}")


if __name__ == "__main__":
    main()
