"""What the main job reports beside the residuals: the reference points of the residual (own,
shuffled, direct wave, gather diversity, a verdict) and, for a FlatVel-A-like generator, the layer
structure of its velocity maps (:func:`ubdiff_phys.eval.layer_structure`)."""

from __future__ import annotations

import time
from typing import Any

import torch

from ubdiff_phys.eval import layer_structure
from ubdiff_phys.physics.baselines import baselines, verdict
from ubdiff_phys.pipelines.generator import Generator, VelocityGenerator
from ubdiff_phys.pipelines.seismic_modes import decode_pairs

__all__ = ["reference_points", "velocity_structure"]

#: the families whose structure tests :func:`velocity_structure` runs
STRUCTURED_FAMILIES = ("flatvel-a",)


def reference_points(gen: Generator, z: torch.Tensor, seismic: str, timings: dict[str, float]):
    """The residual's reference points on the first batch's pairs (at most 32): medians of the
    own residual, the shuffled and direct-wave baselines, gather diversity next to the solver's,
    a plain-words verdict and the direct-wave baseline as a data-derived threshold (or None)."""
    if len(z) < 2:
        return None
    t0 = time.perf_counter()
    v, s = decode_pairs(gen, z, seismic)
    b = baselines(v, s, gen.survey, boundary=gen.boundary)
    timings["baselines"] = time.perf_counter() - t0
    return {
        "n_pairs": len(z),
        **b.to_dict(),
        "verdict": verdict(b),
        "suggested_threshold": b.direct_wave,
        "meaning": "medians of relative L2: 'own' is each gather against its own velocity, "
        "'shuffled' against another sample's velocity, 'direct_wave' a homogeneous model at the "
        "top-layer velocity against the map's own gathers; diversity: median relative L2 "
        "between the gathers of distinct samples (the solver's for the same velocities beside)",
    }


@torch.no_grad()
def velocity_structure(
    gen: Generator | VelocityGenerator, latents: list[torch.Tensor]
) -> dict[str, Any] | None:
    """The layer-structure summary (:meth:`~ubdiff_phys.eval.structure.LayerStructure.summary`)
    of all the job's velocity maps (decoded again from ``latents``, one tensor per batch) when
    the generator's training family is FlatVel-A-like; else None."""
    if gen.store_attrs.get("family") not in STRUCTURED_FAMILIES:
        return None
    v = torch.cat([gen.decode(z)[0].cpu() for z in latents])
    return {
        **layer_structure(v).summary(),
        "meaning": "shares of maps with constant rows (mean within-row sd <= 20 m/s), a row-mean "
        "profile that never decreases by > 20 m/s with depth, and >= 80 % of its top-to-bottom "
        "increase in single-row jumps > 50 m/s; every FlatVel-A map passes all three "
        "(share_flatvel_like = 1)",
    }
