"""Posterior-sampling settings probe: the noise-aware likelihood with and without its trust cap, and
DPS with two step sizes, on held-out maps of data/shipped.h5 (1 % noise, 4 samples, 25 steps).

Run (2 busy cores, while a training job ran; ~55 s per row) as

    OMP_NUM_THREADS=1 python research/probes/posterior_settings.py [CHECKPOINT]

with data/shipped.h5 built by docs/shipped_checkpoint.md step 1. The run on the previous shipped
checkpoint (6 autoencoder epochs, 4,000 diffusion steps) is in
benchmarks/results/posterior_settings_probe.txt.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from ubdiff_phys.data.store import open_store
from ubdiff_phys.inversion import (
    estimate_denoiser_error,
    load_prior,
    modelling_survey,
    posterior_sample,
)
from ubdiff_phys.inversion.posterior_cli import add_noise
from ubdiff_phys.models.metrics import ssim

SETTINGS = {
    "na_t1": {"method": "noise_aware", "trust": 1.0},
    "na_t0.3": {"method": "noise_aware", "trust": 0.3},
    "na_none": {"method": "noise_aware", "trust": None},
    "dps1": {"method": "dps", "step_size": 1.0},
    "dps0.3": {"method": "dps", "step_size": 0.3},
}


def main() -> None:
    ckpt = sys.argv[1] if len(sys.argv) > 1 else None
    st = open_store("data/shipped.h5")
    prior = load_prior(ckpt)
    lo, hi = prior.bounds
    survey = modelling_survey(st.survey, "pml", hi)
    rows = st.train_index[:16]
    train = torch.from_numpy(np.stack([st.velocity(int(i)) for i in rows])).float()
    err = estimate_denoiser_error(
        prior, train.reshape(-1, 1, 70, 70), survey, boundary="pml", n_timesteps=8
    )
    print("r_t", [f"{t}:{r:.3g}" for t, r in zip(err.timesteps, err.rms, strict=True)])

    def n(x: torch.Tensor) -> torch.Tensor:
        return 2 * (x - lo) / (hi - lo) - 1

    for k in (0, 1):
        ti = int(st.test_index[k])
        vt = torch.from_numpy(st.velocity(ti)).float().reshape(1, 1, 70, 70)
        obs, sig = add_noise(torch.from_numpy(st.seismic_of(ti)).float(), 0.01, k)
        for name, kw in SETTINGS.items():
            t0 = time.time()
            r = posterior_sample(
                obs, st.survey, boundary="pml", prior=prior, n_samples=4, steps=25,
                noise_std=sig, denoiser_error=err, generator=torch.Generator().manual_seed(0),
                **kw,
            )  # fmt: skip
            med = np.median([ssim(n(r.samples[i : i + 1]), n(vt)) for i in range(4)])
            print(
                f"{k} {name} ssim mean {ssim(n(r.mean[None]), n(vt)):.3f} med-sample {med:.3f} "
                f"misfit/noise {float(r.misfit.median()) / r.noise_misfit:.1f} "
                f"cov {r.coverage(vt[0]):.2f} std {float(r.std.mean()):.0f} "
                f"{time.time() - t0:.0f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
