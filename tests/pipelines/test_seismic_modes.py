"""Seismic source modes of generation on the shipped checkpoint: solver pairs are exact, guided
pairs are more consistent than the decoder's on the same seed, and the mode is recorded."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from helpers import requires_cuda

from ubdiff_phys.data import open_store
from ubdiff_phys.eval import layer_structure
from ubdiff_phys.models.decoders import HeldCorrection, TokenSeismicDecoder
from ubdiff_phys.pipelines.generator import load_generator
from ubdiff_phys.pipelines.sample import generate_store
from ubdiff_phys.pipelines.seismic_modes import (
    check_guidance,
    generate_pairs,
    guidance_shot_cycle,
    pair_misfit,
    pair_misfit_guide,
)
from ubdiff_phys.pipelines.validate import validate_store


@pytest.fixture(scope="module")
def gen():
    return load_generator()


def test_solver_mode_pairs_are_exact(gen) -> None:
    v, s, info = generate_pairs(gen, 3, seed=1, b=0, seismic="solver", steps=5)
    assert info["seismic"] == "solver"
    assert float(gen.residual(v, s).rel_l2.max()) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shots", "noise", "gradient"),
    [(None, "keep", "full"), (1, "keep", "full"), (1, "recompute", "full"),
     (1, "keep", "no_refine"), (1, "keep", "no_refine/3")],
)  # fmt: skip
def test_guided_mode_lowers_the_pair_residual(gen, shots, noise, gradient) -> None:
    kw = dict(seed=0, b=0, steps=12)
    gradient, _, every = gradient.partition("/")
    v0, s0, _ = generate_pairs(gen, 4, seismic="decoder", **kw)
    v1, s1, info = generate_pairs(
        gen, 4, seismic="guided", guidance_scale=0.05, guidance_steps=6, guidance_shots=shots,
        guidance_noise=noise, guidance_gradient=gradient,
        guidance_refine_every=int(every or 1), **kw,
    )  # fmt: skip
    r0 = gen.residual(v0, s0).rel_l2.median()
    r1 = gen.residual(v1, s1).rel_l2.median()
    assert len(info["log"]) == 6 and info["guidance_shots"] == shots
    assert info["guidance_noise"] == noise and info["guidance_gradient"] == gradient
    assert float(r1) < float(r0), (float(r0), float(r1))


@requires_cuda
def test_solver_and_guided_modes_on_cuda() -> None:
    """The generator on the GPU: solver pairs exact, guided pairs (the CUDA adjoint in the loop,
    the default guidance) more consistent than the decoder's on the same seed."""
    gen_cuda = load_generator(device="cuda")
    v, s, _ = generate_pairs(gen_cuda, 3, seed=1, b=0, seismic="solver", steps=5)
    assert float(gen_cuda.residual(v, s).rel_l2.max()) < 1e-6
    kw = dict(seed=0, b=0, steps=12)
    v0, s0, _ = generate_pairs(gen_cuda, 4, seismic="decoder", **kw)
    v1, s1, info = generate_pairs(gen_cuda, 4, seismic="guided", guidance_steps=6, **kw)
    r0 = gen_cuda.residual(v0, s0).rel_l2.median()
    r1 = gen_cuda.residual(v1, s1).rel_l2.median()
    assert len(info["log"]) == 6
    assert float(r1) < float(r0), (float(r0), float(r1))


def test_guidance_shot_cycle_covers_every_shot() -> None:
    assert guidance_shot_cycle(5, None, 3) is None and guidance_shot_cycle(5, 5, 0) is None
    assert [guidance_shot_cycle(5, 1, k) for k in range(6)] == [[0], [1], [2], [3], [4], [0]]
    assert [guidance_shot_cycle(5, 2, k) for k in range(3)] == [[0, 1], [2, 3], [4, 0]]


