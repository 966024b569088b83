"""The ``Registry`` facade: validation, workflow rules and audit events.

Stores persist; the Registry decides. Every mutation goes through one store
call that commits the change together with its audit event(s).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExistsError,
    BlobNotFound,
    IntegrityError,
    InvalidInputError,
    InvalidTransitionError,
    ModelregError,
    Remedy,
    VersionNotFound,
)
from .formatting import flatten
from .governance.api import GovernanceMixin
from .hashing import ProgressFn, check_digest, sha256_copy, sha256_stream
from .html import EventList, ModelList, VersionList
from .models import (
    GENESIS_HASH,
    Artifact,
    AuditCheck,
    AuditEvent,
    Comparison,
    EventDraft,
    FileEntry,
    GcReport,
    Lineage,
    LoadedFrom,
    MetricPoint,
    ModelInfo,
    ModelState,
    ModelVersion,
    Problem,
    RegisteredModel,
    Stage,
    UsageRecord,
    VerifyReport,
    VersionDraft,
    utcnow,
)
from .query import parse_order_by, parse_query
from .refs import Ref, parse_ref
from .stages import StageRules
from .stores.base import ArtifactStore, MetadataStore
from .transfer import manifest_digest as _manifest_digest  # re-exported: verify() and older callers use it
from .transfer import store_artifact
from .validation import (
    MAX_COMMENT_LENGTH,
    MAX_DEPTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_INT,
    MAX_TEXT_LENGTH,
    MIN_INT,
    check_actor,
    check_alias,
    check_json,
    check_label,
    check_metrics,
    check_name,
    check_params,
    check_relpath,
    check_tags,
    check_text,
    check_version_number,
    parse_stage,
)

if TYPE_CHECKING:
    from .copy import CopyReport
    from .governance.engine import Governance
    from .snapshots import SnapshotCache
    from .trackers.mlflow_import import ImportReport

__all__ = ["Registry"]


def default_actor() -> str:
    """The actor from the resolver chain: ``$MODELREG_ACTOR``, else git's ``user.email``, else the
    operating-system user (see :mod:`modelreg.governance.identity`)."""
    from .governance.identity import resolve_actor

    return resolve_actor()


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"a": a.get(k), "b": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _plain(value: Any, depth: int = MAX_DEPTH + 1) -> Any:
    """Records inside a lineage mapping (CodeVersion, Dataset...) as plain data, for check_json
    (which refuses anything deeper than MAX_DEPTH: below that, values are left as they are)."""
    from pydantic import BaseModel

    if depth <= 0:
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _plain(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth - 1) for v in value]
    return value


def _check_lineage_labels(value: Any, path: str) -> None:
    """Every string of a lineage record outside ``extra`` (run id, URLs, commit, dataset URIs,
    package versions...) is a one-line label of at most MAX_TEXT_LENGTH characters."""
    if isinstance(value, str):
        check_label(value, path, MAX_TEXT_LENGTH)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str):
                check_label(k, f"a key of {path}", MAX_TEXT_LENGTH)
            _check_lineage_labels(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_lineage_labels(v, f"{path}[{i}]")


MODEL_FILE = "modelreg-model.json"
"""The metadata file of a saved model object (``modelreg.flavors.MODEL_FILE``)."""


def _model_info(src: Path, given: ModelInfo | None) -> ModelInfo | None:
    """What a registered folder holds as a model object: ``given``, or read from the folder's
    ``modelreg-model.json`` (checked: its path stays inside the folder)."""
    if given is not None and not isinstance(given, ModelInfo):
        raise InvalidInputError(f"model must be a modelreg.ModelInfo, got {type(given).__name__}")
    if not src.is_dir() or not (src / MODEL_FILE).is_file():
        return given
    from . import flavors  # only for a folder that holds a model object

    found: ModelInfo = flavors.read_info(src)
    if given is not None and given != found:
        raise InvalidInputError(
            f"model= differs from {str(src / MODEL_FILE)!r}; pass neither (the file is read) or the same"
        )
    return found


_LOADED: dict[int, tuple[Any, LoadedFrom]] = {}
_STRONG_LOADED: list[int] = []
MAX_STRONG_LOADED = 64
"""Loaded objects that take no weak reference (a dict of arrays) are kept in ``_LOADED`` by a
strong one: the last ``MAX_STRONG_LOADED`` of them."""


def _remember_loaded(obj: Any, origin: LoadedFrom) -> None:
    key = id(obj)
    try:
        ref: Any = weakref.ref(obj, lambda _r: _LOADED.pop(key, None))
    except TypeError:
        _LOADED[key] = (obj, origin)
        _STRONG_LOADED.append(key)
        while len(_STRONG_LOADED) > MAX_STRONG_LOADED:
            _LOADED.pop(_STRONG_LOADED.pop(0), None)
        return
    _LOADED[key] = (ref, origin)


def loaded_from(obj: Any) -> LoadedFrom | None:
    """The version a model object was loaded from by :meth:`Registry.load_model` (ref, digest,
    local path), or None: stamp it on prediction logs."""
    entry = _LOADED.get(id(obj))
    if entry is None:
        return None
    held, origin = entry
    target = held() if isinstance(held, weakref.ref) else held
    return origin if target is obj else None


_SAVE_MODEL_REGISTER_KWARGS = frozenset(
    {"params", "metrics", "tags", "lineage", "description", "actor", "capture", "progress", "sign", "run", "link_back"}
)


class Registry(GovernanceMixin):
    """A model registry: an embedded folder, a bucket, or explicit stores.

    >>> reg = Registry("./models")
    >>> mv = reg.register("churn", "model.onnx", metrics={"auc": 0.91})
    >>> reg.transition("churn", mv.version, "production", actor="ana")
    ModelVersion('churn', version=..., stage='production', digest='sha256:...', size=...)
    """

    def __init__(
        self,
        uri: str | os.PathLike[str] | None = None,
        *,
        metadata: str | MetadataStore | None = None,
        artifacts: str | ArtifactStore | None = None,
        storage_options: dict[str, Any] | None = None,
        actor: str | None = None,
        rules: StageRules | None = None,
        cache: Any = None,
        record_use: bool = False,
        signing_key: Any = None,
        trusted_keys: Iterable[str | os.PathLike[str]] | None = None,
        **store_kwargs: Any,
    ) -> None:
        from .cache import resolve_cache
        from .uri import open_stores

        self.metadata, self.artifacts = open_stores(
            uri, metadata=metadata, artifacts=artifacts, storage_options=storage_options, **store_kwargs
        )
        # downloads from remote stores go through the local blob cache (``cache=False`` turns it off;
        # a folder or a modelreg.cache.BlobCache picks another place): see modelreg.cache
        self.cache = resolve_cache(cache, self.artifacts)
        self.uri = os.fspath(uri) if uri is not None else None
        self._actor = check_actor(actor) if actor is not None else None
        self._rules_arg = rules
        self._governance: Governance | None = None  # the engine, made on first use: reads never need it
        # fetch/load_model append a usage record when asked, or always with record_use=True
        self.record_use = bool(record_use)
        self._usage_warned = False
        # signing (modelreg.signing): a PEM private key path/text or a SigningKey, loaded when first
        # used, else $MODELREG_SIGNING_KEY / $MODELREG_SIGNING_KEY_FILE; trusted keys for
        # require_signature: fingerprints, PEM public keys or paths, else $MODELREG_TRUSTED_KEYS
        self._signing_key_arg = signing_key
        self._signing_key: Any = None
        self.trusted_keys = list(trusted_keys) if trusted_keys is not None else None

    @property
    def governance(self) -> Governance:
        """The governance engine (:class:`modelreg.governance.engine.Governance`) that makes every
        workflow decision of this registry: what extensions (the HTTP API, retention, signing)
        call to change state under the policy."""
        return self._gov

    @property
    def _gov(self) -> Governance:
        """The governance engine (modelreg.governance.engine.Governance): every workflow decision."""
        if self._governance is None:
            from .governance.engine import Governance

            self._governance = Governance(self, self._rules_arg)
        return self._governance

    def __repr__(self) -> str:
        return f"Registry(metadata={self.metadata.url!r}, artifacts={self.artifacts.url!r})"

    @property
    def rules(self) -> StageRules:
        """The transition table in force: the transition part of :meth:`get_policy`."""
        return self._gov.policy().stage_rules()

    @rules.setter
    def rules(self, rules: StageRules) -> None:
        from .governance.policy import Policy

        self._gov.local_policy = Policy.from_rules(rules)

    def close(self) -> None:
        if self._governance is not None:
            self._governance.close()
        self.metadata.close()
        self.artifacts.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------
    def who(self, actor: str | None = None) -> str:
        """The actor a change is recorded under: ``actor`` (checked), else this client's
        (``Registry(actor=...)``, else ``$MODELREG_ACTOR``, else the login name)."""
        if actor is not None:
            return check_actor(actor)
        return self._actor or default_actor()

    def _ref(
        self, ref: str | Ref, version: int | str | None = None, stage: Any = None, alias: str | None = None
    ) -> Ref:
        r = ref if isinstance(ref, Ref) else parse_ref(ref)
        given = sum(x is not None for x in (version, stage, alias))
        if given > 1 or (given and (r.version is not None or r.stage is not None or r.alias is not None)):
            raise InvalidInputError(f"{ref!r}: give at most one of a version, a stage or an alias")
        if version is not None:
            return Ref(r.name, version=check_version_number(version))
        if stage is not None:
            return Ref(r.name, stage=parse_stage(stage))
        if alias is not None:
            return Ref(r.name, alias=check_alias(alias))
        return r

    def _resolve(self, ref: Ref) -> int:
        """The version number a reference points at."""
        if ref.version is not None:
            return ref.version
        found = self.metadata.resolve(ref.name, stage=ref.stage, alias=ref.alias)
        if found is not None:
            return found
        if ref.stage is not None:
            raise VersionNotFound(
                f"no version of {ref.name!r} is in {ref.stage.value}; "
                f"promote one with `modelreg transition {ref.name} <version> {ref.stage.value}`"
            )
        if ref.alias is not None:
            from .suggest import did_you_mean

            aliases = sorted(self.metadata.get_state_view(ref.name).aliases)
            known = ", ".join(aliases) or "none"
            hint = did_you_mean(ref.alias, [s.value for s in Stage] + aliases, lambda c: repr(f"{ref.name}@{c}"))
            raise VersionNotFound(f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {known}){hint}")
        raise VersionNotFound(f"model {ref.name!r} has no versions; register one first")

    # -- register ------------------------------------------------------------------
    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        description: str | None = None,
        actor: str | None = None,
        capture: str | None = "auto",
        format: str | None = None,
        progress: ProgressFn | None = None,
        follow_symlinks: bool = False,
        model: ModelInfo | None = None,
        sign: bool = False,
        run: Any = None,
        link_back: bool = False,
    ) -> ModelVersion:
        """Store a file or folder as the next version of ``name``.

        Every input is validated before anything is written. Each file is
        hashed once (sha256) and uploaded only if that content is not stored
        yet; the version becomes visible in one atomic metadata commit.

        ``capture="auto"`` fills ``lineage.code`` (git commit, remote, branch,
        dirty flag of the work tree containing ``path``, or the current directory)
        and ``lineage.environment`` when they are not given; ``capture=None``
        records only what you pass.

        A ``path`` that is a symlink is stored with its target's content and the
        target is recorded (``artifact.symlink_target``). In a folder, symlinks
        that resolve inside the folder are stored as the content they point to;
        a symlink leaving the folder raises InvalidInputError unless
        ``follow_symlinks=True``. Dangling links, symlink loops, FIFOs, sockets
        and devices are always refused. A file that changes while it is read or
        uploaded raises ArtifactChangedError and nothing is committed.

        A folder written by :func:`modelreg.flavors.save` (it holds ``modelreg-model.json``)
        is registered as a model object, as :meth:`save_model` does: ``model`` and ``format``
        are read from that file (``model`` may also be given).

        ``sign=True`` signs the new version with the registry's signing key (:meth:`sign`).

        ``run`` links the version to an experiment tracker's run (an MLflow ``Run``/``ActiveRun``
        or run id, a W&B run): its params, latest metrics, user tags, code, datasets and ids fill
        the version (explicit arguments win); ``link_back=True`` tags the run with the version's
        ref. See :mod:`modelreg.trackers`.
        """
        return self._register(
            name,
            path,
            params=params,
            metrics=metrics,
            tags=tags,
            lineage=lineage,
            description=description,
            actor=actor,
            capture=capture,
            format=format,
            progress=progress,
            follow_symlinks=follow_symlinks,
            model=model,
            sign=sign,
            run=run,
            link_back=link_back,
        )

    def _register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        description: str | None = None,
        actor: str | None = None,
        capture: str | None = "auto",
        format: str | None = None,
        progress: ProgressFn | None = None,
        follow_symlinks: bool = False,
        model: ModelInfo | None = None,
        capture_from: Path | None = None,
        sign: bool = False,
        run: Any = None,
        link_back: bool = False,
    ) -> ModelVersion:
        check_name(name)
        if sign:
            self._require_signing_key()  # before anything is stored
        tracked = None
        if run is not None:  # an experiment tracker's run: modelreg.trackers fills what was not given
            from .trackers import describe_run, merge_run

            tracked = describe_run(run)
            params, metrics, tags, lineage = merge_run(
                tracked[1], params=params, metrics=metrics, tags=tags, lineage=lineage
            )
        elif link_back:
            raise InvalidInputError("link_back=True tags the run a version came from: pass run=... as well")
        params_ = check_params(params)
        metrics_ = check_metrics(metrics)
        tags_ = check_tags(tags)
        description_ = check_text(description, "description", MAX_DESCRIPTION_LENGTH)
        who = self.who(actor)
        lineage_ = self._lineage(lineage, capture, path if capture_from is None else capture_from)
        src = Path(os.fspath(path)).expanduser()
        model = _model_info(src, model)
        if format is None and model is not None:
            format = model.flavor
        if format is not None and (not isinstance(format, str) or len(format) > 100):
            raise InvalidInputError("format must be a short string such as 'onnx' or 'pytorch'")
        if format is not None:
            check_label(format, "format", 100)
        artifact = store_artifact(
            self.artifacts, src, format=format, progress=progress, follow_symlinks=bool(follow_symlinks)
        )
        draft = VersionDraft(
            name=name,
            artifact=artifact,
            params=params_,
            metrics=metrics_,
            tags=tags_,
            lineage=lineage_,
            description=description_,
            created_by=who,
            model=model,
        )
        mv = self._commit_version(draft)
        if link_back and tracked is not None:
            from .trackers import link_back as tag_run

            try:
                tag_run(tracked[0], run, tracked[1], mv.ref, self.uri or self.metadata.url)
            except Exception as exc:  # the version is committed: say so, do not fail the registration
                warnings.warn(
                    f"{mv.ref} is registered, but tagging its {tracked[1].tracker} run {tracked[1].run_id} "
                    f"failed: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        if sign:
            self.sign(mv.ref, actor=actor, role="author")
        return mv

    def register_artifact(
        self,
        name: str,
        artifact: Artifact,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        description: str | None = None,
        actor: str | None = None,
        model: ModelInfo | None = None,
    ) -> ModelVersion:
        """Commit the next version of ``name`` for an artifact whose blobs are already in this
        registry's artifact store (uploaded through the HTTP API, or put there by another tool).

        Every file's blob must be stored with the size the manifest gives (BlobNotFound or
        InvalidInputError otherwise); then the same checks, record and audit event as
        :meth:`register`, which hashes and stores a local path first.
        """
        check_name(name)
        if not isinstance(artifact, Artifact):
            raise InvalidInputError(f"artifact must be a modelreg.Artifact, got {type(artifact).__name__}")
        if model is not None and not isinstance(model, ModelInfo):
            raise InvalidInputError(f"model must be a modelreg.ModelInfo, got {type(model).__name__}")
        for entry in artifact.files:
            try:
                stored = self.artifacts.size(entry.digest)
            except BlobNotFound:
                raise BlobNotFound(
                    f"blob {entry.digest} (file {entry.path!r}) is not in the registry's artifact store; store it first"
                ) from None
            if stored != entry.size:
                raise InvalidInputError(
                    f"file {entry.path!r}: the blob {entry.digest} holds {stored} bytes, not {entry.size}"
                )
            self.artifacts.touch(entry.digest)  # a fresh time: gc's grace period starts again
        draft = VersionDraft(
            name=name,
            artifact=artifact,
            params=check_params(params),
            metrics=check_metrics(metrics),
            tags=check_tags(tags),
            lineage=self._lineage(lineage, None, "."),
            description=check_text(description, "description", MAX_DESCRIPTION_LENGTH),
            created_by=self.who(actor),
            model=model,
        )
        return self._commit_version(draft)

    def _commit_version(self, draft: VersionDraft) -> ModelVersion:
        """Commit a checked draft as the next version, with its ``register`` event (and, for the
        first, the model's creation in the same atomic step), then notify."""
        name, who, artifact = draft.name, draft.created_by, draft.artifact
        # the event's time is stamped by the store inside its atomic step (never before the model's
        # previous event); a first registration creates the model in that same step, so a failure
        # leaves neither a version nor an empty model behind
        event = EventDraft(
            action="register",
            actor=who,
            after={
                "digest": artifact.digest,
                "size": artifact.size,
                "files": len(artifact.files),
                "stage": Stage.EXPERIMENTAL.value,
            },
        )
        created = self._new_model(name, who)
        mv = self.metadata.add_version(draft, event, create=created)
        events = [event.model_copy(update={"version": mv.version})]
        if mv.version == 1 and self._created_by(name, created):
            events.insert(0, created[1])
        self._gov.committed(name, events)
        return mv

    def _new_model(self, name: str, actor: str) -> tuple[RegisteredModel, EventDraft]:
        """The record and ``create_model`` event of a model that a first registration creates."""
        now = utcnow()
        model = RegisteredModel(name=name, owner=actor, created_at=now, updated_at=now)
        return model, EventDraft(action="create_model", actor=actor, after={"owner": actor})

    def _created_by(self, name: str, created: tuple[RegisteredModel, EventDraft]) -> bool:
        """Whether the first two events of ``name`` are this call's creation (for notifications only)."""
        if not self._gov.subscribers and not self._gov.webhooks(cached=True):
            return False
        events = self.metadata.list_events(name)[:1]
        return bool(events) and events[0].action == "create_model" and events[0].actor == created[1].actor

    def _lineage(self, lineage: Lineage | Mapping[str, Any] | None, capture: str | None, path: Any) -> Lineage:
        if lineage is None:
            data: dict[str, Any] = {}
        elif isinstance(lineage, Lineage):
            data = lineage.model_dump(exclude_none=True)
        elif isinstance(lineage, Mapping):
            unknown = set(lineage) - set(Lineage.model_fields)
            if unknown:
                raise InvalidInputError(
                    f"unknown lineage field(s) {sorted(unknown)}; use {sorted(Lineage.model_fields)} "
                    "and put anything else under 'extra'"
                )
            data = dict(lineage)
        else:
            raise InvalidInputError(f"lineage must be a Lineage or a mapping, got {type(lineage).__name__}")
        if capture not in (None, "auto", "none", "env", "code"):
            raise InvalidInputError(f"capture must be 'auto', 'code', 'env' or None, got {capture!r}")
        if capture in ("auto", "code") and data.get("code") is None:
            from .lineage import capture_code

            start = Path(os.fspath(path)).expanduser()
            code = capture_code(start if start.exists() else None)
            if code is not None:
                data["code"] = code
        if capture in ("auto", "env") and data.get("environment") is None:
            from .lineage import capture_environment

            data["environment"] = capture_environment()
        parents = data.get("parents") or []
        if not isinstance(parents, list):
            raise InvalidInputError("lineage.parents must be a list of references such as 'churn/2'")
        data["parents"] = [str(parse_ref(p)) for p in parents]
        # depth, 64-bit integers, finite floats and size first: pydantic and json would otherwise
        # fail with a RecursionError or a ValueError deep inside, or store what cannot be read back
        data = check_json(_plain(data), "lineage", depth=MAX_DEPTH)
        try:
            out = Lineage.model_validate(data)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"invalid lineage: {exc}") from None
        _check_lineage_labels(out.model_dump(mode="python", exclude={"extra"}), "lineage")
        return out

    def create_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        actor: str | None = None,
        comment: str | None = None,
        exist_ok: bool = False,
    ) -> RegisteredModel:
        """Create an empty model (``register`` does this implicitly)."""
        check_name(name)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        now = utcnow()
        model = RegisteredModel(
            name=name,
            description=check_text(description, "description", MAX_DESCRIPTION_LENGTH),
            tags=check_tags(tags),
            owner=owner or who,
            created_at=now,
            updated_at=now,
        )
        event = EventDraft(action="create_model", actor=who, after={"owner": model.owner}, comment=note)
        try:
            created = self.metadata.create_model(model, event)
            self._gov.committed(name, [event])
            return created
        except AlreadyExistsError:
            if exist_ok:
                return self.metadata.get_model(name)
            raise

    # -- read -------------------------------------------------------------------------
    def get_model(self, name: str) -> RegisteredModel:
        return self.metadata.get_model(check_name(name))

    def get_version(
        self, ref: str, version: int | str | None = None, *, stage: Any = None, alias: str | None = None
    ) -> ModelVersion:
        """Find a version: ``get_version("churn")`` (latest), ``("churn", 3)``, ``("churn/3")``,
        ``("churn@production")``, ``("churn", stage="production")``, ``("churn@champion")``."""
        r = self._ref(ref, version, stage, alias)
        return self.metadata.get_version(r.name, self._resolve(r))

    def list_models(self) -> list[RegisteredModel]:
        return ModelList(self.metadata.list_models())

    def list_versions(self, name: str, stage: Any = None) -> list[ModelVersion]:
        versions = self.metadata.list_versions(check_name(name))
        if stage is not None:
            target = parse_stage(stage)
            versions = [v for v in versions if v.stage == target]
        return VersionList(versions)

    def search(
        self, query: str | None = None, *, order_by: str | list[str] | None = None, limit: int | None = None
    ) -> list[ModelVersion]:
        """Search versions of all models, e.g. ``search("metrics.auc > 0.9 and tags.team = 'fraud'",
        order_by="metrics.auc desc", limit=10)``. See :mod:`modelreg.query` for the language.

        A search that finds nothing because a ``metrics.``, ``params.`` or ``tags.`` key of the query
        is on no version (a typo: ``tags.tema``) warns (:class:`~modelreg.query.SearchWarning`) naming
        the closest keys the versions have."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInputError(f"limit must be a non-negative integer, got {limit!r}")
        parsed = parse_query(query)
        found = self.metadata.search(parsed, parse_order_by(order_by), limit)
        if not found and limit != 0:
            import warnings

            from .query import SearchWarning, unknown_keys

            for message in unknown_keys(parsed, self.metadata.iter_all_versions()):
                warnings.warn(message, SearchWarning, stacklevel=2)
        return VersionList(found)

    def history(self, name: str | None = None, version: int | None = None, *, usage: bool = False) -> list[AuditEvent]:
        """Audit events, oldest first: of one model (optionally one version), or of all models.

        ``usage=True`` (one model only) merges in the usage log (:class:`~modelreg.UsageRecord`:
        who fetched or loaded which version, where and what for), by time."""
        if name is None:
            if usage:
                raise InvalidInputError("history(usage=True) needs a model name: the usage log is kept per model")
            return EventList(self.metadata.list_events(None))
        r = parse_ref(name)
        events = self.metadata.list_events(r.name)
        v = version if version is not None else r.version
        if v is not None:
            events = [e for e in events if e.version == v]
        if usage:
            used = self.metadata.list_usage(r.name, v)
            merged: list[Any] = sorted([*events, *used], key=lambda e: e.time)
            return EventList(merged)
        return EventList(events)

    def metric_history(self, ref: str, key: str | None = None) -> list[MetricPoint]:
        """Every value of a version's metrics: the registered one, then each logged one, oldest first."""
        mv = self.get_version(ref)
        points = [
            MetricPoint(key=k, value=v, time=mv.created_at, actor=mv.created_by, source="register")
            for k, v in mv.metrics.items()
        ]
        for ev in self.metadata.list_events(mv.name, actions=("log_metrics",)):
            if ev.action == "log_metrics" and ev.version == mv.version and ev.after:
                step = ev.after.get("step")
                for k, v in (ev.after.get("metrics") or {}).items():
                    points.append(MetricPoint(key=k, value=v, time=ev.time, actor=ev.actor, source="log", step=step))
        return [p for p in points if key is None or p.key == key]

    # -- mutations ------------------------------------------------------------------------
    def _update_version(self, r: Ref, fn: Callable[[ModelState, int], list[EventDraft]]) -> ModelVersion:
        """Resolve ``r`` and apply ``fn`` (which mutates a copy of the state) atomically."""
        version = self._resolve(r)

        def apply(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            if version not in state.versions:
                raise VersionNotFound(f"model {r.name!r} has no version {version}")
            draft = state.model_copy(deep=True)
            events = fn(draft, version)
            return draft, events

        self._gov.update(r.name, apply)
        return self.metadata.get_version(r.name, version)

    def transition(
        self,
        name: str,
        version: int | str | None = None,
        stage: Stage | str | None = None,
        *,
        comment: str | None = None,
        actor: str | None = None,
        strict: bool = False,
        sign: bool = False,
        key: Any = None,
    ) -> ModelVersion:
        """Move a version to another stage: ``transition("churn", 3, "production")`` or
        ``transition("churn/3", "production")``.

        Raises InvalidTransitionError (naming the allowed targets) for a move the
        transition table forbids. For an exclusive stage (production by default)
        the previous holder goes to archived, recorded as its own event.

        A version already in ``stage`` is returned unchanged, and nothing is written
        (no audit event): promoting twice is harmless. ``strict=True`` raises
        InvalidTransitionError ("already in production; nothing to do") instead.

        ``sign=True`` signs what was decided (version, artifact digest, from and to stage, actor,
        time) with ``key`` (else the registry's signing key); the signature is kept with the
        transition's audit event and :meth:`verify` reports it if the event is altered. See
        docs/trust.md.
        """
        if stage is None and isinstance(version, (str, Stage)) and not str(version).isdigit():
            version, stage = None, version
        if stage is None:
            raise InvalidInputError("transition needs a target stage, e.g. transition('churn', 3, 'production')")
        target = parse_stage(stage)
        r = self._ref(name, version)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        signer = None
        if sign or key is not None:
            from .signing import SigningKey

            signer = SigningKey.load(key) if key is not None else self.signing_key
            if signer is None:
                raise InvalidInputError(
                    "transition(sign=True) needs a signing key: key=..., Registry(signing_key=...) or "
                    "$MODELREG_SIGNING_KEY_FILE",
                    remedy=Remedy("pass key='key.pem'", "pass --key key.pem or set MODELREG_SIGNING_KEY_FILE"),
                )
        # the policy's table and gates are checked inside the atomic update (modelreg.governance)
        return self._gov.transition(r, target, who, note, strict=bool(strict), signer=signer)

    def archive(
        self, ref: str, *, comment: str | None = None, actor: str | None = None, strict: bool = False
    ) -> ModelVersion:
        """Soft delete: move a version to ``archived``. It stays downloadable and can come back.
        An archived version is returned unchanged (``strict=True``: InvalidTransitionError)."""
        return self.transition(ref, stage=Stage.ARCHIVED, comment=comment, actor=actor, strict=strict)

    def rollback(
        self, name: str, stage: Stage | str = Stage.PRODUCTION, *, comment: str | None = None, actor: str | None = None
    ) -> ModelVersion:
        """Bring back the previous holder of ``stage`` (from the audit history); the current
        holder moves out (to archived for an exclusive stage). Returns the restored version."""
        check_name(name)
        target = parse_stage(stage)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        # the previous holder comes from the audit history; the policy decides whether the
        # target stage's gates apply or an emergency rollback may bypass them (modelreg.governance)
        return self._gov.rollback(name, target, who, note)

    def set_alias(
        self, name: str, alias: str, version: int | str, *, actor: str | None = None, comment: str | None = None
    ) -> ModelVersion:
        """Point ``alias`` (e.g. ``champion``) at a version; ``get_version("name@alias")`` resolves it."""
        check_alias(alias)
        r = self._ref(name, version)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None

        def fn(state: ModelState, v: int) -> list[EventDraft]:
            old = state.aliases.get(alias)
            if old == v:
                return []
            state.aliases[alias] = v
            return [
                EventDraft(
                    action="set_alias",
                    actor=who,
                    version=v,
                    before={"alias": alias, "version": old},
                    after={"alias": alias, "version": v},
                    comment=note,
                )
            ]

        return self._update_version(r, fn)

    def delete_alias(
        self, name: str, alias: str, *, actor: str | None = None, comment: str | None = None
    ) -> ModelVersion:
        """Remove ``alias``; return the version it pointed at. Raises VersionNotFound (a NotFoundError)
        for an unknown alias, as ``get_version("name@alias")`` does."""
        check_name(name)
        check_alias(alias)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        pointed: list[int] = []

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            if alias not in state.aliases:  # as get_version("name@alias") reports it
                from .suggest import did_you_mean

                known = ", ".join(sorted(state.aliases)) or "none"
                hint = did_you_mean(alias, state.aliases)
                raise VersionNotFound(f"model {name!r} has no alias {alias!r} (aliases: {known}){hint}")
            draft = state.model_copy(deep=True)
            old = draft.aliases.pop(alias)
            pointed[:] = [old]
            return draft, [
                EventDraft(
                    action="delete_alias",
                    actor=who,
                    version=old,
                    before={"alias": alias, "version": old},
                    after=None,
                    comment=note,
                )
            ]

        self._gov.update(name, fn)
        return self.metadata.get_version(name, pointed[0])

    def set_tags(
        self,
        ref: str,
        tags: Mapping[str, str],
        *,
        actor: str | None = None,
        remove: Iterable[str] = (),
        comment: str | None = None,
    ) -> ModelVersion:
        """Add or change tags of a version (``remove`` deletes keys); audited."""
        new = check_tags(tags)
        drop = [k for k in remove]
        r = self._ref(ref)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None

        def fn(state: ModelState, v: int) -> list[EventDraft]:
            old = dict(state.versions[v].tags)
            merged = {k: val for k, val in {**old, **new}.items() if k not in drop}
            check_tags(merged)
            if merged == old:
                return []
            state.versions[v] = state.versions[v].model_copy(update={"tags": merged, "updated_at": utcnow()})
            changed = {k for k in set(old) | set(merged) if old.get(k) != merged.get(k)}
            return [
                EventDraft(
                    action="set_tags",
                    actor=who,
                    version=v,
                    before={k: old.get(k) for k in sorted(changed)},
                    after={k: merged.get(k) for k in sorted(changed)},
                    comment=note,
                )
            ]

        return self._update_version(r, fn)

    def set_description(
        self, ref: str, description: str, *, actor: str | None = None, comment: str | None = None
    ) -> ModelVersion:
        """Change a version's description; audited."""
        text = check_text(description, "description", MAX_DESCRIPTION_LENGTH)
        r = self._ref(ref)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None

        def fn(state: ModelState, v: int) -> list[EventDraft]:
            old = state.versions[v].description
            if old == text:
                return []
            state.versions[v] = state.versions[v].model_copy(update={"description": text, "updated_at": utcnow()})
            return [
                EventDraft(
                    action="set_description",
                    actor=who,
                    version=v,
                    before={"description": old},
                    after={"description": text},
                    comment=note,
                )
            ]

        return self._update_version(r, fn)

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        actor: str | None = None,
        comment: str | None = None,
        remove_tags: Iterable[str] = (),
    ) -> RegisteredModel:
        """Change a model's description, tags (merged; ``remove_tags`` deletes keys) or owner; audited."""
        check_name(name)
        if isinstance(remove_tags, str):
            raise InvalidInputError("remove_tags takes a list of tag keys, not one string")
        drop = list(remove_tags)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = check_text(description, "description", MAX_DESCRIPTION_LENGTH)
        if owner is not None:
            changes["owner"] = check_actor(owner)
        new_tags = check_tags(tags) if tags is not None else None
        who = self.who(actor)

        def fn(state: ModelState) -> tuple[ModelState, list[EventDraft]]:
            upd = dict(changes)
            if new_tags is not None or drop:
                merged = {**state.tags, **(new_tags or {})}
                upd["tags"] = check_tags({k: v for k, v in merged.items() if k not in drop})
            before = {k: getattr(state, k) for k in upd}
            after = {k: v for k, v in upd.items() if before[k] != v}
            if not after:
                return state, []
            return state.model_copy(update=upd), [
                EventDraft(
                    action="update_model", actor=who, before={k: before[k] for k in after}, after=after, comment=note
                )
            ]

        self._gov.update(name, fn)
        return self.metadata.get_model(name)

    def log_metrics(
        self,
        ref: str,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        actor: str | None = None,
        comment: str | None = None,
    ) -> ModelVersion:
        """Record metrics measured after registration (evaluation, monitoring).

        The registered metrics never change; the latest logged value of each key
        is ``mv.logged_metrics`` and every value stays in :meth:`metric_history`.
        """
        values = check_metrics(metrics)
        if not values:
            raise InvalidInputError("log_metrics needs at least one metric")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not MIN_INT <= step <= MAX_INT):
            raise InvalidInputError(f"step must be an integer of at most 64 bits, got {step!r:.60}")
        r = self._ref(ref)
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None

        def fn(state: ModelState, v: int) -> list[EventDraft]:
            vs = state.versions[v]
            now = utcnow()
            state.versions[v] = vs.model_copy(
                update={"logged_metrics": {**vs.logged_metrics, **values}, "updated_at": now}
            )
            after: dict[str, Any] = {"metrics": values}
            if step is not None:
                after["step"] = step
            return [
                EventDraft(
                    action="log_metrics",
                    actor=who,
                    version=v,
                    # the same shape on both sides: {"metrics": {key: the latest logged value before (or None)}}
                    before={"metrics": {k: vs.logged_metrics.get(k) for k in values}},
                    after=after,
                    comment=note,
                )
            ]

        return self._update_version(r, fn)

    def purge(self, ref: str, *, actor: str | None = None, comment: str | None = None) -> None:
        """Hard delete a version's record. Its number stays reserved, the audit chain keeps
        a ``purge`` event, and ``gc`` later frees blobs no other version uses. A version
        in an exclusive stage must be moved out first."""
        r = self._ref(ref)
        if r.version is None:
            raise InvalidInputError(f"purge needs an explicit version, e.g. '{r.name}/3'; got {ref!r}")
        mv = self.metadata.get_version(r.name, r.version)
        exclusive = self.rules.exclusive
        who = self.who(actor)
        note = check_text(comment, "comment", MAX_COMMENT_LENGTH) or None
        box: list[EventDraft] = []
        version = r.version  # an int (checked above), in a local: mypy does not narrow r.version in guard

        def guard(state: ModelState) -> EventDraft:
            # evaluated by the store inside its atomic step: a promotion committed by another
            # process between the read above and the purge is seen here, and refuses the purge
            vs = state.versions.get(version)
            if vs is None:
                raise VersionNotFound(f"model {r.name!r} has no version {version}")
            if vs.stage in exclusive:
                raise InvalidTransitionError(
                    f"{mv.ref} is in {Stage(vs.stage).value}; transition it to archived (or roll back) before purging"
                )
            aliases = sorted(a for a, v in state.aliases.items() if v == version)
            box[:] = [
                EventDraft(
                    action="purge",
                    actor=who,
                    version=version,
                    comment=note,
                    before={"digest": mv.digest, "stage": Stage(vs.stage).value, "aliases": aliases},
                    after=None,
                )
            ]
            return box[0]

        self.metadata.purge_version(r.name, r.version, guard)
        self._gov.committed(r.name, box)

    # -- download -------------------------------------------------------------------------
    def download(
        self,
        ref: str,
        dest: str | os.PathLike[str] = ".",
        *,
        overwrite: bool = False,
        progress: ProgressFn | None = None,
        require_signature: bool = False,
        trusted_keys: Iterable[str | os.PathLike[str]] | None = None,
    ) -> Path:
        """Fetch a version's artifact into the folder ``dest``; return the path of the file or folder.

        Streams each blob once, hashing as it writes, and compares with the
        recorded digest and size. On any mismatch it raises IntegrityError naming
        the file, and nothing is left at the destination.

        A signed version is checked against its signatures first (SignatureError if a file
        changed or was added after signing, or a signature was made with another key);
        ``require_signature=True`` also refuses a version without a valid signature from a
        trusted key (``trusted_keys``, else the registry's; see :meth:`sign`).
        """
        mv = self.get_version(ref)
        self._check_signatures(mv, require_signature, trusted_keys)
        dest_dir = Path(os.fspath(dest)).expanduser()
        created = [p for p in (dest_dir, *dest_dir.parents) if not p.exists()]  # innermost first
        dest_dir.mkdir(parents=True, exist_ok=True)
        name = mv.artifact.name
        check_relpath(name)
        target = dest_dir / name
        if target.exists() and not overwrite:
            raise AlreadyExistsError(
                f"{str(target)!r} exists already",
                remedy=Remedy("pass overwrite=True or pick another folder", "pass --overwrite or pick another folder"),
            )
        staging = dest_dir / f".modelreg-{uuid.uuid4().hex}.tmp"
        staging.mkdir()
        try:
            total = mv.artifact.size
            done = [0]

            def step(phase: str, n: int, _t: int) -> None:
                if progress is not None:
                    progress("download", done[0] + n, total)

            for entry in mv.artifact.files:
                rel = check_relpath(entry.path)
                out = staging / name / rel if mv.artifact.kind == "directory" else staging / name
                out.parent.mkdir(parents=True, exist_ok=True)
                if self.cache is None:
                    self._fetch_blob(mv, entry, out, step)
                else:
                    self._fetch_via_cache(mv, entry, out, step)
                done[0] += entry.size
            if target.exists():
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            os.replace(staging / name, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            for folder in created:  # leave no trace: also the (empty) folders this call made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _fetch_via_cache(self, mv: ModelVersion, entry: FileEntry, out: Path, progress: ProgressFn | None) -> None:
        """Copy a blob from the local cache, re-hashing it; on a miss (or a damaged entry) fetch it
        into the cache first, verified, so the next download needs no access to the store."""
        assert self.cache is not None
        if self.cache.copy_out(entry.digest, entry.size, out, progress):
            return
        where = f"{mv.ref}: file {entry.path!r}"
        try:
            # the pass that verifies the downloaded copy also writes ``out``
            self.cache.fetch(entry.digest, entry.size, self.artifacts, progress, where=where, copy_to=out)
        except BlobNotFound as exc:
            raise IntegrityError(f"{where} is missing from the artifact store ({exc})") from None

    def _fetch_blob(self, mv: ModelVersion, entry: FileEntry, out: Path, progress: ProgressFn | None) -> None:
        try:
            src = self.artifacts.open(entry.digest)
        except BlobNotFound as exc:
            raise IntegrityError(f"{mv.ref}: file {entry.path!r} is missing from the artifact store ({exc})") from None
        # big blobs: the copy (by the kernel, between local files) and the hash run at once, on two
        # threads; the digest covers the bytes written to ``out``
        with src, open(out, "w+b", buffering=0) as f:
            got, n = sha256_copy(src, f, total=entry.size, progress=progress, phase="download")
        if got != entry.digest or n != entry.size:
            out.unlink()  # download() removes its staging folder too: nothing reaches the destination
            # flag it: registering this content again then replaces the stored blob (ArtifactStore.mark_suspect)
            self.artifacts.mark_suspect(entry.digest)
            raise IntegrityError(
                f"{mv.ref}: file {entry.path!r} is corrupted in the artifact store: expected {entry.digest} "
                f"({entry.size} bytes), read {got} ({n} bytes). Nothing was written; run `modelreg verify` "
                "and re-register the version from a good copy"
            )

    # -- model objects and local snapshots ------------------------------------------------------
    def fetch(
        self,
        ref: str,
        *,
        verify: bool = False,
        record_use: bool | None = None,
        purpose: str | None = None,
        progress: ProgressFn | None = None,
        require_signature: bool = False,
        trusted_keys: Iterable[str | os.PathLike[str]] | None = None,
    ) -> Path:
        """The local path of a version's file or folder: a read-only snapshot in the local cache
        (``$MODELREG_CACHE_DIR``), downloaded and verified on first use, shared by every call
        after (see :mod:`modelreg.snapshots`). Nothing to choose, safe to call again; copy it
        elsewhere with :meth:`download`.

        A snapshot that changed on disk is rebuilt; ``verify=True`` also re-hashes it. A version
        fetched once is found again by number (``churn/3``) or artifact digest (``sha256:...``)
        with the storage unreachable; a stage or alias needs the metadata store.
        ``record_use`` (default: the registry's ``record_use``) appends a usage record with
        ``purpose`` (see :meth:`history`).

        A signed version is checked against its signatures (SignatureError on a mismatch);
        ``require_signature=True`` refuses a version without a valid signature from a trusted key
        (``trusted_keys``, else the registry's), and needs the metadata store to tell.
        """
        mv, path = self._snapshot(ref, verify=verify, progress=progress, signatures=(require_signature, trusted_keys))
        self._record_use(mv, "fetch", record_use, purpose)
        return path

    def save_model(
        self,
        name: str,
        obj: Any,
        *,
        flavor: str | None = None,
        input_example: Any = None,
        signature: Any = None,
        options: Mapping[str, Any] | None = None,
        **register_kwargs: Any,
    ) -> ModelVersion:
        """Serialise a model object (scikit-learn, XGBoost, LightGBM, ONNX, PyTorch, arrays...) into
        a folder with its metadata and register it as the next version of ``name``.

        The flavor is detected from the object unless given; ``options`` go to the flavor (for
        example ``{"format": "joblib"}`` or PyTorch's ``{"factory": "pkg.module:make_net"}``).
        The signature is inferred from ``input_example`` unless given and is kept on the version
        (``mv.model.signature``, searchable as ``model.*``). ``register_kwargs`` are those of
        :meth:`register`: params, metrics, tags, lineage, description, actor, capture, progress.
        See :mod:`modelreg.flavors`.
        """
        import tempfile

        from . import flavors

        check_name(name)
        unknown = set(register_kwargs) - _SAVE_MODEL_REGISTER_KWARGS
        if unknown:
            raise TypeError(
                f"save_model() got unexpected keyword argument(s) {sorted(unknown)}; it takes those of register(): "
                f"{', '.join(sorted(_SAVE_MODEL_REGISTER_KWARGS))}, and flavor options in options={{...}}"
            )
        with tempfile.TemporaryDirectory(prefix="modelreg-save-") as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            info = flavors.save(
                obj, folder, flavor=flavor, input_example=input_example, signature=signature, **dict(options or {})
            )
            return self._register(name, folder, model=info, capture_from=Path.cwd(), **register_kwargs)

    def load_model(
        self,
        ref: str,
        *,
        allow_unsafe: bool = False,
        verify: bool = False,
        record_use: bool | None = None,
        purpose: str | None = None,
        **options: Any,
    ) -> Any:
        """The native model object of a version saved with :meth:`save_model`, loaded from its
        verified local snapshot (:meth:`fetch`).

        Loading never runs code from the artifact: a pickle-based model raises UnsafeModelError
        unless ``allow_unsafe=True`` (only for a model from a source you trust). ``options`` go to
        the flavor (for example PyTorch's ``factory=``). :func:`loaded_from` (also
        ``Registry.loaded_from``) tells which version an object came from.
        """
        from . import flavors

        mv, path = self._snapshot(ref, verify=verify, progress=None)
        if mv.model is None and not (path / MODEL_FILE).is_file() and not (path / "MLmodel").is_file():
            raise InvalidInputError(
                f"{mv.ref} holds plain files, not a model saved with save_model() or an MLflow model; "
                f"reg.fetch({mv.ref!r}) gives their local path"
            )
        obj = flavors.load(path, allow_unsafe=allow_unsafe, **options)
        self._record_use(mv, "load", record_use, purpose)
        _remember_loaded(obj, LoadedFrom(ref=mv.ref, digest=mv.digest, path=str(path)))
        return obj

    loaded_from = staticmethod(loaded_from)

    @property
    def snapshots(self) -> SnapshotCache:
        """The local snapshots :meth:`fetch` serves, in the download cache's folder (the
        registry's ``cache=``, else ``$MODELREG_CACHE_DIR`` or ``~/.cache/modelreg``)."""
        from .cache import BlobCache
        from .snapshots import SnapshotCache

        if self._snapshot_cache is None:
            self._snapshot_cache = SnapshotCache(self.cache if self.cache is not None else BlobCache())
        return self._snapshot_cache

    _snapshot_cache: SnapshotCache | None = None

    def _snapshot(
        self, ref: str, *, verify: bool, progress: ProgressFn | None, signatures: tuple[bool, Any] = (False, None)
    ) -> tuple[ModelVersion, Path]:
        from .errors import UnreachableError

        snaps = self.snapshots
        key = snaps.registry_key(self.metadata.url)
        if isinstance(ref, str) and ref.startswith("sha256:"):
            return self._snapshot_by_digest(ref, key, verify=verify, progress=progress, signatures=signatures)
        r = self._ref(ref)
        try:
            mv = self.metadata.get_version(r.name, self._resolve(r))
            self._check_signatures(mv, *signatures)  # online: a signed version is checked before it is served
        except UnreachableError as exc:
            if signatures[0]:
                raise UnreachableError(f"{exc}. require_signature needs the metadata store") from exc
            if r.version is None:
                raise UnreachableError(
                    f"{exc}. A stage or alias needs the metadata store; fetch a version number "
                    f"({r.name}/3) or an artifact digest (sha256:...) to use a local snapshot while it is unreachable"
                ) from exc
            mv_ = snaps.recall(key, r.name, r.version)
            found = snaps.lookup(mv_, verify=verify) if mv_ is not None else None
            if mv_ is None or found is None:
                raise
            return mv_, found
        found = snaps.lookup(mv, verify=verify)
        if found is None:
            cache = snaps.blobs

            def blob(digest: str, size: int, where: str) -> tuple[Path, bool]:
                hit = cache.lookup(digest, size)
                if hit is not None:
                    return hit, False
                try:
                    return cache.fetch(digest, size, self.artifacts, progress, where=where), True
                except BlobNotFound as exc:
                    raise IntegrityError(f"{where} is missing from the artifact store ({exc})") from None

            found = snaps.build(mv, blob)
            snaps.remember(key, mv)
        return mv, found

    def _snapshot_by_digest(
        self, digest: str, key: str, *, verify: bool, progress: ProgressFn | None, signatures: tuple[bool, Any]
    ) -> tuple[ModelVersion, Path]:
        from .errors import UnreachableError

        snaps = self.snapshots
        check_digest(digest)
        mv = snaps.recall_digest(key, digest)
        if mv is not None and not signatures[0]:
            found = snaps.lookup(mv, verify=verify)
            if found is not None:
                return mv, found
        try:
            for candidate in self.metadata.iter_all_versions():
                if candidate.artifact.digest == digest:
                    return self._snapshot(candidate.ref, verify=verify, progress=progress, signatures=signatures)
        except UnreachableError as exc:
            raise UnreachableError(f"{exc}. No local snapshot of {digest} was found either") from exc
        raise VersionNotFound(f"no version has the artifact digest {digest}")

    def _record_use(self, mv: ModelVersion, action: str, record_use: bool | None, purpose: str | None) -> None:
        """Append a usage record, best effort: a process that may read but not write the registry
        still serves the model, with one warning."""
        if not (self.record_use if record_use is None else record_use):
            return
        import socket

        record = UsageRecord(
            name=mv.name,
            version=mv.version,
            digest=mv.digest,
            action=action,  # type: ignore[arg-type]  # "fetch" or "load", from this module
            actor=self.who(None),
            host=socket.gethostname(),
            pid=os.getpid(),
            purpose=check_text(purpose, "purpose", MAX_COMMENT_LENGTH) or None,
        )
        try:
            self.metadata.record_usage(record)
        except (ModelregError, OSError, NotImplementedError) as exc:
            if not self._usage_warned:
                self._usage_warned = True
                warnings.warn(
                    f"could not record the use of {mv.ref} in the usage log ({exc}); it was served anyway",
                    RuntimeWarning,
                    stacklevel=3,
                )

    # -- signatures and retention (modelreg.signing, modelreg.retention) -------------------------
    @property
    def signing_key(self) -> Any:
        """This client's :class:`~modelreg.signing.SigningKey` (``Registry(signing_key=...)``, else
        ``$MODELREG_SIGNING_KEY`` / ``$MODELREG_SIGNING_KEY_FILE``), or None. Never stored."""
        if self._signing_key is None:
            from .signing import SigningKey, key_from_environment

            arg = self._signing_key_arg
            self._signing_key = SigningKey.load(arg) if arg is not None else key_from_environment()
        return self._signing_key

    def _require_signing_key(self) -> None:
        if self.signing_key is None:
            raise InvalidInputError(
                "sign=True needs a signing key: Registry(signing_key='key.pem') or $MODELREG_SIGNING_KEY_FILE",
                remedy=Remedy(
                    "pass Registry(signing_key='key.pem')", "set MODELREG_SIGNING_KEY_FILE=key.pem or pass --key"
                ),
            )

    def _trusted_fingerprints(self, trusted: Any = None) -> list[str]:
        """Fingerprints of the keys trusted by ``require_signature``: ``trusted``, else the registry's
        ``trusted_keys``, else ``$MODELREG_TRUSTED_KEYS``, else this client's own signing key."""
        from .signing import ENV_TRUSTED, trusted_fingerprints

        if trusted is None:
            trusted = self.trusted_keys
        if trusted is None and os.environ.get(ENV_TRUSTED):
            trusted = [k.strip() for k in os.environ[ENV_TRUSTED].split(",") if k.strip()]
        if trusted is None and self.signing_key is not None:
            return [self.signing_key.fingerprint]
        if not trusted:
            raise InvalidInputError(
                "require_signature needs trusted keys: pass trusted_keys=[...] (fingerprints, public keys or "
                "PEM files), Registry(trusted_keys=...), or set $MODELREG_TRUSTED_KEYS"
            )
        if isinstance(trusted, (str, os.PathLike)):
            trusted = [trusted]
        return trusted_fingerprints(trusted)

    def _check_signatures(self, mv: ModelVersion, require: bool = False, trusted: Any = None) -> None:
        from .signing import check_version

        check_version(self, mv, require=require, trusted=trusted)

    def sign(
        self,
        ref: str,
        *,
        key: Any = None,
        role: str | None = None,
        actor: str | None = None,
        comment: str | None = None,
    ) -> Any:
        """Sign a version's files with an EC private key (``key``: a PEM path or text, or a
        :class:`~modelreg.signing.SigningKey`; else the registry's signing key) and store the
        OpenSSF model-signing bundle with it; audited as a ``sign`` event. A version may carry
        several signatures (author, approver, CI: ``role``), one per key. Returns a
        :class:`~modelreg.signing.SignatureInfo`. See docs/trust.md."""
        from .signing import sign_version

        return sign_version(self, ref, key=key, actor=actor, role=role, comment=comment)

    def signatures(self, ref: str, *, verify: bool = True, trusted_keys: Any = None) -> list[Any]:
        """The signatures of a version (:class:`~modelreg.signing.SignatureInfo`), each checked
        (``valid``, ``problem``) unless ``verify=False``; with ``trusted_keys``, ``trusted`` says
        whether its key is one of them."""
        from .signing import trusted_fingerprints, version_signatures

        mv = self.get_version(ref)
        if isinstance(trusted_keys, (str, os.PathLike)):
            trusted_keys = [trusted_keys]
        fps = trusted_fingerprints(trusted_keys) if trusted_keys is not None else None
        return version_signatures(self, mv, verify=verify, trusted=fps)

    def export_signature(self, ref: str, dest: str | os.PathLike[str], *, key: str | None = None) -> Path:
        """Write a version's signature bundle to the file ``dest`` (the newest one, or the one made with
        ``key``, a fingerprint), for the stock ``model_signing`` verifier."""
        from .signing import fingerprint, read_bundle

        infos = self.signatures(ref, verify=False)
        if key is not None:
            fp = fingerprint(key)
            infos = [i for i in infos if i.key == fp]
        if not infos:
            raise VersionNotFound(f"{ref} has no signature{'' if key is None else ' by key ' + key}")
        info = max(infos, key=lambda i: i.time)
        out = Path(os.fspath(dest)).expanduser()
        out.write_bytes(read_bundle(self, info.bundle, info.size))
        return out

    def apply_retention(
        self, *, dry_run: bool = True, actor: str | None = None, models: Iterable[str] | None = None, now: Any = None
    ) -> Any:
        """Plan (``dry_run=True``, the default) or apply the stored policy's retention rules: which
        versions to archive or purge, why, and the bytes ``gc`` would free after. Applied changes are
        audited archive (transition) and purge events by ``actor``, each re-checked in its own atomic
        step. Returns a :class:`~modelreg.retention.RetentionPlan`. See docs/governance.md."""
        from .retention import apply_retention

        return apply_retention(self, dry_run=dry_run, actor=actor, models=models, now=now)

    # -- compare ------------------------------------------------------------------------------
    def compare(self, a: str, b: str) -> Comparison:
        """Differences between two versions: params, metrics, tags, lineage and files."""
        va, vb = self.get_version(a), self.get_version(b)
        fa = {f.path: f.digest for f in va.artifact.files}
        fb = {f.path: f.digest for f in vb.artifact.files}
        return Comparison(
            a=va.ref,
            b=vb.ref,
            params=_diff(flatten(va.params), flatten(vb.params)),
            metrics=_diff(va.current_metrics, vb.current_metrics),
            tags=_diff(va.tags, vb.tags),
            lineage=_diff(flatten(va.lineage.model_dump(mode="json")), flatten(vb.lineage.model_dump(mode="json"))),
            files_added=sorted(set(fb) - set(fa)),
            files_removed=sorted(set(fa) - set(fb)),
            files_changed=sorted(p for p in set(fa) & set(fb) if fa[p] != fb[p]),
            same_artifact=va.digest == vb.digest,
        )

    # -- copy ---------------------------------------------------------------------------------------
    def copy_to(
        self,
        dst: Registry | str | os.PathLike[str],
        *,
        dst_storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> CopyReport:
        """Copy every model, version, blob, stage, alias and the audit history into ``dst`` (a Registry
        or a location, opened with ``dst_storage_options``); resumable, verified at the end. Other
        keyword arguments as :func:`modelreg.copy.copy_registry` (``models``, ``verify``, ...)."""
        from .copy import copy_registry

        if isinstance(dst, Registry):
            return copy_registry(self, dst, **kwargs)
        with Registry(dst, storage_options=dst_storage_options) as target:
            return copy_registry(self, target, **kwargs)

    def import_mlflow(
        self,
        *,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        models: Iterable[str] | None = None,
        actor: str | None = None,
        verify: bool = True,
        note: Callable[[str], None] | None = None,
    ) -> ImportReport:
        """Import an MLflow model registry with its history (numbers, times, users, stages, aliases,
        run linkage, artifacts); resumable. See :func:`modelreg.trackers.mlflow_import.import_mlflow`."""
        from .trackers.mlflow_import import import_mlflow

        return import_mlflow(
            self,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            models=models,
            actor=actor,
            verify=verify,
            note=note,
        )

    # -- verify and gc -----------------------------------------------------------------------------
    def verify_audit(self, name: str) -> AuditCheck:
        """Check one model's audit chain: an :class:`~modelreg.models.AuditCheck` (the problems,
        the number of events checked; ``.ok`` when clean). Unpacks as ``(problems, count)``."""
        problems: list[Problem] = []
        events = self.metadata.list_events(name)
        prev_hash, expected_seq = GENESIS_HASH, 1
        for ev in events:
            label = f"event #{ev.seq} of {name!r} ({ev.action} by {ev.actor} at {ev.time.isoformat()})"
            if ev.seq != expected_seq:
                missing = (
                    f"event #{expected_seq} of {name!r} is"
                    if ev.seq - 1 == expected_seq
                    else f"events #{expected_seq}..#{ev.seq - 1} of {name!r} are"
                )
                problems.append(
                    Problem(kind="audit_gap", model=name, version=ev.version, detail=f"{missing} missing (deleted?)")
                )
            if ev.prev_hash != prev_hash:
                problems.append(
                    Problem(
                        kind="audit_link",
                        model=name,
                        version=ev.version,
                        detail=f"{label} does not link to the event before it",
                    )
                )
            if ev.expected_hash() != ev.hash:
                problems.append(
                    Problem(
                        kind="audit_edited",
                        model=name,
                        version=ev.version,
                        detail=f"{label} was edited: its content no longer matches its hash",
                    )
                )
            prev_hash, expected_seq = ev.hash, ev.seq + 1
        head_seq, head_hash = self.metadata.audit_head(name)
        last_seq = events[-1].seq if events else 0
        if head_seq != last_seq or head_hash != prev_hash:
            problems.append(
                Problem(
                    kind="audit_tail",
                    model=name,
                    detail=f"the audit chain of {name!r} ends at event #{last_seq} but the model records "
                    f"#{head_seq}; events at the end were deleted or replaced",
                )
            )
        return AuditCheck(problems, len(events))

    def verify(
        self, name: str | None = None, *, blobs: bool = True, progress: ProgressFn | None = None
    ) -> VerifyReport:
        """Re-hash every blob in use and check every audit chain; ``report.ok`` is True when clean.

        Each problem names the model, version, file or event concerned.
        """
        models = [self.get_model(name)] if name else self.list_models()
        problems: list[Problem] = []
        n_events = n_blobs = n_bytes = 0
        seen: dict[str, str | None] = {}
        checked: dict[Any, Any] = {}
        for model in models:
            found, count = self.verify_audit(model.name)
            problems.extend(found)
            n_events += count
            signed_events = [
                e for e in self.metadata.list_events(model.name, actions=("approve", "transition")) if e.after
            ]
            if any("signature" in (e.after or {}) for e in signed_events):  # signed approvals and transitions
                from .signing import signed_event_problems

                digests = {mv.version: mv.digest for mv in self.metadata.list_versions(model.name)}
                for v, detail in signed_event_problems(signed_events, digests):
                    problems.append(Problem(kind="signed_event", model=model.name, version=v, detail=detail))
            state = self.metadata.get_state_view(model.name)
            for mv in self.metadata.list_versions(model.name):
                if state.extensions.get("signatures"):  # signed versions: each bundle against the manifest
                    from .signing import verify_problems

                    for detail in verify_problems(self, mv, state, checked):
                        problems.append(Problem(kind="signature", model=mv.name, version=mv.version, detail=detail))
                if mv.artifact.kind == "directory" and _manifest_digest(list(mv.artifact.files)) != mv.artifact.digest:
                    problems.append(
                        Problem(
                            kind="manifest",
                            model=mv.name,
                            version=mv.version,
                            detail=f"{mv.ref}: the file manifest does not match the artifact digest",
                        )
                    )
                if not blobs:
                    continue
                for entry in mv.artifact.files:
                    if entry.digest not in seen:
                        seen[entry.digest] = self._check_blob(entry, progress)
                        n_blobs += 1
                        n_bytes += entry.size
                    if seen[entry.digest]:
                        problems.append(
                            Problem(
                                kind="blob",
                                model=mv.name,
                                version=mv.version,
                                detail=f"{mv.ref}: file {entry.path!r}: {seen[entry.digest]}",
                            )
                        )
        return VerifyReport(
            ok=not problems,
            problems=problems,
            models_checked=len(models),
            events_checked=n_events,
            blobs_checked=n_blobs,
            bytes_checked=n_bytes,
        )

    def _check_blob(self, entry: FileEntry, progress: ProgressFn | None) -> str | None:
        try:
            with self.artifacts.open(entry.digest) as f:
                digest, size = sha256_stream(f, total=entry.size, progress=progress, phase="verify")
        except BlobNotFound:
            return f"blob {entry.digest} is missing"
        if digest != entry.digest or size != entry.size:
            # flagged (persisted for remote stores): registering this content again replaces the blob
            self.artifacts.mark_suspect(entry.digest)
            return f"blob {entry.digest} is corrupted (now {digest}, {size} bytes; expected {entry.size} bytes)"
        self.artifacts.mark_suspect(entry.digest, False)  # intact (again): drop a stale flag
        return None

    def _signature_blobs(self) -> set[str]:
        """Signature bundles linked from live versions (kept by gc)."""
        from .signing import bundle_digests

        out: set[str] = set()
        for model in self.metadata.list_models():
            state = self.metadata.get_state_view(model.name)
            if state.extensions.get("signatures"):
                out |= bundle_digests(state, [mv.version for mv in self.metadata.list_versions(model.name)])
        return out

    def gc(self, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False) -> GcReport:
        """Delete blobs no version references, if older than ``grace`` (so a registration in
        flight, whose blobs are uploaded but not yet committed, is never touched), then the
        leftovers of interrupted uploads older than ``grace`` (:meth:`ArtifactStore.cleanup_partial`;
        not in a dry run), counted in ``partials_removed`` and ``partial_bytes_freed``.

        If cleaning those leftovers fails, the blobs are still collected: the error is logged
        (logger ``modelreg``) and its message returned in ``report.partials_error``."""
        if grace < timedelta(0):
            raise InvalidInputError("grace must not be negative")
        referenced = {f.digest for mv in self.metadata.iter_all_versions() for f in mv.artifact.files}
        referenced |= self._signature_blobs()
        cutoff = datetime.now(timezone.utc) - grace
        removed, freed, kept_ref, kept_recent = [], 0, 0, 0
        for blob in self.artifacts.iter_blobs():
            if blob.digest in referenced:
                kept_ref += 1
            elif blob.modified is not None and blob.modified > cutoff:
                kept_recent += 1
            else:
                if not dry_run:
                    self.artifacts.delete(blob.digest)
                removed.append(blob.digest)
                freed += blob.size
        partials: list[Any] = []
        partials_error: str | None = None
        if not dry_run:
            from .errors import ModelregError

            try:
                partials = list(self.artifacts.cleanup_partial(cutoff) or [])
            except (ModelregError, OSError) as exc:  # reported, not hidden; other exceptions are bugs
                import logging

                partials = list(getattr(exc, "removed_partials", None) or [])
                partials_error = str(exc) or type(exc).__name__
                logging.getLogger("modelreg").warning("gc: could not clean up interrupted uploads: %s", partials_error)
        # a store written for the earlier contract returns plain names: size unknown, counted as 0
        partial_bytes = sum(int(getattr(p, "size", 0) or 0) for p in partials)
        return GcReport(
            removed=removed,
            bytes_freed=freed,
            kept_referenced=kept_ref,
            kept_recent=kept_recent,
            dry_run=dry_run,
            partials_removed=len(partials),
            partial_bytes_freed=partial_bytes,
            partials_error=partials_error,
        )
