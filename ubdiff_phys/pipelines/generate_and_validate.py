"""Generate (velocity, seismic) pairs with a trained UB-Diff checkpoint and keep the physical ones.

The main job (``python examples/generate_and_validate.py``) is :func:`generate_and_validate`:

1. sample ``n`` co-latents with DDIM (``steps`` network evaluations, eta = 0) in batches; batch
   ``b`` draws its noise from a generator seeded by ``seed * 1_000_003 + b`` (the convention of
   ``ubdiff-phys sample``), so the output depends only on (checkpoint, seed, n, batch, steps);
2. decode them with the autoencoder the diffusion model was trained on (outputs clamped to
   [-1, 1], then physical units with the training store's normaliser) on ``device``;
3. validate every pair with :func:`ubdiff_phys.physics.residual` (fused native path: the simulated
   gathers are never materialised; on a GPU nothing is copied to the host) using the survey,
   boundary mode and normaliser recorded with the training data;
4. keep pairs by ``threshold`` or ``keep_quantile`` on the physical relative L2 (neither: keep all);
5. write ``pairs.h5`` (store format of :mod:`ubdiff_phys.data.store`, accepted pairs only, plus a
   ``residual`` dataset (n_accepted,) float64 with each accepted pair's physical relative L2, a
   ``residual_normalized`` dataset and ``sample_index``: each pair's index among the ``n``
   samples), ``summary.json`` and ``figure.png``.

Only the latents and the residuals of all ``n`` samples are kept in memory: the accepted pairs are
decoded again batch by batch (same batches, same device, so the same numbers) when the store is
written, so memory is bounded by the batch whatever ``n`` is.

Residual along the reverse diffusion (``trace_steps > 0``): through the sampler's ``callback``
(``{"i", "t", "x", "x0"}`` after every step), the prediction of the clean co-latent x0 (or the
current state x_t with ``trace_on="xt"``) of the first ``trace_max`` samples of batch 0 is decoded
at ``trace_steps`` evenly spaced sampler steps (the last one included) and validated, during the
real sampling (no extra sampling); the median and quartiles per step go to ``summary.json`` and
``residual_vs_step.png``. The last traced step is the final sample itself.

Checkpoints (``checkpoint``): a folder with ``diffusion.pt`` + ``autoencoder.pt`` (the shipped
layout, :func:`shipped_checkpoint`), or a ``train-diffusion`` run folder / checkpoint file whose
config names its autoencoder (``autoencoder`` overrides it). The autoencoder file's sha256 must be
the one the diffusion model's latents were encoded with.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "Generator",
    "generate_and_validate",
    "load_generator",
    "package_checkpoint",
    "reference_residuals",
    "residual_trace",
    "shipped_checkpoint",
]

#: the checkpoint shipped inside the package (trained by docs/shipped_checkpoint.md's commands)
SHIPPED_NAME = "flatvel_a_small"

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_Q_NAMES = ("min", "p05", "p25", "median", "p75", "p95", "max")


def shipped_checkpoint() -> Path:
    """Folder of the checkpoint shipped in the package (``ubdiff_phys/assets/flatvel_a_small``)."""
    return Path(__file__).resolve().parent.parent / "assets" / SHIPPED_NAME


def _distribution(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {}
    q = np.quantile(values, QUANTILES)
    return {**dict(zip(_Q_NAMES, map(float, q), strict=True)), "mean": float(values.mean())}


@dataclass
class Generator:
    """A loaded (denoiser, autoencoder) pair and what its training data recorded."""

    denoiser: Any
    autoencoder: Any
    normalizer: Any
    survey: Any
    boundary: str
    store_attrs: dict[str, Any]
    device: torch.device
    info: dict[str, Any]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """co-latents (B, latent_dim) -> (velocity [m/s] (B, 1, nz, nx), seismic (B, S, nt, R)),
        float32 on the generator's device (clamped to [-1, 1] before denormalising, as
        :func:`ubdiff_phys.diffusion.generate.decode_pairs`)."""
        p = next(self.autoencoder.parameters())
        v, s = self.autoencoder.decode(z.to(p.device, p.dtype))
        v = self.normalizer.velocity_inverse(v.float().clamp(-1, 1).double())
        s = self.normalizer.seismic_inverse(s.float().clamp(-1, 1).double())
        return v.float(), s.float()

    def residual(self, v: torch.Tensor, s: torch.Tensor, **kwargs: Any):
        """:func:`ubdiff_phys.physics.residual` with the training data's survey/boundary/norm."""
        from ubdiff_phys.physics import residual

        return residual(
            v, s, self.survey, boundary=self.boundary, normalizer=self.normalizer, **kwargs
        )


