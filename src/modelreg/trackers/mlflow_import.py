"""Import an MLflow model registry with its history: ``reg.import_mlflow(...)`` and
``modelreg import mlflow --tracking-uri URI``.

Every registered model and version is carried over with its **original version number**, its
creation time and user, description, tags, stage and aliases, the linkage to the run that made
it (params, latest metrics, user tags, code, datasets: :mod:`modelreg.trackers.mlflow`) and its
artifacts, downloaded through MLflow's client and stored hashed, then verified.

How numbers and times are kept (the approach of :mod:`modelreg.copy`): versions are added
through the registry's ``MetadataStore`` with drafts that carry MLflow's creation time and user,
in ascending order, so the store allocates the same numbers. A number MLflow deleted (a gap
between live versions) is taken by a placeholder that is purged right away, so the next version
keeps its number and the audit chain says what happened. Each ``register`` event says where the
version came from (``after["imported_from"]``: tracking and registry URI, MLflow model, version
and source) and carries MLflow's creation time. Stages, aliases, tags and descriptions are then
set in one update whose events say ``imported from MLflow``.

Idempotent and resumable: a model is recognised by its ``create_model`` event (imported from the
same MLflow model); versions already there are left alone and the import continues after the
last one; a placeholder left by an interruption is purged. A version whose artifact cannot be
downloaded stops that model's import (later numbers would need it first) and is reported; run
the import again once the cause is fixed.

Names: MLflow allows model names modelreg does not (spaces, ``#``, several ``/``, a leading
digit...). :func:`to_modelreg_name` maps them by a reversible rule: a name valid in modelreg that
does not start with ``x--`` is kept; any other name becomes ``x--`` followed by the name with each
character other than an ASCII letter or digit written as ``_`` and the two lowercase hex digits
of each of its UTF-8 bytes (``"my model"`` → ``"x--my_20model"``). :func:`to_mlflow_name`
reverses it. Aliases that collide with a stage name (``production``...) become ``mlflow-<alias>``;
other aliases modelreg does not allow have each refused character replaced by ``-``. Every
renaming is listed in the report.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..errors import IntegrityError, InvalidInputError, ModelNotFound
from ..models import (
    Artifact,
    EventDraft,
    Lineage,
    ModelState,
    RegisteredModel,
    Stage,
    VersionDraft,
    utcnow,
)
from ..validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    check_actor,
    check_alias,
    check_name,
)
from . import merge_run
from .base import RunInfo, keep_valid, strip_credentials

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "ImportReport",
    "ImportedModel",
    "Renamed",
    "Skipped",
    "import_mlflow",
    "to_mlflow_name",
    "to_modelreg_name",
]

ENCODED_PREFIX = "x--"
PLACEHOLDER = "placeholder of a version number MLflow deleted"
STAGES = {
    "none": Stage.EXPERIMENTAL,
    "staging": Stage.STAGING,
    "production": Stage.PRODUCTION,
    "archived": Stage.ARCHIVED,
}
PROMPT_TAG = "mlflow.prompt.is_prompt"
_ENCODED_BYTE = re.compile(r"_([0-9a-f]{2})")


# -- names ------------------------------------------------------------------------------------------
def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except InvalidInputError:
        return False
    return True


def to_modelreg_name(name: str) -> str | None:
    """The modelreg name of the MLflow model ``name`` (None: too long once encoded). See the module
    docstring for the rule; :func:`to_mlflow_name` reverses it."""
    if _valid_name(name) and not name.startswith(ENCODED_PREFIX):
        return name
    body = "".join(c if c.isascii() and c.isalnum() else "".join(f"_{b:02x}" for b in c.encode()) for c in name)
    encoded = ENCODED_PREFIX + body
    return encoded if len(encoded) <= MAX_NAME_LENGTH and _valid_name(encoded) else None


def to_mlflow_name(name: str) -> str:
    """The MLflow name a modelreg name was imported from (the inverse of :func:`to_modelreg_name`)."""
    if not name.startswith(ENCODED_PREFIX):
        return name
    body = name[len(ENCODED_PREFIX) :]
    out = bytearray()
    i = 0
    while i < len(body):
        m = _ENCODED_BYTE.match(body, i)
        if m:
            out.append(int(m.group(1), 16))
            i = m.end()
        else:
            out += body[i].encode()
            i += 1
    return out.decode()


def map_alias(alias: str) -> tuple[str | None, str | None]:
    """``(modelreg alias, why it was renamed)``; ``(None, why)`` when no valid alias comes out."""
    if alias.lower() in {s.value for s in Stage}:
        return f"mlflow-{alias}", f"{alias!r} is a modelreg stage name (name@{alias.lower()} addresses the stage)"
    try:
        return check_alias(alias), None
    except InvalidInputError:
        pass
    fixed = re.sub(r"[^A-Za-z0-9._-]", "-", alias)
    fixed = re.sub(r"\.{2,}", ".", fixed)
    if not fixed[:1].isalpha() or not fixed[:1].isascii():
        fixed = "a-" + fixed
    fixed = fixed.rstrip(".-")[:MAX_NAME_LENGTH]
    try:
        return check_alias(fixed), f"{alias!r} has characters modelreg aliases do not allow"
    except InvalidInputError:
        return None, f"{alias!r} cannot be made a valid modelreg alias"


# -- report -----------------------------------------------------------------------------------------
class Renamed(BaseModel):
    """A model or alias that was renamed to fit modelreg's rules."""

    kind: str
    """``"model"`` or ``"alias"``."""
    model: str
    """The MLflow model (for an alias: the model it belongs to)."""
    mlflow: str
    modelreg: str
    reason: str


