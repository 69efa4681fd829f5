"""The unbalanced-data experiment's results: several InversionNet seeds combined, and the
Markdown table of ``results.md``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ubdiff_phys.data.datasets import VelocityDataset
from ubdiff_phys.eval.protocol import evaluate_inversion, training_pairs

__all__ = [
    "combine_seeds",
    "describe_source",
    "mean_map_reference",
    "non_finite_entries",
    "render_results_markdown",
    "residual_record",
]


def combine_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's record, plus, over all runs (one per InversionNet seed), each metric's
    mean and sample standard deviation and the seeds' metrics."""
    out = dict(runs[0])
    if len(runs) > 1:
        per_seed = [r["metrics"] for r in runs]
        out["seeds"] = [r["config"]["seed"] for r in runs]
        out["metrics_per_seed"] = per_seed
        out["metrics_mean"] = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}
        out["metrics_std"] = {
            k: float(np.std([m[k] for m in per_seed], ddof=1)) for k in per_seed[0]
        }
    return out


def residual_record(summary: dict[str, Any], timings: dict[str, float], name: str):
    """What results.json keeps of one generated store's validation: the residual distribution,
    its reference points (shuffled and direct-wave baselines, gather diversity), the verdict,
    and the seconds per generated pair (sampling time / pairs)."""
    keep = ("n_pairs", "distribution", "pairs_per_second", "device", "baselines", "verdict")
    rec = {k: summary.get(k) for k in keep}
    sampled = timings.get(f"sample_{name}")
    rec["sample_seconds_per_pair"] = sampled / summary["n_pairs"] if sampled else None
    return rec


def mean_map_reference(store: Any, test_ds: Any) -> dict[str, Any]:
    """The trivial predictor InversionNet must beat: the mean of ``store``'s paired training
    velocity maps (normalised), returned for every held-out gather; scored on ``test_ds`` with
    InversionNet's metrics (:func:`~ubdiff_phys.eval.protocol.evaluate_inversion`)."""
    pairs = training_pairs(store)
    maps = VelocityDataset(pairs.store, pairs.rows)
    mean = torch.stack([maps[i] for i in range(len(maps))]).double().mean(0).float()
    metrics = evaluate_inversion(lambda s: mean.expand(s.shape[0], *mean.shape), test_ds)
    label = "reference: the mean real training map, whatever the gathers (no training)"
    return {"label": label, "n_train": len(pairs), "metrics": metrics}


def describe_source(src: Any) -> str:
    if isinstance(src, tuple):
        return f"{src[0]} ({len(src[1])} lowest-residual rows)"
    return str(src)


def _budget(preset: dict[str, Any]) -> str:
    """One sentence on InversionNet's training budget per run."""
    prot = preset.get("protocol", {})
    steps, batch = prot.get("max_steps"), prot.get("batch", 256)
    if steps is None:
        return f"Every run: {prot.get('epochs', 1)} epoch(s) of batch {batch}."
    return f"Every run: {steps} optimiser steps of batch {batch} ({steps * batch} pairs seen)."


