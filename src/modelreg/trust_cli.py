"""``modelreg sign``, ``modelreg signatures`` and ``modelreg retention``.

Added to the core commands by :func:`add_commands` (from ``modelreg.cli``); nothing here imports
cryptography until a command signs or verifies.
"""

from __future__ import annotations

import argparse
from typing import Any

from .formatting import fmt_time, human_size

__all__ = ["add_commands", "cmd_retention", "cmd_sign", "cmd_signatures"]

REF_HELP = "a version: churn (latest), churn/3, churn@production or churn@champion"


def cmd_sign(ctx: Any, args: argparse.Namespace) -> None:
    info = ctx.registry.sign(args.ref, key=args.key, role=args.role, comment=args.comment)
    if ctx.json:
        ctx.emit(info)
    else:
        ctx.out(f"signed {info.ref} with key {info.key} ({info.key_name}); bundle {info.bundle}")


def cmd_signatures(ctx: Any, args: argparse.Namespace) -> int:
    reg = ctx.registry
    trusted = args.trusted or None
    infos = reg.signatures(args.ref, trusted_keys=trusted)
    if args.export:
        path = reg.export_signature(args.ref, args.export, key=args.key)
        ctx.note(f"wrote the signature bundle to {path}")
    if ctx.json:
        ctx.emit(infos)
    elif not infos:
        ctx.out(f"{args.ref} has no signatures; sign it with `modelreg sign {args.ref}`")
    else:
        rows = []
        for i in infos:
            state = "valid" if i.valid else f"INVALID: {i.problem}"
            if i.trusted is not None:
                state += ", trusted" if i.trusted else ", untrusted key"
            rows.append([i.key, i.key_name or "-", i.actor, i.role or "-", fmt_time(i.time), state])
        ctx.table(["KEY", "NAME", "SIGNED BY", "ROLE", "WHEN", "CHECK"], rows)
    return 1 if any(not i.valid for i in infos) else 0


def _add_sign(sub: Any) -> None:
    p = sub.add_parser(
        "sign",
        help="sign a version's files (an OpenSSF model-signing bundle) with an EC private key",
        description="Sign a version's files with an EC private key (P-256/384/521); the bundle is stored "
        "with the version and audited.",
        epilog="examples:\n  modelreg sign churn/3 --key ~/.keys/modelreg.pem\n"
        "  MODELREG_SIGNING_KEY_FILE=key.pem modelreg sign churn@staging --role ci",
    )
    p.set_defaults(func=cmd_sign)
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument(
        "--key",
        metavar="PEM",
        help="the private key file (default: $MODELREG_SIGNING_KEY_FILE or $MODELREG_SIGNING_KEY)",
    )
    p.add_argument("--role", metavar="ROLE", help="why you sign: author, approver, ci, release...")
    p.add_argument("--comment", "-m", metavar="TEXT", help="recorded in the audit trail")


def _add_signatures(sub: Any) -> None:
    p = sub.add_parser(
        "signatures",
        help="list and check a version's signatures; export a bundle for model_signing",
        description="List a version's signatures, each checked against its files; exit 1 if one does not match.",
        epilog="examples:\n  modelreg signatures churn/3 --trusted sha256:e709...\n"
        "  modelreg signatures churn/3 --export churn.sig",
    )
    p.set_defaults(func=cmd_signatures)
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument(
        "--trusted",
        action="append",
        metavar="KEY",
        help="a trusted key: fingerprint, PEM public key file (repeatable); marks each signature trusted or not",
    )
    p.add_argument("--export", metavar="FILE", help="write the signature bundle to FILE (for model_signing verify)")
    p.add_argument("--key", metavar="FINGERPRINT", help="with --export: the signature made with this key")


def cmd_retention(ctx: Any, args: argparse.Namespace) -> None:
    reg = ctx.registry
    plan = reg.apply_retention(dry_run=not args.apply, models=args.model or None)
    if ctx.json:
        ctx.emit(plan)
        return
    rules = reg.get_policy().retention
    if not rules:
        ctx.out("the policy has no retention rules; add some under 'retention' (see docs/governance.md, Retention)")
        return
    if not plan.actions:
        ctx.out("nothing to archive or purge")
    else:
        rows = [
            [a.action, a.ref, a.stage.value, human_size(a.size), a.reason]
            + ([a.status + (f" ({a.detail})" if a.detail else "")] if not plan.dry_run else [])
            for a in plan.actions
        ]
        headers = ["ACTION", "VERSION", "STAGE", "SIZE", "WHY"] + (["RESULT"] if not plan.dry_run else [])
        ctx.table(headers, rows)
    for trim in plan.usage_trims:
        result = "" if plan.dry_run else f" ({trim.status}{': ' + trim.detail if trim.detail else ''})"
        verb = "would trim" if plan.dry_run else "trimmed"
        ctx.out(f"{verb} the usage log of {trim.name}: {trim.records} record(s) {trim.reason}{result}")
    for kept in plan.protected if args.verbose else []:
        ctx.out(f"  kept {kept.ref}: {kept.reason}")
    verb = "would archive" if plan.dry_run else "archived"
    archived = len(plan.archives) if plan.dry_run else len([a for a in plan.done if a.action == "archive"])
    purged = len(plan.purges) if plan.dry_run else len([a for a in plan.done if a.action == "purge"])
    ctx.out(
        f"{verb} {archived}, {'would purge' if plan.dry_run else 'purged'} {purged} version(s); "
        f"{len(plan.protected)} protected; `modelreg gc` then frees about {human_size(plan.bytes_freed)}"
    )
    if plan.dry_run and (plan.actions or plan.usage_trims):
        ctx.note("dry run: nothing changed; run `modelreg retention --apply` to apply")
    if plan.skipped:
        ctx.note(f"{len(plan.skipped)} action(s) skipped: the versions changed since the plan")


def _add_retention(sub: Any) -> None:
    p = sub.add_parser(
        "retention",
        help="plan (or --apply) the policy's retention rules: archive and purge old versions, trim usage logs",
        description="Show what the stored policy's retention rules would archive, purge and trim, and why; "
        "--apply does it (audited; safe to run from cron on several machines).",
        epilog="examples:\n  modelreg retention\n  modelreg retention --apply --actor retention-bot",
    )
    p.set_defaults(func=cmd_retention)
    p.add_argument("--apply", action="store_true", help="carry out the plan (default: only show it)")
    p.add_argument("--model", action="append", metavar="NAME", help="only this model (repeatable)")
    p.add_argument("--verbose", "-v", action="store_true", help="also list protected versions and why")


def add_commands(sub: Any) -> None:
    """Add sign, signatures and retention to the ``modelreg`` subcommands."""
    _add_sign(sub)
    _add_signatures(sub)
    _add_retention(sub)