class Skipped(BaseModel):
    """Something that was not imported, and why."""

    model: str
    version: int | None = None
    what: str = "version"
    reason: str


class ImportedModel(BaseModel):
    """One MLflow registered model and what the import did with it."""

    mlflow_name: str
    name: str
    imported: list[int] = Field(default_factory=list)
    """Versions imported by this run."""
    already_there: list[int] = Field(default_factory=list)
    """Versions an earlier run imported."""
    deleted_in_mlflow: list[int] = Field(default_factory=list)
    """Numbers MLflow deleted, kept taken by a purged placeholder."""
    stages: dict[str, list[int]] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    complete: bool = False
    """Every live MLflow version is in the registry."""


class ImportReport(BaseModel):
    """What :func:`import_mlflow` did: models and versions imported, renamed, skipped; verification."""

    tracking_uri: str
    registry_uri: str
    models: list[ImportedModel] = Field(default_factory=list)
    renamed: list[Renamed] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    verified: bool = False
    problems: list[str] = Field(default_factory=list)

    @property
    def versions_imported(self) -> int:
        return sum(len(m.imported) for m in self.models)

    @property
    def versions_already_there(self) -> int:
        return sum(len(m.already_there) for m in self.models)

    @property
    def ok(self) -> bool:
        """Every model complete, and the verification found nothing."""
        return self.verified and not self.problems and all(m.complete for m in self.models)


# -- MLflow access ----------------------------------------------------------------------------------
def _ms(timestamp: int | None) -> datetime:
    if not timestamp:
        return utcnow()
    return datetime.fromtimestamp(timestamp / 1000, tz=timezone.utc)