def test_pair_misfit_of_shot_subsets_matches_the_full_simulation(gen) -> None:
    """Each shot simulated alone (its own one-source survey) must give that shot's slice of the
    five-shot simulation: the squared misfit over all shots is the mean of the one-shot ones."""
    z = gen.sample(3, seed=2, b=0, steps=4).float()
    full = pair_misfit(gen, z)
    single = torch.stack([pair_misfit(gen, z, [k]) for k in range(len(gen.survey.sources))])
    torch.testing.assert_close(single.square().mean(0), full.square(), rtol=1e-4, atol=1e-7)
    pair = pair_misfit(gen, z, [3, 1])
    torch.testing.assert_close(pair.square(), (single[3] ** 2 + single[1] ** 2) / 2, rtol=1e-4,
                               atol=1e-7)  # fmt: skip
    with pytest.raises(ValueError, match="shots"):
        pair_misfit_guide(gen, scale=0.05, guidance_steps=2, total_steps=4, shots=0)


def test_no_refine_gradient_skips_only_the_refinement(gen) -> None:
    """The "no_refine" guidance gradient: the same misfit; its gradient is the full one minus the
    part that flows through the seismic decoder's refinement convolutions (oracle: the gradient
    with the refinement's correction added as a detached tensor by hand)."""
    z = gen.sample(2, seed=3, b=0, steps=4).float().reshape(2, -1)
    shots = [2]
    z_full = z.clone().requires_grad_()
    m_full = pair_misfit(gen, z_full, shots, gradient="full")
    (g_full,) = torch.autograd.grad(m_full.sum(), z_full)
    z_nr = z.clone().requires_grad_()
    m_nr = pair_misfit(gen, z_nr, shots, gradient="no_refine")
    (g_nr,) = torch.autograd.grad(m_nr.sum(), z_nr)
    torch.testing.assert_close(m_nr, m_full, rtol=0, atol=0)
    dec = next(m for m in gen.autoencoder.modules() if isinstance(m, TokenSeismicDecoder))
    assert dec.refine_in_graph  # restored after the guided decode
    refine = dec.refine
    z_o = z.clone().requires_grad_()
    dec.refine = None  # the token path only; the refinement's correction added detached below
    try:
        correction: dict[str, torch.Tensor] = {}

        def add_correction(module, inputs, out):
            with torch.no_grad():
                x = out.detach().contiguous(memory_format=torch.channels_last)
                correction["c"] = refine(x).contiguous()
            return out + correction["c"]

        handle = dec.register_forward_hook(add_correction)
        try:
            m_o = pair_misfit(gen, z_o, shots, gradient="full")
        finally:
            handle.remove()
    finally:
        dec.refine = refine
    (g_o,) = torch.autograd.grad(m_o.sum(), z_o)
    torch.testing.assert_close(m_o, m_full, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_nr, g_o, rtol=1e-4, atol=1e-7)
    # the refinement does carry gradient in the shipped decoder: the two gradients differ
    assert float((g_full - g_nr).norm() / g_full.norm()) > 1e-3
    with pytest.raises(ValueError, match="gradient"):
        pair_misfit_guide(gen, scale=0.05, guidance_steps=2, total_steps=4, gradient="none")


def test_held_refinement_correction_is_reused_until_refreshed(gen) -> None:
    """With a held correction the "no_refine" misfit is the token path plus the correction last
    computed (oracle: that sum built by hand), until the correction is marked for refreshing;
    the guide refreshes it at every refine_every-th guided step."""
    z0 = gen.sample(2, seed=4, b=0, steps=4).float().reshape(2, -1)
    z1 = z0 + 0.05 * torch.randn_like(z0)  # a later guided step's co-latent
    held = HeldCorrection()
    m0 = pair_misfit(gen, z0.clone().requires_grad_(), [1], "no_refine", held)
    c0 = held.value.clone()
    torch.testing.assert_close(m0, pair_misfit(gen, z0, [1], "full"), rtol=0, atol=0)
    held.refresh = False
    z = z1.clone().requires_grad_()
    m_lag = pair_misfit(gen, z, [1], "no_refine", held)
    (g_lag,) = torch.autograd.grad(m_lag.sum(), z)
    assert torch.equal(held.value, c0)  # reused, not recomputed
    dec = next(m for m in gen.autoencoder.modules() if isinstance(m, TokenSeismicDecoder))
    refine, dec.refine = dec.refine, None  # oracle: token path + the held correction
    handle = dec.register_forward_hook(lambda module, inputs, out: out + c0)
    try:
        z = z1.clone().requires_grad_()
        m_o = pair_misfit(gen, z, [1], "full")
        (g_o,) = torch.autograd.grad(m_o.sum(), z)
    finally:
        handle.remove()
        dec.refine = refine
    torch.testing.assert_close(m_lag, m_o, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_lag, g_o, rtol=1e-4, atol=1e-7)
    assert float((m_lag - pair_misfit(gen, z1, [1], "full")).detach().abs().max()) > 0  # stale
    held.refresh = True
    m1 = pair_misfit(gen, z1.clone().requires_grad_(), [1], "no_refine", held)
    torch.testing.assert_close(m1, pair_misfit(gen, z1, [1], "full"), rtol=0, atol=0)
    # the guide's schedule: refresh at guided steps 0, 3, 6, ... for refine_every = 3
    refreshes = []
    original = HeldCorrection.__setattr__

    def spy(self, name, value):
        if name == "refresh":
            refreshes.append(value)
        original(self, name, value)

    HeldCorrection.__setattr__ = spy
    try:
        guide = pair_misfit_guide(gen, scale=0.01, guidance_steps=7, total_steps=7, shots=1,
                                  gradient="no_refine", refine_every=3)  # fmt: skip
        x = z0.clone()
        for i in range(7):
            x = guide(x, i, 0)
    finally:
        HeldCorrection.__setattr__ = original
    assert refreshes[-7:] == [True, False, False, True, False, False, True]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="refine_every"):
            check_guidance(0.02, 11, 1, "keep", "no_refine", bad)


