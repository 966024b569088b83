"""Copy one registry into another: ``Registry.copy_to(dst)`` and ``modelreg copy SRC DST``.

Copies every model (and the reserved ``_registry`` document, which holds
registry-wide settings), every version with its blobs, stages, aliases, tags,
descriptions, logged metrics, ``extensions`` (with the links of signed
versions, whose signature bundles are copied like artifact blobs: a signed
version still verifies in the copy) and the complete audit history,
for example a laptop's SQLite registry into a team bucket, or back.

How the history is carried over: the source's audit events are *replayed*, in
order, through the destination's ``MetadataStore`` with their original actor,
time, action, before/after and comment. An event's hash covers exactly those
fields plus the model name, its sequence number and the previous hash, so the
destination recomputes the *same* chain: every event keeps its sequence number
and hash, and the destination's audit head equals the source's. The copy
checks this at the end, for every model.

Replay rules: ``create_model`` creates the model, ``register`` adds the
version with its original record (same number, because numbers are allocated
consecutively; a version purged in the source is added as a placeholder and
purged again when its ``purge`` event comes, so its number stays taken),
``purge`` purges, and every other event is appended through ``update``.
Finally the destination's mutable state (stages, aliases, tags, ...) is set
to the source's in one ``update`` without new events.

Idempotent and resumable: blobs are copied only when missing (streamed and
re-hashed); a model whose destination history is a prefix of the source's is
continued from where it stopped, one whose history is complete is only
brought to the source's state; a destination with a *different* history for a
model is refused. Rerunning after an interruption finishes the job.
Verified at the end: audit heads equal, versions equal field by field, and
the destination's ``verify`` (audit chains and blob hashes) is clean.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AlreadyExistsError, IntegrityError, InvalidInputError, ModelNotFound
from .hashing import sha256_copy
from .models import (
    Artifact,
    AuditEvent,
    EventDraft,
    ModelState,
    ModelVersion,
    RegisteredModel,
    VersionDraft,
    VersionState,
)

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["CopyReport", "copy_registry"]

RESERVED_DOCUMENTS = ("_registry",)


@dataclass
class CopyReport:
    """What :func:`copy_registry` did."""

    models: list[str] = field(default_factory=list)
    versions: int = 0
    events_copied: int = 0
    events_already_there: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    blobs_already_there: int = 0
    verified: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verified and not self.problems


def _require_registry(reg: Any, role: str) -> None:
    # copy works on open registries: opening a location is the facade's job (Registry.copy_to, or
    # `modelreg copy`), so this module never imports it
    if isinstance(reg, (str, os.PathLike)):
        raise InvalidInputError(
            f"copy_registry takes open registries, got the location {os.fspath(reg)!r} as {role}: "
            "use Registry(src).copy_to(dst), or copy_registry(Registry(src), Registry(dst))"
        )


def _draft(ev: AuditEvent) -> EventDraft:
    return EventDraft(
        action=ev.action,
        actor=ev.actor,
        version=ev.version,
        before=ev.before,
        after=ev.after,
        comment=ev.comment,
        time=ev.time,
    )


def _version_draft(mv: ModelVersion) -> VersionDraft:
    known = set(ModelVersion.model_fields)
    extra = {k: v for k, v in (mv.model_extra or {}).items() if k not in known and k not in VersionState.model_fields}
    return VersionDraft.model_validate(
        {
            **extra,
            "name": mv.name,
            "artifact": mv.artifact,
            "params": mv.params,
            "metrics": mv.metrics,
            "tags": mv.tags,
            "lineage": mv.lineage,
            "description": mv.description,
            "created_by": mv.created_by,
            "created_at": mv.created_at,
            "model": mv.model,
        }
    )


def _placeholder(name: str, ev: AuditEvent) -> VersionDraft:
    """Stands in for a version purged in the source, whose record no longer exists; purged again right after."""
    after = ev.after or {}
    digest = str(after.get("digest") or "sha256:" + "0" * 64)
    return VersionDraft(
        name=name,
        artifact=Artifact(kind="file", name="purged", digest=digest, size=int(after.get("size") or 0), files=[]),
        created_by=ev.actor,
        created_at=ev.time,
        description="placeholder of a version purged in the source",
    )


def _copy_blob(src: Registry, dst: Registry, digest: str, size: int, tmpdir: str) -> None:
    tmp = Path(tmpdir) / digest.replace(":", "-")
    with src.artifacts.open(digest) as f, open(tmp, "w+b", buffering=0) as out:
        got, n = sha256_copy(f, out, total=size)
    try:
        if got != digest or n != size:
            raise IntegrityError(
                f"blob {digest} is corrupted in the source registry (read {got}, {n} bytes; expected {size} bytes); "
                "nothing was copied for it: run `modelreg verify` on the source"
            )
        dst.artifacts.put_file(digest, tmp)
    finally:
        tmp.unlink(missing_ok=True)


def _bundles(state: ModelState) -> dict[str, int]:
    """The signature bundles (digest: size) the live versions of ``state`` link to."""
    from .signing import links_of

    out: dict[str, int] = {}
    for v in state.versions:
        for link in links_of(state, v):
            if link.get("bundle"):
                out[str(link["bundle"])] = int(link.get("size") or 0)
    return out


def _model_names(src: Registry) -> list[str]:
    names = [m.name for m in src.metadata.list_models()]
    for reserved in RESERVED_DOCUMENTS:
        try:
            src.metadata.get_model(reserved)
        except ModelNotFound:
            continue
        names.insert(0, reserved)
    return names


def _copy_model(
    src: Registry, dst: Registry, name: str, report: CopyReport, tmpdir: str, note: Callable[[str], None]
) -> None:
    s_meta, d_meta = src.metadata, dst.metadata
    problems, _ = src.verify_audit(name) if not name.startswith("_") else ([], 0)
    if problems:
        raise IntegrityError(
            f"the audit chain of {name!r} in the source is broken ({problems[0].detail}); "
            "run `modelreg verify` on the source before copying"
        )
    events = s_meta.list_events(name)
    model = s_meta.get_model(name)
    live = {mv.version: mv for mv in s_meta.list_versions(name)}

    # blobs first: a version is never visible in the destination without its content
    for mv in live.values():
        for entry in mv.artifact.files:
            if dst.artifacts.exists(entry.digest):
                report.blobs_already_there += 1
                continue
            _copy_blob(src, dst, entry.digest, entry.size, tmpdir)
            report.blobs_copied += 1
            report.bytes_copied += entry.size

    try:
        done = d_meta.list_events(name)
    except ModelNotFound:
        done = []
    if len(done) > len(events) or any(a.hash != b.hash for a, b in zip(done, events, strict=False)):
        raise AlreadyExistsError(
            f"model {name!r} exists in the destination with a different history; copy into an empty registry, "
            "or remove or rename that model there first"
        )
    report.events_already_there += len(done)
    todo = events[len(done) :]
    if todo:
        note(f"{name}: replaying {len(todo)} of {len(events)} events")
    batch: list[EventDraft] = []

    def flush() -> None:
        if batch:
            drafts = list(batch)
            d_meta.update(name, lambda state: (state, drafts))
            report.events_copied += len(drafts)
            batch.clear()

    for ev in todo:
        if ev.action == "create_model" and ev.seq == 1:
            d_meta.create_model(
                RegisteredModel.model_validate(
                    {
                        **{k: v for k, v in (model.model_extra or {}).items()},
                        "name": name,
                        "description": model.description,
                        "tags": model.tags,
                        "owner": model.owner,
                        "created_at": model.created_at,
                        "updated_at": model.created_at,
                    }
                ),
                _draft(ev),
            )
            report.events_copied += 1
        elif ev.action == "register" and ev.version is not None:
            flush()
            draft = _version_draft(live[ev.version]) if ev.version in live else _placeholder(name, ev)
            got = d_meta.add_version(draft, _draft(ev))
            if got.version != ev.version:
                raise IntegrityError(
                    f"{name}: the destination numbered a copied version {got.version} instead of {ev.version}; "
                    "another writer is registering into the destination, stop it and run the copy again"
                )
            report.events_copied += 1
        elif ev.action == "purge" and ev.version is not None:
            flush()
            d_meta.purge_version(name, ev.version, _draft(ev))
            report.events_copied += 1
        else:
            batch.append(_draft(ev))
    flush()

    # finally the mutable state, without new events
    target = s_meta.get_state(name)
    # signature bundles (modelreg.signing) are blobs too, linked from the state's extensions: copied
    # like artifact blobs before the state that links to them, so a signed version verifies in dst
    for digest, size in _bundles(target).items():
        if dst.artifacts.exists(digest):
            report.blobs_already_there += 1
            continue
        _copy_blob(src, dst, digest, size, tmpdir)
        report.blobs_copied += 1
        report.bytes_copied += size

    def settle(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
        if set(state.versions) != set(target.versions):
            raise IntegrityError(
                f"{name}: versions {sorted(state.versions)} in the destination do not match the source's "
                f"{sorted(target.versions)}"
            )
        return state.model_copy(
            update={
                "description": target.description,
                "tags": dict(target.tags),
                "owner": target.owner,
                "versions": dict(target.versions),
                "aliases": dict(target.aliases),
                "extensions": target.extensions,
            }
        ), []

    d_meta.update(name, settle)
    if not name.startswith("_"):
        report.models.append(name)
        report.versions += len(live)


def _verify(src: Registry, dst: Registry, names: Iterable[str], report: CopyReport, blobs: bool) -> None:
    problems = report.problems
    for name in names:
        if src.metadata.audit_head(name) != dst.metadata.audit_head(name):
            problems.append(f"{name}: the audit head differs from the source's")
        s_events = [e.model_dump() for e in src.metadata.list_events(name)]
        d_events = [e.model_dump() for e in dst.metadata.list_events(name)]
        if s_events != d_events:
            problems.append(f"{name}: the audit events differ from the source's")
        if src.metadata.get_state(name) != dst.metadata.get_state(name):
            problems.append(f"{name}: the state (stages, aliases, tags, ...) differs from the source's")
        if name.startswith("_"):
            continue
        s_versions = {mv.version: mv.model_dump(exclude={"updated_at"}) for mv in src.metadata.list_versions(name)}
        d_versions = {mv.version: mv.model_dump(exclude={"updated_at"}) for mv in dst.metadata.list_versions(name)}
        for v in sorted(set(s_versions) | set(d_versions)):
            if s_versions.get(v) != d_versions.get(v):
                problems.append(f"{name}/{v}: the copied version differs from the source")
        check = dst.verify(name, blobs=blobs)
        problems.extend(f"{p.kind}: {p.detail}" for p in check.problems)
    report.verified = True


def copy_registry(
    src: Registry,
    dst: Registry,
    *,
    models: Iterable[str] | None = None,
    verify: bool = True,
    verify_blobs: bool = True,
    note: Callable[[str], None] | None = None,
) -> CopyReport:
    """Copy models, versions, blobs, stages, aliases and audit history from ``src`` into ``dst``
    (two open registries; ``Registry(src).copy_to("s3://bucket/registry")`` opens a location).

    ``models`` limits the copy to those names. Safe to rerun: it continues where it stopped.
    Returns a :class:`CopyReport`; ``report.ok`` is True when the verification found nothing.
    """
    _require_registry(src, "src")
    _require_registry(dst, "dst")
    say = note or (lambda _msg: None)
    names = _model_names(src) if models is None else list(models)
    report = CopyReport()
    with tempfile.TemporaryDirectory(prefix="modelreg-copy-") as tmpdir:
        for name in names:
            _copy_model(src, dst, name, report, tmpdir, say)
    if verify:
        _verify(src, dst, names, report, verify_blobs)
    return report