def load_generator(
    checkpoint: str | os.PathLike | None = None,
    device: Any = "cpu",
    *,
    autoencoder: str | os.PathLike | None = None,
    weights: str = "model",
) -> Generator:
    """Load a checkpoint (default: the shipped one) for sampling + validation on ``device``."""
    from ubdiff_phys.data import Normalizer
    from ubdiff_phys.diffusion.generate import load_denoiser
    from ubdiff_phys.diffusion.latents import file_sha256
    from ubdiff_phys.physics import Survey
    from ubdiff_phys.train.checkpoint import load_autoencoder

    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    device = torch.device(device)
    shipped_layout = path.is_dir() and (path / "diffusion.pt").exists()
    diff_path = path / "diffusion.pt" if shipped_layout else path
    denoiser, cfg, ckpt = load_denoiser(diff_path, device, weights=weights)
    if autoencoder is not None:
        ae_path = Path(autoencoder)
    elif shipped_layout:
        ae_path = path / "autoencoder.pt"
    else:
        ae_path = Path(cfg.data.autoencoder)
    if not ae_path.exists():
        raise FileNotFoundError(
            f"autoencoder {str(ae_path)!r} not found; pass the one the diffusion model was "
            "trained on with --autoencoder"
        )
    sha = file_sha256(ae_path)
    if sha != ckpt["autoencoder_sha256"]:
        raise ValueError(
            f"{str(ae_path)!r} is not the autoencoder this diffusion model was trained on "
            "(sha256 differs); pass the right one with --autoencoder"
        )
    ae, _ = load_autoencoder(ae_path, device)
    attrs = dict(ckpt["store_attrs"])
    if not attrs.get("survey"):
        raise ValueError(
            f"{str(diff_path)!r} records no survey for its training data (e.g. an OpenFWI "
            "import): the pairs cannot be validated against the data's own solver settings"
        )
    boundary = str(attrs.get("boundary", ""))
    if boundary not in ("openfwi", "pml", "none"):
        raise ValueError(f"{str(diff_path)!r} records an unknown boundary mode {boundary!r}")
    info = {
        "checkpoint": str(path),
        "diffusion": str(diff_path),
        "autoencoder": str(ae_path),
        "autoencoder_sha256": sha,
        "diffusion_step": int(ckpt["state"]["step"]),
        "weights": weights,
        "shipped": path.resolve() == shipped_checkpoint().resolve(),
    }
    return Generator(
        denoiser=denoiser,
        autoencoder=ae,
        normalizer=Normalizer.from_dict(attrs["normalization"]),
        survey=Survey.from_dict(attrs["survey"]),
        boundary=boundary,
        store_attrs=attrs,
        device=device,
        info=info,
    )


