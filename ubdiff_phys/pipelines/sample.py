"""``ubdiff-phys sample``: generated (velocity, seismic) pairs written as a dataset store.

``generate_store(run_dir, "out.h5", n=1000)`` draws z0 with a sampler, decodes with the
autoencoder the diffusion model was trained on (:class:`~.generator.Generator`: heads -> decoders
-> normalised -> physical units with the training store's
:class:`~ubdiff_phys.data.Normalizer`; decoder outputs are clamped to the normalised range
[-1, 1] first) and writes the store format of :mod:`ubdiff_phys.data.store`: ``velocity``
(N, 1, 70, 70) m/s, ``seismic`` (N, S, nt, R), ``paired_index`` = every row, ``train_index`` =
every row, empty ``test_index``, and the survey / boundary / normalisation / family attributes of
the training store (``source`` = "ubdiff_phys.sample").

Batch ``b`` uses its own generator seeded by (seed, b), so the output depends only on (checkpoint,
seed, n, batch, sampler, steps) and an interrupted run resumes at the first uncommitted batch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ubdiff_phys.data.store import StoreWriter, create_store
from ubdiff_phys.diffusion.samplers import SAMPLERS
from ubdiff_phys.pipelines.generator import Generator, VelocityGenerator, load_generator
from ubdiff_phys.pipelines.seismic_modes import (
    DEFAULT_GUIDANCE_GRADIENT,
    DEFAULT_GUIDANCE_NOISE,
    DEFAULT_GUIDANCE_REFINE_EVERY,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_GUIDANCE_SHOTS,
    DEFAULT_GUIDANCE_STEPS,
    SEISMIC_MODES,
    check_mode_for,
    checked_guidance,
    generate_pairs,
)
from ubdiff_phys.runtime.progress import commit_batches

__all__ = ["generate_store"]


#: guided-mode options added after stores were first written, with the value that reproduces
#: what a store written before each of them did (an interrupted run of such a store resumes)
_GUIDANCE_ADDED_LATER = {
    "guidance_shots": None,
    "guidance_noise": "recompute",
    "guidance_gradient": "full",
    "guidance_refine_every": 1,
}


def _same_job(recorded: Any, build_args: dict[str, Any]) -> bool:
    """Whether a store's recorded ``build_args`` are those of this job, reading a guided store
    written before an option existed as made with that option's then behaviour."""
    if not isinstance(recorded, dict):
        return False
    if recorded.get("seismic") == "guided":
        recorded = {**_GUIDANCE_ADDED_LATER, **recorded}
    return recorded == build_args


def _prepare_store(
    gen: Generator | VelocityGenerator,
    out: Path,
    n: int,
    build_args: dict[str, Any],
    overwrite: bool = False,
) -> None:
    """Create ``out`` unless it is a store of this very job (then it resumes). Anything else at
    ``out`` (another dataset, another job's output, a file that is no store) is refused unless
    ``overwrite``: a user's dataset is never replaced silently."""
    if out.exists():
        try:
            with StoreWriter(out) as w:
                if _same_job(w.attr("build_args"), build_args):
                    return
        except Exception:  # not a store at all: refuse below like any other file
            pass
        if not overwrite:
            raise FileExistsError(
                f"{str(out)!r} exists and is not an interrupted run of this same sample command; "
                "choose another output or pass --overwrite to replace it"
            )
    attrs = gen.store_attrs
    grid = (70, 70)
    if attrs.get("survey"):
        grid = (attrs["survey"]["nz"], attrs["survey"]["nx"])
    rows = np.arange(n)
    create_store(
        out,
        n_rows=n,
        grid=grid,
        seismic_shape=gen.seismic_shape,
        paired_index=rows,
        train_index=rows,
        test_index=np.zeros(0, dtype=np.int64),
        attrs={
            **attrs,
            "source": "ubdiff_phys.sample",
            "generated": True,
            "seismic_mode": build_args["seismic"],
            "build_args": build_args,
        },
    )


def generate_store(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    n: int,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    seed: int = 0,
    device: Any = "cpu",
    batch: int = 64,
    weights: str = "model",
    autoencoder: str | os.PathLike | None = None,
    progress: bool = True,
    eta: float = 0.0,
    seismic: str = "solver",
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    guidance_steps: int = DEFAULT_GUIDANCE_STEPS,
    guidance_shots: int | None = DEFAULT_GUIDANCE_SHOTS,
    guidance_noise: str = DEFAULT_GUIDANCE_NOISE,
    guidance_gradient: str = DEFAULT_GUIDANCE_GRADIENT,
    guidance_refine_every: int = DEFAULT_GUIDANCE_REFINE_EVERY,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``n`` generated pairs to the store ``out`` (resumable); returns a summary with
    pairs/s. ``autoencoder`` overrides the checkpoint recorded in the run's config (its sha256
    must match the one the latents were encoded with). ``seismic``: "solver" (default: the
    gathers simulated from each generated velocity), "decoder" (UB-Diff's own gathers) or
    "guided" (:mod:`.seismic_modes`; recorded in the file's ``seismic_mode`` attribute;
    ``guidance_shots``: shots simulated per guided step, None = all; ``guidance_noise``: how the
    sampler carries the correction; ``guidance_gradient``: what the misfit's gradient passes
    through; ``guidance_refine_every``: how often its refinement correction is recomputed)."""
    if n < 1 or batch < 1:
        raise ValueError("n and batch must be >= 1")
    if seismic not in SEISMIC_MODES:
        raise ValueError(f"seismic must be one of {SEISMIC_MODES}, got {seismic!r}")
    values = (guidance_scale, guidance_steps, guidance_shots, guidance_noise, guidance_gradient)
    guidance = checked_guidance(*values, guidance_refine_every)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    gen = load_generator(
        checkpoint, device, autoencoder=autoencoder, weights=weights, require_survey=False
    )
    check_mode_for(gen, seismic)
    build_args = {
        "checkpoint_step": gen.info["diffusion_step"],
        "autoencoder_sha256": gen.info.get("autoencoder_sha256"),
        "n": n,
        "sampler": sampler,
        "steps": steps,
        "seed": seed,
        "batch": batch,
        "weights": weights,
        "eta": eta,
        "seismic": seismic,
        **(guidance if seismic == "guided" else {}),
    }  # fmt: skip
    out = Path(out)
    _prepare_store(gen, out, n, build_args, overwrite)
    kwargs = {"eta": eta} if sampler == "ddim" else {}
    t0 = time.perf_counter()
    with StoreWriter(out) as w:

        def pairs(a: int, b: int) -> None:
            v, s, _ = generate_pairs(
                gen, b - a, seed=seed, b=a // batch, seismic=seismic, sampler=sampler,
                steps=steps, **guidance, **kwargs,
            )  # fmt: skip
            v, s = v.cpu().numpy(), s.cpu().numpy()
            if w.progress.n_velocity_committed == a:
                w.write_velocity(a, v)
            w.write_seismic(a, s)

        # velocity is committed before seismic: restart at the first batch without gathers
        done, _ = commit_batches(
            w.progress.n_seismic_committed,
            n,
            batch,
            pairs,
            desc="sampling",
            unit="it",
            progress=progress,
            leave=False,
        )
        w.finalize()
    dt = time.perf_counter() - t0
    return {
        "out": str(out),
        "n": n,
        "generated": done,
        "seconds": dt,
        "pairs_per_s": done / dt if dt > 0 and done else None,
    }
