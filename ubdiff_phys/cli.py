"""``ubdiff-phys`` command-line entry point.

Each command group lives next to its code and exposes ``register(subparsers)``, which adds its
sub-commands with ``set_defaults(func=...)``; ``func(args) -> int`` is the exit status.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from ubdiff_phys.runtime.errors import UserError

__all__ = ["USER_INPUT_ERRORS", "main"]

#: exceptions that mean the user's input is wrong (a path that is missing, a folder, unreadable)
USER_INPUT_ERRORS = (
    UserError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

# modules with a register(subparsers) function, in help order
COMMAND_MODULES = (
    "ubdiff_phys.data.cli",
    "ubdiff_phys.train.cli",
    "ubdiff_phys.pipelines.cli",
    "ubdiff_phys.pipelines.evaluate_cli",
    "ubdiff_phys.inversion.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ubdiff-phys",
        description="Physics-checked generation of paired velocity maps and seismic gathers.",
    )
    parser.add_argument("--version", action="store_true", help="print version and build info")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # a command group not present in this version (the module or its package): skip it;
            # anything else missing (a dependency of an existing module) is a real error
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import json

        from ubdiff_phys._native import build_info

        print(json.dumps(build_info(), indent=2))
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_INPUT_ERRORS as exc:  # a user's mistake: one line, exit 2 (bugs keep tracebacks)
        print(f"ubdiff-phys {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(
            f"ubdiff-phys {args.command}: error: the disk is full: {_one_line(exc)[:300]}",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename!r}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
