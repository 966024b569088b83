"""modelreg: an embeddable model registry, version control for trained models.

>>> from modelreg import Registry
>>> reg = Registry("./models")                                            # doctest: +SKIP
>>> mv = reg.register("churn", "model.onnx", metrics={"auc": 0.91})       # doctest: +SKIP
>>> reg.transition("churn", mv.version, "production", comment="beats v2")  # doctest: +SKIP
"""

from __future__ import annotations

from .errors import (
    AlreadyExistsError,
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
    SchemaVersionError,
    VersionNotFound,
)
from .models import (
    Artifact,
    AuditEvent,
    CodeVersion,
    Comparison,
    Dataset,
    Environment,
    FileEntry,
    GcReport,
    Lineage,
    MetricPoint,
    ModelVersion,
    Problem,
    RegisteredModel,
    Stage,
    VerifyReport,
)
from .registry import Registry
from .stages import StageRules

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "Artifact",
    "AuditEvent",
    "BackendError",
    "BlobNotFound",
    "CodeVersion",
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
    "MetricPoint",
    "MissingDependencyError",
    "ModelNotFound",
    "ModelVersion",
    "ModelregError",
    "NotFoundError",
    "Problem",
    "RegisteredModel",
    "Registry",
    "SchemaVersionError",
    "Stage",
    "StageRules",
    "VerifyReport",
    "VersionNotFound",
    "__version__",
]