def _metric_cell(run: dict[str, Any], key: str) -> str:
    if "metrics_mean" in run:
        return f"{run['metrics_mean'][key]:.4g} ± {run['metrics_std'][key]:.2g}"
    return _fmt(run["metrics"][key])


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def render_results_markdown(results: dict[str, Any]) -> str:
    """The results table of :func:`run_experiment` as Markdown."""
    p = results["preset"]
    lines = [
        f"# Unbalanced-data experiment (scale `{results['scale']}`)",
        "",
        f"Store: FlatVel-A-like, {p['n_velocity']} training velocity maps of which "
        f"{p['n_paired']} paired, {p['n_test']} held-out pairs (PML). "
        f"{p['n_generated']} generated pairs per model ({p['sampler']}, {p['sample_steps']} "
        f"steps). Seed {results['seed']}, device {results['device']}.",
        "",
        "## InversionNet tested on the real held-out pairs",
        "",
        "MAE / MSE / RMSE on normalised velocity in [-1, 1], SSIM on [0, 1]. " + _budget(p),
        "",
        "| setting | train pairs | MAE | MSE | RMSE | SSIM |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["inversion"].values():
        cells = [_metric_cell(r, k) for k in ("mae", "mse", "rmse", "ssim")]
        lines.append(f"| {r['label']} | {r['n_train']} | " + " | ".join(cells) + " |")
    if results.get("trivial"):
        r = results["trivial"]
        cells = [_metric_cell(r, k) for k in ("mae", "mse", "rmse", "ssim")]
        lines.append(f"| {r['label']} | {r['n_train']} | " + " | ".join(cells) + " |")
    seeds = next(iter(results["inversion"].values())).get("seeds")
    if seeds:
        lines += ["", f"Mean ± standard deviation over InversionNet seeds {seeds}."]
    if not results.get("complete", True):
        lines += [
            "",
            "Partial: InversionNet ran for the settings above only (`--settings`); a run "
            "without `--settings` in the same work folder adds the others.",
        ]
    lines += [
        "",
        "## Fréchet distance of velocity features to the real held-out maps",
        "",
        "| samples | FD | n | n real |",
        "|---|---:|---:|---:|",
    ]
    names = {
        "ubdiff": "UB-Diff",
        "ubdiff_guided": "UB-Diff, physics-guided",
        "wo_opt": "w/o opt",
        "real_train": "real training maps (ref.)",
    }
    for k, f in results["frechet"].items():
        lines.append(
            f"| {names.get(k, k)} | {_fmt(f['fd'])} | {f['n_generated']} | {f['n_real']} |"
        )
    if results.get("residuals"):
        lines += _residual_lines(results, names)
    lines += [
        "",
        "Features: the project's velocity feature network trained on the real training maps "
        "(not an Inception FID).",
        "",
    ]
    return "\n".join(lines)


def _residual_lines(results: dict[str, Any], names: dict[str, str]) -> list[str]:
    """The residual table: each generated set's residual distribution, its reference points
    (medians over the first pairs) and its sampling time per pair; then the solver mode."""
    lines = [
        "",
        "## Physics residual of the generated pairs",
        "",
        "Relative L2 between each pair's seismic and the solver's for its velocity (physical "
        "units; real pairs give 0). Reference points (medians over the first pairs): *shuffled* "
        "scores each gather against another sample's velocity, *direct wave* is a homogeneous "
        "model at the top-layer velocity; *diversity* is the median pairwise relative difference "
        "of the generated gathers, next to the solver's gathers of the same velocities.",
        "",
        "| samples | n | median | p05 | p95 | shuffled | direct wave | diversity (solver's) "
        "| s/pair |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in results["residuals"].items():
        d, b = r["distribution"]["physical"], r.get("baselines") or {}
        div = f"{_fmt(b.get('diversity'))} ({_fmt(b.get('solver_diversity'))})" if b else "n/a"
        lines.append(
            f"| {names.get(k, k)} | {r['n_pairs']} | {_fmt(d.get('median'))} | "
            f"{_fmt(d.get('p05'))} | {_fmt(d.get('p95'))} | {_fmt(b.get('shuffled'))} | "
            f"{_fmt(b.get('direct_wave'))} | {div} | {_fmt(r.get('sample_seconds_per_pair'))} |"
        )
    t, n = results.get("timings", {}), results["preset"]["n_generated"]
    if t.get("resimulate_ubdiff") and t.get("sample_ubdiff"):
        per_pair = (t["sample_ubdiff"] + t["resimulate_ubdiff"]) / n
        lines += [
            "",
            f"Solver seismic (settings f, g): residual 0 by construction, {per_pair:.3g} s per "
            "pair (sampling + simulation).",
        ]
    return lines


def non_finite_entries(inversion: dict[str, Any], frechet: dict[str, Any]) -> list[str]:
    """The settings and Fréchet entries with a non-finite number (empty: all finite)."""
    bad = [
        k
        for k, r in inversion.items()
        for m in r.get("metrics_per_seed", [r["metrics"]])
        if not all(map(math.isfinite, m.values()))
    ]
    return bad + [k for k, f in frechet.items() if not math.isfinite(f["fd"])]
