"""``ubdiff-phys evaluate``: generated pairs vs real data, written as report.json + report.md.

Three parts (specs/ubdiff.md §5):

1. **Pairwise check**: InversionNet trained on the generated pairs (every paired training row of
   the generated file), tested on the real store's held-out pairs (:mod:`.protocol`).
2. **Fréchet distance** of velocity features (and of seismic features with ``seismic_fd``):
   generated training rows vs the real store's held-out rows, features from a project feature
   network (:mod:`.features`). Without a checkpoint one is trained on the real store's training
   rows and saved in the output folder (``features_velocity.pt`` / ``features_seismic.pt``), so
   the number is reproducible from the report alone.
   A user-supplied Inception-v3 state dict may replace the velocity feature network.
3. **Physics residual** of every generated pair (:func:`ubdiff_phys.pipelines.validate_store`):
   distribution of the relative L2 in physical and normalised units and the fraction under a few
   thresholds. A generated file that records no survey (its seismic was not made by
   ubdiff_phys) cannot be checked; the report says so instead of failing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys._native import build_info
from ubdiff_phys.data.store import open_store
from ubdiff_phys.eval.features import (
    FeatureConfig,
    FeatureExtractor,
    load_feature_extractor,
    train_feature_network,
)
from ubdiff_phys.eval.frechet import frechet_distance, gaussian_stats
from ubdiff_phys.eval.protocol import ProtocolConfig, run_protocol
from ubdiff_phys.pipelines.validate import validate_store
from ubdiff_phys.runtime.files import atomic_write_text

__all__ = ["REPORT_THRESHOLDS", "evaluate", "frechet_report", "render_markdown"]

#: relative-L2 thresholds whose pass fractions the report lists
REPORT_THRESHOLDS = (1e-3, 1e-2, 1e-1)


def frechet_report(
    extractor: FeatureExtractor,
    generated: str | os.PathLike,
    real: str | os.PathLike,
    *,
    generated_rows: str = "train",
    real_rows: str = "test",
) -> dict[str, Any]:
    """Fréchet distance between the features of ``generated`` and ``real`` rows (see
    :meth:`FeatureExtractor.store_features` for the row selections)."""
    with open_store(generated) as g, open_store(real) as r:
        fg = extractor.store_features(g, generated_rows)
        fr = extractor.store_features(r, real_rows)
    if len(fg) < 2 or len(fr) < 2:
        raise ValueError(
            f"the Fréchet distance needs >= 2 samples per set, got {len(fg)} generated and "
            f"{len(fr)} real {extractor.modality} samples"
        )
    fd = frechet_distance(*gaussian_stats(fg), *gaussian_stats(fr))
    return {
        "fd": fd,
        "n_generated": len(fg),
        "n_real": len(fr),
        "generated_rows": generated_rows,
        "real_rows": real_rows,
        "features": extractor.describe(),
    }


def _residual_report(generated: str | os.PathLike, device, batch: int, progress: bool):
    with open_store(generated) as g:
        if g.survey is None:
            return {
                "skipped": "the file records no survey, so its pairs cannot be simulated "
                "(seismic not made by ubdiff_phys, e.g. an OpenFWI import)",
            }
    summary = validate_store(generated, device=device, batch=batch, progress=progress)
    rel = np.asarray(summary.rel_l2, dtype=np.float64)
    return {
        "n_pairs": summary.n_pairs,
        "boundary": summary.boundary,
        "device": summary.device,
        "seconds": summary.seconds,
        "distribution": summary.distribution,
        "fraction_under": {
            f"{t:g}": float((rel <= t).mean()) if rel.size else None for t in REPORT_THRESHOLDS
        },
    }


def _file_identity(path: str | os.PathLike) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _protocol_resumable(generated, real, cfg: ProtocolConfig, out: Path, device, progress):
    """:func:`run_protocol`, resumable: the result is kept in ``out/protocol.json`` (reused while
    the config and both files are unchanged) and the training state in
    ``out/inversionnet_state.pt`` until the result is stored."""
    key = {"config": cfg.to_dict(), "generated": _file_identity(generated),
           "real": _file_identity(real)}  # fmt: skip
    done = out / "protocol.json"
    if done.exists():
        cached = json.loads(done.read_text())
        if cached.get("key") == key:
            return cached["result"]
    state, state_key = out / "inversionnet_state.pt", out / "inversionnet_state.key.json"
    if state.exists() and (not state_key.exists() or json.loads(state_key.read_text()) != key):
        state.unlink()  # training state of an evaluation of other inputs or options
    atomic_write_text(state_key, json.dumps(key) + "\n")
    result = run_protocol(
        generated, real, cfg, device=device, progress=progress, checkpoint=state
    ).to_dict()
    atomic_write_text(done, json.dumps({"key": key, "result": result}, indent=2) + "\n")
    state.unlink(missing_ok=True)
    state_key.unlink(missing_ok=True)
    return result


def _trained_features(
    real, path: Path, cfg: FeatureConfig, device, progress: bool
) -> FeatureExtractor:
    """The feature network of an earlier run of this evaluation if it was trained on the same
    real file with the same options, else a newly trained one."""
    if path.exists():
        try:
            ext = load_feature_extractor(path, device=device)
        except ValueError:
            ext = None
        if (
            ext is not None
            and ext.info.get("config") == cfg.to_dict()
            and Path(ext.info["trained_on"]["path"]).resolve() == Path(real).resolve()
        ):
            return ext
    # an interrupted training resumes from its state file, removed once the network is saved
    state = path.with_name(path.name + ".state.pt")
    ext = train_feature_network(real, path, cfg, device=device, progress=progress, checkpoint=state)
    state.unlink(missing_ok=True)
    return ext


def _given_extractor(
    ckpt: str | os.PathLike, modality: str, device, real: str | os.PathLike
) -> FeatureExtractor:
    with open_store(real) as r:
        normalizer = r.normalizer  # used by Inception weights, which record none
    ext = load_feature_extractor(ckpt, device=device, normalizer=normalizer)
    if ext.modality != modality:
        raise ValueError(f"{str(ckpt)!r} holds {ext.modality} features, not {modality}")
    return ext


def evaluate(
    generated: str | os.PathLike,
    real: str | os.PathLike,
    out: str | os.PathLike,
    *,
    protocol: ProtocolConfig | None = None,
    feature_cfg: FeatureConfig | None = None,
    features: str | os.PathLike | None = None,
    seismic_features: str | os.PathLike | None = None,
    seismic_fd: bool = False,
    residual_batch: int = 32,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a generated pairs file against a real store; writes ``out/report.json`` and
    ``out/report.md`` and returns the report dict.

    Args:
        generated: generated pairs (a store; every paired training row is used).
        real: real store with held-out paired rows (``test_index``).
        out: output folder.
        protocol: InversionNet options (default :class:`ProtocolConfig`).
        feature_cfg: options of the feature networks trained when no checkpoint is given.
        features: velocity feature checkpoint (``train-features``) or Inception-v3 state dict
            (pytorch-fid's FID weights or torchvision's); default: train one.
        seismic_features: seismic feature checkpoint; giving it implies ``seismic_fd``.
        seismic_fd: also report the Fréchet distance of seismic features.
        residual_batch: pairs per solver call of the residual check.
        device: "cpu" or "cuda" (default: cuda when available).
    """
    protocol = protocol or ProtocolConfig()
    feature_cfg = feature_cfg or FeatureConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    report: dict[str, Any] = {
        "generated": str(generated),
        "real": str(real),
        "device": device,
    }
    with open_store(generated) as g, open_store(real) as r:
        report["generated_normalization"] = g.normalizer.to_dict()
        report["real_normalization"] = r.normalizer.to_dict()
        report["real_family"] = r.family
    modalities = {"velocity": features}
    if seismic_fd or seismic_features is not None:
        modalities["seismic"] = seismic_features
    # given checkpoints are checked before any training
    given = {
        m: _given_extractor(c, m, device, real) for m, c in modalities.items() if c is not None
    }
    report["protocol"] = _protocol_resumable(generated, real, protocol, out, device, progress)
    report["frechet"] = {}
    for modality in modalities:
        ext = given.get(modality)
        if ext is None:
            cfg = FeatureConfig.from_dict({**feature_cfg.to_dict(), "modality": modality})
            ext = _trained_features(real, out / f"features_{modality}.pt", cfg, device, progress)
        report["frechet"][modality] = frechet_report(ext, generated, real)
    report["residual"] = _residual_report(generated, device, residual_batch, progress)
    report["seconds"] = time.perf_counter() - start
    report["build"] = build_info()
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.md", render_markdown(report))
    return report


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def render_markdown(report: dict[str, Any]) -> str:
    """Human-readable summary of an :func:`evaluate` report."""
    p = report["protocol"]
    m = p["metrics"]
    lines = [
        "# UB-Diff evaluation report",
        "",
        f"- generated: `{report['generated']}`",
        f"- real: `{report['real']}` (family {report.get('real_family', 'unknown')})",
        f"- device: {report['device']}, total {report['seconds']:.1f} s",
        "",
        "## Pairwise check (InversionNet trained on generated, tested on real held-out pairs)",
        "",
        f"{p['n_train']} training pairs, {p['n_test']} test pairs, {p['steps']} steps "
        f"(epochs {p['config']['epochs']}, batch {p['config']['batch']}, width "
        f"{p['config']['width']}); MAE/MSE/RMSE on [-1, 1], SSIM on [0, 1].",
        "",
        "| MAE | MSE | RMSE | SSIM |",
        "|---|---|---|---|",
        f"| {_fmt(m['mae'])} | {_fmt(m['mse'])} | {_fmt(m['rmse'])} | {_fmt(m['ssim'])} |",
        "",
        "## Fréchet distance",
        "",
        "| modality | FD | generated | real | features | checkpoint (sha256) |",
        "|---|---|---|---|---|---|",
    ]
    for modality, f in report["frechet"].items():
        feat = f["features"]
        lines.append(
            f"| {modality} | {_fmt(f['fd'])} | {f['n_generated']} ({f['generated_rows']}) | "
            f"{f['n_real']} ({f['real_rows']}) | {feat['features']} | "
            f"`{feat['checkpoint']}` ({feat['sha256'][:12]}) |"
        )
    res = report["residual"]
    kinds = {f["features"].get("kind", "") for f in report["frechet"].values()}
    if any(not k.startswith("Inception") for k in kinds):
        lines += [
            "",
            "Rows whose features are not Inception-v3 are not Inception FIDs: those features "
            "come from the project's feature network trained on real data (see report.json "
            "`frechet.*.features`).",
        ]
    if "skipped" in res:
        lines += [
            "",
            "## Physics residual of the generated pairs",
            "",
            f"Not computed: {res['skipped']}.",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"## Physics residual of the generated pairs ({res['n_pairs']} pairs, boundary "
        f"{res['boundary']!r})",
        "",
        "relative L2 ||s_gen - F(v_gen)|| / ||F(v_gen)||",
        "",
        "| units | min | median | p95 | max | mean |",
        "|---|---|---|---|---|---|",
    ]
    for units, d in res["distribution"].items():
        if d:
            lines.append(
                f"| {units} | {_fmt(d['min'])} | {_fmt(d['median'])} | {_fmt(d['p95'])} | "
                f"{_fmt(d['max'])} | {_fmt(d['mean'])} |"
            )
    lines += ["", "fraction of pairs under a threshold (physical): "]
    lines[-1] += ", ".join(f"<= {t}: {_fmt(v)}" for t, v in res["fraction_under"].items())
    return "\n".join(lines) + "\n"