@torch.no_grad()
def reference_residuals(
    gen: Generator, store: str | os.PathLike, *, n: int = 64, batch: int = 16
) -> dict[str, Any]:
    """What a generator is measured against (specs/ubdiff.md §5), on up to ``n`` held-out pairs
    of ``store`` (its ``test_index`` rows that have gathers):

    - ``real``: the residual of the real pairs (0 by construction when ``store`` was simulated
      with the generator's survey/boundary);
    - ``autoencoder``: the residual of the autoencoder's reconstruction of those pairs (encode the
      real velocity, decode velocity + seismic): the floor a generator with this decoder can reach.

    Returns {"n", "real": distribution, "autoencoder": distribution, "*_values": lists}."""
    from ubdiff_phys.data import open_store

    with open_store(store) as st:
        rows = [int(r) for r in st.test_index if st.seismic_row[int(r)] >= 0][:n]
        real, ae = [], []
        for a in range(0, len(rows), batch):
            chunk = rows[a : a + batch]
            v = torch.from_numpy(np.stack([st.velocity(r) for r in chunk])).to(gen.device)
            s = torch.from_numpy(np.stack([st.seismic_of(r) for r in chunk])).to(gen.device)
            real.append(gen.residual(v, s).rel_l2.double().cpu())
            p = next(gen.autoencoder.parameters())
            z = gen.autoencoder.encode(gen.normalizer.velocity(v.double()).to(p.dtype))
            rv, rs = gen.decode(z)
            ae.append(gen.residual(rv, rs).rel_l2.double().cpu())
    real_np = torch.cat(real).numpy() if real else np.zeros(0)
    ae_np = torch.cat(ae).numpy() if ae else np.zeros(0)
    return {
        "n": len(rows),
        "store": str(store),
        "real": _distribution(real_np),
        "autoencoder": _distribution(ae_np),
        "real_values": real_np.tolist(),
        "autoencoder_values": ae_np.tolist(),
    }


