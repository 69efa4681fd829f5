"""``ubdiff-phys prior-error``: measure what the posterior sampler needs to know about a prior's
errors and store it beside the checkpoint: the denoiser error r_t in data space (the noise-aware
likelihood), the decoder's pixel-wise approximation error (the ``approximation`` interval) and
the decoder error's low-rank Gaussian model (``invert --error-fit``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ubdiff_phys.data.families import generate
from ubdiff_phys.data.store import open_store
from ubdiff_phys.inversion.cli_common import UserError
from ubdiff_phys.inversion.decoder_error import estimate_decoder_error
from ubdiff_phys.inversion.error_basis import estimate_error_basis
from ubdiff_phys.inversion.posterior import modelling_survey
from ubdiff_phys.inversion.prior import estimate_denoiser_error, load_prior

__all__ = ["basis_maps", "register_prior_error", "store_maps"]


def register_prior_error(sub: argparse._SubParsersAction) -> None:
    """``ubdiff-phys prior-error CHECKPOINT --store TRAIN.h5``: measure and store the denoiser
    error r_t that ``invert --method noise_aware`` uses, and the decoder's approximation error
    that widens the posterior's ``approximation`` interval."""
    p = sub.add_parser(
        "prior-error",
        help="measure a diffusion prior's denoiser error in data space (for noise-aware "
        "inversion) and its decoder's approximation error in velocity",
        description="Encode --n-maps training velocities of --store (a velocity-space prior: "
        "normalise them), noise them to each of --n-timesteps levels, denoise, decode and "
        "simulate, and store the RMS data-space error "
        "per level beside the checkpoint (denoiser_error.json), for the store's survey and "
        "boundary (the C-PML pinned to the prior's v_max, as the inversion models). Then encode "
        "and decode up to --decoder-maps held-out velocities of the store (its test rows; the "
        "training rows when it has none) and store the pixel-wise RMS reconstruction error "
        "[m/s] (decoder_error.json), and the mean and first --basis-components principal "
        "components of that error on --basis-maps maps the autoencoder did not train on "
        "(decoder_error_basis.npz, for `invert --error-fit`): fresh maps of the store's family "
        "when it was made by make-dataset, else its held-out then training rows.",
    )
    p.add_argument(
        "checkpoint",
        help="UB-Diff checkpoint folder, train-diffusion run or train-velocity-diffusion run",
    )
    p.add_argument("--store", type=Path, required=True, help="training store (HDF5)")
    p.add_argument("--n-maps", type=int, default=32, help="training velocities (default 32)")
    p.add_argument("--n-timesteps", type=int, default=12, help="noise levels (default 12)")
    p.add_argument("--decoder-maps", type=int, default=64, help="held-out velocities (default 64)")
    p.add_argument(
        "--basis-maps", type=int, default=512, help="maps for the error basis (0: none; 512)"
    )
    p.add_argument(
        "--basis-components", type=int, default=64, help="principal components kept (64)"
    )
    p.add_argument(
        "--decoder-only",
        action="store_true",
        help="measure only the decoder error (no solver runs; keeps the denoiser error)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prior_error)


def store_maps(st, rows: np.ndarray) -> torch.Tensor:
    """velocity rows of an open store -> (N, 1, nz, nx) float32 [m/s]."""
    v = np.stack([st.velocity(int(r)) for r in rows])
    return torch.from_numpy(v).float().reshape(len(rows), 1, *v.shape[-2:])


def basis_maps(st: Any, n: int, seed: int) -> tuple[torch.Tensor, str]:
    """(up to ``n`` maps (N, 1, nz, nx) [m/s] the autoencoder did not train on, what they are):
    fresh maps of the store's family when ``make-dataset`` made it (a seed other than the
    store's), else its held-out rows then its training rows."""
    build = st.attrs.get("build_args") or {}
    family = build.get("family") if isinstance(build, dict) else None
    if n <= 0:
        return torch.zeros(0), "none"
    if family:
        fresh = 1_000_003 + seed
        fresh += fresh == build.get("seed")
        v = torch.as_tensor(generate(family, n, seed=fresh)).float()
        return v.reshape(n, 1, *v.shape[-2:]), f"fresh {family} maps (seed {fresh})"
    rows = np.concatenate([st.test_index, st.train_index])[:n]
    held = min(len(st.test_index), len(rows))
    return store_maps(st, rows), f"store rows ({held} held-out, {len(rows) - held} training)"


def _prior_error(args: argparse.Namespace) -> int:
    if args.n_maps < 2 or args.n_timesteps < 2 or args.decoder_maps < 2:
        raise UserError("--n-maps, --n-timesteps and --decoder-maps must be >= 2")
    if args.basis_maps and not 0 < args.basis_components < args.basis_maps:
        raise UserError("--basis-components must be >= 1 and below --basis-maps")
    prior = load_prior(args.checkpoint)
    with open_store(args.store) as st:
        survey, boundary = st.survey, st.attrs.get("boundary")
        v = store_maps(st, st.train_index[: args.n_maps])
        held_out = len(st.test_index) >= 2
        rows = (st.test_index if held_out else st.train_index)[: args.decoder_maps]
        v_dec = store_maps(st, rows)
        v_basis, basis_source = basis_maps(st, args.basis_maps, args.seed)
    if survey is None or boundary is None:
        raise UserError(f"{str(args.store)!r} records no survey/boundary")
    source = "held-out store rows" if held_out else "training store rows (no held-out rows)"
    dec = estimate_decoder_error(prior, v_dec, source=source)
    prior.save_decoder_error(dec)
    print(
        f"prior-error: wrote {prior.decoder_error_path} ({dec.n_maps} {source}): RMS "
        f"{dec.mean_rms:.4g} m/s"
    )
    if args.basis_maps:
        if v_basis.shape[0] <= args.basis_components:
            raise UserError(
                f"the error basis needs more than --basis-components {args.basis_components} "
                f"maps; {basis_source} has {v_basis.shape[0]}"
            )
        basis = estimate_error_basis(prior, v_basis, args.basis_components, source=basis_source)
        prior.save_error_basis(basis)
        print(
            f"prior-error: wrote {prior.error_basis_path} ({basis.n_maps} maps, {basis.k} "
            f"components holding {basis.explained:.3f} of the error's variance)"
        )
    if args.decoder_only:
        return 0
    survey = modelling_survey(survey, boundary, prior.bounds[1])
    err = estimate_denoiser_error(
        prior, v, survey, boundary=boundary, n_timesteps=args.n_timesteps, seed=args.seed
    )
    prior.save_denoiser_error(err)
    pairs = ", ".join(f"t={t}: {r:.3g}" for t, r in zip(err.timesteps, err.rms, strict=True))
    print(f"prior-error: wrote {prior.error_path} ({v.shape[0]} maps): {pairs}")
    return 0
