"""Compare the two seismic decoders of the UB-Diff autoencoder on a FlatVel-A-like set.

Builds a synthetic FlatVel-A-like store (PML boundary), trains step 1 (encoder + velocity branch on
all training velocity maps) once, then step 2 (F = 1: seismic head + decoder on the paired subset)
separately for ``seismic_decoder="token"`` (default) and ``"paper"`` from the same step-1 weights
with identical settings, and reports for each:

* held-out seismic reconstruction L1 (MAE) and MSE in normalised units ([-1, 1]);
* the physics residual of the reconstructed pair on a few held-out samples: relative L2
  ``||s_rec - F(v_rec)|| / ||F(v_rec)||`` between the (denormalised) reconstructed seismic and a
  simulation of the (denormalised) reconstructed velocity with the store's survey and boundary, in
  physical and in normalised units;
* parameter counts and training time.

Writes ``benchmarks/results/ae_decoder_comparison.json``. Defaults fit a 2-core CPU in ~15 minutes;
raise ``--n-velocity/--n-paired/--epochs*`` on a GPU.

    python examples/train_autoencoder_comparison.py --workdir runs/ae_compare
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from ubdiff_phys.data import make_dataset, open_store
from ubdiff_phys.models import count_parameters
from ubdiff_phys.physics import simulate
from ubdiff_phys.runtime.files import atomic_write_json
from ubdiff_phys.train import TrainConfig, load_autoencoder, train_autoencoder
from ubdiff_phys.train.config import DataConfig, RunConfig, StepConfig
from ubdiff_phys.train.loop import evaluate_autoencoder


def _rel(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.double().flatten(1), b.double().flatten(1)
    return ((a - b).norm(dim=1) / b.norm(dim=1)).tolist()


@torch.no_grad()
def physics_residual(model, store, n: int, batch: int = 4) -> dict[str, float]:
    """Residual of the autoencoder's reconstruction of the first ``n`` held-out pairs."""
    norm, survey = store.normalizer, store.survey
    boundary = str(store.attrs.get("boundary", "openfwi"))
    phys, normed, recon_vs_true = [], [], []
    rows = store.test_index[:n]
    for i in range(0, len(rows), batch):
        r = rows[i : i + batch]
        v = torch.stack([norm.velocity(torch.from_numpy(store.velocity(int(k)))) for k in r])
        s_true = torch.stack([torch.from_numpy(store.seismic_of(int(k))) for k in r])
        v_rec, s_rec = model.decode(model.encode(v.float()))
        v_phys = norm.velocity_inverse(v_rec.double()).clamp(norm.v_min, norm.v_max)
        f_v = simulate(v_phys, survey, boundary=boundary)
        s_rec_phys = norm.seismic_inverse(s_rec.double())
        phys += _rel(s_rec_phys, f_v)
        normed += _rel(s_rec.double(), norm.seismic(f_v))
        recon_vs_true += _rel(s_rec_phys, s_true.double())
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {
        "n_samples": len(phys),
        "rel_l2_physical_mean": mean(phys),
        "rel_l2_normalised_mean": mean(normed),
        "rel_l2_physical_per_sample": phys,
        "seismic_rel_l2_vs_true_physical_mean": mean(recon_vs_true),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", default="runs/ae_compare")
    ap.add_argument("--n-velocity", type=int, default=1000)
    ap.add_argument("--n-paired", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=32)
    ap.add_argument("--epochs1", type=int, default=1)
    ap.add_argument("--epochs2", type=int, default=2)
    ap.add_argument("--batch1", type=int, default=32)
    ap.add_argument("--batch2", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-physics", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/ae_decoder_comparison.json")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    store_path = work / "flatvel_a_like.h5"
    t0 = time.perf_counter()
    if store_path.exists():  # reuse a finished build (its recorded arguments are in the file)
        open_store(store_path).close()
    else:
        make_dataset(
            store_path,
            family="flatvel-a",
            n_velocity=args.n_velocity,
            n_paired=args.n_paired,
            n_test=args.n_test,
            boundary="pml",
            device="cpu",
        )
    build_s = time.perf_counter() - t0

    def step(epochs: int, batch: int) -> StepConfig:
        return StepConfig(epochs=epochs, batch_size=batch, lr=args.lr, lr_decay_every=10)

    base = TrainConfig(
        run=RunConfig(
            out_dir=str(work / "step1"),
            seed=0,
            device="cpu",
            threads=args.threads,
            val_every=args.epochs1,
            progress=True,
        ),
        data=DataConfig(store=str(store_path)),
        step1=step(args.epochs1, args.batch1),
        step2=step(0, args.batch2),
    )
    t0 = time.perf_counter()
    train_autoencoder(base)
    step1_s = time.perf_counter() - t0
    step1_ckpt = work / "step1" / "best_step1.pt"

    results = {}
    for decoder in ("token", "paper"):
        cfg = base.replace(
            run=replace(
                base.run,
                out_dir=str(work / decoder),
                init_from=str(step1_ckpt),
                val_every=args.epochs2,
            ),
            model=replace(base.model, seismic_decoder=decoder),
            step1=step(0, args.batch1),
            step2=replace(step(args.epochs2, args.batch2), freeze=1),
        )
        t0 = time.perf_counter()
        train_autoencoder(cfg)
        train_s = time.perf_counter() - t0
        model, _ = load_autoencoder(work / decoder / "final.pt")
        with open_store(store_path) as store:
            from ubdiff_phys.data import HeldOutDataset

            loader = torch.utils.data.DataLoader(HeldOutDataset(store), batch_size=8)
            metrics = evaluate_autoencoder(model, loader, torch.device("cpu"))
            resid = physics_residual(model, store, args.n_physics)
        results[decoder] = {
            "seismic_decoder_params": count_parameters(model.dec_s),
            "model_params": count_parameters(model),
            "step2_train_seconds": round(train_s, 1),
            "heldout_seismic_l1": metrics["seismic"]["mae"],
            "heldout_seismic_mse": metrics["seismic"]["mse"],
            "heldout_velocity": metrics["velocity"],
            "physics_residual": resid,
        }
        print(decoder, json.dumps(results[decoder], indent=1))

    tok, pap = results["token"], results["paper"]
    verdict = (
        "token >= paper"
        if tok["heldout_seismic_l1"] <= pap["heldout_seismic_l1"]
        and tok["heldout_seismic_mse"] <= pap["heldout_seismic_mse"]
        else "paper better on at least one of L1/MSE"
    )
    report = {
        "what": "UB-Diff autoencoder seismic decoders: token vs paper (default) (2-token ViT + "
        "Linear 640->350000), same step-1 weights, step 2 with F = 1",
        "scale": {
            "family": "flatvel-a (synthetic, FlatVel-A-like)",
            "boundary": "pml",
            "n_velocity_train": args.n_velocity,
            "n_paired_train": args.n_paired,
            "n_test": args.n_test,
            "epochs_step1": args.epochs1,
            "epochs_step2": args.epochs2,
            "batch_step1": args.batch1,
            "batch_step2": args.batch2,
            "lr": args.lr,
        },
        "seconds": {"build_store": round(build_s, 1), "step1": round(step1_s, 1)},
        "results": results,
        "verdict": verdict,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report)
    print(f"wrote {out}: {verdict}")


if __name__ == "__main__":
    main()
