"""The main job's option and output checks, run before any work: the output folder must not hold
another run's files (or a user's ``pairs.h5``) unless overwriting, the sizes must be usable, and the
checkpoint must make decoder pairs (a velocity-space model's pairs are exact: nothing to check)."""

from __future__ import annotations

import os

import torch

from ubdiff_phys.pipelines.generator import Generator, VelocityGenerator, load_generator
from ubdiff_phys.pipelines.seismic_modes import check_mode_for
from ubdiff_phys.pipelines.shipped_velocity import job_checkpoint
from ubdiff_phys.runtime.errors import OptionError
from ubdiff_phys.runtime.files import check_output_folder

__all__ = ["JOB_OUTPUTS", "check_job_outputs", "check_job_sizes", "load_job_generator"]


#: the files the main job writes into its output folder
JOB_OUTPUTS = ("pairs.h5", "summary.json", "figure.png", "residual_vs_step.png")


def check_job_outputs(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse (:class:`~ubdiff_phys.runtime.errors.OptionError`) an ``out`` that is a file, or
    that holds any of :data:`JOB_OUTPUTS` (an earlier run's, or a user's own ``pairs.h5``) unless
    ``overwrite``."""
    check_output_folder(out, JOB_OUTPUTS, overwrite)


def check_job_sizes(
    n: int, batch: int | None, steps: int, trace_steps: int, trace_max: int, device: str
) -> int:
    """Refuse (OptionError) sizes below 1 and a negative trace; the batch (default 64 on CPU,
    512 on CUDA)."""
    if batch is None:
        batch = 512 if torch.device(device).type == "cuda" else 64
    if n < 1 or batch < 1 or steps < 1:
        raise OptionError("n, batch and steps must be >= 1")
    if trace_steps < 0 or (trace_steps > 0 and trace_max < 1):
        raise OptionError("trace steps must be >= 0 and the traced samples >= 1")
    return batch


def load_job_generator(
    checkpoint, device, autoencoder, seismic: str, trace_steps: int, reference: bool
) -> Generator | VelocityGenerator:
    """:func:`load_generator` for the main job (checkpoint None: :func:`.job_checkpoint`'s
    default for ``seismic``). A velocity-space model makes solver pairs only (exact by
    construction); the residual trace and the reference store's autoencoder floor need a
    decoder, so they are refused with it in one line."""
    path = job_checkpoint(checkpoint, seismic, autoencoder)
    gen = load_generator(path, device, autoencoder=autoencoder)
    if not gen.has_seismic_decoder:
        check_mode_for(gen, seismic)
        if trace_steps > 0 or reference:
            raise OptionError(
                f"{str(path)!r} is a velocity-space model: its pairs are exact at every step, so "
                "--trace-steps and --reference (residuals of decoded pairs) need a UB-Diff "
                "checkpoint (--checkpoint)"
            )
    return gen
