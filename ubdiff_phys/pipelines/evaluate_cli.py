"""``ubdiff-phys evaluate`` and ``ubdiff-phys train-features``.

Options can come from a TOML file (``--config``) with ``[protocol]`` (:class:`ProtocolConfig`)
and ``[features]`` (:class:`FeatureConfig`) sections; flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ubdiff_phys.eval.features import FeatureConfig, train_feature_network
from ubdiff_phys.eval.protocol import ProtocolConfig
from ubdiff_phys.pipelines.evaluate import evaluate
from ubdiff_phys.runtime.config import read_toml
from ubdiff_phys.runtime.errors import OptionError

__all__ = ["load_eval_config", "register"]


def load_eval_config(path: Path | None) -> tuple[ProtocolConfig, FeatureConfig]:
    """(protocol, features) configs from a TOML file (missing sections: defaults)."""
    raw: dict[str, Any] = read_toml(path) if path is not None else {}
    unknown = set(raw) - {"protocol", "features"}
    if unknown:
        raise ValueError(f"unknown section(s) in {str(path)!r}: {sorted(unknown)}")
    return (
        ProtocolConfig.from_dict(raw.get("protocol", {})),
        FeatureConfig.from_dict(raw.get("features", {})),
    )


def _override(cfg, **values):
    d = cfg.to_dict()
    d.update({k: v for k, v in values.items() if v is not None})
    return type(cfg).from_dict(d)


def _evaluate(args: argparse.Namespace) -> int:
    protocol, feats = load_eval_config(args.config)
    protocol = _override(
        protocol, epochs=args.epochs, batch=args.batch, width=args.width, max_steps=args.max_steps
    )
    feats = _override(feats, epochs=args.feature_epochs)
    report = evaluate(
        args.generated,
        args.real,
        args.out,
        protocol=protocol,
        feature_cfg=feats,
        features=args.features,
        seismic_features=args.seismic_features,
        seismic_fd=args.seismic_fd,
        device=args.device,
        progress=not args.quiet,
    )
    m = report["protocol"]["metrics"]
    print("InversionNet on real test pairs: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
    for modality, f in report["frechet"].items():
        print(f"Fréchet distance ({modality} features): {f['fd']:.4g}")
    res = report["residual"]
    if "skipped" in res:
        print(f"physics residual not computed: {res['skipped']}")
    else:
        med = res["distribution"]["physical"].get("median")
        print(f"physics residual median (relative L2): {med}")
    print(f"wrote {args.out / 'report.json'} and {args.out / 'report.md'}")
    return 0


def _train_features(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:
        raise OptionError(
            f"{str(args.out)!r} already exists; pass --overwrite to replace it, or choose "
            "another --out"
        )
    if not args.real.is_file():
        raise OptionError(f"--real {str(args.real)!r} is not a file")
    _, feats = load_eval_config(args.config)
    feats = _override(feats, modality=args.modality, epochs=args.epochs, seed=args.seed)
    ext = train_feature_network(
        args.real, args.out, feats, device=args.device, progress=not args.quiet
    )
    print(json.dumps(ext.describe(), indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate generated pairs against real data (report.json + report.md)",
        description="Train InversionNet on the generated pairs and test it on the real store's "
        "held-out pairs, Fréchet distance of project-trained features, and the physics residual "
        "of every generated pair (specs/ubdiff.md §5).",
    )
    p.add_argument("--generated", type=Path, required=True, help="generated pairs file (HDF5)")
    p.add_argument("--real", type=Path, required=True, help="real store with held-out pairs")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, help="TOML with [protocol] and [features] sections")
    p.add_argument("--epochs", type=int, help="InversionNet epochs (default 1)")
    p.add_argument("--batch", type=int, help="InversionNet batch (default 256)")
    p.add_argument("--width", type=float, help="InversionNet width multiplier (default 1.0)")
    p.add_argument("--max-steps", type=int, help="stop InversionNet training after N steps")
    p.add_argument(
        "--features",
        type=Path,
        help="velocity feature checkpoint, or an Inception-v3 state dict (pytorch-fid's FID "
        "weights or torchvision's) (default: train one on --real)",
    )
    p.add_argument("--seismic-fd", action="store_true", help="also Fréchet distance of seismic")
    p.add_argument("--seismic-features", type=Path, help="seismic feature checkpoint")
    p.add_argument("--feature-epochs", type=int, help="epochs of feature networks trained here")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)

    t = subparsers.add_parser(
        "train-features",
        help="train the Fréchet-distance feature network on a real store",
        description="Train the feature autoencoder (ubdiff_phys.eval.features) on the training "
        "rows of a real store and save its checkpoint (deterministic for a seed on CPU).",
    )
    t.add_argument("--real", type=Path, required=True, help="real store (HDF5)")
    t.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt)")
    t.add_argument("--config", type=Path, help="TOML with a [features] section")
    t.add_argument("--modality", choices=("velocity", "seismic"), help="default velocity")
    t.add_argument("--epochs", type=int, help="training epochs (default 20)")
    t.add_argument("--seed", type=int, help="seed (default 0)")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    t.set_defaults(func=_train_features)
