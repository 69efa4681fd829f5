"""The package's shape, as docs/architecture.md declares it.

Every import in ``ubdiff_phys/`` (module level and inside functions, read with ``ast``) must point
to the importing module's own layer or one below it; packages of one layer must not import each
other both ways; no module imports another package's private (``_name``) helpers; no function is
longer than 100 lines and no module longer than 450.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ubdiff_phys"

#: the layers, lowest first (docs/architecture.md, "Layers"); a module may import from its own
#: layer and the ones before it. Keys are the first name below ``ubdiff_phys``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("runtime",),
    ("_native", "ops"),
    ("physics",),
    ("data", "models"),
    ("diffusion",),
    ("train", "eval"),
    ("inversion", "pipelines", "validate"),
    ("cli",),
)
ROOT = "<root>"  # ubdiff_phys/__init__.py: the public facade, above every layer

MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 450

#: findings tolerated for now, each with its reason (empty when the code is clean)
KNOWN_BACK_ARROWS: dict[tuple[str, str], str] = {}
KNOWN_LONG: dict[str, str] = {}


def _layer_of(key: str) -> int:
    if key == ROOT:
        return len(LAYERS)
    for i, names in enumerate(LAYERS):
        if key in names:
            return i
    raise AssertionError(f"ubdiff_phys.{key} is in no layer: add it to LAYERS and the docs")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _key(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


@cache
def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, tree: ast.Module):
    """(line, imported module, imported names) of every import of ``ubdiff_phys`` in a file,
    at any depth (imports inside functions included); relative imports resolved."""
    me = _module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "ubdiff_phys":
                    yield node.lineno, a.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            if base.split(".")[0] != "ubdiff_phys":
                continue
            names = tuple(a.name for a in node.names)
            # ``from ubdiff_phys.x import y`` where y is a module imports that module
            subs = [f"{base}.{n}" for n in names if _is_module(f"{base}.{n}")]
            if subs and len(subs) == len(names):
                for s in subs:
                    yield node.lineno, s, ()
            else:
                yield node.lineno, base, names


def _edges():
    for path, tree in _sources().items():
        src = _module_name(path)
        for line, target, names in _imports(path, tree):
            yield path, line, src, target, names


def test_every_package_is_in_a_layer():
    for path in _sources():
        _layer_of(_key(_module_name(path)))


def test_no_import_runs_against_the_layer_order():
    bad = []
    for path, line, src, target, _ in _edges():
        a, b = _key(src), _key(target)
        if a == ROOT or _layer_of(b) <= _layer_of(a):
            continue
        if (src, target) in KNOWN_BACK_ARROWS:
            continue
        bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} ({a}) imports {target} ({b})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_packages_of_one_layer_do_not_import_each_other_both_ways():
    pairs = {(_key(s), _key(t)) for _, _, s, t, _ in _edges() if _key(s) != _key(t)}
    both = sorted(
        (a, b)
        for a, b in pairs
        if a < b and (b, a) in pairs and ROOT not in (a, b) and _layer_of(a) == _layer_of(b)
    )
    assert not both, f"package-level import cycles: {both}"


def test_no_private_names_are_imported_across_packages():
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {n} from {target}"
        for path, line, src, target, names in _edges()
        for n in names
        if n.startswith("_") and not n.startswith("__") and _key(src) != _key(target)
    ]
    assert not bad, "private helpers imported from another package:\n" + "\n".join(bad)


def test_functions_and_modules_are_short():
    long = []
    for path, tree in _sources().items():
        rel = path.relative_to(PACKAGE.parent)
        n = len(path.read_text().splitlines())
        if n > MAX_MODULE_LINES and str(rel) not in KNOWN_LONG:
            long.append(f"{rel}: {n} lines (module)")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in KNOWN_LONG:
                    long.append(f"{rel}:{node.lineno}: {node.name} is {size} lines")
    assert not long, "too long:\n" + "\n".join(long)


#: the one module allowed to write files by name (it writes to a temporary name and renames)
ATOMIC_WRITER = "ubdiff_phys/runtime/files.py"


def test_files_are_written_only_through_the_atomic_helpers():
    """``Path.write_text/write_bytes`` and ``open(..., "w")`` on an output would destroy the
    previous file when the write fails half-way (a full disk): every output goes through
    ``ubdiff_phys.runtime.files`` (temporary name, then rename). Writing to the temporary path
    an ``atomic_path`` yields (named ``tmp`` by convention) is the allowed form."""

    def is_tmp(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == "tmp"

    bad = []
    for path, tree in _sources().items():
        rel = str(path.relative_to(PACKAGE.parent))
        if rel == ATOMIC_WRITER:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr in ("write_text", "write_bytes")
                and not is_tmp(f.value)
            ):
                bad.append(f"{rel}:{node.lineno}: .{f.attr}(...)")
            if isinstance(f, ast.Name) and f.id == "open" and len(node.args) >= 2:
                if is_tmp(node.args[0]):
                    continue
                mode = node.args[1]
                if isinstance(mode, ast.Constant) and str(mode.value)[:1] in "wx":
                    bad.append(f"{rel}:{node.lineno}: open(..., {mode.value!r})")
    assert not bad, "non-atomic writes:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("src", "target", "back"),
    [
        ("ubdiff_phys.train.loop", "ubdiff_phys.physics", False),
        ("ubdiff_phys.ops", "ubdiff_phys.data", True),
    ],
)
def test_the_layer_rule_itself(src, target, back):
    assert (_layer_of(_key(target)) > _layer_of(_key(src))) is back
