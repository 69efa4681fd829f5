"""Recalibrating the posterior interval on held-out maps (split conformal prediction).

The prediction interval of :meth:`ubdiff_phys.inversion.PosteriorResult.interval` is exact only
when the samples are draws of the true posterior; a learned prior's samples are not, and its
decoder cannot express every true map (:mod:`~ubdiff_phys.inversion.decoder_error`). Where those
errors are not Gaussian, or larger than the decoder error measures, the interval holds the true
map less often than it says (CurveVel-A-like maps: 0.71 of the pixels at level 0.9).

This module measures the gap once per prior, on maps whose truth is known and that neither the
evaluation nor the autoencoder saw: for every pixel of every calibration map, the score
``s = |v_true − mean| / h`` with ``h`` the half-width of the *base* interval (``approximation``
when the prior stores a decoder error, else ``predictive``); the scale ``c`` is the
⌈(N + 1)·level⌉-th smallest of the N pooled scores (split conformal prediction with a normalised
score, Lei et al. 2018), and the ``calibrated`` interval is ``mean ± c·h``. On the calibration
maps it holds the stated share of pixels by construction; on new maps it does so on average when
they are exchangeable with the calibration maps (maps, not pixels: the pixels of one map are not
independent, so the coverage of single maps still spreads widely). How well that holds on maps
the scale did not see is estimated by leaving each map out in turn: its coverage under the scale
of the other maps (``per_map_left_out``, mean ``coverage_left_out``). The record
(``interval_calibration.json`` beside the checkpoint) also keeps the settings it was measured
with, because the scale belongs to one sampler configuration and one noise level.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ubdiff_phys.inversion.decoder_error import beside_checkpoint

__all__ = [
    "INTERVAL_CALIBRATION_FILE",
    "FWI_POOLED_INTERVAL_CALIBRATION_FILE",
    "FWI_SHARPENED_INTERVAL_CALIBRATION_FILE",
    "IntervalCalibration",
    "SHARPENED_INTERVAL_CALIBRATION_FILE",
    "calibrated_half_width",
    "conformal_scale",
    "interval_calibration_path",
    "map_scores",
    "scale_from_scores",
    "stored_interval_calibration",
]

#: stored beside the prior's ``diffusion.pt`` (the shipped layout) or its checkpoint file
INTERVAL_CALIBRATION_FILE = "interval_calibration.json"
#: the scale of the interval after :func:`~ubdiff_phys.inversion.sharpen_samples` (measured by
#: ``calibrate-interval --sharpen``), stored beside the *start* prior's checkpoint
SHARPENED_INTERVAL_CALIBRATION_FILE = "interval_calibration_sharpened.json"
#: the scale of the interval after sharpening from :func:`~ubdiff_phys.inversion.fwi_start`
#: (``calibrate-interval VELOCITY_PRIOR --sharpen --sharpen-from fwi``), stored beside the
#: velocity-space prior that sharpens (the FWI start has no checkpoint)
FWI_SHARPENED_INTERVAL_CALIBRATION_FILE = "interval_calibration_fwi_sharpened.json"
#: the same for chains pooled over several FWI starts (``--sharpen-fwi-pool K`` with K > 1):
#: their interval is wider than the single start's, so their scale is measured and kept apart
FWI_POOLED_INTERVAL_CALIBRATION_FILE = "interval_calibration_fwi_pooled.json"
#: the value a sampler setting has when a record predates it
_SETTING_DEFAULTS: dict[str, Any] = {"latent_fit": 0, "pool_top": 1}


@dataclass(frozen=True)
class IntervalCalibration:
    """The scale of a prior's posterior interval, measured on calibration maps.

    Attributes:
        level: the interval's nominal level (e.g. 0.9); the scale is valid for it only.
        scale: c, the factor on the base interval's half-width (dimensionless; > 1 widens).
        base: the interval kind it scales ("approximation" or "predictive").
        n_maps, n_pixels: calibration maps and the pixels pooled over them.
        coverage_before: pooled share of true pixels inside the base interval on those maps.
        per_map_before: that share per map.
        source: what the maps were; settings: the sampler settings (method, n_samples, steps,
            noise fraction, ...) the scale was measured with.
        per_map_left_out: each map's coverage under the scale measured on the other maps (an
            estimate of the coverage on new maps; None for one map or an older record);
            coverage_left_out: their mean.
    """

    level: float
    scale: float
    base: str
    n_maps: int
    n_pixels: int
    coverage_before: float
    per_map_before: list[float]
    source: str
    settings: dict[str, Any] = field(default_factory=dict)
    per_map_left_out: list[float] | None = None
    coverage_left_out: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ubdiff_phys.interval_calibration", **self.__dict__}

    def differs_from(
        self, settings: dict[str, Any], *, noise: float | None = None
    ) -> dict[str, tuple[Any, Any]]:
        """{key: (calibrated with, used)} for the sampler settings (method, n_samples, steps, bands,
        latent_fit, keep_best_of, the FWI start's linear starts, pool_top and iterations, and
        the sharpening's settings) in which a posterior's ``settings`` differ from those the
        scale was measured with (a scale measured with 8 samples over-widens a 16-sample
        interval a little: on the FlatVel-A evaluation 0.94 coverage against 0.92). ``noise``:
        the data noise as a fraction of the RMS where the caller knows it (a posterior records
        only its absolute noise_std); it is reported as ``"noise"`` when the calibration was
        measured at another fraction."""
        keys = ("method", "n_samples", "steps", "bands", "full_band_from", "latent_fit")
        keys += ("keep_best_of",)
        keys += ("fwi_starts", "pool_top", "iterations", "polish_iterations", "sharpen")

        def get(d: dict[str, Any], k: str) -> Any:
            if k == "fwi_starts":  # fwi_start records the kept start, and all with several
                starts = d.get("linear_candidates", [d["linear"]] if "linear" in d else None)
                return None if starts is None else [[float(x) for x in p] for p in starts]
            return d.get(k, _SETTING_DEFAULTS.get(k))

        diff = {
            k: (get(self.settings, k), get(settings, k))
            for k in keys
            if get(self.settings, k) != get(settings, k)
        }
        measured = self.settings.get("noise")
        if noise is not None and measured is not None and not math.isclose(noise, measured):
            diff["noise"] = (measured, noise)
        return diff

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntervalCalibration:
        if d.get("kind") != "ubdiff_phys.interval_calibration":
            raise ValueError(f"not an interval calibration record (kind {d.get('kind')!r})")
        fields = {k: v for k, v in d.items() if k != "kind"}
        return cls(**fields)


def conformal_scale(
    results: Sequence[Any], truths: Sequence[torch.Tensor], level: float, base: str
) -> IntervalCalibration:
    """Split-conformal scale of the ``base`` interval from posterior results with known truth.

    Args:
        results: :class:`~ubdiff_phys.inversion.PosteriorResult` (anything with ``samples``
            and ``interval(level, kind)``), one per calibration map.
        truths: the true maps, each (1, nz, nx) [m/s], in the same order.
        level: nominal level in (0, 1); base: the interval kind to scale.

    Returns:
        :class:`IntervalCalibration` (``source`` and ``settings`` empty: the caller fills them).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if len(results) != len(truths) or not results:
        raise ValueError("need one truth per result and at least one result")
    scores = [
        map_scores(res, truth, level, base) for res, truth in zip(results, truths, strict=True)
    ]
    return scale_from_scores(scores, level, base)


def map_scores(res: Any, truth: torch.Tensor, level: float, base: str) -> torch.Tensor:
    """One calibration map's scores ``|v_true − centre| / half-width`` of the ``base`` interval at
    ``level`` (flattened, float64; inf where the interval has zero width and misses)."""
    lo, hi = res.interval(level, base)
    t = truth.reshape(lo.shape).to(lo)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    dist = (t - centre).abs()
    s = torch.where(half > 0, dist / half.clamp(min=1e-30), torch.where(dist > 0, torch.inf, 0))
    return s.flatten().double()


def scale_from_scores(
    scores: Sequence[torch.Tensor], level: float, base: str
) -> IntervalCalibration:
    """:func:`conformal_scale` from each map's :func:`map_scores` (``source`` and ``settings``
    empty: the caller fills them)."""
    scores = list(scores)
    scale = _rank_scale(torch.cat(scores), level)
    if scale is None:
        raise ValueError(
            "too few calibration pixels with a finite score for this level (the base interval "
            "has zero width where the truth differs from the mean)"
        )
    left_out = _left_out_coverage(scores, level)
    pooled = torch.cat(scores)
    return IntervalCalibration(
        level=float(level),
        scale=scale,
        base=base,
        n_maps=len(scores),
        n_pixels=pooled.numel(),
        coverage_before=float((pooled <= 1).double().mean()),
        per_map_before=[round(float((x <= 1).double().mean()), 4) for x in scores],
        source="",
        per_map_left_out=left_out,
        coverage_left_out=None if left_out is None else round(sum(left_out) / len(left_out), 4),
    )


def _rank_scale(scores: torch.Tensor, level: float) -> float | None:
    """The ⌈(N + 1)·level⌉-th smallest of N scores, or None when it is not finite / N too small."""
    pooled = scores.sort().values
    k = math.ceil((pooled.numel() + 1) * level)
    if k > pooled.numel() or not math.isfinite(float(pooled[k - 1])):
        return None
    return float(pooled[k - 1])


def _left_out_coverage(scores: list[torch.Tensor], level: float) -> list[float] | None:
    """Each map's share of scores ≤ the scale measured on the other maps (None for one map, or
    when a left-out scale is undefined)."""
    if len(scores) < 2:
        return None
    out = []
    for k, own in enumerate(scores):
        c = _rank_scale(torch.cat(scores[:k] + scores[k + 1 :]), level)
        if c is None:
            return None
        out.append(round(float((own <= c).double().mean()), 4))
    return out


def calibrated_half_width(
    lo: torch.Tensor, hi: torch.Tensor, cal: IntervalCalibration
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) of the base interval -> the calibrated one: its centre ± ``cal.scale`` × its
    half-width."""
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * cal.scale
    return centre - half, centre + half


def interval_calibration_path(
    diff_path: Path, *, sharpened: bool = False, fwi_start: bool = False, pooled: bool = False
) -> Path:
    """Where the interval calibration of a diffusion checkpoint file ``diff_path`` is stored
    (``sharpened``: the one of its posterior sharpened by the velocity-space prior;
    ``fwi_start``: that of this velocity-space prior's sharpening from the FWI start; with
    ``pooled``: from chains pooled over several FWI starts)."""
    name = SHARPENED_INTERVAL_CALIBRATION_FILE if sharpened else INTERVAL_CALIBRATION_FILE
    if fwi_start:
        name = FWI_SHARPENED_INTERVAL_CALIBRATION_FILE
    if fwi_start and pooled:
        name = FWI_POOLED_INTERVAL_CALIBRATION_FILE
    return beside_checkpoint(diff_path, name)


def stored_interval_calibration(path: Path) -> IntervalCalibration | None:
    """The record at ``path``, or None when there is none."""
    if not path.is_file():
        return None
    return IntervalCalibration.from_dict(json.loads(path.read_text()))