def test_mode_recorded_in_the_store(tmp_path, gen) -> None:
    out = tmp_path / "g.h5"
    generate_store(gen.info["checkpoint"], out, 2, sampler="ddim", steps=4, seismic="solver",
                   progress=False)  # fmt: skip
    with h5py.File(out, "r") as f:
        assert f.attrs["seismic_mode"] == "solver"
        assert bool(f.attrs["generated"])
    summary = validate_store(out, progress=False)
    assert summary.verdict.startswith("consistent") and summary.baselines["own"] < 1e-6
    with pytest.raises(ValueError, match="seismic"):
        generate_store(gen.info["checkpoint"], tmp_path / "x.h5", 2, seismic="magic")
    assert not (tmp_path / "x.h5").exists()


def test_guided_store_written_before_an_option_existed_resumes(tmp_path, gen) -> None:
    """A guided store whose build_args predate ``guidance_shots``/``_noise``/``_gradient``/
    ``_refine_every`` is the same job as one asking for those options' earlier behaviour (all
    shots, recompute, full, every step), and another job for any other value (refused, the file
    kept)."""
    out = tmp_path / "old.h5"
    ckpt = gen.info["checkpoint"]
    old = dict(seismic="guided", guidance_scale=0.05, guidance_steps=2, guidance_shots=None,
               guidance_noise="recompute", guidance_gradient="full",
               guidance_refine_every=1)  # fmt: skip
    kw = dict(sampler="ddim", steps=4, progress=False)
    generate_store(ckpt, out, 2, **kw, **old)
    with h5py.File(out, "r+") as f:  # as written before the three options existed
        args = json.loads(f.attrs["build_args"])
        for key in ("guidance_shots", "guidance_noise", "guidance_gradient",
                    "guidance_refine_every"):  # fmt: skip
            del args[key]
        f.attrs["build_args"] = json.dumps(args)
        v_before = f["velocity"][:]
    generate_store(ckpt, out, 2, **kw, **old)  # the same job: accepted, nothing to redo
    for key, value in (("guidance_gradient", "no_refine"), ("guidance_noise", "keep"),
                       ("guidance_shots", 1), ("guidance_refine_every", 2)):  # fmt: skip
        with pytest.raises(FileExistsError):
            generate_store(ckpt, out, 2, **kw, **{**old, key: value})
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["velocity"][:], v_before)


