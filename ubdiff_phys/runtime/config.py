"""Typed configs: frozen dataclasses built from (TOML) dicts that refuse unknown keys, and the
TOML text written next to every run.

A run config is a dataclass of sections (``[run]``, ``[data]``, ...), each a frozen dataclass.
:func:`strict_from_dict` builds one section, :func:`sections_from_dict` a whole config,
:func:`dump_toml` writes it back, :func:`read_toml` reads a file (stdlib ``tomllib``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from typing import Any, TypeVar, get_type_hints

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "SectionedConfig",
    "check_hyperparameters",
    "dump_toml",
    "read_toml",
    "section_from_dict",
    "sections_from_dict",
    "strict_from_dict",
    "tomllib",
]

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)`` for the dataclass ``cls``, refusing keys it does not have.

    ``what`` names the keys in the error: ``ValueError("unknown <what>: [...]")``."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")
    return cls(**d)


def section_from_dict(cls: type[T], d: dict[str, Any], section: str) -> T:
    """Build the frozen dataclass ``cls`` of TOML section ``[section]``, refusing unknown keys."""
    return strict_from_dict(cls, d, f"option(s) in [{section}]")


def sections_from_dict(cls: type[T], d: dict[str, Any], parsers: dict[str, Callable]) -> T:
    """Build a config of sections: ``cls(**{name: parsers[name](d.get(name, {}))})``, refusing
    sections not in ``parsers``. A parser that is a dataclass type goes through
    :func:`section_from_dict`."""
    unknown = set(d) - set(parsers)
    if unknown:
        raise ValueError(f"unknown config section(s): {sorted(unknown)}")
    out = {}
    for name, parse in parsers.items():
        value = d.get(name, {})
        is_section = isinstance(parse, type)
        out[name] = section_from_dict(parse, value, name) if is_section else parse(value)
    return cls(**out)


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The dict of a TOML file."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(d: dict[str, dict[str, Any]]) -> str:
    """TOML text of a two-level dict of scalars and lists (a config's ``to_dict()``)."""
    lines = []
    for section, values in d.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


class SectionedConfig:
    """Mixin for a frozen dataclass whose fields are config sections (themselves frozen
    dataclasses, or classes with ``to_dict``/``from_dict``): the dict form, the strict
    ``from_dict`` and copies with sections or fields replaced."""

    @classmethod
    def _parsers(cls) -> dict[str, Callable]:
        hints = get_type_hints(cls)
        return {f.name: getattr(hints[f.name], "from_dict", hints[f.name]) for f in fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        """{section: {field: value}}, in field order (what :func:`dump_toml` writes)."""
        out = {}
        for f in fields(self):
            section = getattr(self, f.name)
            out[f.name] = section.to_dict() if hasattr(section, "to_dict") else asdict(section)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The config of a (TOML) dict; unknown sections and keys are errors."""
        return sections_from_dict(cls, d, cls._parsers())

    def replace(self, **sections: Any):
        """Copy with whole sections replaced."""
        return replace(self, **sections)

    def with_(self, section: str, **changes: Any):
        """Copy with ``section``'s fields changed, e.g. ``cfg.with_("run", seed=1)``."""
        return replace(self, **{section: replace(getattr(self, section), **changes)})


def check_hyperparameters(
    section: str,
    ranges: dict[str, tuple[float, float, float, bool]],
    non_negative: dict[str, float] | None = None,
) -> None:
    """Refuse non-finite or out-of-range hyper-parameters before any training starts.

    Args:
        section: config section name for the message.
        ranges: name -> (value, lo, hi, lo_inclusive): value must be finite, in (lo, hi] (or
            [lo, hi] when ``lo_inclusive``).
        non_negative: name -> value that must be finite and >= 0.
    """
    for name, (value, lo, hi, lo_incl) in ranges.items():
        v = float(value)
        ok = math.isfinite(v) and (v >= lo if lo_incl else v > lo) and v <= hi
        if not ok:
            left = "[" if lo_incl else "("
            raise ValueError(f"{section}.{name} must be finite and in {left}{lo}, {hi}], got {v}")
    for name, value in (non_negative or {}).items():
        v = float(value)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{section}.{name} must be finite and >= 0, got {v}")
