"""MLflow clients on a modelreg registry: a model registry store and an artifact repository for
MLflow's plugin entry points (``mlflow.model_registry_store``, ``mlflow.artifact_repository``).

After ``mlflow.set_registry_uri("modelreg:///srv/models")`` (or any modelreg location written as
``modelreg+<location>``: ``modelreg+s3://bucket/registry``,
``modelreg+postgresql://user@host/db?artifacts=s3://bucket/blobs``...), ``MlflowClient``,
``mlflow.register_model``, ``log_model(registered_model_name=...)`` and
``mlflow.pyfunc.load_model("models:/churn@champion")`` read and write the modelreg registry
through :class:`ModelregRegistryStore`: every change goes through :class:`~modelreg.Registry`, so
validation, governance (a policy refusal is an ``MlflowException`` with modelreg's message), the
audit chain and verification apply. Versions are downloaded through
:class:`ModelregArtifactRepository` (verified, from the local snapshot cache).

How MLflow's model maps onto modelreg's (docs/mlflow.md, "MLflow clients on modelreg"):

- names: :func:`~modelreg.trackers.mlflow_import.to_modelreg_name` (reversible), as the import;
- stages ``None``/``Staging``/``Production``/``Archived`` are ``experimental``/``staging``/
  ``production``/``archived``; production stays exclusive (the previous holder is archived even
  with ``archive_existing_versions=False``);
- aliases that are stage names become ``mlflow-<alias>`` and read back as ``<alias>``; other
  aliases modelreg refuses are mapped as the import maps them;
- a new version's files are downloaded from its MLflow source (a run's or a logged model's
  artifacts) and stored in the registry; its run gives params, metrics, tags and lineage, as
  ``register(run=...)`` does; the version's ``source`` reads back as MLflow gave it;
- modelreg never deletes or renames a model (its audit chain is its identity): those calls are
  refused with a clear error; deleting a version purges it (its number stays taken).

MLflow is imported by this module: it is only loaded by MLflow's plugin discovery.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from mlflow.entities.file_info import FileInfo
from mlflow.entities.model_registry import (
    ModelVersion as MlflowModelVersion,
)
from mlflow.entities.model_registry import (
    ModelVersionTag,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from mlflow.entities.model_registry import (
    RegisteredModel as MlflowRegisteredModel,
)
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry import (
    SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
)
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchModelUtils, SearchModelVersionUtils, SearchUtils

from .errors import (
    AlreadyExistsError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    InvalidTransitionError,
    ModelregError,
    NotFoundError,
    PolicyViolation,
    SignatureError,
    UnreachableError,
)
from .models import ModelVersion, RegisteredModel, Stage
from .registry import Registry
from .trackers.base import keep_valid, strip_credentials
from .trackers.mlflow_import import map_alias, to_mlflow_name, to_modelreg_name

__all__ = [
    "SCHEMES",
    "ModelregArtifactRepository",
    "ModelregRegistryStore",
    "registry_location",
]

#: The URI schemes served: ``modelreg`` (a local folder) and ``modelreg+<scheme>`` for every
#: location ``Registry(...)`` opens. Each is an entry point of both MLflow plugin groups.
SCHEMES = (
    "modelreg",
    *(
        f"modelreg+{s}"
        for s in (
            "file",
            "sqlite",
            "memory",
            "s3",
            "s3a",
            "gs",
            "gcs",
            "az",
            "abfs",
            "abfss",
            "postgresql",
            "postgres",
        )
    ),
)

TO_MLFLOW_STAGE = {
    Stage.EXPERIMENTAL: "None",
    Stage.STAGING: "Staging",
    Stage.PRODUCTION: "Production",
    Stage.ARCHIVED: "Archived",
}
FROM_MLFLOW_STAGE = {v.lower(): k for k, v in TO_MLFLOW_STAGE.items()}
_ALIAS_PREFIX = "mlflow-"
_T = TypeVar("_T")


# -- locations --------------------------------------------------------------------------------------
def registry_location(uri: str) -> str:
    """The modelreg location an MLflow registry URI names.

    ``modelreg:///srv/models`` is the folder ``/srv/models``, ``modelreg:models`` (or
    ``modelreg:./models``) a folder relative to the working directory; ``modelreg+<location>``
    is ``<location>`` as ``Registry(...)`` reads it (``modelreg+s3://bucket/registry``,
    ``modelreg+sqlite:///models``, ``modelreg+postgresql://host/db?artifacts=s3://b/blobs``).
    """
    scheme, sep, rest = uri.partition(":")
    low = scheme.lower()
    if not sep or low not in SCHEMES:
        raise MlflowException(
            f"not a modelreg registry URI: {strip_credentials(uri)!r}; write modelreg:///path/to/registry "
            "or modelreg+<location> (modelreg+s3://bucket/registry)",
            codes.INVALID_PARAMETER_VALUE,
        )
    if low != "modelreg":
        return f"{low[len('modelreg+') :]}:{rest}"
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise MlflowException(
                f"{uri!r} names a host ({host!r}); a modelreg folder is modelreg:///absolute/path "
                "or modelreg:relative/path, a bucket modelreg+s3://bucket/prefix",
                codes.INVALID_PARAMETER_VALUE,
            )
        rest = slash + path
    if not rest:
        raise MlflowException(f"{uri!r} names no registry folder", codes.INVALID_PARAMETER_VALUE)
    return rest


@functools.lru_cache(maxsize=32)
def _open(location: str) -> Registry:
    # One Registry per location and process, as MLflow keeps one store per registry URI.
    with _translated():
        return Registry(location)


def _download_uri(store_uri: str, name: str, version: int) -> str:
    return f"{store_uri}#{quote(name, safe='/')}/{version}"


def _split_download_uri(uri: str) -> tuple[str, str]:
    base, sep, ref = uri.rpartition("#")
    if not sep or not re.fullmatch(r".+/[1-9][0-9]*", ref):
        raise MlflowException(
            f"not a modelreg version URI: {strip_credentials(uri)!r} (expected <registry URI>#<model>/<version>, "
            "as get_model_version_download_uri gives)",
            codes.INVALID_PARAMETER_VALUE,
        )
    return base, unquote(ref)


# -- errors -----------------------------------------------------------------------------------------
_CODES: list[tuple[type[ModelregError], int]] = [
    (NotFoundError, codes.RESOURCE_DOES_NOT_EXIST),
    (AlreadyExistsError, codes.RESOURCE_ALREADY_EXISTS),
    (PolicyViolation, codes.PERMISSION_DENIED),
    (SignatureError, codes.PERMISSION_DENIED),
    (InvalidTransitionError, codes.INVALID_STATE),
    (InvalidInputError, codes.INVALID_PARAMETER_VALUE),
    (ConflictError, codes.ABORTED),
    (IntegrityError, codes.DATA_LOSS),
    (UnreachableError, codes.TEMPORARILY_UNAVAILABLE),
]


@contextmanager
def _translated() -> Iterator[None]:
    """modelreg's errors as MlflowException, keeping modelreg's message (and the error as cause)."""
    try:
        yield
    except ModelregError as exc:
        code = next((c for cls, c in _CODES if isinstance(exc, cls)), codes.INTERNAL_ERROR)
        raise MlflowException(f"modelreg: {exc}", code) from exc


def _translating(fn: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        with _translated():
            return fn(*args, **kwargs)

    return wrapper


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _name(mlflow_name: str) -> str:
    if not isinstance(mlflow_name, str) or not mlflow_name:
        raise MlflowException("a registered model name is required", codes.INVALID_PARAMETER_VALUE)
    name = to_modelreg_name(mlflow_name)
    if name is None:
        raise MlflowException(
            f"model name {mlflow_name!r} is longer than modelreg's 128 characters once encoded",
            codes.INVALID_PARAMETER_VALUE,
        )
    return name


def _number(version: Any) -> int:
    try:
        number = int(str(version))
    except ValueError:
        number = 0
    if number < 1:
        raise MlflowException(f"a model version is a positive integer, got {version!r}", codes.INVALID_PARAMETER_VALUE)
    return number


def _alias(alias: str) -> str:
    mapped, why = map_alias(alias)
    if mapped is None:
        raise MlflowException(f"alias {alias!r}: {why}", codes.INVALID_PARAMETER_VALUE)
    return mapped


def _mlflow_alias(alias: str) -> str:
    """An alias as MLflow wrote it: ``mlflow-production`` was ``production``."""
    rest = alias[len(_ALIAS_PREFIX) :]
    if alias.startswith(_ALIAS_PREFIX) and rest.lower() in FROM_MLFLOW_STAGE.values():
        return rest
    return alias


def _stage(stage: str) -> Stage:
    found = FROM_MLFLOW_STAGE.get(str(stage).lower())
    if found is None:
        try:
            found = Stage(str(stage).lower())
        except ValueError:
            raise MlflowException(
                f"unknown stage {stage!r}; MLflow's stages are None, Staging, Production and Archived",
                codes.INVALID_PARAMETER_VALUE,
            ) from None
    return found


def _tags(tags: Any) -> dict[str, str]:
    """MLflow's tag objects (or a mapping) as a dict; a key modelreg refuses is an error."""
    if not tags:
        return {}
    pairs = tags.items() if isinstance(tags, dict) else ((t.key, t.value) for t in tags)
    values = {str(k): "" if v is None else str(v) for k, v in pairs}
    kept, dropped = keep_valid("tags", values)
    if dropped:
        raise MlflowException(
            f"tag keys modelreg does not allow: {', '.join(map(repr, dropped))}", codes.INVALID_PARAMETER_VALUE
        )
    return kept


def _check_max(max_results: Any, ceiling: int) -> int:
    if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
        raise MlflowException(
            f"Invalid value for max_results. It must be a positive integer, but got {max_results}",
            codes.INVALID_PARAMETER_VALUE,
        )
    if max_results > ceiling:
        raise MlflowException(
            f"Invalid value for request parameter max_results. It must be at most {ceiling}, but got value "
            f"{max_results}",
            codes.INVALID_PARAMETER_VALUE,
        )
    return max_results


def _page(items: list[Any], max_results: int, page_token: str | None) -> PagedList[Any]:
    start = SearchUtils.parse_start_offset_from_page_token(page_token)
    end = start + max_results
    return PagedList(items[start:end], SearchUtils.create_page_token(end) if end < len(items) else None)


_NAME_EQUALS = re.compile(r"\s*name\s*=\s*'((?:[^'\\]|\\.)*)'\s*")


# -- the registry store ---------------------------------------------------------------------------------
class ModelregRegistryStore(AbstractStore):
    """MLflow's ``AbstractStore`` on a modelreg :class:`~modelreg.Registry`; see the module docstring."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        if not store_uri:
            raise MlflowException("a modelreg registry URI is required", codes.INVALID_PARAMETER_VALUE)
        self.store_uri = store_uri
        self.tracking_uri = tracking_uri
        self.registry = _open(registry_location(store_uri))

    # -- conversions
    def _version_entity(self, mv: ModelVersion) -> MlflowModelVersion:
        extra = mv.lineage.extra
        return MlflowModelVersion(
            name=to_mlflow_name(mv.name),
            version=str(mv.version),
            creation_timestamp=_ms(mv.created_at),
            last_updated_timestamp=_ms(mv.updated_at or mv.created_at),
            description=mv.description,
            user_id=mv.created_by,
            current_stage=TO_MLFLOW_STAGE[mv.stage],
            source=extra.get("mlflow_source") or _download_uri(self.store_uri, mv.name, mv.version),
            run_id=mv.lineage.run_id,
            tags=[ModelVersionTag(k, v) for k, v in mv.tags.items()],
            run_link=mv.lineage.run_url,
            aliases=[_mlflow_alias(a) for a in mv.aliases],
            model_id=extra.get("model_id"),
        )

    def _model_entity(self, rm: RegisteredModel) -> MlflowRegisteredModel:
        return MlflowRegisteredModel(
            name=to_mlflow_name(rm.name),
            creation_timestamp=_ms(rm.created_at),
            last_updated_timestamp=_ms(rm.updated_at),
            description=rm.description,
            latest_versions=self._latest(rm, None),
            tags=[RegisteredModelTag(k, v) for k, v in rm.tags.items()],
            aliases=[RegisteredModelAlias(_mlflow_alias(a), str(v)) for a, v in rm.aliases.items()],
        )

    def _latest(self, rm: RegisteredModel, stages: list[str] | None) -> list[MlflowModelVersion]:
        wanted = [_stage(s) for s in stages] if stages else list(TO_MLFLOW_STAGE)
        out = []
        for stage in dict.fromkeys(wanted):
            numbers = rm.stages.get(stage.value)
            if numbers:
                out.append(self._version_entity(self.registry.get_version(rm.name, max(numbers))))
        return out

    def _get(self, name: str, version: Any) -> ModelVersion:
        return self.registry.get_version(_name(name), _number(version))

    # -- registered models
    @_translating
    def create_registered_model(
        self, name: str, tags: Any = None, description: str | None = None, deployment_job_id: Any = None
    ) -> MlflowRegisteredModel:
        rm = self.registry.create_model(_name(name), description=description or None, tags=_tags(tags))
        return self._model_entity(rm)

    @_translating
    def update_registered_model(
        self, name: str, description: str | None, deployment_job_id: Any = None
    ) -> MlflowRegisteredModel:
        rm = self.registry.update_model(_name(name), description=description or "")
        return self._model_entity(rm)

    def rename_registered_model(self, name: str, new_name: str) -> MlflowRegisteredModel:
        raise MlflowException(
            f"modelreg does not rename models: a model's name is part of its audit chain ({name!r} -> "
            f"{new_name!r} refused). Register the versions under the new name instead "
            "(MlflowClient.copy_model_version copies one without uploading it again).",
            codes.INVALID_STATE,
        )

    def delete_registered_model(self, name: str) -> None:
        with _translated():
            rm = self.registry.get_model(_name(name))
        raise MlflowException(
            f"modelreg does not delete models: {name!r} keeps its audit history "
            f"({rm.version_count} live versions). Delete (purge) its versions one by one with "
            "MlflowClient.delete_model_version, or archive them.",
            codes.INVALID_STATE,
        )

    @_translating
    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[MlflowRegisteredModel]:
        limit = _check_max(max_results, SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD)
        models = [self._model_entity(rm) for rm in self.registry.list_models()]
        found = SearchModelUtils.sort(SearchModelUtils.filter(models, filter_string), order_by)
        return _page(found, limit, page_token)

    @_translating
    def get_registered_model(self, name: str) -> MlflowRegisteredModel:
        return self._model_entity(self.registry.get_model(_name(name)))

    @_translating
    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[MlflowModelVersion]:
        return self._latest(self.registry.get_model(_name(name)), stages)

    @_translating
    def set_registered_model_tag(self, name: str, tag: Any) -> None:
        self.registry.update_model(_name(name), tags=_tags([tag]))

    @_translating
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.registry.update_model(_name(name), remove_tags=[key])

    # -- model versions
    def _fetch_source(
        self, source: str, dest: Path, model_id: str | None, local_model_path: str | None
    ) -> tuple[Path, str | None]:
        """The version's files on local disk, and the run of a logged model (MLflow 3 passes
        ``run_id=None`` with a ``models:/m-...`` source)."""
        from mlflow.artifacts import download_artifacts
        from mlflow.tracking import MlflowClient

        run_id = None
        uri = source
        if model_id:
            logged = MlflowClient(tracking_uri=self.tracking_uri).get_logged_model(model_id)
            run_id = logged.source_run_id
            if source.startswith("models:/"):
                uri = logged.artifact_location
        if local_model_path:
            return Path(local_model_path), run_id
        local = download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=self.tracking_uri)
        return Path(local), run_id

    @_translating
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Any = None,
        run_link: str | None = None,
        description: str | None = None,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> MlflowModelVersion:
        from .trackers import merge_run
        from .trackers.mlflow import describe_mlflow_run

        model = _name(name)
        self.registry.get_model(model)  # MLflow's rule: the registered model exists first
        version_tags = _tags(tags)
        extra: dict[str, Any] = {"tracker": "mlflow", "mlflow_source": source, "registered_through": "mlflow"}
        if self.tracking_uri:
            extra["tracking_uri"] = strip_credentials(self.tracking_uri)
        if model_id:
            extra["model_id"] = model_id
        with tempfile.TemporaryDirectory(prefix="modelreg-mlflow-") as tmp:
            local, logged_run = self._fetch_source(source, Path(tmp), model_id, local_model_path)
            run_id = run_id or logged_run
            lineage: dict[str, Any] = {"extra": extra}
            params: dict[str, Any] = {}
            metrics: dict[str, float] = {}
            if run_id:
                from mlflow.tracking import MlflowClient

                try:
                    info = describe_mlflow_run(
                        MlflowClient(tracking_uri=self.tracking_uri), run_id, self.tracking_uri or ""
                    )
                except MlflowException as exc:  # a deleted run: keep its id
                    extra["run_not_readable"] = f"{type(exc).__name__}: {exc}"[:500]
                    lineage["run_id"] = run_id
                else:
                    params, metrics, version_tags, lineage = merge_run(
                        info, params=None, metrics=None, tags=version_tags, lineage=lineage
                    )
            if run_link and not lineage.get("run_url"):
                lineage["run_url"] = run_link
            fmt = "mlflow" if local.is_dir() and (local / "MLmodel").is_file() else None
            mv = self.registry.register(
                model,
                local,
                params=params,
                metrics=metrics,
                tags=version_tags,
                lineage=lineage,
                description=description or None,
                format=fmt,
                capture=None,
            )
        return self._version_entity(mv)

    @_translating
    def update_model_version(self, name: str, version: Any, description: str | None) -> MlflowModelVersion:
        mv = self._get(name, version)
        return self._version_entity(self.registry.set_description(f"{mv.name}/{mv.version}", description or ""))

    @_translating
    def transition_model_version_stage(
        self, name: str, version: Any, stage: str, archive_existing_versions: bool
    ) -> MlflowModelVersion:
        mv = self._get(name, version)
        target = _stage(stage)
        moved = self.registry.transition(mv.name, mv.version, target)
        if archive_existing_versions and target in (Stage.STAGING, Stage.PRODUCTION):
            for other in self.registry.list_versions(mv.name, stage=target):
                if other.version != mv.version:
                    self.registry.transition(
                        mv.name, other.version, Stage.ARCHIVED, comment="archive_existing_versions (MLflow client)"
                    )
        return self._version_entity(moved)

    @_translating
    def delete_model_version(self, name: str, version: Any) -> None:
        mv = self._get(name, version)
        self.registry.purge(f"{mv.name}/{mv.version}", comment="deleted through MLflow's client")

    @_translating
    def get_model_version(self, name: str, version: Any) -> MlflowModelVersion:
        return self._version_entity(self._get(name, version))

    @_translating
    def get_model_version_download_uri(self, name: str, version: Any) -> str:
        mv = self._get(name, version)
        return _download_uri(self.store_uri, mv.name, mv.version)

    @_translating
    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[MlflowModelVersion]:
        limit = _check_max(max_results, SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD)
        only = _NAME_EQUALS.fullmatch(filter_string or "")
        if only:  # the common call (MlflowClient.search_model_versions("name='churn'")): one model's versions
            wanted = to_modelreg_name(re.sub(r"\\(.)", r"\1", only.group(1)))
            names = [wanted] if wanted and wanted in {m.name for m in self.registry.list_models()} else []
        else:
            names = [m.name for m in self.registry.list_models()]
        versions = [self._version_entity(mv) for n in names for mv in self.registry.list_versions(n)]
        found = SearchModelVersionUtils.sort(SearchModelVersionUtils.filter(versions, filter_string), order_by)
        return _page(found, limit, page_token)

    @_translating
    def set_model_version_tag(self, name: str, version: Any, tag: Any) -> None:
        mv = self._get(name, version)
        self.registry.set_tags(f"{mv.name}/{mv.version}", _tags([tag]))

    @_translating
    def delete_model_version_tag(self, name: str, version: Any, key: str) -> None:
        mv = self._get(name, version)
        self.registry.set_tags(f"{mv.name}/{mv.version}", {}, remove=[key])

    @_translating
    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        self.registry.set_alias(_name(name), _alias(alias), _number(version))

    @_translating
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.registry.delete_alias(_name(name), _alias(alias))

    @_translating
    def get_model_version_by_alias(self, name: str, alias: str) -> MlflowModelVersion:
        return self._version_entity(self.registry.get_version(_name(name), alias=_alias(alias)))

    @_translating
    def copy_model_version(self, src_mv: Any, dst_name: str) -> MlflowModelVersion:
        src = self._get(src_mv.name, src_mv.version)
        dst = _name(dst_name)
        self.registry.create_model(dst, exist_ok=True)
        lineage = src.lineage.model_dump()
        lineage["parents"] = [*lineage.get("parents", []), f"{src.name}/{src.version}"]
        path = self.registry.fetch(f"{src.name}/{src.version}")
        mv = self.registry.register(
            dst,
            path,
            params=src.params,
            metrics=src.metrics,
            tags=src.tags,
            lineage=lineage,
            description=src.description or None,
            format=src.artifact.format,
            capture=None,
            model=src.model,
        )
        return self._version_entity(mv)

    # -- what modelreg does not serve
    def create_prompt(self, *args: Any, **kwargs: Any) -> Any:
        raise MlflowException("MLflow prompts are not stored in a modelreg registry", codes.FEATURE_DISABLED)

    def create_prompt_version(self, *args: Any, **kwargs: Any) -> Any:
        raise MlflowException("MLflow prompts are not stored in a modelreg registry", codes.FEATURE_DISABLED)


# -- the artifact repository ----------------------------------------------------------------------------
class ModelregArtifactRepository(ArtifactRepository):
    """A modelreg version's files for MLflow's loaders (``models:/`` URIs resolve to it): read
    only, downloaded once into modelreg's snapshot cache and verified there."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        base, self.ref = _split_download_uri(artifact_uri)
        self.registry = _open(registry_location(base))
        self._root: Path | None = None

    def _snapshot(self) -> Path:
        if self._root is None:
            with _translated():
                self._root = self.registry.fetch(self.ref)
        return self._root

    def _entries(self) -> dict[str, int]:
        """Every file of the version by its path in the version (a file artifact: its name)."""
        with _translated():
            artifact = self.registry.get_version(self.ref).artifact
        if artifact.kind == "file":
            return {artifact.name: artifact.size}
        return {f.path: f.size for f in artifact.files}

    def _local(self, path: str | None) -> Path:
        snap = self._snapshot()
        root = snap if snap.is_dir() else snap.parent
        rel = (path or "").strip("/")
        target = (root / rel).resolve() if rel else root
        if rel and not target.is_relative_to(root.resolve()):
            raise MlflowException(f"{path!r} leaves the version's files", codes.INVALID_PARAMETER_VALUE)
        return target

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        prefix = (path or "").strip("/")
        entries = self._entries()
        if prefix in entries:
            return []
        below = f"{prefix}/" if prefix else ""
        found: dict[str, FileInfo] = {}
        for name, size in entries.items():
            if not name.startswith(below):
                continue
            head, sep, _ = name[len(below) :].partition("/")
            full = below + head
            found[full] = FileInfo(full, True, None) if sep else FileInfo(full, False, size)
        return sorted(found.values(), key=lambda f: f.path)

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        shutil.copyfile(self._local(remote_file_path), local_path)

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        """The version's files (or the file or folder ``artifact_path`` of it) copied from the
        verified snapshot into ``dst_path`` (a new temporary folder when None), writable."""
        source = self._local(artifact_path)
        if not source.exists():
            raise MlflowException(f"{artifact_path!r} is not in {self.ref}", codes.RESOURCE_DOES_NOT_EXIST)
        if dst_path is None:
            dst_path = tempfile.mkdtemp(prefix="modelreg-mlflow-")
        elif not os.path.isdir(dst_path):
            raise MlflowException(f"the destination {dst_path!r} is not a folder", codes.INVALID_PARAMETER_VALUE)
        rel = (artifact_path or "").strip("/")
        if not rel and source.is_file():  # a file artifact: the file, under its name
            rel = source.name
        target = Path(dst_path, rel) if rel else Path(dst_path)
        if source.is_dir():
            for folder, _, files in os.walk(source):
                out = target / Path(folder).relative_to(source)
                out.mkdir(parents=True, exist_ok=True)
                for f in files:  # copyfile: the snapshot's files are read-only, the copies are not
                    shutil.copyfile(Path(folder, f), out / f)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return str(target.resolve())

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        raise MlflowException(
            f"{self.ref} is a registered modelreg version: its files never change", codes.INVALID_STATE
        )

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        raise MlflowException(
            f"{self.ref} is a registered modelreg version: its files never change", codes.INVALID_STATE
        )
