"""Import OpenFWI ``.npy`` files into one dataset store, one file at a time (specs/data.md §1).

Two naming schemes, both detected automatically in DIR:

* Vel and Style families: ``DIR/data/data{i}.npy`` (seismic) with ``DIR/model/model{i}.npy``
  (velocity). Official split: Vel data1-48 train, 49-60 test; Style data1-120 train, 121-134 test.
* Fault families: ``DIR/seis{n}_1_{j}.npy`` with ``DIR/vel{n}_1_{j}.npy`` in the same folder.
  Official split: j = 0-31 train, 32-35 test.

Seismic files are (k, S, nt, R) float32 (OpenFWI: (500, 5, 1000, 70)); velocity files (k, 1, nz, nx)
in m/s (OpenFWI: (500, 1, 70, 70)). Files are memory-mapped and copied a slice at a time, so memory
stays bounded however large the subset (43-95 GB). Every imported sample is paired.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ubdiff_phys.data.normalize import SEISMIC_LOG_BOUNDS, Normalizer
from ubdiff_phys.data.store import FORMAT_VERSION, StoreError, StoreWriter, create_store, open_store
from ubdiff_phys.physics import Survey
from ubdiff_phys.runtime.version import __version__

__all__ = ["ImportSummary", "PairFile", "find_openfwi_pairs", "import_openfwi", "infer_subset"]

_DATA = re.compile(r"^data(\d+)\.npy$")
_MODEL = re.compile(r"^model(\d+)\.npy$")
_SEIS = re.compile(r"^seis(\d+)_1_(\d+)\.npy$")
_VEL = re.compile(r"^vel(\d+)_1_(\d+)\.npy$")
_SLICE = 50  # samples copied per write (50 OpenFWI gathers = 70 MB)


@dataclass(frozen=True)
class PairFile:
    """One seismic file and its velocity file.

    Attributes:
        key: numbers in the file name ((i,) or (n, j)), the sort order.
        seismic, velocity: paths.
        n: samples in the pair.
    """

    key: tuple[int, ...]
    seismic: Path
    velocity: Path
    n: int


def infer_subset(name: str) -> str | None:
    """OpenFWI subset name from a folder name ("FlatVel_A" -> "flatvel-a"), or None."""
    key = re.sub(r"[^a-z]", "", name.lower())
    for subset in SEISMIC_LOG_BOUNDS:
        if key == subset.replace("-", ""):
            return subset
    return None


def _shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {str(path)!r} as a .npy array: {exc}") from exc
    return arr.shape, arr.dtype


def find_openfwi_pairs(directory: str | os.PathLike) -> tuple[str, list[PairFile]]:
    """Find the (seismic, velocity) file pairs of one OpenFWI subset folder.

    Returns:
        (scheme, pairs sorted by file number): scheme "data-model" or "seis-vel".

    Raises:
        FileNotFoundError: no OpenFWI files in the folder.
        ValueError: a file without its partner, or pairs whose shapes disagree.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{str(d)!r} is not a directory")
    found: dict[str, tuple[dict[tuple[int, ...], Path], dict[tuple[int, ...], Path]]] = {}
    if (d / "data").is_dir() or (d / "model").is_dir():
        seis = {(int(m[1]),): p for p in (d / "data").glob("*.npy") if (m := _DATA.match(p.name))}
        vel = {(int(m[1]),): p for p in (d / "model").glob("*.npy") if (m := _MODEL.match(p.name))}
        if seis or vel:
            found["data-model"] = (seis, vel)
    seis = {(int(m[1]), int(m[2])): p for p in d.glob("seis*.npy") if (m := _SEIS.match(p.name))}
    vel = {(int(m[1]), int(m[2])): p for p in d.glob("vel*.npy") if (m := _VEL.match(p.name))}
    if seis or vel:
        found["seis-vel"] = (seis, vel)
    if not found:
        raise FileNotFoundError(
            f"no OpenFWI files in {str(d)!r}: expected data/data{{i}}.npy + model/model{{i}}.npy, "
            "or "
            "seis{n}_1_{j}.npy + vel{n}_1_{j}.npy in the folder"
        )
    if len(found) > 1:
        raise ValueError(
            f"{str(d)!r} holds both OpenFWI naming schemes; import one subset per folder"
        )
    scheme, (seis, vel) = next(iter(found.items()))
    missing = sorted(str(seis[k].name) for k in set(seis) - set(vel)) + sorted(
        str(vel[k].name) for k in set(vel) - set(seis)
    )
    if missing:
        raise ValueError(
            f"unmatched OpenFWI files in {str(d)!r} (each seismic file needs its velocity file and "
            f"vice versa): {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else "")
        )
    pairs, ref = [], None
    for key in sorted(seis):
        (s_shape, s_dtype), (v_shape, v_dtype) = _shape(seis[key]), _shape(vel[key])
        if len(s_shape) != 4 or len(v_shape) != 4 or v_shape[1] != 1:
            raise ValueError(
                f"{seis[key].name} {s_shape} / {vel[key].name} {v_shape}: want "
                "seismic (k, S, nt, R) "
                "and velocity (k, 1, nz, nx)"
            )
        if s_shape[0] != v_shape[0]:
            raise ValueError(
                f"mismatched pair: {seis[key].name} has {s_shape[0]} samples but {vel[key].name} "
                f"has {v_shape[0]}"
            )
        for p, dt in ((seis[key], s_dtype), (vel[key], v_dtype)):
            if not np.issubdtype(dt, np.floating):
                raise ValueError(f"{p.name} has dtype {dt}; OpenFWI files are float32")
        if ref is None:
            ref = (s_shape[1:], v_shape[1:])
        elif (s_shape[1:], v_shape[1:]) != ref:
            raise ValueError(
                f"{seis[key].name}: sample shapes {s_shape[1:]} / {v_shape[1:]} differ from "
                f"the first "
                f"pair's {ref[0]} / {ref[1]}"
            )
        pairs.append(PairFile(key, seis[key], vel[key], s_shape[0]))
    return scheme, pairs


