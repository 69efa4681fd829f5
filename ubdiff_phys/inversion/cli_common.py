"""What the ``invert`` runners share: the user-error type, row/bounds parsing, the output check,
reading the observed file, and the scores against the stored velocity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.data.store import open_store
from ubdiff_phys.models.metrics import ssim
from ubdiff_phys.physics.forward import BOUNDARIES
from ubdiff_phys.runtime.errors import UserError
from ubdiff_phys.runtime.files import check_output_folder

__all__ = ["UserError", "check_outputs", "load_observed", "parse_bounds", "parse_rows", "scores"]


def parse_rows(text: str, n_paired: int) -> list[int]:
    try:
        rows = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--rows must be comma-separated integers, got {text!r}") from None
    bad = [r for r in rows if not 0 <= r < n_paired]
    if not rows or bad:
        raise UserError(f"--rows {text!r}: the file has paired rows 0..{n_paired - 1}")
    return rows


def parse_bounds(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--bounds must be V_MIN,V_MAX in m/s, got {text!r}") from None
    if not 0 < lo < hi < float("inf"):
        raise UserError(f"--bounds must satisfy 0 < V_MIN < V_MAX, got {text!r}")
    return lo, hi


def check_outputs(out: Path, names: tuple[str, ...], overwrite: bool) -> None:
    """:func:`ubdiff_phys.runtime.files.check_output_folder` for ``--out``."""
    check_output_folder(out, names, overwrite)


def load_observed(args: argparse.Namespace) -> dict[str, Any]:
    """The rows (``args.rows``) of ``args.observed``: survey, boundary, observed (B, S, nt, R)
    and the stored velocity (B, 1, nz, nx) as the truth."""
    if not args.observed.is_file():
        raise UserError(f"{str(args.observed)!r} is not a file")
    try:
        store = open_store(args.observed)
    except Exception as exc:  # any failure to read the file is the user's input
        raise UserError(f"cannot read {str(args.observed)!r} as a dataset file: {exc}") from None
    with store:
        survey = store.survey
        if survey is None:
            raise UserError(f"{str(args.observed)!r} records no survey: cannot model its data")
        boundary = args.boundary or store.attrs.get("boundary")
        if boundary not in BOUNDARIES:
            raise UserError(f"the file's boundary mode is {boundary!r}; pass --boundary")
        rows = parse_rows(args.rows, store.progress.n_seismic_committed)
        obs = np.stack([store.seismic(i) for i in rows])
        truth = np.stack([store.velocity(int(store.paired_index[i])) for i in rows])
        normalizer = store.normalizer if args.normalised else None
    return dict(
        normalizer=normalizer,
        survey=survey,
        boundary=boundary,
        rows=rows,
        observed=torch.from_numpy(obs).float(),
        truth=torch.from_numpy(truth).float(),
    )


def scores(v: torch.Tensor, truth: torch.Tensor, lo: float, hi: float) -> list[dict[str, float]]:
    """SSIM (on [lo, hi] mapped to [-1, 1]), MAE [m/s] and relative L2 of each model (B, 1, nz,
    nx) against the truth."""

    def norm(x: torch.Tensor) -> torch.Tensor:
        return 2 * (x - lo) / (hi - lo) - 1

    return [
        {
            "ssim": ssim(norm(v[b : b + 1]), norm(truth[b : b + 1])),
            "mae_m_per_s": float((v[b] - truth[b]).abs().mean()),
            "rel_l2": float((v[b] - truth[b]).double().norm() / truth[b].double().norm()),
        }
        for b in range(v.shape[0])
    ]
