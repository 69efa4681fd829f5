"""Probe: does a diffusion model in *velocity space* (a 2-D U-Net on the normalised 70 x 70 map)
give samples with the family's structure where the latent model does not?

The shipped latent model's samples pass the FlatVel-A structure test at 0.14 and sit at 6.6x the
PCA Fréchet floor; the autoencoder's reconstructions of family maps pass it at 0.24 (the jump
test at 0.31), so no latent sampler can do much better through that decoder. This probe scores a
velocity-space checkpoint (``ubdiff-phys train-velocity-diffusion``) with the same statistics:
:func:`ubdiff_phys.eval.layer_structure`, the PCA Fréchet distance against fresh family maps next
to the family-vs-family floor, and each sample's distance to its nearest training map, for the
raw and the EMA weights (DDIM unless ``--sampler ddpm``, seed 0).

    ubdiff-phys train-velocity-diffusion configs/velocity_diffusion_flatvel_a.toml
    PYTHONPATH=. python research/probes/velocity_diffusion_probe.py \
        --checkpoint runs/velocity_diffusion_flatvel_a \
        --results benchmarks/results/velocity_diffusion_probe.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from checkpoint_report import frechet, nearest_training, training_maps  # noqa: E402

from ubdiff_phys.data import Normalizer  # noqa: E402
from ubdiff_phys.data.families import generate  # noqa: E402
from ubdiff_phys.diffusion import VDenoiser  # noqa: E402
from ubdiff_phys.diffusion.checkpoint import load_velocity_denoiser  # noqa: E402
from ubdiff_phys.diffusion.samplers import sample  # noqa: E402
from ubdiff_phys.eval import layer_structure  # noqa: E402
from ubdiff_phys.runtime.files import append_json_record, atomic_write_json, run_record  # noqa: E402


@torch.no_grad()
def draw(
    model: VDenoiser, norm: Normalizer, n: int, steps: int, sampler: str = "ddim", batch: int = 64
) -> np.ndarray:
    """n samples (seed 0) in m/s, (n, 1, nz, nx), by ``sampler`` ("ddim" or "ddpm")."""
    g, out = torch.Generator().manual_seed(0), []
    cfg = model.net.config
    for b in range(0, n, batch):
        x = sample(model, (min(batch, n - b), 1, cfg.nz, cfg.nx), sampler=sampler, steps=steps,
                   generator=g)  # fmt: skip
        out.append(norm.velocity_inverse(x.clamp(-1, 1)).float().numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="velocity diffusion run")
    ap.add_argument("--n", type=int, default=256, help="samples to score")
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--sampler", default="ddim", choices=("ddim", "ddpm"))
    ap.add_argument("--weights", default="both", choices=("both", "ema", "model"))
    ap.add_argument("--out", type=Path, default=Path("out/velocity_diffusion_probe"))
    ap.add_argument("--results", type=Path, default=None, help="JSON records file to append to")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    den, cfg, ckpt = load_velocity_denoiser(args.checkpoint)
    ema, _, _ = load_velocity_denoiser(args.checkpoint, weights="ema")
    norm = Normalizer.from_dict(ckpt["store_attrs"]["normalization"])
    family = str(ckpt["store_attrs"].get("family", "flatvel-a"))
    train_v = training_maps(Path(cfg.data.store))
    fam = generate(family, args.n, seed=606)
    record = {
        "what": "velocity-space diffusion probe: 2-D U-Net on normalised velocity maps",
        "checkpoint": str(args.checkpoint),
        "config": cfg.to_dict(),
        "step": int(ckpt["state"]["step"]),
        "n_train": len(train_v),
        "parameters": sum(p.numel() for p in den.parameters()),
        "n": args.n,
        "sample_steps": args.sample_steps,
        "sampler": args.sampler,
        "structure_family": layer_structure(fam).summary(),
        "nearest_training_family_median_m_per_s": float(np.median(nearest_training(fam, train_v))),
    }
    for name, model in (("weights", den), ("ema", ema)):
        if args.weights not in ("both", "ema" if name == "ema" else "model"):
            continue
        t0 = time.perf_counter()
        v = draw(model, norm, args.n, args.sample_steps, args.sampler)
        record[name] = {
            "sample_seconds": time.perf_counter() - t0,
            "structure": layer_structure(v).summary(),
            "pca_frechet": frechet(v, family, args.n),
            "nearest_training_median_m_per_s": float(np.median(nearest_training(v, train_v))),
        }
        np.save(args.out / f"samples_{name}.npy", v[:64])
        s, f = record[name]["structure"], record[name]["pca_frechet"]
        print(
            f"{name}: flatvel-like {s['share_flatvel_like']:.2f} (rows {s['share_row_std']:.2f}, "
            f"nondec {s['share_max_decrease']:.2f}, jumps {s['share_jump_share']:.2f}); Fréchet "
            f"{f['plain_m2_per_s2']['ratio']:.1f}x plain, {f['whitened']['ratio']:.1f}x whitened; "
            f"nearest training {record[name]['nearest_training_median_m_per_s']:.0f} m/s "
            f"(family maps {record['nearest_training_family_median_m_per_s']:.0f})",
            flush=True,
        )
    record |= run_record()
    atomic_write_json(args.out / "report.json", record)
    if args.results is not None:
        append_json_record(args.results, record)


if __name__ == "__main__":
    main()
