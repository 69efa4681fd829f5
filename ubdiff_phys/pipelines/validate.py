"""Validate every pair of a dataset file against the solver (``ubdiff-phys validate``)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ubdiff_phys._native import build_info
from ubdiff_phys.data.store import StoreError, open_store
from ubdiff_phys.physics.baselines import baselines, verdict
from ubdiff_phys.physics.residual import check_keep_criterion, keep_mask, residual
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.errors import OptionError
from ubdiff_phys.runtime.stats import distribution

__all__ = ["ValidationSummary", "recorded_simulation", "validate_store"]


@dataclass
class ValidationSummary:
    """What ``validate_store`` found. Residuals are relative L2 (specs/ubdiff.md §5)."""

    path: str
    n_pairs: int
    boundary: str
    device: str
    seconds: float
    pairs_per_second: float
    rel_l2: list[float] = field(repr=False)
    rel_l2_normalized: list[float] | None = field(repr=False)
    distribution: dict[str, dict[str, float]] = field(default_factory=dict)
    threshold: float | None = None
    n_kept: int = 0
    build: dict[str, Any] = field(default_factory=dict)
    #: medians over the first ``baseline_pairs`` pairs: own residual, shuffled and direct-wave
    #: baselines, gather diversity and the solver's (ubdiff_phys.physics.baselines), or None
    baselines: dict[str, float] | None = None
    verdict: str | None = None
    #: a threshold from the data: the direct-wave baseline (a pair must beat a gather that has
    #: physics but no subsurface)
    suggested_threshold: float | None = None

    def to_json(self, include_values: bool = True) -> str:
        d = asdict(self)
        if not include_values:
            d.pop("rel_l2")
            d.pop("rel_l2_normalized")
        return json.dumps(d, indent=2)

    def describe(self) -> str:
        dist = self.distribution["physical"]
        lines = [
            f"{self.n_pairs} pairs of {self.path} validated on {self.device} in "
            f"{self.seconds:.1f} s ({self.pairs_per_second:.1f} pairs/s), "
            f"boundary {self.boundary!r}",
            "relative L2 (physical): "
            + ", ".join(f"{k} {v:.3e}" for k, v in dist.items() if k in ("min", "median", "max")),
        ]
        if "normalized" in self.distribution:
            dn = self.distribution["normalized"]
            lines.append(
                f"relative L2 (normalised): median {dn['median']:.3e}, max {dn['max']:.3e}"
            )
        if self.threshold is not None:
            lines.append(f"kept {self.n_kept} of {self.n_pairs} at threshold {self.threshold:.3e}")
        if self.baselines is not None:
            b = self.baselines
            lines.append(
                f"reference points (median, {b['n_pairs']:.0f} pairs): own {b['own']:.3g}, "
                f"shuffled {b['shuffled']:.3g}, direct wave {b['direct_wave']:.3g}; gather "
                f"diversity {b['diversity']:.3g} (solver's {b['solver_diversity']:.3g})"
            )
            lines.append(f"verdict: {self.verdict}")
            lines.append(f"suggested threshold: {self.suggested_threshold:.3g} (direct wave)")
        return "\n".join(lines)


def recorded_simulation(store, what_instead: str) -> tuple[Any, str]:
    """(survey, boundary mode) a store's seismic was simulated with, from its attributes.

    Raises:
        StoreError: the store records no survey (its seismic was not made by ubdiff_phys, e.g. an
            OpenFWI import; ``what_instead`` tells the user what to do then) or an unknown mode.
    """
    survey = store.survey
    boundary = str(store.attrs.get("boundary", ""))
    if survey is None:
        raise StoreError(
            f"{str(store.path)!r} records no survey: its seismic was not simulated by "
            f"ubdiff_phys (e.g. an OpenFWI import); {what_instead}"
        )
    if boundary not in ("openfwi", "pml", "none"):
        raise StoreError(f"{str(store.path)!r} records an unknown boundary mode {boundary!r}")
    return survey, boundary


def validate_store(
    path: str | os.PathLike,
    *,
    threshold: float | None = None,
    keep_quantile: float | None = None,
    device: str | None = None,
    batch: int = 32,
    progress: bool = True,
    baseline_pairs: int = 32,
) -> ValidationSummary:
    """Residual of every (velocity, seismic) pair in a dataset file.

    The survey and boundary mode come from the file's attributes (the ones its seismic was made
    with); the normalised residual uses its normalisation constants. Pairs stream in batches of
    ``batch`` (memory bounded by the batch, not the file).

    Args:
        path: a dataset file (``ubdiff_phys.data.store`` format) with paired seismic.
        threshold, keep_quantile: keep criterion on the physical residual (at most one).
        device: "cpu" or "cuda" (default: cuda when available).
        batch: pairs per solver call.
        baseline_pairs: reference points (shuffled, direct wave, diversity) on the first this
            many pairs (three more solver passes over them); 0 skips them.
    """
    if batch < 1:
        raise OptionError(f"batch must be >= 1, got {batch}")
    check_keep_criterion(threshold, keep_quantile)
    device = str(resolve_device(device))
    with open_store(path) as store:
        survey, boundary = recorded_simulation(
            store, "validate it with ubdiff_phys.physics.residual and Survey.openfwi()"
        )
        # files without normalisation constants get the physical residual only
        normalizer = store.normalizer if store.attrs.get("normalization") else None
        n = len(store.paired_index)
        rel, rel_n = [], []
        start = time.perf_counter()
        with tqdm(total=n, desc="validate", unit="pair", disable=not progress) as bar:
            for i0 in range(0, n, batch):
                rows = range(i0, min(n, i0 + batch))
                v = np.stack([store.velocity(int(store.paired_index[i])) for i in rows])
                s = np.stack([store.seismic(i) for i in rows])
                r = residual(
                    torch.from_numpy(v).to(device),
                    torch.from_numpy(s).to(device),
                    survey,
                    boundary=boundary,
                    normalizer=normalizer,
                )
                rel.append(r.rel_l2.cpu().numpy())
                if r.rel_l2_normalized is not None:
                    rel_n.append(r.rel_l2_normalized.cpu().numpy())
                bar.update(len(rows))
        reference = _reference_points(store, survey, boundary, device, baseline_pairs)
        seconds = time.perf_counter() - start
    rel_all = np.concatenate(rel) if rel else np.zeros(0)
    rel_n_all = np.concatenate(rel_n) if rel_n else None
    keep, used = keep_mask(
        torch.from_numpy(rel_all), threshold=threshold, keep_quantile=keep_quantile
    )
    return ValidationSummary(
        path=str(Path(path)),
        n_pairs=n,
        boundary=boundary,
        device=device,
        seconds=seconds,
        pairs_per_second=n / seconds if seconds > 0 else float("inf"),
        rel_l2=rel_all.tolist(),
        rel_l2_normalized=None if rel_n_all is None else rel_n_all.tolist(),
        distribution={
            "physical": distribution(rel_all),
            **({} if rel_n_all is None else {"normalized": distribution(rel_n_all)}),
        },
        threshold=used,
        n_kept=int(keep.sum()),
        build=build_info(),
        baselines=None if reference is None else reference[0].to_dict() | {"n_pairs": reference[1]},
        verdict=None if reference is None else verdict(reference[0]),
        suggested_threshold=None if reference is None else reference[0].direct_wave,
    )


def _reference_points(store, survey, boundary: str, device: str, n_max: int):
    """Baselines of the first ``min(n_max, n)`` pairs (None for fewer than 2)."""
    n = min(n_max, len(store.paired_index))
    if n < 2:
        return None
    v = np.stack([store.velocity(int(store.paired_index[i])) for i in range(n)])
    s = np.stack([store.seismic(i) for i in range(n)])
    b = baselines(
        torch.from_numpy(v).to(device), torch.from_numpy(s).to(device), survey, boundary=boundary
    )
    return b, n
