"""Governance subcommands of ``modelreg``: request, approve, reject, cancel, complete,
requests, policy, events and webhook.

Registered lazily through :data:`modelreg.cli.EXTENSIONS`; ``add_commands`` adds all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, render
from ..formatting import fmt_time

__all__ = ["COMMANDS", "add_commands"]

COMMANDS: list[tuple[str, str]] = [
    ("request", "ask for a stage transition that the policy gates (approvals, metrics, ...)"),
    ("approve", "approve a pending transition request"),
    ("reject", "reject a pending transition request"),
    ("cancel", "withdraw your pending transition request"),
    ("complete", "carry out an approved transition request whose gates are now met"),
    ("requests", "list transition requests (pending by default)"),
    ("policy", "show, check or set the registry's governance policy"),
    ("events", "read the durable events feed from a cursor (for deployment tools)"),
    ("webhook", "add, list or remove webhooks, and show their delivery results"),
]
"""``(command, one-line help)`` of every governance subcommand (all added by :func:`add_commands`)."""

_TARGET = "modelreg.governance.cli:add_commands"


def _when(dt: datetime | None) -> str:
    return fmt_time(dt, missing="-")


def _request_lines(req: Any) -> list[str]:
    lines = [f"request {req.id}: {req.ref} {req.from_stage.value} -> {req.to_stage.value}, {req.status}"]
    if req.approvals:
        lines.append("  approved by: " + ", ".join(a.actor for a in req.approvals))
    if req.status == "pending" and req.unmet:
        lines.append("  waiting for:")
        lines += [f"    - {render(u, 'cli')}" for u in req.unmet]
    elif req.status == "pending":
        lines.append(f"  every gate is met; carry it out with `modelreg complete {req.id}`")
    if req.status == "completed":
        lines.append(f"  {req.ref} is now in {req.to_stage.value}")
    return lines


def _show_request(ctx: Any, req: Any) -> None:
    if ctx.json:
        ctx.emit(req)
    else:
        ctx.out("\n".join(_request_lines(req)))


def cmd_request(ctx: Any, args: argparse.Namespace) -> None:
    _show_request(ctx, ctx.registry.request_transition(args.ref, args.stage, args.comment))


def cmd_approve(ctx: Any, args: argparse.Namespace) -> None:
    sign = bool(getattr(args, "sign", False) or getattr(args, "key", None))
    _show_request(ctx, ctx.registry.approve(args.id, comment=args.comment, sign=sign, key=getattr(args, "key", None)))


def cmd_reject(ctx: Any, args: argparse.Namespace) -> None:
    _show_request(ctx, ctx.registry.reject(args.id, comment=args.comment))


def cmd_cancel(ctx: Any, args: argparse.Namespace) -> None:
    _show_request(ctx, ctx.registry.cancel(args.id, comment=args.comment))


def cmd_complete(ctx: Any, args: argparse.Namespace) -> None:
    _show_request(ctx, ctx.registry.complete(args.id, comment=args.comment))


def cmd_requests(ctx: Any, args: argparse.Namespace) -> None:
    reqs = ctx.registry.list_requests(args.status, model=args.model)
    if ctx.json:
        ctx.emit(reqs)
        return
    if not reqs:
        ctx.note(f"no {'' if args.status == 'all' else args.status + ' '}transition requests")
        return
    rows = [
        [
            q.id,
            q.ref,
            f"{q.from_stage.value} -> {q.to_stage.value}",
            q.status,
            q.requester,
            ",".join(q.approvers) or "-",
            _when(q.created_at),
            (q.unmet[0] if q.unmet else "")[:70],
        ]
        for q in reqs
    ]
    ctx.table(["ID", "VERSION", "MOVE", "STATUS", "REQUESTER", "APPROVED BY", "CREATED (UTC)", "WAITING FOR"], rows)


def _read_policy_source(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise InvalidInputError(f"policy file {source!r} does not exist; pass a JSON file, or '-' for stdin")
    return path.read_text(encoding="utf-8")


def cmd_policy(ctx: Any, args: argparse.Namespace) -> int | None:
    reg = ctx.registry
    if args.action == "show":
        policy = reg.get_policy()
        if ctx.json:
            ctx.emit(policy.to_dict())
            return None
        from .policy import describe_gate

        stored = reg.governance.policy_is_stored()
        ctx.out(f"policy {policy.digest()[:19]} ({'stored in the registry' if stored else 'default, nothing stored'})")
        ctx.out("transitions:")
        for src, targets in policy.transitions.items():
            ctx.out(f"  {src.value:<13} -> {', '.join(t.value for t in targets) or '-'}")
        ctx.out(
            f"exclusive: {', '.join(s.value for s in policy.exclusive) or '-'} "
            f"(the previous holder moves to {policy.displaced_to.value})"
        )
        for group, members in sorted(policy.groups.items()):
            ctx.out(f"group {group}: {', '.join(members)}")
        for stage, gate in policy.gates.items():
            lines = describe_gate(gate)
            ctx.out(f"gate {stage.value}:" + ("" if lines else " none"))
            ctx.out("\n".join(f"  {line}" for line in lines))
        for actor, fps in sorted(policy.member_keys.items()):
            ctx.out(f"member keys {actor}: {', '.join(fps)}")
        for rule in policy.retention:
            ctx.out(f"retention {rule.describe()}")
            ctx.out(f"  keeps: {rule.describe_protection()}")
        if not policy.retention:
            ctx.out("retention: none")
        ctx.out(f"emergency rollback bypasses gates: {'yes' if policy.emergency_rollback else 'no'}")
        ctx.out(f"requests complete automatically: {'yes' if policy.auto_complete else 'no'}")
        if policy.admins:
            ctx.out(f"admins: {', '.join(policy.admins)}")
        return None
    if args.action == "set":
        if not args.args or len(args.args) != 1:
            raise InvalidInputError("usage: modelreg policy set FILE (a JSON policy; '-' reads stdin)")
        policy = reg.set_policy(_read_policy_source(args.args[0]), comment=args.comment)
        if ctx.json:
            ctx.emit(policy.to_dict())
        else:
            ctx.out(f"policy {policy.digest()[:19]} stored; every client now enforces it")
        return None
    if args.action == "check":
        if not args.args or len(args.args) != 2:
            raise InvalidInputError("usage: modelreg policy check REF STAGE")
        unmet = reg.check_transition(args.args[0], args.args[1])
        if ctx.json:
            ctx.emit({"ref": args.args[0], "stage": args.args[1], "allowed": not unmet, "unmet": unmet})
        elif unmet:
            ctx.out(f"{args.args[0]} -> {args.args[1]}: blocked by {len(unmet)} gate(s):")
            ctx.out("\n".join(f"  - {render(u, 'cli')}" for u in unmet))
        else:
            ctx.out(f"{args.args[0]} -> {args.args[1]}: allowed")
        return 1 if unmet else None
    if args.action == "history":
        events = reg.policy_history()
        if ctx.json:
            ctx.emit(events)
            return None
        if not events:
            ctx.note("the policy was never changed (the default applies)")
            return None
        ctx.table(
            ["SEQ", "TIME (UTC)", "ACTOR", "DIGEST", "COMMENT"],
            [
                [e.seq, _when(e.time), e.actor, str((e.after or {}).get("digest", ""))[:19], e.comment or ""]
                for e in events
            ],
        )
        return None
    raise InvalidInputError(f"unknown policy action {args.action!r}; use show, set, check or history")


def cmd_events(ctx: Any, args: argparse.Namespace) -> None:
    since = args.since
    cursor_file = Path(args.cursor_file) if args.cursor_file else None
    if cursor_file is not None and since is None and cursor_file.is_file():
        since = cursor_file.read_text(encoding="utf-8").strip() or None
    page = ctx.registry.events(
        since, limit=args.limit, actions=args.action or None, models=args.model or None, include_internal=args.internal
    )
    if ctx.json:
        ctx.emit({"events": page.events, "cursor": page.cursor, "has_more": page.has_more})
    else:
        if page.events:
            ctx.table(
                ["MODEL", "SEQ", "TIME (UTC)", "ACTOR", "ACTION", "VERSION", "AFTER"],
                [
                    [
                        e.model,
                        e.seq,
                        _when(e.time),
                        e.actor,
                        e.action,
                        e.version,
                        json.dumps(e.after, separators=(",", ":"))[:60] if e.after else "",
                    ]
                    for e in page.events
                ],
            )
        else:
            ctx.note("no new events")
        ctx.note(f"cursor: {page.cursor}" + (" (more events follow)" if page.has_more else ""))
    if cursor_file is not None:
        tmp = cursor_file.with_name(cursor_file.name + ".tmp")
        tmp.write_text(page.cursor + "\n", encoding="utf-8")
        tmp.replace(cursor_file)


def cmd_webhook(ctx: Any, args: argparse.Namespace) -> None:
    reg = ctx.registry
    if args.action == "add":
        if not args.url:
            raise InvalidInputError("usage: modelreg webhook add URL --secret-env VAR [--event TOPIC ...]")
        if not args.secret_env:
            raise InvalidInputError(
                "webhook add needs --secret-env VAR: the name of the environment variable holding "
                "the signing secret (the secret itself is never stored)"
            )
        hook = reg.add_webhook(
            args.url,
            secret_env=args.secret_env,
            events=args.event or None,
            models=args.model or None,
            comment=args.comment,
        )
        if ctx.json:
            ctx.emit(hook)
        else:
            ctx.out(f"webhook {hook.id}: {hook.url} ({', '.join(hook.events)}), signed with ${hook.secret_env}")
    elif args.action == "list":
        hooks = reg.list_webhooks()
        if ctx.json:
            ctx.emit(hooks)
        elif not hooks:
            ctx.note("no webhooks; add one with `modelreg webhook add URL --secret-env VAR`")
        else:
            ctx.table(
                ["ID", "URL", "EVENTS", "MODELS", "SECRET FROM"],
                [
                    [h.id, h.url, ",".join(h.events), ",".join(h.models) if h.models else "*", "$" + h.secret_env]
                    for h in hooks
                ],
            )
    elif args.action == "remove":
        if not args.url:
            raise InvalidInputError("usage: modelreg webhook remove ID")
        reg.remove_webhook(args.url, comment=args.comment)
        if ctx.json:
            ctx.emit({"removed": args.url})
        else:
            ctx.out(f"removed webhook {args.url}")
    elif args.action == "deliveries":
        results = reg.webhook_deliveries(limit=args.limit)
        if ctx.json:
            ctx.emit(results)
        elif not results:
            ctx.note("no deliveries recorded")
        else:
            ctx.table(
                ["TIME (UTC)", "WEBHOOK", "EVENT", "ACTION", "OK", "ATTEMPTS", "STATUS", "ERROR"],
                [
                    [
                        _when(r.time),
                        r.webhook,
                        f"{r.model}#{r.seq}",
                        r.action,
                        r.ok,
                        r.attempts,
                        r.status,
                        (r.error or "")[:60],
                    ]
                    for r in results
                ],
            )
    else:
        raise InvalidInputError(f"unknown webhook action {args.action!r}; use add, list, remove or deliveries")


def add_commands(sub: Any) -> None:
    """Add the governance subcommands to ``modelreg`` (see :data:`modelreg.cli.EXTENSIONS`)."""
    helps = dict(COMMANDS)

    def command(name: str, func: Any, epilog: str | None = None) -> argparse.ArgumentParser:
        text = helps[name]
        p: argparse.ArgumentParser = sub.add_parser(
            name,
            help=text,
            description=text[:1].upper() + text[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = command("request", cmd_request, epilog="example:\n  modelreg request churn/3 production -m 'beats v2 on auc'")
    p.add_argument("ref", metavar="REF", help="the version, e.g. churn/3 or churn@staging")
    p.add_argument("stage", metavar="STAGE", help="target stage")
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")

    for name, func in (
        ("approve", cmd_approve),
        ("reject", cmd_reject),
        ("cancel", cmd_cancel),
        ("complete", cmd_complete),
    ):
        p = command(name, func, epilog=f"example:\n  modelreg {name} churn:1f2e3d4c -m '...'")
        p.add_argument("id", metavar="REQUEST_ID", help="request id, e.g. churn:1f2e3d4c (see `modelreg requests`)")
        p.add_argument("--comment", "-m", metavar="TEXT", help="recorded in the audit trail")
        if name == "approve":
            p.add_argument(
                "--sign", action="store_true", help="sign the approval ($MODELREG_SIGNING_KEY_FILE or --key)"
            )
            p.add_argument("--key", metavar="PEM", help="the private key to sign the approval with (implies --sign)")

    p = command("requests", cmd_requests)
    p.add_argument(
        "--status",
        default="pending",
        choices=["pending", "completed", "rejected", "cancelled", "superseded", "all"],
        help="which requests (default: pending)",
    )
    p.add_argument("--model", metavar="NAME", help="only this model's requests")

    p = command(
        "policy",
        cmd_policy,
        epilog=(
            "actions:\n  show                 the policy in force\n  set FILE             store a JSON policy "
            "('-' reads stdin)\n  check REF STAGE      what would block a direct transition (exit 1 if blocked)\n"
            "  history              every change of the policy\n\nexample policy:\n"
            '  {"groups": {"risk": ["ana@example.com", "bo@example.com"]},\n'
            '   "gates": {"production": {"approvals": [{"count": 1, "group": "risk"}],\n'
            '                            "metrics": ["metrics.auc >= @production"],\n'
            '                            "lineage": ["dataset_digest", "code_commit"]}}}'
        ),
    )
    p.add_argument("action", choices=["show", "set", "check", "history"], help="what to do")
    p.add_argument("args", nargs="*", metavar="ARG", help="FILE for set; REF STAGE for check")
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded with `set`)")

    p = command(
        "events",
        cmd_events,
        epilog=(
            "A deployer following promotions:\n"
            "  modelreg events --cursor-file .deploy-cursor --action transition --action rollback\n"
            "prints the events since the cursor saved in the file, then saves the new cursor."
        ),
    )
    p.add_argument("--since", metavar="CURSOR", help="cursor of an earlier read ('now': only the current end)")
    p.add_argument("--cursor-file", metavar="PATH", help="read --since from PATH and write the new cursor to it")
    p.add_argument("--limit", type=int, metavar="N", help="at most N events")
    p.add_argument("--action", action="append", metavar="TOPIC", help="only these topics or actions (repeatable)")
    p.add_argument("--model", action="append", metavar="NAME", help="only these models (repeatable)")
    p.add_argument("--internal", action="store_true", help="include policy and webhook changes")

    p = command(
        "webhook",
        cmd_webhook,
        epilog=(
            "actions:\n  add URL --secret-env VAR [--event TOPIC ...] [--model NAME ...]\n  list\n  remove ID\n"
            "  deliveries [--limit N]\n\nThe registry stores the variable's name, never the secret."
        ),
    )
    p.add_argument("action", choices=["add", "list", "remove", "deliveries"], help="what to do")
    p.add_argument("url", nargs="?", metavar="URL|ID", help="URL for add, id for remove")
    p.add_argument("--secret-env", metavar="VAR", help="environment variable holding the signing secret")
    p.add_argument("--event", action="append", metavar="TOPIC", help="only these topics (repeatable; default all)")
    p.add_argument("--model", action="append", metavar="NAME", help="only these models (repeatable)")
    p.add_argument("--limit", type=int, metavar="N", help="deliveries: the last N")
    p.add_argument("--comment", "-m", metavar="TEXT", help="recorded in the audit trail")
