"""The decoder's approximation error: its estimate against closed-form reconstructions, the
``approximation`` interval against a Gaussian oracle, and ``prior-error --decoder-only`` against
the autoencoder itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import child_env, result_from_samples, small_store

from ubdiff_phys.data.families import generate
from ubdiff_phys.data.store import open_store
from ubdiff_phys.inversion import PosteriorResult, load_prior
from ubdiff_phys.inversion.decoder_error import (
    DecoderError,
    estimate_decoder_error,
)


class OffsetPrior:
    """A prior whose decoder returns every map plus a fixed error map ``c`` (1, nz, nx)."""

    def __init__(self, c: torch.Tensor):
        self.c = c

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        return v.double()

    def velocity(self, z: torch.Tensor) -> torch.Tensor:
        return z.float() + self.c


def test_estimate_is_the_rms_of_the_reconstruction_error() -> None:
    g = torch.Generator().manual_seed(0)
    c = 100 * torch.randn(1, 6, 5, generator=g)
    v = 3000 + 500 * torch.rand(7, 1, 6, 5, generator=g)
    err = estimate_decoder_error(OffsetPrior(c), v, source="test", batch=3)
    assert err.tensor().shape == (1, 6, 5)
    torch.testing.assert_close(err.tensor(), c.abs(), atol=0.006, rtol=0)  # rounded to 0.01
    assert err.n_maps == 7 and err.source == "test"
    assert err.mean_rms == pytest.approx(float(c.square().mean().sqrt()), abs=0.01)
    back = DecoderError.from_dict(json.loads(json.dumps(err.to_dict())))
    assert back == err
    with pytest.raises(ValueError, match="N >= 2"):
        estimate_decoder_error(OffsetPrior(c), v[:1])
    with pytest.raises(ValueError, match="kind"):
        DecoderError.from_dict({"kind": "ubdiff_phys.denoiser_error"})


def result_with_error(n: int, pixels: int, e_scale: float, seed: int):
    """Samples: n exact draws of N(mu, sd²) per pixel (the decoder's posterior); truth: one more
    draw plus an independent N(0, e²) approximation error; the result carries e."""
    g = torch.Generator().manual_seed(seed)
    mu = 3000 + 500 * torch.randn(1, 1, pixels, generator=g)
    sd = 50 + 200 * torch.rand(1, 1, pixels, generator=g)
    e = e_scale * (0.5 + torch.rand(1, 1, pixels, generator=g))
    draws = mu + sd * torch.randn(n + 1, 1, 1, pixels, generator=g)
    truth = draws[n] + e * torch.randn(1, 1, pixels, generator=g)
    samples = draws[:n]
    res = result_from_samples(samples, e)
    return res, truth


@pytest.mark.parametrize("e_scale", [50.0, 200.0])
def test_approximation_interval_covers_a_truth_off_the_decoders_range(e_scale: float) -> None:
    """Truth = posterior draw + independent error of known RMS e: the predictive interval
    under-covers it, mean ± t_ν·√(s²(1 + 1/n) + e²) holds it at the nominal rate (exact for s²
    known; the Satterthwaite ν accounts for s² estimated from n = 8 draws)."""
    res, truth = result_with_error(8, 40_000, e_scale, seed=int(e_scale))
    approx = res.coverage(truth, 0.9, kind="approximation")
    assert approx == pytest.approx(0.90, abs=0.01)
    assert res.coverage(truth, 0.9) < approx - 0.02
    for n in (2, 8):
        few, _ = result_with_error(n, 2000, e_scale / 10, seed=n)
        lo_p, hi_p = few.interval(0.9)
        lo_a, hi_a = few.interval(0.9, kind="approximation")
        assert bool((lo_a <= lo_p).all() and (hi_a >= hi_p).all()), "never narrower"


def test_approximation_interval_needs_a_decoder_error_and_works_for_one_sample() -> None:
    res, truth = result_with_error(1, 1000, 100.0, seed=3)
    lo, hi = res.interval(0.9, kind="approximation")
    half = 1.6448536 * res.decoder_error.reshape(lo.shape)  # type: ignore[union-attr]
    torch.testing.assert_close(hi - lo, 2 * half, rtol=1e-5, atol=0)
    bare = PosteriorResult(**{**res.__dict__, "decoder_error": None})
    with pytest.raises(ValueError, match="prior-error"):
        bare.interval(0.9, kind="approximation")


def test_shipped_prior_carries_its_decoder_error() -> None:
    prior = load_prior()
    err = prior.decoder_error
    assert err is not None, "the shipped checkpoint must ship decoder_error.json"
    assert err.tensor().shape == (1, prior.survey.nz, prior.survey.nx)
    assert bool((err.tensor() > 0).all()) and err.n_maps >= 32
    assert err.source == "held-out store rows"


def test_prior_error_decoder_only_measures_the_autoencoders_error(tmp_path: Path) -> None:
    shipped = Path(load_prior().info["diffusion"]).parent
    ckpt = tmp_path / "prior"
    shutil.copytree(shipped, ckpt)
    (ckpt / "decoder_error.json").unlink()
    (ckpt / "decoder_error_basis.npz").unlink()
    store = small_store(tmp_path / "s.h5", 6, 1, 3, seed=11)
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "prior-error", str(ckpt), "--store", str(store)]
    r = subprocess.run(
        [*cmd, "--decoder-only"], capture_output=True, text=True, env=child_env(), timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert (ckpt / "denoiser_error.json").read_bytes() == (
        shipped / "denoiser_error.json"
    ).read_bytes(), "--decoder-only must keep the denoiser error"
    prior = load_prior(ckpt)
    assert prior.decoder_error is not None and prior.decoder_error.n_maps == 3
    with open_store(store) as st:
        v = torch.stack([torch.from_numpy(st.velocity(int(i))) for i in st.test_index]).float()
    v = v.reshape(3, 1, *v.shape[-2:])
    with torch.no_grad():
        x = 2 * (v - prior.bounds[0]) / (prior.bounds[1] - prior.bounds[0]) - 1
        rec = prior.autoencoder.decode_velocity(prior.autoencoder.encode(x).reshape(3, -1))
        rec = (rec.clamp(-1, 1) + 1) * 0.5 * (prior.bounds[1] - prior.bounds[0]) + prior.bounds[0]
    expected = (rec - v).square().mean(0).sqrt()
    torch.testing.assert_close(prior.decoder_error.tensor(), expected, atol=0.02, rtol=0)
    # the error basis: fresh maps of the store's family, not the store's (seed 0) maps
    basis = prior.error_basis
    assert basis is not None and (basis.k, basis.n_maps) == (64, 512)
    assert basis.source == "fresh flatvel-a maps (seed 1000003)" and 0.5 < basis.explained <= 1
    fresh = torch.as_tensor(generate("flatvel-a", 512, seed=1_000_003)).float()
    with torch.no_grad():
        rec = prior.velocity(prior.encode(fresh.reshape(512, 1, 70, 70)))
    mean_error = (fresh.reshape(512, 1, 70, 70) - rec).mean(0)[0]
    torch.testing.assert_close(basis.mean, mean_error, atol=0.05, rtol=0)
    r = subprocess.run(
        [*cmd, "--decoder-only", "--basis-maps", "8", "--basis-components", "8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 2 and "--basis-components" in r.stderr and r.stderr.count("\n") == 1
    r = subprocess.run([*cmd, "--decoder-maps", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "must be >= 2" in r.stderr
