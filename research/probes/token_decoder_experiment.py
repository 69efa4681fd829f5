"""The UB-Diff arm of the ``medium`` unbalanced experiment with the token seismic decoder.

Follows ``research/probes/seismic_decoder_probe.py``: on the medium store, the token decoder
was the only one that beat the mean training gather. This reruns settings (a), (b), (e) and (f)
of ``examples/unbalanced_experiment.py --scale medium`` (one InversionNet seed) with the
autoencoder's seismic decoder switched to ``token`` (head 64), reusing the medium store.

    PYTHONPATH=. python research/probes/token_decoder_experiment.py \
        --medium out/unbalanced_medium --workdir out/unbalanced_medium_token
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

import ubdiff_phys.pipelines.experiment as ex
import ubdiff_phys.pipelines.experiment_presets as presets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--medium", type=Path, required=True, help="a finished medium work folder")
    ap.add_argument("--workdir", type=Path, required=True)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / "data.h5"
    if not data.exists():
        os.symlink((args.medium / "data.h5").resolve(), data)
    real = args.workdir / "inversion_real.json"  # (a) is the medium run's: same data and seed
    if not real.exists():
        shutil.copy(args.medium / "inversion_real.json", real)
    ex.VARIANTS = {"ubdiff": False}
    ex.SETTINGS = presets.SETTINGS = {k: v for k, v in ex.SETTINGS.items()
                   if k in ("real", "ubdiff", "ubdiff_filtered", "ubdiff_resim")}  # fmt: skip
    medium = ex.PRESETS["medium"]
    overrides = {**medium.ae_overrides,
                 "model": {"seismic_decoder": "token", "seismic_head_dim": 64}}  # fmt: skip
    preset = dataclasses.replace(medium, protocol_seeds=1, ae_overrides=overrides)
    ex.run_experiment(args.workdir, preset, device="cpu", progress=False)
    print((args.workdir / "results.md").read_text())


if __name__ == "__main__":
    main()
