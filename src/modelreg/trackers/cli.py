"""``modelreg import mlflow``: bring an MLflow model registry, with its history, into a registry."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_commands", "cmd_import"]


def cmd_import(ctx: Any, args: argparse.Namespace) -> int:
    from .mlflow_import import import_mlflow

    report = import_mlflow(
        ctx.registry,
        tracking_uri=args.tracking_uri,
        registry_uri=args.registry_uri,
        models=args.models,
        actor=getattr(args, "actor", None),
        verify=not args.no_verify,
        note=None if ctx.json else ctx.note,
    )
    if ctx.json:
        ctx.emit(
            {
                **report.model_dump(mode="json"),
                "ok": report.ok,
                "versions_imported": report.versions_imported,
                "versions_already_there": report.versions_already_there,
            }
        )
        return 0 if report.ok else 1
    ctx.out(
        f"imported {report.versions_imported} versions ({report.versions_already_there} already there) "
        f"of {len(report.models)} models from {report.registry_uri}"
    )
    for m in report.models:
        state = "complete" if m.complete else "INCOMPLETE"
        deleted = f"; numbers deleted in MLflow: {m.deleted_in_mlflow}" if m.deleted_in_mlflow else ""
        ctx.out(f"  {m.name}: {state}, imported {m.imported or '-'}{deleted}")
    for r in report.renamed:
        ctx.out(f"  renamed {r.kind} {r.mlflow!r} -> {r.modelreg!r} ({r.model}): {r.reason}")
    for s in report.skipped:
        where = f"{s.model}/{s.version}" if s.version is not None else s.model
        ctx.out(f"  skipped {s.what} {where}: {s.reason}")
    for text in report.notes:
        ctx.out(f"  note: {text}")
    if report.verified:
        ctx.out("verified: " + ("ok" if not report.problems else f"{len(report.problems)} problems"))
    for problem in report.problems:
        ctx.out(f"  {problem}")
    return 0 if report.ok else 1


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="import another registry with its history (MLflow)",
        description="Import every registered model and version of an MLflow registry with its version numbers, "
        "times, users, stages, aliases, tags, descriptions, run linkage and artifacts (verified). Safe to rerun: "
        "it continues where it stopped. Names modelreg does not allow are mapped and reported.",
        epilog="example:\n  modelreg import mlflow --tracking-uri sqlite:///mlflow.db --models churn",
    )
    p.add_argument("source", choices=["mlflow"], help="what to import from")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, MLflow's setting)")
    p.add_argument("--registry-uri", help="MLflow registry URI (default: the tracking URI)")
    p.add_argument("--models", nargs="+", metavar="NAME", help="import only these MLflow models")
    p.add_argument("--no-verify", action="store_true", help="skip re-hashing the imported artifacts at the end")
    p.set_defaults(func=cmd_import)
