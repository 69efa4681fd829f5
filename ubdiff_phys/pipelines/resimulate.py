"""Replace the seismic of a pairs file by the solver's (``ubdiff-phys resimulate``).

Generated pairs carry seismic from the autoencoder's decoder, which need not obey the wave
equation. Re-simulating the generated velocity maps with the survey and boundary mode the file
records gives pairs that are physically consistent by construction (residual 0); comparing
the two isolates what the decoder's seismic costs a downstream model.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.data.store import StoreError, StoreWriter, create_store, open_store
from ubdiff_phys.physics import simulate
from ubdiff_phys.pipelines.validate import recorded_simulation
from ubdiff_phys.runtime.device import resolve_device
from ubdiff_phys.runtime.progress import commit_batches
from ubdiff_phys.runtime.version import __version__

__all__ = ["resimulate_store"]


#: which rows of the source :func:`resimulate_store` simulates: "paired" (the rows with seismic)
#: or "train" (every training velocity map, with or without seismic)
ROW_CHOICES = ("paired", "train")


def _prepare_out(st, src: Path, out: Path, n: int, build_args, compression, dev) -> None:
    """Create ``out`` for a new re-simulation of ``st``, or check that it is one to resume."""
    if out.exists():
        with StoreWriter(out) as w:
            try:
                existing = w.attr("build_args")
            except KeyError:
                existing = None
            if existing != build_args:
                raise FileExistsError(
                    f"{str(out)!r} exists and was not re-simulated from this {str(src)!r}; "
                    "remove it or choose another path"
                )
    else:
        keep = {
            k: st.attrs.get(k)
            for k in ("survey", "boundary", "family", "normalization", "seed")
            if st.attrs.get(k) is not None
        }
        create_store(
            out,
            n_rows=n,
            grid=st.grid,
            seismic_shape=st.seismic_shape,
            paired_index=np.arange(n),
            train_index=np.arange(n),
            test_index=np.zeros(0, dtype=np.int64),
            compression=compression,
            attrs={
                **keep,
                "source": "ubdiff_phys.resimulate",
                "source_files": [str(src)],
                "solver_version": __version__,
                "build_args": build_args,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "simulation_device": str(dev),
            },
        )


def resimulate_store(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    batch: int = 32,
    compression: str | None = "gzip",
    progress: bool = True,
    rows: str = "paired",
) -> dict[str, Any]:
    """Write ``out``: rows of ``src`` with their seismic simulated by the solver.

    ``out`` holds only the chosen rows of ``src`` (velocity copied, seismic from
    :func:`ubdiff_phys.physics.simulate` with ``src``'s survey and boundary mode), all in the
    training split, with ``src``'s normalisation. The build commits after every batch and
    resumes if interrupted; an existing complete ``out`` from the same ``src`` is left alone.

    Args:
        src: a dataset file with paired rows that records its survey (e.g. generated pairs).
        out: the new HDF5 file.
        device: where to simulate (default: CUDA when available).
        batch: models per solver call.
        compression: "gzip", "lzf" or None.
        progress: tqdm progress bar on stderr.
        rows: "paired" (``src``'s paired rows, e.g. generated pairs) or "train" (every training
            velocity map of ``src``, paired or not: all of a real store's maps as pairs).

    Returns:
        ``{"out", "n", "simulated", "seconds", "models_per_s"}`` (this call's work).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if rows not in ROW_CHOICES:
        raise ValueError(f"rows must be one of {ROW_CHOICES}, got {rows!r}")
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise ValueError("out must differ from src")
    dev = resolve_device(device)
    with open_store(src) as st:
        survey, boundary = recorded_simulation(
            st, "re-simulate it with ubdiff_phys.physics.simulate and Survey.openfwi()"
        )
        picked = np.asarray(st.paired_index if rows == "paired" else st.train_index)
        if len(picked) == 0:
            raise StoreError(f"{str(src)!r} has no {rows} rows")
        build_args = {
            "resimulated_from": str(src.resolve()),
            "src_build_args": st.attrs.get("build_args"),
            "n": len(picked),
            "boundary": boundary,
            "survey": survey.to_dict(),
            **({"rows": rows} if rows != "paired" else {}),
        }
        _prepare_out(st, src, out, len(picked), build_args, compression, dev)
        t0 = time.perf_counter()
        with StoreWriter(out) as w:
            p = w.progress

            def pairs(i: int, j: int) -> None:
                v = np.stack([st.velocity(int(r)) for r in picked[i:j]])
                if w.progress.n_velocity_committed == i:
                    w.write_velocity(i, v)
                s = simulate(torch.from_numpy(v).to(dev), survey, boundary=boundary)
                w.write_seismic(i, s.to("cpu", torch.float32).numpy())

            simulated, _ = commit_batches(
                p.n_seismic_committed,
                p.n_seismic,
                batch,
                pairs,
                desc=f"re-simulating ({dev.type})",
                unit="model",
                progress=progress and not p.complete,
            )
            if not p.complete:
                w.finalize()
    dt = time.perf_counter() - t0
    return {
        "out": str(out),
        "n": len(picked),
        "simulated": simulated,
        "seconds": dt,
        "models_per_s": simulated / dt if simulated and dt > 0 else None,
    }
