"""modelreg: an embeddable model registry, version control for trained models.

>>> from modelreg import Registry
>>> reg = Registry("./models")
>>> mv = reg.register("churn", "model.onnx", metrics={"auc": 0.91})
>>> reg.transition("churn", mv.version, "production", comment="beats v2")
ModelVersion('churn', version=1, stage='production', digest='sha256:...', size=...)
"""

# module-level helpers are imported under private names: the package's public namespace is
# exactly __all__ (tests/test_exports.py)
import importlib as _importlib
import typing as _typing

from ._version import __version__
from .errors import (
    AccessDeniedError,
    AlreadyExistsError,
    ArtifactChangedError,
    BackendBusyError,
    BackendError,
    BlobNotFound,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    InvalidReferenceError,
    InvalidTransitionError,
    MissingDependencyError,
    ModelNotFound,
    ModelregError,
    NotFoundError,
    OutOfSpaceError,
    PolicyViolation,
    SchemaVersionError,
    SignatureError,
    StorageNotFoundError,
    UnreachableError,
    UnsafeModelError,
    VersionNotFound,
)

# Everything else loads on first access (module ``__getattr__``, as pydantic does), so that
# ``import modelreg`` stays cheap (no pydantic models are built until a record or the Registry is
# used); ``from modelreg import Registry, Stage`` works as usual.
_LAZY: dict[str, str] = {
    "Artifact": "models",
    "AuditCheck": "models",
    "AuditEvent": "models",
    "CodeVersion": "models",
    "ColumnSpec": "models",
    "Comparison": "models",
    "Dataset": "models",
    "Environment": "models",
    "FileEntry": "models",
    "GcReport": "models",
    "Lineage": "models",
    "LoadedFrom": "models",
    "MetricPoint": "models",
    "ModelInfo": "models",
    "ModelVersion": "models",
    "Problem": "models",
    "RegisteredModel": "models",
    "Signature": "models",
    "Stage": "models",
    "UsageRecord": "models",
    "VerifyReport": "models",
    "Registry": "registry",
    "StageRules": "stages",
}

if _typing.TYPE_CHECKING:  # for type checkers and documentation tools
    from .models import (
        Artifact,
        AuditCheck,
        AuditEvent,
        CodeVersion,
        ColumnSpec,
        Comparison,
        Dataset,
        Environment,
        FileEntry,
        GcReport,
        Lineage,
        LoadedFrom,
        MetricPoint,
        ModelInfo,
        ModelVersion,
        Problem,
        RegisteredModel,
        Signature,
        Stage,
        UsageRecord,
        VerifyReport,
    )
    from .registry import Registry
    from .stages import StageRules


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "Artifact",
    "ArtifactChangedError",
    "AuditCheck",
    "AuditEvent",
    "BackendBusyError",
    "BackendError",
    "BlobNotFound",
    "CodeVersion",
    "ColumnSpec",
    "Comparison",
    "ConflictError",
    "Dataset",
    "Environment",
    "FileEntry",
    "GcReport",
    "IntegrityError",
    "InvalidInputError",
    "InvalidReferenceError",
    "InvalidTransitionError",
    "Lineage",
    "LoadedFrom",
    "MetricPoint",
    "MissingDependencyError",
    "ModelInfo",
    "ModelNotFound",
    "ModelVersion",
    "ModelregError",
    "NotFoundError",
    "OutOfSpaceError",
    "PolicyViolation",
    "Problem",
    "RegisteredModel",
    "Registry",
    "SchemaVersionError",
    "Signature",
    "SignatureError",
    "Stage",
    "StageRules",
    "StorageNotFoundError",
    "UnreachableError",
    "UnsafeModelError",
    "UsageRecord",
    "VerifyReport",
    "VersionNotFound",
    "__version__",
]
