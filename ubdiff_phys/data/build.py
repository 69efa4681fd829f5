"""``make_dataset``: a family's velocity maps plus simulated gathers for a few, in one HDF5 store.

The unbalanced split (specs/ubdiff.md): ``n_velocity`` training velocity maps, of which
``n_paired`` also get seismic gathers, and ``n_test`` held-out maps (all with gathers) that no
training view ever returns. Rows 0 .. N-1 (N = n_velocity + n_test) are maps 0 .. N-1 of the
family's seeded stream; a seeded permutation decides which rows are test rows and which training
rows are paired. Everything is a function of (family, n_velocity, n_paired, n_test, seed), so an
interrupted build resumes to exactly the file an uninterrupted one writes.
"""

from __future__ import annotations

import datetime as _dt
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.data.families import BLOCK, NX, NZ, check_family, generate
from ubdiff_phys.data.normalize import Normalizer
from ubdiff_phys.data.store import FORMAT_VERSION, StoreError, StoreWriter, create_store, open_store
from ubdiff_phys.physics import BOUNDARIES, Survey, simulate
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.files import exclusive_lock
from ubdiff_phys.runtime.progress import commit_batches
from ubdiff_phys.runtime.version import __version__

__all__ = ["BuildSummary", "make_dataset", "split_rows"]


@dataclass(frozen=True)
class BuildSummary:
    """What :func:`make_dataset` did."""

    path: Path
    family: str
    n_velocity: int
    n_paired: int
    n_test: int
    resumed: bool
    already_complete: bool
    velocities_generated: int
    gathers_simulated: int
    velocity_seconds: float
    simulation_seconds: float
    seismic_min: float
    seismic_max: float
    file_bytes: int
    device: str

    def describe(self) -> str:
        sims = self.gathers_simulated / self.simulation_seconds if self.simulation_seconds else 0.0
        vels = self.velocities_generated / self.velocity_seconds if self.velocity_seconds else 0.0
        state = (
            "already complete" if self.already_complete else ("resumed" if self.resumed else "new")
        )
        return (
            f"{self.path} ({state}): family {self.family}, {self.n_velocity} training "
            f"velocity maps "
            f"({self.n_paired} paired) + {self.n_test} test maps with gathers; this run generated "
            f"{self.velocities_generated} maps ({vels:,.0f}/s) and simulated "
            f"{self.gathers_simulated} gathers ({sims:.2f}/s on {self.device}); seismic range "
            f"[{self.seismic_min:.3g}, {self.seismic_max:.3g}]; {self.file_bytes / 1e6:.1f} MB"
        )


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def split_rows(
    n_velocity: int, n_paired: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a built dataset: (train_index, test_index, paired_index), all sorted.

    A permutation of the N = n_velocity + n_test rows seeded by ``seed``: its first ``n_test``
    entries are the test rows, the next ``n_paired`` the paired training rows; paired_index is
    the paired training rows and the test rows together, sorted.
    """
    n = n_velocity + n_test
    perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(b"split"),)))
    perm = perm.permutation(n)
    test = np.sort(perm[:n_test])
    train = np.sort(perm[n_test:])
    paired = np.sort(np.concatenate([perm[:n_test], perm[n_test : n_test + n_paired]]))
    return train, test, paired


def make_dataset(
    out: str | os.PathLike,
    *,
    family: str,
    n_velocity: int,
    n_paired: int,
    n_test: int | None = None,
    seed: int = 0,
    boundary: str = "openfwi",
    survey: Any = None,
    device: str | torch.device | None = None,
    batch: int = 32,
    compression: str | None = "gzip",
    progress: bool = True,
    on_commit: Callable[[str, int, int], None] | None = None,
) -> BuildSummary:
    """Build (or resume) a dataset file.

    Args:
        out: HDF5 path. If it exists it must be a build of the same arguments (then it resumes or,
            if complete, is left alone); otherwise it is refused.
        family: velocity family (:data:`~ubdiff_phys.data.families.FAMILIES`).
        n_velocity: training velocity maps (velocity-only view, includes the paired ones).
        n_paired: training maps that also get gathers (<= n_velocity).
        n_test: held-out maps, all with gathers; default ``n_paired``.
        seed: non-negative integer for the maps and the split.
        boundary: :func:`ubdiff_phys.physics.simulate` boundary mode.
        survey: :class:`ubdiff_phys.physics.Survey` on the 70 x 70 grid; default OpenFWI.
        device: where to simulate; default CUDA when available, else CPU.
        batch: models per simulate call (and per commit).
        compression: "gzip" (default), "lzf" or None.
        progress: show tqdm progress bars (stderr).
        on_commit: called as ``on_commit(kind, committed, total)`` after each committed batch,
            kind "velocity" or "seismic".

    Returns:
        A :class:`BuildSummary`.
    """
    family = check_family(family)
    n_velocity, n_paired, n_test, seed, batch = _check_counts(
        n_velocity, n_paired, n_test, seed, batch
    )
    survey = _check_survey(survey, boundary)
    dev = resolve_device(device)
    out = Path(out)
    build_args = {
        "family": family,
        "n_velocity": n_velocity,
        "n_paired": n_paired,
        "n_test": n_test,
        "seed": seed,
        "boundary": boundary,
        "survey": survey.to_dict(),
        "device_type": dev.type,
        "format_version": FORMAT_VERSION,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out, "make-dataset"):  # a second build of this path stops here
        resumed = out.exists()
        if resumed:
            _check_resume(out, build_args)
        else:
            _create(out, build_args, survey, dev, compression)
        fill = _fill(out, family, seed, survey, boundary, dev, batch, progress, on_commit)
    already, generated, t_vel, simulated, t_sim, s_min, s_max = fill
    return BuildSummary(
        path=out,
        family=family,
        n_velocity=n_velocity,
        n_paired=n_paired,
        n_test=n_test,
        resumed=resumed,
        already_complete=already,
        velocities_generated=generated,
        gathers_simulated=simulated,
        velocity_seconds=t_vel,
        simulation_seconds=t_sim,
        seismic_min=s_min,
        seismic_max=s_max,
        file_bytes=out.stat().st_size,
        device=str(dev),
    )


def _fill(out, family, seed, survey, boundary, dev, batch, progress, on_commit):
    """Write the velocity maps, then the paired gathers, resuming at the committed rows.

    Returns (already complete, maps generated, their seconds, gathers simulated, their seconds,
    seismic min, seismic max)."""
    with StoreWriter(out) as w:
        p = w.progress
        already = p.complete
        show = progress and not already
        paired = w.paired_index

        def velocity(i: int, j: int) -> None:
            w.write_velocity(i, generate(family, j - i, seed=seed, start=i))

        def seismic(i: int, j: int) -> None:
            v = torch.from_numpy(w.read_velocity(paired[i:j])).to(dev)
            s = simulate(v, survey, boundary=boundary)
            w.write_seismic(i, s.to("cpu", torch.float32).numpy())

        def commit(kind: str):
            return None if on_commit is None else lambda j, total: on_commit(kind, j, total)

        # 1. velocity maps: cheap, in whole blocks of the family stream
        generated, t_vel = commit_batches(
            p.n_velocity_committed,
            p.n_velocity,
            8 * BLOCK,
            velocity,
            desc="velocity maps",
            unit="map",
            progress=show,
            on_commit=commit("velocity"),
        )
        # 2. gathers of the paired rows, in batches
        simulated, t_sim = commit_batches(
            p.n_seismic_committed,
            p.n_seismic,
            batch,
            seismic,
            desc=f"simulating ({dev})",
            unit="model",
            progress=show,
            on_commit=commit("seismic"),
        )
        if not already:
            w.finalize()
        s_min, s_max = float(w.attr("seismic_min")), float(w.attr("seismic_max"))
    return already, generated, t_vel, simulated, t_sim, s_min, s_max


def _check_counts(n_velocity, n_paired, n_test, seed, batch) -> tuple[int, int, int, int, int]:
    n_velocity = _count(n_velocity, "n_velocity")
    n_paired = _count(n_paired, "n_paired")
    n_test = n_paired if n_test is None else _count(n_test, "n_test")
    seed = _count(seed, "seed")
    batch = _count(batch, "batch")
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if n_paired > n_velocity:
        raise ValueError(f"n_paired ({n_paired}) cannot exceed n_velocity ({n_velocity})")
    if n_velocity + n_test == 0:
        raise ValueError("nothing to build: n_velocity + n_test is 0")
    return n_velocity, n_paired, n_test, seed, batch


def _check_survey(survey, boundary: str):
    """The build's survey (default OpenFWI's) after checking it and the boundary mode."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    survey = Survey.openfwi() if survey is None else survey
    if not isinstance(survey, Survey):
        raise TypeError(f"survey must be a ubdiff_phys.physics.Survey, got {type(survey).__name__}")
    if (survey.nz, survey.nx) != (NZ, NX):
        raise ValueError(
            f"the velocity families are {NZ} x {NX} cells but the survey grid is "
            f"{survey.nz} x {survey.nx}; use a survey on the {NZ} x {NX} grid"
        )
    return survey


