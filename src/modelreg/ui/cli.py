"""The ``modelreg ui`` subcommand.

``add_commands(subparsers)`` registers it on the main ``modelreg`` parser; the
module imports nothing from the web stack until the command runs, so
``modelreg --help`` works without the ``ui`` extra.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_commands", "build_parser", "run"]

DEFAULT_PORT = 8421


def _configure(p: argparse.ArgumentParser, *, standalone: bool) -> argparse.ArgumentParser:
    if standalone:  # the main ``modelreg`` parser gives every command --registry and --actor
        p.add_argument(
            "--registry",
            "-r",
            metavar="URL",
            default=None,
            help="registry location (folder or URL); default: $MODELREG_URI or the local default folder",
        )
        p.add_argument(
            "--actor",
            default=None,
            help="name recorded in the audit log for changes (default: $MODELREG_ACTOR or your user)",
        )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: only this machine)")
    p.add_argument(
        "--port",
        "-p",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument("--read-only", action="store_true", help="browse only: hide and refuse every change")
    p.set_defaults(func=run)
    return p


def add_commands(subparsers: Any) -> None:
    """Add ``ui`` to the subparsers of the ``modelreg`` command (see :data:`modelreg.cli.EXTENSIONS`)."""
    p = subparsers.add_parser(
        "ui",
        help="serve the web UI on 127.0.0.1",
        description="Serve the modelreg web UI: browse models, versions, metrics, lineage and the audit log, "
        "and change stages, aliases, tags and descriptions (each with a confirmation step). "
        "It listens on 127.0.0.1 unless --host says otherwise.",
    )
    _configure(p, standalone=False)


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser, used by ``python -m modelreg.ui``."""
    return _configure(
        argparse.ArgumentParser(prog="modelreg ui", description="Serve the modelreg web UI."), standalone=True
    )


def run(args: argparse.Namespace) -> int:
    """Open the registry and serve the UI until interrupted; returns the exit code."""
    from .. import Registry
    from . import require_ui_dependencies
    from .server import serve

    require_ui_dependencies()
    actor = getattr(args, "actor", None)
    registry = Registry(getattr(args, "registry", None), actor=actor)
    try:
        serve(registry, host=args.host, port=args.port, read_only=args.read_only, actor=actor)
    except KeyboardInterrupt:
        pass
    finally:
        registry.close()
    return 0
