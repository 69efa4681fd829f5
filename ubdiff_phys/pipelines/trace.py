"""The physics residual along the reverse diffusion.

Through the sampler's ``callback`` (``{"i", "t", "x", "x0"}`` after every step), the prediction of
the clean co-latent x0 (or the current state x_t with ``on="xt"``) of the first ``m`` samples of a
batch is decoded at evenly spaced sampler steps (the last one included) and validated, during the
real sampling (no extra sampling).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ubdiff_phys.pipelines.generator import Generator

__all__ = ["Tracer", "residual_trace", "trace_indices"]


def trace_indices(steps: int, k: int) -> list[int]:
    """k sampler-step indices in [0, steps-1], evenly spaced, the last step included."""
    k = max(1, min(k, steps))
    return sorted({int(round(x)) for x in np.linspace(0, steps - 1, k)})


class Tracer:
    """Sampler callback: decode x0 (or x_t) of the first ``m`` samples at chosen steps and
    validate them."""

    def __init__(self, gen: Generator, indices: list[int], m: int, on: str):
        if on not in ("x0", "xt"):
            raise ValueError(f"trace_on must be 'x0' or 'xt', got {on!r}")
        self.gen, self.indices, self.m, self.on = gen, set(indices), m, on
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0

    def __call__(self, state: dict[str, Any]) -> None:
        if state["i"] not in self.indices:
            return
        t0 = time.perf_counter()
        lat = state["x0"] if self.on == "x0" else state["x"]
        z = lat[: self.m].reshape(min(self.m, lat.shape[0]), -1).float().clamp(-1, 1)
        v, s = self.gen.decode(z)
        r = self.gen.residual(v, s)
        rel = r.rel_l2.double().cpu().numpy()
        self.rows.append(
            {
                "step": int(state["i"]) + 1,
                "t": int(state["t"]),
                "median": float(np.median(rel)),
                "p25": float(np.quantile(rel, 0.25)),
                "p75": float(np.quantile(rel, 0.75)),
                "rel_l2": rel.tolist(),
            }
        )
        self.seconds += time.perf_counter() - t0


def residual_trace(
    gen: Generator,
    n: int,
    *,
    steps: int = 50,
    trace_steps: int = 8,
    seed: int = 0,
    on: str = "x0",
) -> dict[str, Any]:
    """Residual of the decoded ``on`` ("x0": predicted clean latent, "xt": current state) of
    ``n`` DDIM samples (batch 0 of :func:`generate_and_validate` with batch >= n) at
    ``trace_steps`` sampler steps (standalone; :func:`generate_and_validate` traces its own batch
    0 instead of sampling again). Returns {"on", "n", "steps", "rows": [{step, t, median, p25,
    p75, rel_l2}]}; the last row is the final sample."""
    idx = trace_indices(steps, trace_steps)
    tracer = Tracer(gen, idx, n, on)
    gen.sample(n, seed=seed, b=0, sampler="ddim", steps=steps, callback=tracer)
    return {"on": on, "n": n, "steps": steps, "rows": tracer.rows}