def _create(out: Path, build_args: dict[str, Any], survey, dev, compression) -> None:
    """The empty store of a new build (split drawn from the seed, attributes recorded)."""
    a = build_args
    train, test, paired = split_rows(a["n_velocity"], a["n_paired"], a["n_test"], a["seed"])
    create_store(
        out,
        n_rows=a["n_velocity"] + a["n_test"],
        grid=(NZ, NX),
        seismic_shape=(survey.n_sources, survey.nt, survey.n_receivers),
        paired_index=paired,
        train_index=train,
        test_index=test,
        compression=compression,
        attrs={
            "survey": survey.to_dict(),
            "boundary": a["boundary"],
            "solver_version": __version__,
            "family": a["family"],
            "seed": a["seed"],
            "source": "synthetic",
            "source_files": [],
            "normalization": Normalizer.for_family(a["family"]).to_dict(),
            "split": {k: a[k] for k in ("n_velocity", "n_paired", "n_test", "seed")},
            "build_args": build_args,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "simulation_device": str(dev),
        },
    )


def _check_resume(out: Path, build_args: dict[str, Any]) -> None:
    """Refuse to touch an existing file unless it is a build of exactly these arguments."""
    with open_store(out, allow_incomplete=True) as st:
        recorded = st.attrs.get("build_args")
    if recorded is None:
        raise StoreError(
            f"{str(out)!r} exists and was not written by make-dataset; refusing to overwrite it "
            "(choose another path or delete the file)"
        )
    diff = {k: (recorded.get(k), v) for k, v in build_args.items() if recorded.get(k) != v}
    if diff:
        lines = "; ".join(
            f"{k}: file has {a!r}, this run asks {b!r}" if k != "survey" else "survey differs"
            for k, (a, b) in diff.items()
        )
        raise StoreError(
            f"{str(out)!r} exists with different build arguments ({lines}); re-run with the "
            "recorded arguments to resume it, or choose another output path"
        )
