"""The velocity-space diffusion model shipped in the package (``assets/flatvel_a_velocity``): the
main job's default generator in its default seismic mode, ``solver`` (its velocity maps, with the
gathers the solver simulates from them, so every pair is exact by construction).

:func:`package_velocity_checkpoint` writes it from a ``train-velocity-diffusion`` run: the run's EMA
weights (stored as float16 by default: half the bytes, loaded back as float32) in
``velocity_diffusion.pt``, the run's ``config.toml`` and a ``manifest.json`` (bytes and sha256 of
every file, parameters, step, the training data's family, survey, boundary and normaliser, notes).
:func:`write_velocity_manifest` rewrites the manifest alone, e.g. after ``ubdiff-phys prior-error``
has added ``velocity_diffusion.denoiser_error.json`` (the noise-aware likelihood's estimate).
:func:`job_checkpoint` picks the main job's default checkpoint for a seismic mode.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ubdiff_phys.diffusion.checkpoint import load_velocity_denoiser
from ubdiff_phys.pipelines.generator import (
    SHIPPED_VELOCITY_FILE,
    manifest_data,
    manifest_files,
    shipped_checkpoint,
    shipped_velocity_checkpoint,
)
from ubdiff_phys.runtime.files import atomic_write_json
from ubdiff_phys.train.velocity_diffusion import export_velocity_checkpoint

__all__ = ["job_checkpoint", "package_velocity_checkpoint", "write_velocity_manifest"]


def job_checkpoint(
    checkpoint: str | os.PathLike | None, seismic: str, autoencoder: str | os.PathLike | None
) -> Path:
    """The checkpoint the main job loads: ``checkpoint`` when given; else the shipped velocity
    model for ``seismic == "solver"`` (no decoder involved), and the shipped UB-Diff checkpoint for
    the decoder modes ("decoder", "guided") or when an ``autoencoder`` is named (it belongs to a
    UB-Diff model)."""
    if checkpoint is not None:
        return Path(checkpoint)
    if seismic == "solver" and autoencoder is None and shipped_velocity_checkpoint().is_file():
        return shipped_velocity_checkpoint()
    return shipped_checkpoint()


def write_velocity_manifest(
    out: str | os.PathLike, notes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """(Re)write ``out/manifest.json`` for the velocity model in ``out``: every other file's bytes
    and sha256, the U-Net's parameter count, the exported step and source, the training data's
    family/seed/boundary/survey/normaliser, and ``notes`` (e.g. the commands and measured
    figures). A run started from another checkpoint's weights (``run.init_from``) adds
    ``init_from`` (that checkpoint) and ``steps_in_all`` (its steps and this run's). Returns the
    manifest."""
    out = Path(out)
    den, _, ckpt = load_velocity_denoiser(out / SHIPPED_VELOCITY_FILE)
    attrs = dict(ckpt["store_attrs"])
    step, init = int(ckpt["state"]["step"]), ckpt["state"].get("init_from")
    manifest = {
        "name": out.name,
        "kind": "velocity",
        "files": manifest_files(out),
        "parameters": {"velocity_unet": sum(p.numel() for p in den.parameters())},
        "diffusion_step": step,
        "exported_from": ckpt.get("exported_from"),
        "data": manifest_data(attrs),
        "notes": notes or {},
    }
    if init:
        manifest |= {"init_from": init, "steps_in_all": step + int(init["steps_before"])}
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def package_velocity_checkpoint(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "float16",
    average: Sequence[str | os.PathLike] = (),
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the EMA weights of a ``train-velocity-diffusion`` run (its directory: final.pt, else
    last.pt; or one of its checkpoint files) into the shipped layout ``out/velocity_diffusion.pt``
    (``dtype``: storage precision, "float16" or "float32"; ``average``: further checkpoints of
    the run whose EMA weights are averaged in, see :func:`export_velocity_checkpoint`), with the
    run's ``config.toml`` as
    ``out/velocity_diffusion_config.toml`` and ``out/manifest.json``. Returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    file = out / SHIPPED_VELOCITY_FILE
    export_velocity_checkpoint(run, file, weights="ema", dtype=dtype, average=average)
    src = Path(run)
    run_dir = src if src.is_dir() else src.parent
    if (run_dir / "config.toml").is_file():
        shutil.copyfile(run_dir / "config.toml", out / "velocity_diffusion_config.toml")
    return write_velocity_manifest(out, notes)
