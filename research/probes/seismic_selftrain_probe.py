"""Probe: train a generator's seismic branch on its own samples' solver gathers as well as on real
pairs, so that it learns the solver's map where the diffusion model's latents lie.

Why: the seismic branch is trained on encoder latents of real maps (step 2). The diffusion model's
samples lie off them, and a branch that fits real pairs better can fit the samples worse
(docs/shipped_checkpoint.md: the 16-epoch paper branch, and the token branch: held-out residual
0.288 -> 0.243, on 32 samples 0.280 -> 0.311). Here each batch mixes real pairs (z = E(v), the
solver's gathers from the store) with the generator's own co-latents z ~ p(z) (DDIM, seeds other
than the evaluation's) and the solver's gathers of their decoded velocity F(D_v(z)): the loss
on the latter is exactly the pair residual the library reports, in normalised units. Encoder,
velocity branch and diffusion model are untouched (only ``head_s``, ``dec_s`` train), so the
result re-binds to the diffusion model like any step-2 branch.

    PYTHONPATH=. python research/probes/seismic_selftrain_probe.py \
        --checkpoint runs/diffusion_shipped_token --n-generated 2000 --steps 2000 \
        --out runs/ae_shipped_seismic_selftrain

On a GPU: ``--device cuda --preload --batch 64 --gen-batch 512`` (research/gpu/selftrain_seismic.sh
runs the whole experiment in one device call).

Writes ``OUT/final.pt`` (an autoencoder checkpoint: the checkpoint's autoencoder with the
trained seismic branch), ``OUT/metrics.jsonl`` and caches the generated pairs in
``OUT/generated.pt`` (reused when present with the same seed and size).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from ubdiff_phys.models.checkpoint import load_autoencoder_checkpoint
from ubdiff_phys.physics import simulate
from ubdiff_phys.pipelines.generator import load_generator
from ubdiff_phys.pipelines.seismic_modes import sample_for_mode
from ubdiff_phys.runtime.checkpoint import save_checkpoint
from ubdiff_phys.runtime.files import run_record
from ubdiff_phys.train.losses import reconstruction_loss


def generated_pairs(
    gen, n: int, seed: int, batch: int, cache: Path, seismic: str = "decoder"
) -> tuple[torch.Tensor, ...]:
    """(co-latents (n, latent_dim), normalised solver gathers (n, S, nt, R) float16) of ``n``
    samples (DDIM 50, batches of ``batch``, job seed ``seed``; ``seismic="guided"``: the guided
    mode's co-latents with its default settings), cached in ``cache``."""
    if cache.exists():
        data = torch.load(cache, weights_only=True)
        if data["seed"] == seed and len(data["z"]) == n:
            return data["z"], data["s"]
    zs, ss = [], []
    for b in range(-(-n // batch)):
        z, _ = sample_for_mode(gen, min(batch, n - b * batch), seed=seed, b=b, seismic=seismic)
        v, _ = gen.decode(z)
        with torch.no_grad():
            s = simulate(v, gen.survey, boundary=gen.boundary)
        zs.append(z.detach().cpu())
        ss.append(gen.normalizer.seismic(s.double()).to(torch.float16).cpu())
        print(f"generated {min((b + 1) * batch, n)}/{n}", flush=True)
    z, s = torch.cat(zs), torch.cat(ss)
    torch.save({"seed": seed, "z": z, "s": s}, cache)
    return z, s


def real_batch(f, ae, gen, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(E(v) co-latents, normalised gathers) of store rows ``rows`` (sorted for h5py), on the
    generator's device."""
    rows = np.sort(rows)
    v = torch.from_numpy(f["velocity"][rows]).to(gen.device)
    s = torch.from_numpy(f["seismic"][rows]).to(gen.device)
    with torch.no_grad():
        z = ae.encode(gen.normalizer.velocity(v.double()).float())
    return z, gen.normalizer.seismic(s.double()).float()


class PreloadedPairs:
    """Every real pair on the generator's device: co-latents E(v) (the encoder is frozen, so
    computed once) and normalised gathers in float16 (4,000 OpenFWI pairs: 2.8 GB), so that a
    GPU's steps read nothing from the host."""

    def __init__(self, f, ae, gen, chunk: int = 256) -> None:
        n = len(f["velocity"])
        zs, ss = [], []
        for a in range(0, n, chunk):
            z, s = real_batch(f, ae, gen, np.arange(a, min(a + chunk, n)))
            zs.append(z)
            ss.append(s.to(torch.float16))
        self.z, self.s = torch.cat(zs), torch.cat(ss)  # on the generator's device

    def batch(self, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.sort(rows)).to(self.z.device)
        return self.z[idx].to(device), self.s[idx].to(device).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="UB-Diff checkpoint (diffusion + AE)")
    ap.add_argument("--pairs", type=Path, default=Path("data/shipped_allpairs.h5"))
    ap.add_argument("--n-generated", type=int, default=2000)
    ap.add_argument("--gen-seed", type=int, default=1, help="job seed of the generated pairs")
    ap.add_argument("--n-guided", type=int, default=0, help="guided-mode samples added")
    ap.add_argument("--guided-seed", type=int, default=2, help="job seed of the guided samples")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8, help="half real, half generated")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--gamma-physical", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--preload", action="store_true", help="keep every real pair in memory (for a GPU)"
    )
    ap.add_argument("--gen-batch", type=int, default=64, help="samples per generation batch")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    gen = load_generator(args.checkpoint, args.device)
    ae = gen.autoencoder
    t0 = time.perf_counter()
    z_gen, s_gen = generated_pairs(
        gen, args.n_generated, args.gen_seed, args.gen_batch, args.out / "generated.pt"
    )
    if args.n_guided:
        z_g, s_g = generated_pairs(
            gen, args.n_guided, args.guided_seed, args.gen_batch, args.out / "guided.pt",
            seismic="guided",
        )  # fmt: skip
        z_gen, s_gen = torch.cat([z_gen, z_g]), torch.cat([s_gen, s_g])
    t_gen = time.perf_counter() - t0
    params = [*ae.head_s.parameters(), *ae.dec_s.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    nm = gen.normalizer
    bounds = (nm.s_log_min, nm.s_log_max)
    rng = np.random.default_rng(args.seed)
    half = args.batch // 2
    log = (args.out / "metrics.jsonl").open("a")
    ae.eval()
    ae.head_s.train()
    ae.dec_s.train()
    dev = gen.device
    if args.preload:  # the generated pairs on the device too (8,000 OpenFWI gathers: 5.6 GB)
        z_gen, s_gen = z_gen.to(dev), s_gen.to(dev)
    with h5py.File(args.pairs, "r") as f:
        n_real = len(f["velocity"])
        pre = PreloadedPairs(f, ae, gen) if args.preload else None
        for step in range(1, args.steps + 1):
            rows = rng.choice(n_real, half, replace=False)
            zr, sr = pre.batch(rows, dev) if pre else real_batch(f, ae, gen, rows)
            pick = torch.from_numpy(rng.choice(len(z_gen), args.batch - half, replace=False))
            pick = pick.to(z_gen.device)
            z = torch.cat([zr, z_gen[pick].to(dev)])
            target = torch.cat([sr, s_gen[pick].to(dev).float()])
            pred = ae.decode_seismic(z)
            loss = reconstruction_loss(
                pred,
                target,
                gamma_l1=1.0,
                gamma_l2=1.0,
                gamma_physical=args.gamma_physical,
                log_bounds=bounds,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0 or step == args.steps:
                rec = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "lr": sched.get_last_lr()[0],
                    "seconds": time.perf_counter() - t0,
                }
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(rec, flush=True)
    ckpt = load_autoencoder_checkpoint(gen.info["autoencoder"])
    ckpt["model"] = {k: v.detach().cpu().clone() for k, v in ae.state_dict().items()}
    record = {**vars(args), "generation_seconds": t_gen, **run_record()}
    ckpt["selftrain"] = json.loads(json.dumps(record, default=str))  # plain types: weights_only
    save_checkpoint(args.out / "final.pt", ckpt)
    print("wrote", args.out / "final.pt")


if __name__ == "__main__":
    main()
