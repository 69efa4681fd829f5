"""Give a trained generator another seismic branch without retraining its diffusion model.

Step 2 of autoencoder training with ``freeze = 1`` changes only the seismic head and decoder
(``head_s``, ``dec_s``): the encoder, hence the co-latents the diffusion model learnt, and the
velocity branch stay bit-identical. So a step-2 re-run (more pairs, another initialisation) can be
paired with the existing diffusion model, provided every other tensor is checked to be identical:

* :func:`swap_seismic_branch` swaps it into a loaded :class:`~.generator.Generator` (for scoring);
* :func:`rebind_diffusion` writes a copy of the diffusion checkpoint that names the new
  autoencoder file (its sha256), with the previous sha256 kept in ``branch_history``, so
  that :func:`~.generator.load_generator` and :func:`~.generator.package_checkpoint` accept the
  pair.

The same holds for the velocity branch after a decoder-only step 1 (``step1.freeze_encoder``):
``rebind_diffusion(..., branch="velocity")``. A new velocity branch changes what the prior's
samples decode to, so its denoiser error (``ubdiff-phys prior-error``) must be measured again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ubdiff_phys.diffusion.checkpoint import load_diffusion_checkpoint
from ubdiff_phys.models.checkpoint import load_autoencoder_model
from ubdiff_phys.pipelines.generator import Generator
from ubdiff_phys.runtime.checkpoint import save_checkpoint
from ubdiff_phys.runtime.config import dump_toml
from ubdiff_phys.runtime.files import atomic_write_text, file_sha256
from ubdiff_phys.train.checkpoint import load_autoencoder

__all__ = ["SEISMIC_PARTS", "check_only_seismic_differs", "rebind_diffusion", "swap_seismic_branch"]

#: the autoencoder's seismic branch (head + decoder): what may differ
SEISMIC_PARTS = ("head_s", "dec_s")
#: each branch a re-bound autoencoder may change
BRANCH_PARTS = {"seismic": SEISMIC_PARTS, "velocity": ("head_v", "dec_v")}


def check_only_seismic_differs(
    own: dict[str, torch.Tensor],
    new: dict[str, torch.Tensor],
    what: str = "autoencoder",
    branch: str = "seismic",
) -> int:
    """Raise ``ValueError`` unless every tensor outside ``branch``'s parts (:data:`BRANCH_PARTS`)
    has the same name and is identical in the two autoencoder state dicts; return how many
    tensors are shared. Inside the branch anything may differ, its architecture included (e.g.
    the token seismic decoder in place of the paper's)."""
    if branch not in BRANCH_PARTS:
        raise ValueError(f"branch must be one of {tuple(BRANCH_PARTS)}, got {branch!r}")
    shared = [k for k in own if k.split(".")[0] not in BRANCH_PARTS[branch]]
    if set(shared) != {k for k in new if k.split(".")[0] not in BRANCH_PARTS[branch]}:
        raise ValueError(f"{what} has other tensors than the checkpoint's autoencoder")
    changed = [k for k in shared if own[k].shape != new[k].shape or not torch.equal(own[k], new[k])]
    if changed:
        raise ValueError(
            f"{what} changes more than the {branch} branch ({len(changed)} tensors differ, "
            f"e.g. {changed[0]}): its latent space is not the diffusion model's"
        )
    return len(shared)


def swap_seismic_branch(gen: Generator, path: str | os.PathLike) -> None:
    """Load the seismic branch of the autoencoder checkpoint ``path`` into ``gen`` (in place);
    refused (``ValueError``) unless everything else is identical."""
    other, other_config = load_autoencoder(path, "cpu")
    new = {k: v.to(gen.device) for k, v in other.state_dict().items()}
    check_only_seismic_differs(gen.autoencoder.state_dict(), new, str(path))
    if other.config == gen.autoencoder.config:
        gen.autoencoder.load_state_dict(new)
    else:  # another seismic architecture: the other model, whose other tensors are identical
        gen.autoencoder = other.to(gen.device).eval()
        gen.autoencoder_config = other_config
    gen.info["seismic_from"] = str(path)


def rebind_diffusion(
    diffusion: str | os.PathLike,
    old_autoencoder: str | os.PathLike,
    new_autoencoder: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    branch: str = "seismic",
) -> dict[str, Any]:
    """Write ``out_dir/final.pt``: the diffusion checkpoint ``diffusion`` (file or run folder)
    re-bound to ``new_autoencoder`` (its sha256 and its config's ``data.autoencoder``), and
    ``out_dir/config.toml``, that config.

    ``old_autoencoder`` must be the file the checkpoint records (sha256), and the two autoencoders
    must differ only in ``branch`` ("seismic" or "velocity"). Returns the history entry that was
    appended."""
    ckpt = load_diffusion_checkpoint(diffusion)
    old_sha = file_sha256(old_autoencoder)
    if old_sha != ckpt["autoencoder_sha256"]:
        raise ValueError(
            f"{str(old_autoencoder)!r} is not the autoencoder {str(diffusion)!r} records"
        )
    old = load_autoencoder_model(old_autoencoder, "cpu").state_dict()
    new = load_autoencoder_model(new_autoencoder, "cpu").state_dict()
    shared = check_only_seismic_differs(old, new, str(new_autoencoder), branch)
    entry = {
        "branch": branch,
        "previous_autoencoder_sha256": old_sha,
        "autoencoder_sha256": file_sha256(new_autoencoder),
        "autoencoder": str(new_autoencoder),
        "identical_tensors": shared,
    }
    ckpt["autoencoder_sha256"] = entry["autoencoder_sha256"]
    # "seismic_branch_history": the key's name before velocity branches could be re-bound
    history = [*ckpt.pop("seismic_branch_history", []), *ckpt.get("branch_history", [])]
    ckpt["branch_history"] = [*history, entry]
    config = {
        **ckpt["config"],
        "data": {**ckpt["config"]["data"], "autoencoder": str(new_autoencoder)},
    }
    ckpt["config"] = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "final.pt", ckpt)
    atomic_write_text(out / "config.toml", dump_toml(config))
    return entry
