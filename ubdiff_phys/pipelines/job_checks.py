"""The main job's option and output checks, run before any work: the output folder must not hold
another run's files (or a user's ``pairs.h5``) unless overwriting, the sizes must be usable, and the
checkpoint must make decoder pairs (a velocity-space model's pairs are exact: nothing to check)."""

from __future__ import annotations

import os

import torch

from ubdiff_phys.pipelines.generator import Generator, load_generator
from ubdiff_phys.runtime.errors import OptionError
from ubdiff_phys.runtime.files import check_output_folder

__all__ = ["JOB_OUTPUTS", "check_job_outputs", "check_job_sizes", "load_decoder_generator"]


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


def load_decoder_generator(checkpoint, device, autoencoder) -> Generator:
    """:func:`load_generator` for the main job: a velocity-space checkpoint is refused in one line
    (its pairs take the solver's gathers and are exact by construction)."""
    gen = load_generator(checkpoint, device, autoencoder=autoencoder)
    if not gen.has_seismic_decoder:
        raise OptionError(
            f"{str(checkpoint)!r} is a velocity-space model: its pairs are exact by construction, "
            "there is nothing for this job to validate; make pairs with `ubdiff-phys sample "
            "--checkpoint ... --seismic solver`"
        )
    return gen