def _official_split(scheme: str, subset: str | None, pair: PairFile) -> str:
    if subset is None:
        raise ValueError(
            "cannot apply the official OpenFWI split without knowing the subset: pass --family "
            "(e.g. flatvel-a) or --split-file"
        )
    if scheme == "seis-vel":
        return "train" if pair.key[1] <= 31 else "test"
    last_train = 120 if subset.startswith("style") else 48
    return "train" if pair.key[0] <= last_train else "test"


def _read_split_file(path: Path, pairs: list[PairFile]) -> tuple[str, set[str]]:
    """Which split a split file lists ("train" if its name contains "train", else "test": the
    benchmark's "val" files are its test set) and the seismic file names it lists."""
    if not path.is_file():
        raise FileNotFoundError(f"split file {str(path)!r} does not exist")
    role = "train" if "train" in path.name.lower() else "test"
    known = {p.seismic.name for p in pairs}
    listed = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name = Path(line.split()[0]).name
        if name not in known:
            raise ValueError(
                f"{path.name}:{n} lists {name!r}, which is not among the seismic files found"
            )
        listed.add(name)
    return role, listed


@dataclass(frozen=True)
class ImportSummary:
    path: Path
    subset: str | None
    scheme: str
    n_files: int
    n_train: int
    n_test: int
    resumed: bool

    def describe(self) -> str:
        return (
            f"{self.path}: {self.n_train + self.n_test} OpenFWI samples from "
            f"{self.n_files} file pairs "
            f"({self.scheme} naming, subset {self.subset or 'unknown'}): {self.n_train} train, "
            f"{self.n_test} test" + (" (resumed)" if self.resumed else "")
        )


