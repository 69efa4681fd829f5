"""Generate (velocity, seismic) pairs with a trained UB-Diff checkpoint and keep the physical ones.

The main job (``python examples/generate_and_validate.py``) is :func:`generate_and_validate`:

1. sample ``n`` co-latents with DDIM (``steps`` network evaluations, eta = 0) in batches; batch
   ``b`` draws its noise from a generator seeded by ``seed * 1_000_003 + b`` (the convention of
   ``ubdiff-phys sample``), so the output depends only on (checkpoint, seed, n, batch, steps);
2. decode them with the autoencoder the diffusion model was trained on (outputs clamped to
   [-1, 1], then physical units with the training store's normaliser) on ``device``;
3. validate every pair with :func:`ubdiff_phys.physics.residual` (fused native path: the simulated
   gathers are never materialised; on a GPU nothing is copied to the host) using the survey,
   boundary mode and normaliser recorded with the training data;
4. keep pairs by ``threshold`` or ``keep_quantile`` on the physical relative L2 (neither: keep all);
5. write ``pairs.h5`` (store format of :mod:`ubdiff_phys.data.store`, accepted pairs only, plus a
   ``residual`` dataset (n_accepted,) float64 with each accepted pair's physical relative L2, a
   ``residual_normalized`` dataset and ``sample_index``: each pair's index among the ``n``
   samples), ``summary.json`` and ``figure.png``.

Only the latents and the residuals of all ``n`` samples are kept in memory: the accepted pairs are
decoded again batch by batch (same batches, same device, so the same numbers) when the store is
written, so memory is bounded by the batch whatever ``n`` is.

Residual along the reverse diffusion (``trace_steps > 0``): through the sampler's ``callback``
(``{"i", "t", "x", "x0"}`` after every step), the prediction of the clean co-latent x0 (or the
current state x_t with ``trace_on="xt"``) of the first ``trace_max`` samples of batch 0 is decoded
at ``trace_steps`` evenly spaced sampler steps (the last one included) and validated, during the
real sampling (no extra sampling); the median and quartiles per step go to ``summary.json`` and
``residual_vs_step.png``. The last traced step is the final sample itself.

Checkpoints (``checkpoint``): see :mod:`ubdiff_phys.pipelines.generator`. The job is split into
pass 1 (:func:`sample_and_validate`), the write through the store API (:func:`write_pairs`), the
figures (:mod:`.figures`) and the summary (:func:`job_summary`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ubdiff_phys._native import build_info
from ubdiff_phys.data import open_store
from ubdiff_phys.data.store import StoreWriter, create_store
from ubdiff_phys.physics.residual import check_keep_criterion, keep_mask
from ubdiff_phys.pipelines.figures import plot_pair, plot_trace
from ubdiff_phys.pipelines.generator import Generator
from ubdiff_phys.pipelines.job_checks import (
    check_job_outputs,
    check_job_sizes,
    load_job_generator,
)
from ubdiff_phys.pipelines.job_report import reference_points, velocity_structure
from ubdiff_phys.pipelines.seismic_modes import (
    DEFAULT_GUIDANCE_GRADIENT,
    DEFAULT_GUIDANCE_NOISE,
    DEFAULT_GUIDANCE_REFINE_EVERY,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_GUIDANCE_SHOTS,
    DEFAULT_GUIDANCE_STEPS,
    GUIDANCE_KEYS,
    decode_pairs,
    mode_options,
    sample_for_mode,
)
from ubdiff_phys.pipelines.trace import Tracer, trace_indices
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.files import atomic_write_json
from ubdiff_phys.runtime.stats import distribution

__all__ = [
    "FirstPass",
    "generate_and_validate",
    "job_summary",
    "reference_residuals",
    "sample_and_validate",
    "write_pairs",
]


@torch.no_grad()
def reference_residuals(
    gen: Generator, store: str | os.PathLike, *, n: int = 64, batch: int = 16
) -> dict[str, Any]:
    """What a generator is measured against (specs/ubdiff.md §5), on up to ``n`` held-out pairs
    of ``store`` (its ``test_index`` rows that have gathers):

    - ``real``: the residual of the real pairs (0 by construction when ``store`` was simulated
      with the generator's survey/boundary);
    - ``autoencoder``: the residual of the autoencoder's reconstruction of those pairs (encode the
      real velocity, decode velocity + seismic): the floor a generator with this decoder can reach.

    Returns {"n", "real": distribution, "autoencoder": distribution, "*_values": lists}."""
    with open_store(store) as st:
        rows = [int(r) for r in st.test_index if st.seismic_row[int(r)] >= 0][:n]
        real, ae = [], []
        for a in range(0, len(rows), batch):
            chunk = rows[a : a + batch]
            v = torch.from_numpy(np.stack([st.velocity(r) for r in chunk])).to(gen.device)
            s = torch.from_numpy(np.stack([st.seismic_of(r) for r in chunk])).to(gen.device)
            real.append(gen.residual(v, s).rel_l2.double().cpu())
            p = next(gen.autoencoder.parameters())
            z = gen.autoencoder.encode(gen.normalizer.velocity(v.double()).to(p.dtype))
            rv, rs = gen.decode(z)
            ae.append(gen.residual(rv, rs).rel_l2.double().cpu())
    real_np = torch.cat(real).numpy() if real else np.zeros(0)
    ae_np = torch.cat(ae).numpy() if ae else np.zeros(0)
    return {
        "n": len(rows),
        "store": str(store),
        "real": distribution(real_np),
        "autoencoder": distribution(ae_np),
        "real_values": real_np.tolist(),
        "autoencoder_values": ae_np.tolist(),
    }


@dataclass
class FirstPass:
    """What pass 1 keeps of all ``n`` samples: their latents (per batch) and residuals."""

    latents: list[torch.Tensor]
    rel: np.ndarray
    rel_normalized: np.ndarray
    timings: dict[str, float]


def _sync(gen: Generator) -> None:
    if gen.device.type == "cuda":
        torch.cuda.synchronize(gen.device)


def sample_and_validate(
    gen: Generator,
    n: int,
    batch: int,
    steps: int,
    seed: int,
    tracer,
    progress: bool,
    mode: dict[str, Any] | None = None,
) -> FirstPass:
    """Pass 1: sample, decode and validate every batch; keep only latents and residuals. The
    trace (if any) rides on batch 0 through the sampler's callback."""
    latents, rel, rel_n = [], [], []
    t_sample = t_decode = t_validate = 0.0
    bar = tqdm(total=n, desc="generate+validate", unit="pair", disable=not progress)
    for b in range((n + batch - 1) // batch):
        m = min(batch, n - b * batch)
        t0 = time.perf_counter()
        callback = tracer if b == 0 else None
        mode = mode or {"seismic": "decoder"}
        z, _ = sample_for_mode(
            gen, m, seed=seed, b=b, sampler="ddim", steps=steps, callback=callback, **mode
        )
        _sync(gen)
        t1 = time.perf_counter()
        if b == 0 and tracer is not None:
            t0 += tracer.seconds  # the trace's decode + validation is timed apart
        v, s = decode_pairs(gen, z, mode["seismic"])
        _sync(gen)
        t2 = time.perf_counter()
        r = gen.residual(v, s)
        rel.append(r.rel_l2.double())
        rel_n.append(r.rel_l2_normalized.double())
        _sync(gen)
        t3 = time.perf_counter()
        latents.append(z)
        t_sample, t_decode, t_validate = (
            t_sample + t1 - t0,
            t_decode + t2 - t1,
            t_validate + t3 - t2,
        )
        bar.update(m)
    bar.close()
    timings = {"sample": t_sample, "decode": t_decode, "validate": t_validate}
    timings["generate_and_validate"] = t_sample + t_decode + t_validate
    return FirstPass(latents, torch.cat(rel).cpu().numpy(), torch.cat(rel_n).cpu().numpy(), timings)


def write_pairs(
    gen: Generator,
    path: Path,
    first: FirstPass,
    keep: np.ndarray,
    batch: int,
    build_args: dict[str, Any],
    compression: str | None,
    progress: bool,
):
    """Pass 2: decode the accepted pairs again (same batches, same device, so the same numbers)
    and write them, with their residuals and sample indices, through the store API. Returns the
    first accepted pair (velocity, seismic, residual) for the figure, or None. The store is built
    as ``<path>.partial`` and renamed over ``path`` only when complete, so a job killed while
    writing leaves any previous ``path`` as it was."""
    accepted = np.flatnonzero(keep)
    n_acc = int(accepted.size)
    survey = gen.survey
    final, path = path, path.with_name(path.name + ".partial")  # renamed into place when complete
    path.unlink(missing_ok=True)
    rows = np.arange(n_acc)
    attrs = {
        **gen.store_attrs,
        "source": "ubdiff_phys.validate.generate_and_validate",
        "generated": True,
        "seismic_mode": build_args.get("seismic", "decoder"),
        "build_args": build_args,
    }
    create_store(
        path,
        n_rows=n_acc,
        grid=(survey.nz, survey.nx),
        seismic_shape=(survey.n_sources, survey.nt, survey.n_receivers),
        paired_index=rows,
        train_index=rows,
        test_index=np.zeros(0, dtype=np.int64),
        attrs=attrs,
        compression=compression,
    )
    example = None
    with StoreWriter(path) as w:
        bar = tqdm(total=n_acc, desc="write", unit="pair", disable=not progress or n_acc == 0)
        done = 0
        for b, z in enumerate(first.latents):
            sel = np.flatnonzero(keep[b * batch : b * batch + len(z)])
            if sel.size == 0:
                continue
            v, s = decode_pairs(gen, z, build_args.get("seismic", "decoder"))
            sel_t = torch.from_numpy(sel).to(v.device)
            v, s = v.index_select(0, sel_t).cpu(), s.index_select(0, sel_t).cpu()
            if example is None:
                example = (v[:1].clone(), s[:1].clone(), float(first.rel[b * batch + sel[0]]))
            w.write_velocity(done, v.numpy())
            w.write_seismic(done, s.numpy())
            done += len(sel)
            bar.update(len(sel))
        bar.close()
        w.finalize()
        w.add_dataset(
            "residual",
            first.rel[accepted].astype(np.float64),
            description="relative L2 ||s - F(v)|| / ||F(v)|| in physical units",
        )
        w.add_dataset("residual_normalized", first.rel_normalized[accepted].astype(np.float64))
        w.add_dataset("sample_index", accepted.astype(np.int64))
    os.replace(path, final)
    return example


def _finish_trace(tracer, trace_on: str, steps: int, out: Path, timings: dict[str, float]):
    """The trace's summary entry (None without a tracer), plotted to residual_vs_step.png."""
    if tracer is None:
        return None
    t0 = time.perf_counter()
    trace = {"on": trace_on, "n": tracer.m, "steps": steps, "rows": tracer.rows}
    plot_trace(trace, out / "residual_vs_step.png")
    timings["trace"] = tracer.seconds + time.perf_counter() - t0
    return trace


def _figure(gen, first, batch, example, used, reference, path: Path, seismic: str) -> None:
    rel = first.rel
    if example is None:  # nothing accepted: show the best rejected sample
        i = int(np.argmin(rel))
        b, j = divmod(i, batch)
        v, s = decode_pairs(gen, first.latents[b][j : j + 1], seismic)
        example = (v.cpu(), s.cpu(), float(rel[i]))
    floor = np.asarray(reference["autoencoder_values"]) if reference else None
    plot_pair(gen, example[0], example[1], rel, example[2], used, path, floor, seismic)


def _criterion(threshold: float | None, keep_quantile: float | None) -> dict[str, Any]:
    if threshold is not None:
        return {"threshold": threshold}
    if keep_quantile is not None:
        return {"keep_quantile": keep_quantile}
    return {"keep_all": True}


def job_summary(
    gen: Generator,
    first: FirstPass,
    keep: np.ndarray,
    job: dict[str, Any],
    outputs: dict[str, Any],
    trace: dict[str, Any] | None,
    reference: dict[str, Any] | None,
) -> dict[str, Any]:
    """The job's ``summary.json``: counts, residual distributions, timings, settings, outputs."""
    n, rel, timings = len(first.rel), first.rel, first.timings
    accepted = np.flatnonzero(keep)
    n_acc = int(accepted.size)
    gv = timings["generate_and_validate"]
    return {
        "n_generated": n,
        "n_accepted": n_acc,
        "n_rejected": n - n_acc,
        "fraction_accepted": n_acc / n,
        "criterion": _criterion(job["threshold"], job["keep_quantile"]),
        "threshold_used": job["threshold_used"],
        "residual": {
            "all": distribution(rel),
            "accepted": distribution(rel[accepted]),
            "all_normalized": distribution(first.rel_normalized),
        },
        "fraction_under": {
            str(t): float((rel <= t).mean()) for t in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
        },
        "timings_s": timings,
        "pairs_per_s": n / gv if gv > 0 else None,
        "device": str(gen.device),
        "device_name": torch.cuda.get_device_name(gen.device)
        if gen.device.type == "cuda"
        else "cpu",
        "torch_threads": torch.get_num_threads(),
        "sampler": {
            "name": "ddim",
            "steps": job["steps"],
            "eta": 0.0,
            "seed": job["seed"],
            "batch": job["batch"],
        },
        "checkpoint": gen.info,
        "data": {
            "family": gen.store_attrs.get("family"),
            "boundary": gen.boundary,
            "survey": gen.store_attrs.get("survey"),
            "normalization": gen.store_attrs.get("normalization"),
        },
        "outputs": outputs,
        "trace": trace,
        "seismic": {k: job[k] for k in ("seismic", *GUIDANCE_KEYS) if k in job},
        "baselines": job["baselines"],
        "velocity_structure": job["velocity_structure"],
        "reference": None
        if reference is None
        else {k: reference[k] for k in ("n", "store", "real", "autoencoder")},
        "build": build_info(),
    }


def generate_and_validate(
    out: str | os.PathLike,
    n: int = 256,
    *,
    checkpoint: str | os.PathLike | None = None,
    autoencoder: str | os.PathLike | None = None,
    threshold: float | None = None,
    keep_quantile: float | None = None,
    device: Any = None,
    seed: int = 0,
    steps: int = 50,
    batch: int | None = None,
    trace_steps: int = 0,
    trace_max: int = 16,
    trace_on: str = "x0",
    compression: str | None = "gzip",
    reference_store: str | os.PathLike | None = None,
    reference_n: int = 64,
    figure: bool = True,
    progress: bool = True,
    seismic: str = "solver",
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    guidance_steps: int = DEFAULT_GUIDANCE_STEPS,
    guidance_shots: int | None = DEFAULT_GUIDANCE_SHOTS,
    guidance_noise: str = DEFAULT_GUIDANCE_NOISE,
    guidance_gradient: str = DEFAULT_GUIDANCE_GRADIENT,
    guidance_refine_every: int = DEFAULT_GUIDANCE_REFINE_EVERY,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Sample ``n`` pairs, validate them, keep the physical ones; write ``out/pairs.h5``,
    ``out/summary.json``, ``out/figure.png`` (and ``out/residual_vs_step.png`` with
    ``trace_steps``). ``batch``: pairs per sampler/decoder/solver call (default 64 on CPU, 512 on
    CUDA). ``reference_store``: a dataset file made like the training data; its held-out pairs
    give the reference residuals (real pairs, autoencoder reconstructions: the floor), reported
    next to the samples' (summary ``reference``, and in the histogram). Returns the summary (also
    written as JSON). ``seismic``: "solver" (default: exact pairs), "decoder" (UB-Diff's own
    gathers) or "guided" (``guidance_*``: :func:`.seismic_modes.sample_for_mode`'s options).
    ``overwrite``: replace the outputs of an earlier run in ``out`` (refused otherwise, before
    any work)."""
    check_keep_criterion(threshold, keep_quantile)
    check_job_outputs(out, overwrite)
    guidance = (guidance_scale, guidance_steps, guidance_shots, guidance_noise, guidance_gradient)
    mode = mode_options(seismic, *guidance, guidance_refine_every)
    device = str(resolve_device(device))
    batch = check_job_sizes(n, batch, steps, trace_steps, trace_max, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = t0 = time.perf_counter()
    gen = load_job_generator(
        checkpoint, device, autoencoder, seismic, trace_steps, reference_store is not None
    )
    steps = min(steps, gen.denoiser.schedule.timesteps)
    t_load = time.perf_counter() - t0
    tracer = None
    if trace_steps > 0:
        m = min(trace_max, n, batch)
        tracer = Tracer(gen, trace_indices(steps, trace_steps), m, trace_on)
    first = sample_and_validate(gen, n, batch, steps, seed, tracer, progress, mode)
    first.timings = timings = {"load": t_load, **first.timings}
    keep_t, used = keep_mask(
        torch.from_numpy(first.rel), threshold=threshold, keep_quantile=keep_quantile
    )
    keep = keep_t.cpu().numpy()

    t0 = time.perf_counter()
    job = {"n": n, "sampler": "ddim", "steps": steps, "seed": seed, "batch": batch, **mode}
    job.update(threshold=threshold, keep_quantile=keep_quantile)
    build_args = {
        "checkpoint": gen.info["checkpoint"],
        "autoencoder_sha256": gen.info.get("autoencoder_sha256"),
        **job,
    }
    pairs_path = out / "pairs.h5"
    example = write_pairs(gen, pairs_path, first, keep, batch, build_args, compression, progress)
    timings["write"] = time.perf_counter() - t0

    trace = _finish_trace(tracer, trace_on, steps, out, timings)
    reference = None
    if reference_store is not None:
        t0 = time.perf_counter()
        reference = reference_residuals(gen, reference_store, n=reference_n)
        timings["reference"] = time.perf_counter() - t0
    if figure:
        t0 = time.perf_counter()
        _figure(gen, first, batch, example, used, reference, out / "figure.png", seismic)
        timings["figure"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    outputs = {
        "pairs": str(pairs_path),
        "summary": str(out / "summary.json"),
        "figure": str(out / "figure.png") if figure else None,
        "residual_vs_step": str(out / "residual_vs_step.png") if trace else None,
    }
    job.update(threshold_used=used)
    job["baselines"] = reference_points(gen, first.latents[0][:32], seismic, timings)
    job["velocity_structure"] = velocity_structure(gen, first.latents)
    summary = job_summary(gen, first, keep, job, outputs, trace, reference)
    atomic_write_json(out / "summary.json", summary)
    return summary
