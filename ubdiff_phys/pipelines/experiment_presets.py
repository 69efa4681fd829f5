"""The unbalanced-data experiment's settings and presets (scales of one run).

The presets are TOML files in ``configs/experiment/<name>.toml`` (fields of
:class:`ExperimentPreset`); the base training configs they name live in ``configs/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ubdiff_phys.runtime.config import read_toml, strict_from_dict

__all__ = [
    "GUIDED_SETTINGS",
    "PHYSICS_SETTINGS",
    "PRESETS",
    "SETTINGS",
    "SETTING_LABELS",
    "VARIANTS",
    "ExperimentPreset",
    "chosen_settings",
    "default_configs_dir",
    "load_presets",
    "with_budget",
]

_PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"  # in an installed wheel
_REPO_CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"  # in a checkout


def default_configs_dir() -> Path:
    """The base TOML configs: the copy installed with the package, else the checkout's
    ``configs/``."""
    return _PACKAGED_CONFIGS if _PACKAGED_CONFIGS.is_dir() else _REPO_CONFIGS


#: autoencoder variants: name -> ``data.paired_only``
VARIANTS = {"ubdiff": False, "wo_opt": True}

#: InversionNet training settings: name -> training sources ("real" or a variant's generated pairs)
SETTINGS = {
    "real": ("real",),
    "ubdiff": ("ubdiff",),
    "ubdiff+real": ("ubdiff", "real"),
    "wo_opt": ("wo_opt",),
    "ubdiff_filtered": ("ubdiff_filtered",),
    "ubdiff_resim": ("ubdiff_resim",),
    "ubdiff_resim+real": ("ubdiff_resim", "real"),
    "majority_solver": ("majority_solver",),
    "guided+real": ("ubdiff_guided", "real"),
}

#: the settings that need the physics check or the solver (``ExperimentPreset.physics_settings``)
PHYSICS_SETTINGS = ("ubdiff_filtered", "ubdiff_resim", "ubdiff_resim+real", "majority_solver")
#: the settings that need physics-guided sampling (``ExperimentPreset.guided_settings``)
GUIDED_SETTINGS = ("guided+real",)

SETTING_LABELS = {
    "real": "(a) real pairs only",
    "ubdiff": "(b) UB-Diff generated",
    "ubdiff+real": "(c) UB-Diff generated + real",
    "wo_opt": "(d) w/o opt generated",
    "ubdiff_filtered": "(e) UB-Diff generated, residual-filtered",
    "ubdiff_resim": "(f) UB-Diff velocities, re-simulated seismic",
    "ubdiff_resim+real": "(g) real + UB-Diff velocities with solver seismic",
    "majority_solver": "(h) every training velocity map with solver seismic (physics reference)",
    "guided+real": "(i) real + physics-guided UB-Diff pairs",
}


@dataclass(frozen=True)
class ExperimentPreset:
    """Scale of one run.

    Attributes:
        n_velocity, n_paired, n_test: the synthetic store (training maps, of which paired, and
            held-out pairs).
        ae_config, diffusion_config: base TOML configs (relative to ``configs/``).
        ae_overrides, diffusion_overrides: ``{section: {field: value}}`` applied on top.
        n_generated: generated pairs per variant.
        sampler, sample_steps, sample_weights: sampling options ("model" or "ema" weights).
        protocol: :class:`~ubdiff_phys.eval.protocol.ProtocolConfig` fields; every setting
            gets the same ``max_steps`` optimiser steps (whatever its number of pairs), so the
            settings differ in their data only. InversionNet results are recomputed when these
            change.
        protocol_seeds: InversionNet runs per setting (seeds seed, seed + 1, ...); with more
            than one the table gives each metric's mean +- standard deviation.
        features: :class:`~ubdiff_phys.eval.features.FeatureConfig` fields.
        wo_opt_step1: how the "w/o opt" autoencoder's step 1 (on the paired maps only) is
            budgeted: ``"steps"`` scales its epochs by n_velocity / n_paired so that it gets as
            many optimiser steps as UB-Diff's step 1 (the settings then differ in data only);
            ``"epochs"`` keeps the config's epochs (far fewer steps).
        physics_settings: also run settings (e)-(h) (residual filter, re-simulation, all
            training maps simulated).
        filter_keep: fraction of the UB-Diff pairs that setting (e) keeps (lowest residual).
        guided_settings: also run setting (i): UB-Diff pairs sampled with pair-misfit guidance
            (``seismic="guided"``, :mod:`ubdiff_phys.pipelines.seismic_modes`) with
            ``guidance_scale``, ``guidance_steps``, ``guidance_shots`` (shots per guided
            step; None, the presets' default: all, as the committed results were made) and
            ``guidance_noise`` (the presets' default "recompute", as they were made) and
            ``guidance_gradient`` (the presets' default "full", as they were made; with it
            ``guidance_refine_every`` plays no part, 1);
            ``n_guided`` of them (default
            ``n_generated``: guided sampling costs about 16 times the decoder's time per pair).
    """

    n_velocity: int
    n_paired: int
    n_test: int
    ae_config: str
    diffusion_config: str
    n_generated: int
    ae_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    diffusion_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sampler: str = "ddim"
    sample_steps: int = 50
    sample_weights: str = "model"
    protocol: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    wo_opt_step1: str = "steps"
    protocol_seeds: int = 1
    physics_settings: bool = True
    filter_keep: float = 0.5
    guided_settings: bool = True
    guidance_scale: float = 0.05
    guidance_steps: int = 10
    guidance_shots: int | None = None
    guidance_noise: str = "recompute"
    guidance_gradient: str = "full"
    guidance_refine_every: int = 1
    n_guided: int | None = None

    def __post_init__(self) -> None:
        if self.wo_opt_step1 not in ("steps", "epochs"):
            raise ValueError(f"wo_opt_step1 must be 'steps' or 'epochs', got {self.wo_opt_step1!r}")
        if self.protocol_seeds < 1:
            raise ValueError(f"protocol_seeds must be >= 1, got {self.protocol_seeds}")
        if not 0.0 < self.filter_keep <= 1.0:
            raise ValueError(f"filter_keep must be in (0, 1], got {self.filter_keep}")

    @property
    def settings(self) -> tuple[str, ...]:
        """The InversionNet settings this preset runs."""
        skip = (() if self.physics_settings else PHYSICS_SETTINGS) + (
            () if self.guided_settings else GUIDED_SETTINGS
        )
        return tuple(k for k in SETTINGS if k not in skip)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def chosen_settings(preset: ExperimentPreset, settings: Sequence[str] | None) -> tuple[str, ...]:
    """The InversionNet settings to run, in the preset's order: all of ``preset.settings`` when
    ``settings`` is None. Raises ValueError for a setting the preset does not run."""
    if settings is None:
        return preset.settings
    unknown = [s for s in settings if s not in preset.settings]
    if unknown or not settings:
        raise ValueError(
            f"unknown or empty setting(s) {unknown}: this preset runs {', '.join(preset.settings)}"
        )
    return tuple(s for s in preset.settings if s in settings)


def with_budget(
    preset: ExperimentPreset, max_steps: int | None = None, seeds: int | None = None
) -> tuple[ExperimentPreset, str]:
    """``preset`` with InversionNet's optimiser steps per run (``protocol.max_steps``) and seeds
    per setting (``protocol_seeds``) replaced where given, and the tag its results' file names
    carry: ``""`` for the preset's own step budget, else ``"_steps<max_steps>"``, so that runs
    with another budget sit beside the preset's results instead of replacing them.

    Raises ValueError for ``max_steps`` or ``seeds`` < 1."""
    if (max_steps is not None and max_steps < 1) or (seeds is not None and seeds < 1):
        raise ValueError(f"max_steps and seeds must be >= 1, got {max_steps}, {seeds}")
    changes: dict[str, Any] = {}
    if max_steps is not None:
        changes["protocol"] = {**preset.protocol, "max_steps": max_steps}
    if seeds is not None:
        changes["protocol_seeds"] = seeds
    own = max_steps is None or max_steps == preset.protocol.get("max_steps")
    return dataclasses.replace(preset, **changes), "" if own else f"_steps{max_steps}"


def load_presets(configs_dir: str | Path | None = None) -> dict[str, ExperimentPreset]:
    """The presets in ``<configs_dir>/experiment/*.toml`` by file stem ({} when there are none)."""
    folder = Path(configs_dir or default_configs_dir()) / "experiment"
    return {
        p.stem: strict_from_dict(ExperimentPreset, read_toml(p), f"preset option(s) in {p.name}")
        for p in sorted(folder.glob("*.toml"))
    }


#: the presets of the configs folder found at import (:func:`default_configs_dir`)
PRESETS: dict[str, ExperimentPreset] = load_presets()
