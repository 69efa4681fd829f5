"""Sampling throughput of the paper-size latent diffusion + autoencoder, in pairs/s.

Checks first that the U-Net with fused GroupNorm/FiLM/SiLU blocks agrees with its reference
backend on the benchmark device, then times (wall clock, after one warm-up, CUDA synchronised):
- latent sampling alone: DDPM with all 256 steps (the paper) and DDIM with 50 steps;
- decoding alone: z -> heads -> decoders -> (velocity, seismic), normalised;
- both together (pairs/s of ``ubdiff-phys sample`` minus the HDF5 writing).
Weights are random (throughput does not depend on them). Appends JSON to
``benchmarks/results/sampling_<device>.json``.

    PYTHONPATH=. python benchmarks/bench_sampling.py --n 8 --device cpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import torch

import ubdiff_phys
from ubdiff_phys.diffusion import VDenoiser, cosine_schedule, sample
from ubdiff_phys.models import AutoencoderConfig, UNet1DConfig, build_autoencoder, build_unet1d
from ubdiff_phys.models.autoencoder import count_parameters
from ubdiff_phys.runtime.files import append_json_record


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="pairs per batch")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seismic-decoder", default="paper", choices=("paper", "token"))
    ap.add_argument("--out", default=None, help="JSON file (default results/sampling_<dev>.json)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    net = build_unet1d(UNet1DConfig()).to(device).eval()
    ref = build_unet1d(UNet1DConfig(backend="reference")).to(device).eval()
    ref.load_state_dict(net.state_dict())
    x = torch.randn(args.n, 1, 128, device=device)
    t = torch.randint(0, 256, (args.n,), device=device)
    with torch.no_grad():
        torch.testing.assert_close(net(x, t), ref(x, t), rtol=1e-4, atol=1e-4)
    model = VDenoiser(net, cosine_schedule())
    ae = build_autoencoder(AutoencoderConfig(seismic_decoder=args.seismic_decoder))
    ae = ae.to(device).eval()
    n = args.n

    def latents(sampler: str, steps: int):
        g = torch.Generator().manual_seed(0)
        return sample(model, (n, 1, 128), sampler=sampler, steps=steps, generator=g, device=device)

    z = latents("ddim", 5).reshape(n, -1).float()

    @torch.no_grad()
    def decode():
        return ae.decode(z)

    results = {}
    t_dec = _time(decode, device, args.repeats)
    results["decode_only"] = {"seconds_per_batch": t_dec, "pairs_per_s": n / t_dec}
    for sampler, steps in (("ddpm", 256), ("ddim", 50)):
        t_lat = _time(lambda s=sampler, k=steps: latents(s, k), device, args.repeats)
        results[f"{sampler}_{steps}"] = {
            "latent_seconds_per_batch": t_lat,
            "latent_pairs_per_s": n / t_lat,
            "with_decode_pairs_per_s": n / (t_lat + t_dec),
        }
    record = {
        "benchmark": "sampling throughput (latent diffusion + decode)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ubdiff_phys": ubdiff_phys.__version__,
            "build": ubdiff_phys.build_info(),
        },
        "threads": torch.get_num_threads(),
        "batch": n,
        "repeats": args.repeats,
        "unet_parameters": count_parameters(net),
        "autoencoder_parameters": count_parameters(ae),
        "seismic_decoder": args.seismic_decoder,
        "check": "fused U-Net == reference U-Net (rtol 1e-4)",
        "results": results,
    }
    print(json.dumps(record["results"], indent=2))
    out = Path(args.out or Path(__file__).parent / "results" / f"sampling_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    append_json_record(out, record)
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