def _paged(fetch: Callable[[str | None], Any]) -> list[Any]:
    out: list[Any] = []
    token: str | None = None
    while True:
        page = fetch(token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _quote(name: str) -> str:
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def download_version(client: Any, name: str, version: str, dest: Path, tracking_uri: str, registry_uri: str) -> Path:
    """Download one MLflow model version's artifacts into ``dest`` through MLflow's client; the
    local path of the file or folder."""
    from mlflow.artifacts import download_artifacts

    uri = client.get_model_version_download_uri(name, version)
    local = download_artifacts(
        artifact_uri=uri, dst_path=str(dest), tracking_uri=tracking_uri, registry_uri=registry_uri
    )
    return Path(local)


class _NumberingError(IntegrityError):
    """The store gave an imported version another number: another writer is at work."""


# -- the import -------------------------------------------------------------------------------------
class _Importer:
    def __init__(
        self,
        reg: Registry,
        client: Any,
        tracking_uri: str,
        registry_uri: str,
        who: str,
        report: ImportReport,
        note: Callable[[str], None],
        tmpdir: Path,
    ) -> None:
        self.reg, self.client, self.who, self.report, self.note = reg, client, who, report, note
        self.tracking_uri, self.registry_uri = tracking_uri, registry_uri
        self.tmpdir = tmpdir
        self.origin = {
            "tracker": "mlflow",
            "tracking_uri": strip_credentials(tracking_uri),
            "registry_uri": strip_credentials(registry_uri),
        }
        self.exclusive = reg.rules.exclusive

    # -- helpers
    def _skip(self, model: str, reason: str, version: int | None = None, what: str = "version") -> None:
        self.report.skipped.append(Skipped(model=model, version=version, what=what, reason=reason))

    def _head_time(self, name: str) -> datetime | None:
        seq, _ = self.reg.metadata.audit_head(name)
        events = self.reg.metadata.list_events(name, after=max(seq - 1, 0))
        return events[-1].time if events else None

    def _run(self, run_id: str | None) -> RunInfo | None:
        if not run_id:
            return None
        from .mlflow import describe_mlflow_run

        try:
            return describe_mlflow_run(self.client, run_id, self.tracking_uri)
        except Exception as exc:  # a deleted run or experiment: the version is imported without its run's data
            self.report.notes.append(f"run {run_id}: not readable ({type(exc).__name__}: {exc}); run id kept only")
            return None

    # -- one model
    def model(self, rm: Any) -> None:
        meta = self.reg.metadata
        name = to_modelreg_name(rm.name)
        if name is None:
            self._skip(rm.name, "its encoded name is longer than modelreg's 128 characters", what="model")
            return
        if name != rm.name:
            self.report.renamed.append(
                Renamed(kind="model", model=rm.name, mlflow=rm.name, modelreg=name, reason="not a valid modelreg name")
            )
        origin = {**self.origin, "model": rm.name}
        try:
            first = meta.list_events(name, actions=("create_model",))[:1]
        except ModelNotFound:
            first = []
            created_at = _ms(rm.creation_timestamp)
            meta.create_model(
                RegisteredModel(name=name, owner=self.who, created_at=created_at, updated_at=created_at),
                EventDraft(
                    action="create_model",
                    actor=self.who,
                    time=created_at,
                    after={"owner": self.who, "imported_from": origin},
                    comment=f"imported from MLflow registered model {rm.name!r}",
                ),
            )
        else:
            source = ((first[0].after or {}).get("imported_from") or {}) if first else {}
            if source.get("tracker") != "mlflow" or source.get("model") != rm.name:
                self._skip(
                    rm.name,
                    f"the registry already has a model {name!r} that was not imported from this MLflow model; "
                    "import into another registry, or rename that model",
                    what="model",
                )
                return
        result = ImportedModel(mlflow_name=rm.name, name=name)
        self.report.models.append(result)
        versions = sorted(
            _paged(
                lambda token: self.client.search_model_versions(
                    filter_string=f"name = {_quote(rm.name)}", max_results=1000, page_token=token
                )
            ),
            key=lambda mv: int(mv.version),
        )
        self._purge_placeholders(name)
        state = meta.get_state(name)
        last = state.last_version
        live = set(state.versions)
        complete = True
        for mv in versions:
            number = int(mv.version)
            if number <= last:
                if number in live:
                    result.already_there.append(number)
                else:
                    self._skip(rm.name, "purged in this registry after an earlier import", number)
                continue
            status = str(getattr(mv, "status", "READY") or "READY")
            if status != "READY":
                self._skip(rm.name, f"MLflow's status is {status}; run the import again once it is READY", number)
                complete = False
                break
            for gap in range(last + 1, number):
                self._placeholder(name, gap)
                result.deleted_in_mlflow.append(gap)
            try:
                self._version(name, rm.name, mv, origin)
            except _NumberingError:
                raise
            except Exception as exc:  # a download or store failure (MLflow's errors are plain Exceptions)
                self._skip(
                    rm.name,
                    f"not imported ({type(exc).__name__}: {exc}); later versions wait for it: run the import again",
                    number,
                )
                complete = False
                break
            result.imported.append(number)
            last = number
        self._settle(name, rm, versions, result)
        result.complete = complete

    def _purge_placeholders(self, name: str) -> None:
        """Purge the placeholders an interrupted run left live (added, not yet purged)."""
        for mv in self.reg.metadata.list_versions(name):
            if mv.lineage.extra.get("mlflow_placeholder"):
                self._purge(name, mv.version, mv.digest)

    def _purge(self, name: str, number: int, digest: str) -> None:
        self.reg.metadata.purge_version(
            name,
            number,
            EventDraft(
                action="purge",
                actor=self.who,
                version=number,
                time=self._head_time(name) or utcnow(),
                before={"digest": digest, "stage": Stage.EXPERIMENTAL.value, "aliases": []},
                comment=f"version {number} was deleted in MLflow: its number stays taken",
            ),
        )

    def _placeholder(self, name: str, number: int) -> None:
        when = self._head_time(name) or utcnow()
        digest = "sha256:" + "0" * 64
        draft = VersionDraft(
            name=name,
            artifact=Artifact(kind="file", name="deleted-in-mlflow", digest=digest, size=0, files=[]),
            created_by=self.who,
            created_at=when,
            description=PLACEHOLDER,
            lineage=Lineage(extra={"mlflow_placeholder": True}),
        )
        got = self.reg.metadata.add_version(
            draft,
            EventDraft(
                action="register",
                actor=self.who,
                time=when,
                after={"digest": digest, "size": 0, "files": 0, "stage": Stage.EXPERIMENTAL.value},
                comment=f"placeholder: MLflow deleted version {number}",
            ),
        )
        self._check_number(name, got.version, number)
        self._purge(name, number, digest)

    def _check_number(self, name: str, got: int, want: int) -> None:
        if got != want:
            raise _NumberingError(
                f"{name}: the registry numbered an imported version {got} instead of {want}; another writer is "
                "registering into this model: stop it and run the import again"
            )

    def _version(self, name: str, mlflow_name: str, mv: Any, origin: dict[str, Any]) -> None:
        from ..transfer import store_artifact
        from ..validation import check_text

        number = int(mv.version)
        info = self._run(mv.run_id)
        version_tags, dropped = keep_valid("tags", dict(mv.tags or {}))
        for key in dropped:
            self._skip(mlflow_name, f"version {key} is not a valid modelreg tag key", number, what="tag")
        extra: dict[str, Any] = {
            **self.origin,
            "mlflow_model": mlflow_name,
            "mlflow_version": number,
        }
        if mv.source:
            extra["mlflow_source"] = mv.source
        if getattr(mv, "model_id", None):
            extra["model_id"] = mv.model_id
        if info is not None:
            params, metrics, tags, lineage = merge_run(
                info, params=None, metrics=None, tags=version_tags, lineage={"extra": extra}
            )
        else:
            params, metrics, tags = {}, {}, version_tags
            lineage = {"extra": extra}
            if mv.run_id:
                lineage["run_id"] = mv.run_id
        if getattr(mv, "run_link", None) and not lineage.get("run_url"):
            lineage["run_url"] = mv.run_link
        checked_lineage = self.reg._lineage(lineage, None, ".")
        description = (mv.description or "")[:MAX_DESCRIPTION_LENGTH]
        check_text(description, "description", MAX_DESCRIPTION_LENGTH)
        user = mv.user_id or (info.user if info is not None else None) or self.who
        try:
            created_by = check_actor(user)
        except InvalidInputError:
            created_by = self.who
        created_at = _ms(mv.creation_timestamp)
        dest = self.tmpdir / f"{name.replace('/', '--')}-{number}"
        local = download_version(self.client, mlflow_name, mv.version, dest, self.tracking_uri, self.registry_uri)
        fmt = "mlflow" if local.is_dir() and (local / "MLmodel").is_file() else None
        artifact = store_artifact(self.reg.artifacts, local, format=fmt)
        draft = VersionDraft(
            name=name,
            artifact=artifact,
            params=params,
            metrics=metrics,
            tags=tags,
            lineage=checked_lineage,
            description=description,
            created_by=created_by,
            created_at=created_at,
        )
        head = self._head_time(name)
        when = created_at if head is None or created_at >= head else head
        got = self.reg.metadata.add_version(
            draft,
            EventDraft(
                action="register",
                actor=created_by,
                time=when,
                after={
                    "digest": artifact.digest,
                    "size": artifact.size,
                    "files": len(artifact.files),
                    "stage": Stage.EXPERIMENTAL.value,
                    "imported_from": {**origin, "version": number, "source": mv.source},
                },
                comment=f"imported from MLflow: {mlflow_name!r} version {number}",
            ),
        )
        self._check_number(name, got.version, number)
        self.note(f"{name}/{number}: imported ({artifact.size} bytes)")

    def _settle(self, name: str, rm: Any, versions: list[Any], result: ImportedModel) -> None:
        """Stages, aliases, version tags and descriptions, model description and tags as in MLflow."""
        who = self.who
        wanted_stage: dict[int, Stage] = {}
        for mv in versions:
            stage = STAGES.get(str(mv.current_stage or "None").lower())
            if stage is None:
                self._skip(rm.name, f"unknown MLflow stage {mv.current_stage!r}; left experimental", int(mv.version))
                stage = Stage.EXPERIMENTAL
            wanted_stage[int(mv.version)] = stage
        for stage in self.exclusive:
            holders = sorted(v for v, s in wanted_stage.items() if s == stage)
            for v in holders[:-1]:
                wanted_stage[v] = Stage.ARCHIVED
                self.report.notes.append(
                    f"{rm.name} version {v}: in {stage.value} in MLflow alongside version {holders[-1]}; "
                    f"{stage.value} holds one version in modelreg, so it was imported as archived"
                )
        aliases: dict[str, int] = {}
        for alias, target in sorted(dict(getattr(rm, "aliases", None) or {}).items()):
            mapped, why = map_alias(alias)
            if mapped is None or mapped in aliases:
                self._skip(rm.name, why or f"alias {alias!r} maps to {mapped!r}, already taken", int(target), "alias")
                continue
            if why:
                self.report.renamed.append(
                    Renamed(kind="alias", model=rm.name, mlflow=alias, modelreg=mapped, reason=why)
                )
            aliases[mapped] = int(target)
        model_tags, dropped = keep_valid("tags", {k: v for k, v in dict(rm.tags or {}).items() if k != PROMPT_TAG})
        for key in dropped:
            self._skip(rm.name, f"model {key} is not a valid modelreg tag key", what="tag")
        description = (rm.description or "")[:MAX_DESCRIPTION_LENGTH]
        by_number = {int(mv.version): mv for mv in versions}

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            draft = state.model_copy(deep=True)
            events: list[EventDraft] = []
            now = utcnow()
            note = "imported from MLflow"
            for v, stage in sorted(wanted_stage.items()):
                if v not in draft.versions:
                    continue
                vs = draft.versions[v]
                update: dict[str, Any] = {}
                if Stage(vs.stage) != stage:
                    update["stage"] = stage
                    events.append(
                        EventDraft(
                            action="transition",
                            actor=who,
                            version=v,
                            before={"stage": Stage(vs.stage).value},
                            after={"stage": stage.value},
                            comment=f"{note}: stage {by_number[v].current_stage}",
                        )
                    )
                tags, _ = keep_valid("tags", dict(by_number[v].tags or {}))
                merged = {**vs.tags, **tags}
                if merged != vs.tags:
                    changed = sorted(k for k in merged if vs.tags.get(k) != merged[k])
                    update["tags"] = merged
                    events.append(
                        EventDraft(
                            action="set_tags",
                            actor=who,
                            version=v,
                            before={k: vs.tags.get(k) for k in changed},
                            after={k: merged[k] for k in changed},
                            comment=note,
                        )
                    )
                text = (by_number[v].description or "")[:MAX_DESCRIPTION_LENGTH]
                if text != vs.description:
                    update["description"] = text
                    events.append(
                        EventDraft(
                            action="set_description",
                            actor=who,
                            version=v,
                            before={"description": vs.description},
                            after={"description": text},
                            comment=note,
                        )
                    )
                if update:
                    draft.versions[v] = vs.model_copy(update={**update, "updated_at": now})
            for alias, v in sorted(aliases.items()):
                if v not in draft.versions:
                    continue
                old = draft.aliases.get(alias)
                if old != v:
                    draft.aliases[alias] = v
                    events.append(
                        EventDraft(
                            action="set_alias",
                            actor=who,
                            version=v,
                            before={"alias": alias, "version": old},
                            after={"alias": alias, "version": v},
                            comment=note,
                        )
                    )
            upd: dict[str, Any] = {}
            if description != draft.description:
                upd["description"] = description
            merged_tags = {**draft.tags, **model_tags}
            if merged_tags != draft.tags:
                upd["tags"] = merged_tags
            if upd:
                events.append(
                    EventDraft(
                        action="update_model",
                        actor=who,
                        before={k: getattr(draft, k) for k in upd},
                        after=upd,
                        comment=note,
                    )
                )
                draft = draft.model_copy(update=upd)
            return draft, events

        state = self.reg.metadata.update(name, fn)
        stages: dict[str, list[int]] = {}
        for v in sorted(state.versions):
            stages.setdefault(Stage(state.versions[v].stage).value, []).append(v)
        result.stages = stages
        result.aliases = dict(sorted(state.aliases.items()))


def import_mlflow(
    reg: Registry,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    models: Iterable[str] | None = None,
    actor: str | None = None,
    verify: bool = True,
    note: Callable[[str], None] | None = None,
) -> ImportReport:
    """Import the MLflow registry at ``registry_uri`` (default: the tracking URI; both default to
    MLflow's own settings) into ``reg``: every model (or those named in ``models``, by their
    MLflow names) and version with its number, times, users, stages, aliases, tags, descriptions,
    run linkage and artifacts. Safe to rerun: it continues where it stopped.

    Returns an :class:`ImportReport`; ``report.ok`` when every model is complete and the
    verification (audit chains and blob hashes of the imported models) found nothing.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking = tracking_uri or mlflow.get_tracking_uri()
    registry = registry_uri or tracking_uri or mlflow.get_registry_uri()
    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    who = reg.who(actor)
    report = ImportReport(tracking_uri=strip_credentials(tracking), registry_uri=strip_credentials(registry))
    say = note or (lambda _msg: None)
    found = _paged(lambda token: client.search_registered_models(max_results=1000, page_token=token))
    found = [rm for rm in found if dict(rm.tags or {}).get(PROMPT_TAG, "").lower() != "true"]
    if models is not None:
        wanted = list(models)
        by_name = {rm.name: rm for rm in found}
        for missing in [n for n in wanted if n not in by_name]:
            report.skipped.append(Skipped(model=missing, what="model", reason="no such registered model in MLflow"))
        found = [by_name[n] for n in wanted if n in by_name]
    with tempfile.TemporaryDirectory(prefix="modelreg-import-") as tmp:
        importer = _Importer(reg, client, tracking, registry, who, report, say, Path(tmp))
        for rm in sorted(found, key=lambda r: r.name):
            say(f"{rm.name}: importing")
            importer.model(rm)
    if verify:
        for model in report.models:
            check = reg.verify(model.name)
            report.problems.extend(f"{p.kind}: {p.detail}" for p in check.problems)
        report.verified = True
    return report