def package_checkpoint(
    diffusion: str | os.PathLike,
    out: str | os.PathLike,
    *,
    autoencoder: str | os.PathLike | None = None,
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy a trained (diffusion, autoencoder) pair into the shipped layout: ``out/diffusion.pt``,
    ``out/autoencoder.pt`` (byte copies, so the recorded autoencoder sha256 still matches), their
    ``*_config.toml`` and ``manifest.json`` (files with bytes + sha256, parameter counts, the
    training data's family/survey/boundary/normaliser, and ``notes``: e.g. the commands)."""
    import shutil

    from ubdiff_phys.diffusion.latents import file_sha256
    from ubdiff_phys.diffusion.train import load_diffusion_checkpoint

    src = Path(diffusion)
    diff_file = src if src.is_file() else src / "final.pt"
    ckpt = load_diffusion_checkpoint(diff_file)
    from ubdiff_phys.diffusion.config import DiffusionTrainConfig

    cfg = DiffusionTrainConfig.from_dict(ckpt["config"])
    ae_file = Path(autoencoder or cfg.data.autoencoder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(diff_file, out / "diffusion.pt")
    shutil.copyfile(ae_file, out / "autoencoder.pt")
    for run, name in ((diff_file.parent, "diffusion"), (ae_file.parent, "autoencoder")):
        if (run / "config.toml").exists():
            shutil.copyfile(run / "config.toml", out / f"{name}_config.toml")
    gen = load_generator(out, "cpu")
    attrs = gen.store_attrs
    manifest = {
        "name": out.name,
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(out.iterdir())
            if p.is_file() and p.name != "manifest.json"
        },
        "parameters": {
            "autoencoder": sum(p.numel() for p in gen.autoencoder.parameters()),
            "diffusion_unet": sum(p.numel() for p in gen.denoiser.net.parameters()),
        },
        "diffusion_step": gen.info["diffusion_step"],
        "autoencoder_sha256": gen.info["autoencoder_sha256"],
        "data": {
            "family": attrs.get("family"),
            "seed": attrs.get("seed"),
            "boundary": attrs.get("boundary"),
            "survey": attrs.get("survey"),
            "normalization": attrs.get("normalization"),
            "solver_version": attrs.get("solver_version"),
        },
        "notes": notes or {},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _batch_generator(seed: int, b: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + b)


def _trace_indices(steps: int, k: int) -> list[int]:
    """k sampler-step indices in [0, steps-1], evenly spaced, the last step included."""
    k = max(1, min(k, steps))
    return sorted({int(round(x)) for x in np.linspace(0, steps - 1, k)})


class _Tracer:
    """Sampler callback: decode x0 (or x_t) of the first ``m`` samples at chosen steps and
    validate them."""

    def __init__(self, gen: Generator, indices: list[int], m: int, on: str):
        if on not in ("x0", "xt"):
            raise ValueError(f"trace_on must be 'x0' or 'xt', got {on!r}")
        self.gen, self.indices, self.m, self.on = gen, set(indices), m, on
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0

    def __call__(self, state: dict[str, Any]) -> None:
        if state["i"] not in self.indices:
            return
        t0 = time.perf_counter()
        lat = state["x0"] if self.on == "x0" else state["x"]
        z = lat[: self.m].reshape(min(self.m, lat.shape[0]), -1).float().clamp(-1, 1)
        v, s = self.gen.decode(z)
        r = self.gen.residual(v, s)
        rel = r.rel_l2.double().cpu().numpy()
        self.rows.append(
            {
                "step": int(state["i"]) + 1,
                "t": int(state["t"]),
                "median": float(np.median(rel)),
                "p25": float(np.quantile(rel, 0.25)),
                "p75": float(np.quantile(rel, 0.75)),
                "rel_l2": rel.tolist(),
            }
        )
        self.seconds += time.perf_counter() - t0


def residual_trace(
    gen: Generator,
    n: int,
    *,
    steps: int = 50,
    trace_steps: int = 8,
    seed: int = 0,
    on: str = "x0",
) -> dict[str, Any]:
    """Residual of the decoded ``on`` ("x0": predicted clean latent, "xt": current state) of
    ``n`` DDIM samples (batch 0 of :func:`generate_and_validate` with batch >= n) at
    ``trace_steps`` sampler steps (standalone; :func:`generate_and_validate` traces its own batch
    0 instead of sampling again). Returns {"on", "n", "steps", "rows": [{step, t, median, p25,
    p75, rel_l2}]}; the last row is the final sample."""
    from ubdiff_phys.diffusion.generate import sample_latents

    idx = _trace_indices(steps, trace_steps)
    tracer = _Tracer(gen, idx, n, on)
    sample_latents(
        gen.denoiser,
        n,
        sampler="ddim",
        steps=steps,
        generator=_batch_generator(seed, 0),
        device=gen.device,
        callback=tracer,
    )
    return {"on": on, "n": n, "steps": steps, "rows": tracer.rows}


def _plot_trace(trace: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = trace["rows"]
    step = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.fill_between(step, [r["p25"] for r in rows], [r["p75"] for r in rows], alpha=0.3)
    ax.plot(step, [r["median"] for r in rows], "o-", label="median (band: p25-p75)")
    ax.set_yscale("log")
    ax.set_xlabel(
        f"DDIM step (of {trace['steps']}); diffusion t = "
        + ", ".join(str(r["t"]) for r in rows[:: max(1, len(rows) // 4)])
        + ", ..."
    )
    ax.set_ylabel("relative L2 ||s - F(v)|| / ||F(v)||")
    what = "predicted x0" if trace["on"] == "x0" else "x_t"
    ax.set_title(f"Physics residual of the decoded {what} along reverse diffusion (n={trace['n']})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_figure(
    gen: Generator,
    v: torch.Tensor,
    s: torch.Tensor,
    rel: np.ndarray,
    example_rel: float,
    threshold: float | None,
    path: Path,
    floor: np.ndarray | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ubdiff_phys.physics import simulate

    sim = simulate(v.to(gen.device), gen.survey, boundary=gen.boundary)[0].cpu().numpy()
    vel = v[0, 0].cpu().numpy()
    gath = s[0].cpu().numpy()
    shot = gath.shape[0] // 2
    survey = gen.survey
    extent_g = [0, gath.shape[2], survey.nt * survey.dt, 0]
    lim = float(np.abs(sim[shot]).max()) * 0.05 or 1.0
    fig, axes = plt.subplots(1, 5, figsize=(20, 4.6), constrained_layout=True)
    im = axes[0].imshow(
        vel, cmap="viridis", extent=[0, vel.shape[1] * survey.dx, vel.shape[0] * survey.dz, 0]
    )
    axes[0].set_title("generated velocity [m/s]")
    axes[0].set_xlabel("x [m]")
    axes[0].set_ylabel("z [m]")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    for ax, data, title in (
        (axes[1], gath[shot], f"generated gather (shot {shot})"),
        (axes[2], sim[shot], f"simulated F(v) ({gen.boundary})"),
        (axes[3], gath[shot] - sim[shot], f"difference (rel L2 {example_rel:.3f})"),
    ):
        im = ax.imshow(data, cmap="seismic", vmin=-lim, vmax=lim, aspect="auto", extent=extent_g)
        ax.set_title(title)
        ax.set_xlabel("receiver")
        ax.set_ylabel("t [s]")
    fig.colorbar(im, ax=axes[1:4], shrink=0.8, label="amplitude (clipped at 5% of max)")
    finite = rel[np.isfinite(rel)]
    both = finite if floor is None else np.concatenate([finite, floor[np.isfinite(floor)]])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    if lo > 0 and hi / lo > 3:
        bins = np.logspace(np.log10(lo), np.log10(hi), 30)
        axes[4].set_xscale("log")
    else:
        pad = max(0.05 * (hi - lo), 1e-3 * max(abs(hi), 1e-6))
        bins = np.linspace(lo - pad, hi + pad, 30)
    axes[4].hist(finite, bins=bins, color="0.4", density=True, label="generated pairs")
    if floor is not None:
        axes[4].hist(
            floor, bins=bins, color="tab:orange", alpha=0.6, density=True, label="AE reconstruction"
        )
    if threshold is not None:
        axes[4].axvline(threshold, color="r", ls="--", label=f"threshold {threshold:.3g}")
    if threshold is not None or floor is not None:
        axes[4].legend()
    axes[4].set_title(f"residual of all {rel.size} samples")
    axes[4].set_xlabel("relative L2 (physical)")
    axes[4].set_ylabel("density")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def generate_and_validate(
    out: str | os.PathLike,
    n: int = 256,
    *,
    checkpoint: str | os.PathLike | None = None,
    autoencoder: str | os.PathLike | None = None,
    threshold: float | None = None,
    keep_quantile: float | None = None,
    device: Any = None,
    seed: int = 0,
    steps: int = 50,
    batch: int | None = None,
    trace_steps: int = 0,
    trace_max: int = 16,
    trace_on: str = "x0",
    compression: str | None = "gzip",
    reference_store: str | os.PathLike | None = None,
    reference_n: int = 64,
    figure: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Sample ``n`` pairs, validate them, keep the physical ones; write ``out/pairs.h5``,
    ``out/summary.json``, ``out/figure.png`` (and ``out/residual_vs_step.png`` with
    ``trace_steps``). ``batch``: pairs per sampler/decoder/solver call (default 64 on CPU, 512 on
    CUDA). ``reference_store``: a dataset file made like the training data; its held-out pairs
    give the reference residuals (real pairs, autoencoder reconstructions: the floor), reported
    next to the samples' (summary ``reference``, and in the histogram). Returns the summary (also
    written as JSON). See the module docstring."""
    from tqdm.auto import tqdm

    from ubdiff_phys._native import build_info
    from ubdiff_phys.data.store import StoreWriter, create_store
    from ubdiff_phys.diffusion.generate import sample_latents
    from ubdiff_phys.physics.residual import keep_mask

    if threshold is not None and keep_quantile is not None:
        raise ValueError("give threshold or keep_quantile, not both")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if batch is None:
        batch = 512 if torch.device(device).type == "cuda" else 64
    if n < 1 or batch < 1 or steps < 1:
        raise ValueError("n, batch and steps must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    gen = load_generator(checkpoint, device, autoencoder=autoencoder)
    steps = min(steps, gen.denoiser.schedule.timesteps)
    timings["load"] = time.perf_counter() - t0

    def sync() -> None:
        if gen.device.type == "cuda":
            torch.cuda.synchronize(gen.device)

    # pass 1: sample, decode, validate; keep only latents and residuals. The trace (if any) rides
    # on batch 0 through the sampler's callback.
    tracer = None
    if trace_steps > 0:
        tracer = _Tracer(
            gen, _trace_indices(steps, trace_steps), min(trace_max, n, batch), trace_on
        )
    latents, rel, rel_n = [], [], []
    t_sample = t_decode = t_validate = 0.0
    n_batches = (n + batch - 1) // batch
    bar = tqdm(total=n, desc="generate+validate", unit="pair", disable=not progress)
    for b in range(n_batches):
        m = min(batch, n - b * batch)
        t0 = time.perf_counter()
        z = sample_latents(
            gen.denoiser,
            m,
            sampler="ddim",
            steps=steps,
            generator=_batch_generator(seed, b),
            device=gen.device,
            callback=tracer if b == 0 else None,
        )
        sync()
        t1 = time.perf_counter()
        if b == 0 and tracer is not None:
            t0 += tracer.seconds  # the trace's decode + validation is timed apart
        v, s = gen.decode(z)
        sync()
        t2 = time.perf_counter()
        r = gen.residual(v, s)
        rel.append(r.rel_l2.double())
        rel_n.append(r.rel_l2_normalized.double())
        sync()
        t3 = time.perf_counter()
        latents.append(z)
        t_sample, t_decode, t_validate = (
            t_sample + t1 - t0,
            t_decode + t2 - t1,
            t_validate + t3 - t2,
        )
        bar.update(m)
    bar.close()
    rel_all = torch.cat(rel)
    rel_n_all = torch.cat(rel_n)
    keep, used = keep_mask(rel_all, threshold=threshold, keep_quantile=keep_quantile)
    rel_np = rel_all.cpu().numpy()
    rel_n_np = rel_n_all.cpu().numpy()
    keep_np = keep.cpu().numpy()
    timings.update(sample=t_sample, decode=t_decode, validate=t_validate)
    timings["generate_and_validate"] = t_sample + t_decode + t_validate

    # pass 2: decode the accepted pairs again (same batches) and write them
    t0 = time.perf_counter()
    accepted = np.flatnonzero(keep_np)
    n_acc = int(accepted.size)
    survey = gen.survey
    pairs_path = out / "pairs.h5"
    pairs_path.unlink(missing_ok=True)
    rows = np.arange(n_acc)
    attrs = {
        **gen.store_attrs,
        "source": "ubdiff_phys.validate.generate_and_validate",
        "build_args": {
            "checkpoint": gen.info["checkpoint"],
            "autoencoder_sha256": gen.info["autoencoder_sha256"],
            "n": n,
            "sampler": "ddim",
            "steps": steps,
            "seed": seed,
            "batch": batch,
            "threshold": threshold,
            "keep_quantile": keep_quantile,
        },
    }
    create_store(
        pairs_path,
        n_rows=n_acc,
        grid=(survey.nz, survey.nx),
        seismic_shape=(survey.n_sources, survey.nt, survey.n_receivers),
        paired_index=rows,
        train_index=rows,
        test_index=np.zeros(0, dtype=np.int64),
        attrs=attrs,
        compression=compression,
    )
    example = None
    with StoreWriter(pairs_path) as w:
        bar = tqdm(total=n_acc, desc="write", unit="pair", disable=not progress or n_acc == 0)
        done = 0
        for b, z in enumerate(latents):
            sel = np.flatnonzero(keep_np[b * batch : b * batch + len(z)])
            if sel.size == 0:
                continue
            v, s = gen.decode(z)
            sel_t = torch.from_numpy(sel).to(v.device)
            v, s = v.index_select(0, sel_t).cpu(), s.index_select(0, sel_t).cpu()
            if example is None:
                example = (v[:1].clone(), s[:1].clone(), float(rel_np[b * batch + sel[0]]))
            w.write_velocity(done, v.numpy())
            w.write_seismic(done, s.numpy())
            done += len(sel)
            bar.update(len(sel))
        bar.close()
        w.finalize()
    import h5py

    with h5py.File(pairs_path, "a") as f:
        d = f.create_dataset("residual", data=rel_np[accepted].astype(np.float64))
        d.attrs["description"] = "relative L2 ||s - F(v)|| / ||F(v)|| in physical units"
        f.create_dataset("residual_normalized", data=rel_n_np[accepted].astype(np.float64))
        f.create_dataset("sample_index", data=accepted.astype(np.int64))
    timings["write"] = time.perf_counter() - t0

    trace = None
    if tracer is not None:
        t0 = time.perf_counter()
        trace = {"on": trace_on, "n": tracer.m, "steps": steps, "rows": tracer.rows}
        _plot_trace(trace, out / "residual_vs_step.png")
        timings["trace"] = tracer.seconds + time.perf_counter() - t0

    reference = None
    if reference_store is not None:
        t0 = time.perf_counter()
        reference = reference_residuals(gen, reference_store, n=reference_n)
        timings["reference"] = time.perf_counter() - t0

    if figure:
        t0 = time.perf_counter()
        if example is None:  # nothing accepted: show the best rejected sample
            i = int(np.argmin(rel_np))
            b, j = divmod(i, batch)
            v, s = gen.decode(latents[b][j : j + 1])
            example = (v.cpu(), s.cpu(), float(rel_np[i]))
        floor = np.asarray(reference["autoencoder_values"]) if reference else None
        _plot_figure(
            gen, example[0], example[1], rel_np, example[2], used, out / "figure.png", floor
        )
        timings["figure"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    gv = timings["generate_and_validate"]
    summary = {
        "n_generated": n,
        "n_accepted": n_acc,
        "n_rejected": n - n_acc,
        "fraction_accepted": n_acc / n,
        "criterion": (
            {"threshold": threshold}
            if threshold is not None
            else {"keep_quantile": keep_quantile}
            if keep_quantile is not None
            else {"keep_all": True}
        ),
        "threshold_used": used,
        "residual": {
            "all": _distribution(rel_np),
            "accepted": _distribution(rel_np[accepted]),
            "all_normalized": _distribution(rel_n_np),
        },
        "fraction_under": {
            str(t): float((rel_np <= t).mean()) for t in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
        },
        "timings_s": timings,
        "pairs_per_s": n / gv if gv > 0 else None,
        "device": str(gen.device),
        "device_name": torch.cuda.get_device_name(gen.device)
        if gen.device.type == "cuda"
        else "cpu",
        "torch_threads": torch.get_num_threads(),
        "sampler": {"name": "ddim", "steps": steps, "eta": 0.0, "seed": seed, "batch": batch},
        "checkpoint": gen.info,
        "data": {
            "family": gen.store_attrs.get("family"),
            "boundary": gen.boundary,
            "survey": gen.store_attrs.get("survey"),
            "normalization": gen.store_attrs.get("normalization"),
        },
        "outputs": {
            "pairs": str(pairs_path),
            "summary": str(out / "summary.json"),
            "figure": str(out / "figure.png") if figure else None,
            "residual_vs_step": str(out / "residual_vs_step.png") if trace else None,
        },
        "trace": trace,
        "reference": None
        if reference is None
        else {k: reference[k] for k in ("n", "store", "real", "autoencoder")},
        "build": build_info(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
