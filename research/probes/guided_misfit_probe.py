"""Probe: which pair misfit should the guided mode descend?

The guided mode (``ubdiff_phys.pipelines.seismic_modes``) steps the predicted clean co-latent
along the gradient of the pair misfit in *normalised* seismic units (the OpenFWI log transform),
but ``validate`` and the issue's goal score the *physical* relative L2, which the direct wave
dominates. This probe samples the same co-latents (same seed, batches and sampler) under guides
that differ only in the misfit they descend, and scores every set as ``validate`` does: the
median physical residual of the pairs, and the baselines (shuffled, direct wave, diversity).

Variants (``--variants``, comma separated, each ``misfit:scale:steps``):
``none`` (the decoder mode), ``normalised:0.05:10`` (the shipped default),
``physical:0.05:10`` (relative L2 of the denormalised gathers against the solver's); a suffix
``+fitK:misfit`` then runs K L-BFGS iterations on each final co-latent on that misfit
(``ubdiff_phys.inversion.posterior.fit_latents``).

    PYTHONPATH=. python research/probes/guided_misfit_probe.py --n 32 \
        --variants none,normalised:0.05:10,physical:0.05:10 \
        --out benchmarks/results/guided_misfit_probe.json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from ubdiff_phys.inversion.posterior import fit_latents
from ubdiff_phys.ops.reference.acoustic import openfwi_normalise
from ubdiff_phys.physics import simulate
from ubdiff_phys.physics.baselines import baselines
from ubdiff_phys.pipelines.generator import load_generator
from ubdiff_phys.pipelines.seismic_modes import _decode_differentiable
from ubdiff_phys.runtime.files import atomic_write_json, run_record


def _seismic_physical(s_n: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Differentiable inverse of the OpenFWI normalisation (clamped to [-1, 1] first)."""
    y = (s_n.clamp(-1, 1) + 1) * (0.5 * (hi - lo)) + lo
    return torch.sign(y) * torch.expm1(y.abs())


def misfit_of(gen, z: torch.Tensor, kind: str) -> torch.Tensor:
    """(B,) pair misfit of co-latents z: "normalised" RMS or "physical" relative L2."""
    v, s_n = _decode_differentiable(gen, z)
    sim = simulate(v, gen.survey, boundary=gen.boundary)
    lo, hi = gen.normalizer.s_log_min, gen.normalizer.s_log_max
    if kind == "normalised":
        return (s_n - openfwi_normalise(sim, lo, hi)).square().mean(dim=(1, 2, 3)).sqrt()
    if kind == "physical":
        s = _seismic_physical(s_n, lo, hi)
        num = (s - sim).square().sum(dim=(1, 2, 3)).sqrt()
        return num / sim.square().sum(dim=(1, 2, 3)).sqrt().clamp(min=1e-30)
    raise ValueError(f"unknown misfit {kind!r}")


def make_guide(gen, kind: str, scale: float, steps: int, total: int, log: list):
    first = max(total - steps, 0)

    def guide(x0: torch.Tensor, i: int, t: int) -> torch.Tensor:
        if i < first:
            return x0
        shape = x0.shape
        with torch.enable_grad():
            z = x0.detach().reshape(shape[0], -1).float().requires_grad_()
            m = misfit_of(gen, z, kind)
            (grad,) = torch.autograd.grad(m.sum(), z)
        log.append((i, float(m.detach().median())))
        rms = grad.square().mean(dim=1, keepdim=True).sqrt().clamp(min=1e-30)
        return (x0 - (scale * grad / rms).reshape(shape).to(x0.dtype)).clamp(-1, 1)

    return guide


def run_variant(gen, spec: str, n: int, batch: int, seed: int, sample_steps: int) -> dict:
    spec_guide, _, spec_fit = spec.partition("+fit")
    fit_iter, fit_kind = 0, "physical"
    if spec_fit:
        fit_iter, fit_kind = int(spec_fit.split(":")[0]), spec_fit.split(":")[1]
    parts = spec_guide.split(":")
    kind = parts[0]
    scale = float(parts[1]) if len(parts) > 1 else 0.0
    gsteps = int(parts[2]) if len(parts) > 2 else 0
    t0 = time.perf_counter()
    vs, ss, log = [], [], []
    for b in range(n // batch):
        kw: dict[str, Any] = {}
        if kind != "none":
            kw["guide"] = make_guide(gen, kind, scale, gsteps, sample_steps, log)
        z = gen.sample(batch, seed=seed, b=b, steps=sample_steps, **kw)
        if fit_iter:
            z = fit_latents(lambda x: misfit_of(gen, x, fit_kind), z.float(), fit_iter)
        v, s = gen.decode(z)
        vs.append(v)
        ss.append(s)
    seconds = time.perf_counter() - t0
    v, s = torch.cat(vs), torch.cat(ss)
    res = gen.residual(v, s)
    base = baselines(v, s, gen.survey, boundary=gen.boundary)
    return {
        "variant": spec,
        "misfit": kind,
        "scale": scale,
        "guidance_steps": gsteps,
        "fit_iterations": fit_iter,
        "fit_misfit": fit_kind if fit_iter else None,
        "median_residual": float(res.rel_l2.median()),
        "median_residual_normalised": float(res.rel_l2_normalized.median()),
        "baselines": base.to_dict(),
        "seconds": seconds,
        "guide_log_last": log[-(gsteps or 1) :] if log else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--variants", default="none,normalised:0.05:10,physical:0.05:10")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = load_generator(args.checkpoint)
    rows = []
    for spec in args.variants.split(","):
        r = run_variant(gen, spec, args.n, args.batch, args.seed, args.steps)
        rows.append(r)
        b = r["baselines"]
        print(
            f"{spec:24s} residual {r['median_residual']:.3f} (normalised "
            f"{r['median_residual_normalised']:.3f}) shuffled {b['shuffled']:.3f} direct "
            f"{b['direct_wave']:.3f} diversity {b['diversity']:.3f} ({b['solver_diversity']:.3f}) "
            f"{r['seconds']:.1f} s",
            flush=True,
        )
    if args.out:
        rec = {"settings": vars(args)} | run_record() | {"rows": rows}
        atomic_write_json(args.out, rec)


if __name__ == "__main__":
    main()