def _create(out, directory, subset, pairs, is_train, split_file, build_args, compression):
    """The empty store of a new import (the OpenFWI survey recorded when the shapes are its)."""
    n_rows = len(is_train)
    rows = np.arange(n_rows)
    s_shape = _shape(pairs[0].seismic)[0][1:]
    v_shape = _shape(pairs[0].velocity)[0][2:]
    openfwi = Survey.openfwi()
    is_openfwi = tuple(s_shape) == (
        openfwi.n_sources,
        openfwi.nt,
        openfwi.n_receivers,
    ) and tuple(v_shape) == (openfwi.nz, openfwi.nx)
    create_store(
        out,
        n_rows=n_rows,
        grid=tuple(v_shape),
        seismic_shape=tuple(s_shape),
        paired_index=rows,
        train_index=rows[is_train],
        test_index=rows[~is_train],
        compression=compression,
        attrs={
            "survey": openfwi.to_dict() if is_openfwi else None,
            "boundary": "openfwi" if is_openfwi else "unknown",
            "solver_version": __version__,
            "family": subset or "unknown",
            "source": "openfwi-import",
            "source_files": {
                "directory": str(directory.resolve()),
                "files": build_args["files"],
            },
            "normalization": (Normalizer.for_family(subset) if subset else Normalizer()).to_dict(),
            "split": {
                "official": split_file is None,
                "split_file": None if split_file is None else str(split_file),
                "n_train": int(is_train.sum()),
                "n_test": int((~is_train).sum()),
            },
            "build_args": build_args,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def _copy(out, pairs, starts, progress, on_commit) -> None:
    """Copy the files' samples into the store in order, resuming at the committed rows."""
    n_rows = int(starts[-1])
    with StoreWriter(out) as w:
        done = w.progress.n_velocity_committed
        already = w.progress.complete
        with tqdm(
            total=n_rows,
            initial=done,
            desc="importing",
            unit="sample",
            disable=not progress or already,
            file=sys.stderr,
        ) as bar:
            for pair, a in zip(pairs, starts[:-1], strict=True):
                if a + pair.n <= done:
                    continue
                seis = np.load(pair.seismic, mmap_mode="r")
                vel = np.load(pair.velocity, mmap_mode="r")
                for k in range(max(done - a, 0), pair.n, _SLICE):
                    b = min(k + _SLICE, pair.n)
                    v = np.asarray(vel[k:b], dtype=np.float32)
                    if not np.isfinite(v).all() or v.min() <= 0 or v.max() <= 10.0:
                        raise ValueError(
                            f"{pair.velocity.name} samples {k}-{b - 1}: velocities must be finite "
                            f"wave speeds in m/s (got range "
                            f"[{v.min()}, {v.max()}]; normalised data?)"
                        )
                    s = np.asarray(seis[k:b], dtype=np.float32)
                    if not np.isfinite(s).all():
                        raise ValueError(f"{pair.seismic.name} samples {k}-{b - 1} contain NaN/inf")
                    w.write_velocity(a + k, v)
                    w.write_seismic(a + k, s)
                    bar.update(b - k)
                del seis, vel
                if on_commit:
                    on_commit(int(a + pair.n), n_rows)
        if not already:
            w.finalize()


def import_openfwi(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    *,
    family: str | None = None,
    split_file: str | os.PathLike | None = None,
    compression: str | None = "gzip",
    progress: bool = True,
    on_commit: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import one OpenFWI subset folder into a dataset store (resumable like make-dataset).

    Args:
        directory: subset folder (either naming scheme).
        out: HDF5 path to write.
        family: OpenFWI subset ("flatvel-a", ..., "style-b"); default inferred from the folder
            name. Selects the official split and the normalisation bounds.
        split_file: OpenFWI split list (``data_path<TAB>label_path`` lines). If its name contains
            "train" it lists the training files and every other file is test; otherwise it lists
            the test ("val") files. Default: the official split by file number.
        on_commit: called as ``on_commit(rows_committed, rows_total)`` after each file.
    """
    directory = Path(directory)
    subset = infer_subset(family) if family is not None else infer_subset(directory.name)
    if family is not None and subset is None:
        raise ValueError(
            f"unknown OpenFWI subset {family!r}; valid: {', '.join(SEISMIC_LOG_BOUNDS)}"
        )
    scheme, pairs = find_openfwi_pairs(directory)
    if split_file is not None:
        role, listed = _read_split_file(Path(split_file), pairs)
        other = "test" if role == "train" else "train"
        splits = [role if p.seismic.name in listed else other for p in pairs]
    else:
        splits = [_official_split(scheme, subset, p) for p in pairs]
    starts = np.concatenate([[0], np.cumsum([p.n for p in pairs])])
    is_train = np.repeat(np.array([s == "train" for s in splits]), [p.n for p in pairs])
    out = Path(out)
    build_args = {
        "import_dir": str(directory.resolve()),
        "files": [
            [p.seismic.name, p.velocity.name, p.n, s] for p, s in zip(pairs, splits, strict=True)
        ],
        "subset": subset,
        "format_version": FORMAT_VERSION,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    resumed = out.exists()
    if resumed:
        with open_store(out, allow_incomplete=True) as st:
            recorded = st.attrs.get("build_args")
        if recorded != build_args:
            raise StoreError(
                f"{str(out)!r} exists and is not an import of the same files with the same split; "
                "choose another output path or delete it"
            )
    else:
        _create(out, directory, subset, pairs, is_train, split_file, build_args, compression)
    _copy(out, pairs, starts, progress, on_commit)
    return ImportSummary(
        path=out,
        subset=subset,
        scheme=scheme,
        n_files=len(pairs),
        n_train=int(is_train.sum()),
        n_test=int((~is_train).sum()),
        resumed=resumed,
    )
