"""The ``modelreg serve`` and ``modelreg token`` commands.

``add_commands(subparsers)`` adds both (see :data:`modelreg.cli.EXTENSIONS`); nothing from the
web stack is imported until ``serve`` runs.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["add_commands", "parse_size"]

_SIZE_RE = re.compile(r"(\d+)\s*([kmgt]?)(i?b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``512KiB``, ``1MiB``, ``16G`` (powers of 1024)."""
    m = _SIZE_RE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}; use bytes or a number with KiB, MiB, GiB")
    unit = m.group(2).lower()
    return int(m.group(1)) * (1024 ** ("kmgt".index(unit) + 1) if unit else 1)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}; use requests a second, 0 for no limit") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("the rate must be 0 (no limit) or more")
    return value


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"invalid worker count {text!r}; use 1 to 64")
    return int(text)


def add_commands(subparsers: Any) -> None:
    """Add ``serve`` and ``token`` to the subparsers of the ``modelreg`` command."""
    from .server import DEFAULT_PORT

    p = subparsers.add_parser(
        "serve",
        help="serve the registry as an HTTP JSON API (/api/v1) with tokens and roles",
        description="Serve the registry as a versioned JSON API under /api/v1 for tools that are not Python: "
        "models, versions, search, register and download, stages, aliases, tags, metrics, requests, history, "
        "events. Callers send 'Authorization: Bearer <token>' (see `modelreg token create`); the schema is at "
        "/api/v1/openapi.json and a reference page at /api/v1/docs.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: only this machine)")
    p.add_argument(
        "--port", "-p", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)"
    )
    p.add_argument("--read-only", action="store_true", help="refuse every change (403), whatever the token's role")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="no tokens: every caller acts as --actor with the admin role (only on a loopback --host)",
    )
    p.add_argument("--max-body", type=parse_size, default="1MiB", help="largest JSON request body (default 1MiB)")
    p.add_argument("--max-upload", type=parse_size, default="16GiB", help="largest blob upload (default 16GiB)")
    p.add_argument(
        "--rate-limit", type=_rate, default=100.0, help="requests a second per token, on average (default 100; 0: none)"
    )
    p.add_argument("--burst", type=_rate, default=None, help="requests a token may send at once (default: 2 x rate)")
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes sharing the port (default 1); each reopens the registry, and each has its own "
        "rate limit",
    )
    p.add_argument(
        "--proxy-headers",
        action="store_true",
        help="behind a reverse proxy: take the client address and scheme from X-Forwarded-For and "
        "X-Forwarded-Proto, when sent by an address of --forwarded-allow-ips",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default="127.0.0.1,::1",
        help="comma-separated proxy addresses whose X-Forwarded-* headers are trusted (default 127.0.0.1,::1; "
        "'*': any)",
    )
    p.add_argument(
        "--root-path",
        metavar="PATH",
        default="",
        help="the path prefix a reverse proxy serves the API under and strips, e.g. /registry for "
        "https://example.com/registry/api/v1",
    )
    p.set_defaults(func=run_serve)

    t = subparsers.add_parser(
        "token",
        help="create, list or revoke API tokens for `modelreg serve`",
        description="API tokens are stored hashed in the registry itself (every backend), each with a role "
        "(reader, writer, approver, admin) and the actor the audit chain records for it. A new token is "
        "printed once.",
    )
    # the subcommands' parsers are the main command's kind: they get --registry, --json... too
    tsub = t.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="create a token and print it (once)")
    c.add_argument("--name", required=True, help="a unique name, e.g. ci-deploy")
    c.add_argument("--role", required=True, choices=["reader", "writer", "approver", "admin"])
    c.add_argument(
        "--actor",
        dest="token_actor",
        metavar="NAME",
        default=None,
        help="who the audit chain records for this token's changes (default: the token's name)",
    )
    c.add_argument("--comment", default=None, help="recorded in the audit chain")
    c.set_defaults(func=run_create)
    ls = tsub.add_parser("list", help="list the tokens (never their secrets)")
    ls.set_defaults(func=run_list)
    r = tsub.add_parser("revoke", help="delete a token; it stops working at once")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--comment", default=None, help="recorded in the audit chain")
    r.set_defaults(func=run_revoke)


def run_serve(ctx: Any, args: argparse.Namespace) -> int:
    from ..ui import require_ui_dependencies
    from .core import Settings
    from .server import serve

    require_ui_dependencies()
    settings = Settings(
        read_only=args.read_only,
        no_auth=args.no_auth,
        actor=getattr(args, "actor", None),
        max_body=args.max_body,
        max_upload=args.max_upload,
        rate=args.rate_limit,
        burst=args.burst,
    )
    try:
        serve(
            ctx.registry,
            host=args.host,
            port=args.port,
            settings=settings,
            workers=args.workers,
            proxy_headers=args.proxy_headers,
            forwarded_allow_ips=args.forwarded_allow_ips,
            root_path=args.root_path,
        )
    except KeyboardInterrupt:
        pass
    return 0


def run_create(ctx: Any, args: argparse.Namespace) -> int:
    from .tokens import create_token

    info, secret = create_token(
        ctx.registry,
        args.name,
        args.role,
        actor=args.token_actor,
        by=getattr(args, "actor", None),
        comment=args.comment,
    )
    if ctx.json:
        ctx.emit({"token": secret, "info": info})
    else:
        ctx.out(secret)
        ctx.note(
            f"created API token {info.name!r} (role {info.role}, actor {info.actor}); "
            "store it now: it is not shown again"
        )
    return 0


def run_list(ctx: Any, args: argparse.Namespace) -> int:
    from ..formatting import fmt_time
    from .tokens import list_tokens

    tokens = list_tokens(ctx.registry)
    if ctx.json:
        ctx.emit(tokens)
    elif not tokens:
        ctx.note("no API tokens; create one with `modelreg token create --name NAME --role reader`")
    else:
        ctx.table(
            ["NAME", "ROLE", "ACTOR", "CREATED", "BY", "STARTS WITH"],
            [[t.name, t.role, t.actor, fmt_time(t.created_at), t.created_by, t.hint + "..."] for t in tokens],
        )
    return 0


def run_revoke(ctx: Any, args: argparse.Namespace) -> int:
    from .tokens import revoke_token

    info = revoke_token(ctx.registry, args.name, by=getattr(args, "actor", None), comment=args.comment)
    if ctx.json:
        ctx.emit(info)
    else:
        ctx.out(f"revoked API token {info.name!r} (role {info.role}, actor {info.actor})")
    return 0