def test_main_job_solver_mode_and_reference_points(tmp_path) -> None:
    from ubdiff_phys.pipelines.generate_and_validate import generate_and_validate

    # solver is the default mode: the job's pairs obey the wave equation unless asked otherwise;
    # its default generator is then the shipped velocity-space model
    summary = generate_and_validate(tmp_path / "job", 4, steps=4, figure=False, progress=False)
    assert summary["seismic"] == {"seismic": "solver"}
    assert summary["checkpoint"]["kind"] == "velocity" and summary["checkpoint"]["shipped"]
    assert summary["residual"]["all"]["max"] < 1e-6
    # the structure it reports is that of the maps it wrote (recomputed from pairs.h5)
    with open_store(tmp_path / "job" / "pairs.h5") as st:
        v = np.stack([st.velocity(int(r)) for r in st.paired_index])
    expected = layer_structure(v).summary()
    got = summary["velocity_structure"]
    assert got["n"] == 4 and all(got[k] == pytest.approx(x) for k, x in expected.items())
    b = summary["baselines"]
    assert b["n_pairs"] == 4 and b["own"] < 1e-6 < b["direct_wave"] < b["shuffled"]
    assert b["verdict"].startswith("consistent")
    with h5py.File(tmp_path / "job" / "pairs.h5", "r") as f:
        assert f.attrs["seismic_mode"] == "solver" and bool(f.attrs["generated"])
    with pytest.raises(ValueError, match="seismic"):
        generate_and_validate(tmp_path / "bad", 2, seismic="oracle", progress=False)


def test_sample_refuses_to_replace_a_dataset(tmp_path, gen) -> None:
    """Issue 13 case 1: `sample` over an existing dataset used to replace it."""
    import subprocess
    import sys

    from helpers import small_store

    data = small_store(tmp_path / "data.h5", n_velocity=6, n_paired=2, n_test=0)
    before = data.read_bytes()
    cmd = [sys.executable, "-m", "ubdiff_phys.cli", "sample", str(data), "--checkpoint",
           gen.info["checkpoint"], "--n", "2", "--sampler", "ddim", "--steps", "2",
           "--no-progress"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "--overwrite" in r.stderr and r.stderr.count("\n") == 1
    assert data.read_bytes() == before
    with pytest.raises(FileExistsError):
        generate_store(gen.info["checkpoint"], data, 2, sampler="ddim", steps=2, progress=False)
    # the same job resumes into its own file, and --overwrite replaces a foreign one
    out = tmp_path / "g.h5"
    generate_store(gen.info["checkpoint"], out, 2, sampler="ddim", steps=2, progress=False)
    generate_store(gen.info["checkpoint"], out, 2, sampler="ddim", steps=2, progress=False)
    generate_store(gen.info["checkpoint"], data, 2, sampler="ddim", steps=2, progress=False,
                   overwrite=True)  # fmt: skip
    assert data.read_bytes() != before


def test_main_job_failure_while_writing_keeps_the_previous_pairs(tmp_path, monkeypatch) -> None:
    """Issue 13 case 2: pairs.h5 was deleted before the new one existed."""
    from ubdiff_phys.data.store import StoreWriter
    from ubdiff_phys.pipelines.generate_and_validate import generate_and_validate

    out = tmp_path / "job"
    generate_and_validate(out, 2, steps=2, figure=False, progress=False)
    before = (out / "pairs.h5").read_bytes()

    def boom(self, start, s):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StoreWriter, "write_seismic", boom)
    with pytest.raises(OSError, match="No space"):
        generate_and_validate(out, 2, steps=2, seed=1, figure=False, progress=False, overwrite=True)
    assert (out / "pairs.h5").read_bytes() == before


def test_main_job_refuses_an_earlier_run_or_a_users_pairs(tmp_path) -> None:
    """Issue 13 case 2: an unrelated pairs.h5 in --out was replaced silently, and a second run
    into the same --out overwrote the first without a word."""
    from ubdiff_phys.pipelines.generate_and_validate import generate_and_validate
    from ubdiff_phys.runtime.errors import OptionError

    out = tmp_path / "job"
    out.mkdir()
    (out / "pairs.h5").write_bytes(b"a user's own file")
    with pytest.raises(OptionError, match="--overwrite"):
        generate_and_validate(out, 2, steps=2, figure=False, progress=False)
    assert (out / "pairs.h5").read_bytes() == b"a user's own file"
    other = tmp_path / "job2"
    generate_and_validate(other, 2, steps=2, figure=False, progress=False)
    summary = (other / "summary.json").read_bytes()
    with pytest.raises(OptionError, match="summary.json"):
        generate_and_validate(other, 2, steps=2, seed=3, figure=False, progress=False)
    assert (other / "summary.json").read_bytes() == summary
    with pytest.raises(OptionError, match="not a folder"):
        generate_and_validate(out / "pairs.h5", 2, steps=2, figure=False, progress=False)
