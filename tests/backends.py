"""Store factories for the conformance suites. Each backend module adds its entries here.

A factory takes pytest's ``request`` and ``tmp_path`` and returns a fresh, empty store.
Cloud factories use the emulator fixtures (``request.getfixturevalue``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from modelreg.stores.sqlite import SQLiteMetadataStore

    return SQLiteMetadataStore(tmp_path / "reg.db")


def _local_blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from modelreg.stores.artifacts import FsspecArtifactStore

    return FsspecArtifactStore(str(tmp_path / "blobs"))


def _memory_blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    import uuid

    from modelreg.stores.artifacts import FsspecArtifactStore

    return FsspecArtifactStore(f"memory://blobs-{uuid.uuid4().hex}")


Factory = Callable[[pytest.FixtureRequest, Path], Any]

METADATA_BACKENDS: dict[str, Factory] = {
    "sqlite": _sqlite,
}

ARTIFACT_BACKENDS: dict[str, Factory] = {
    "local": _local_blobs,
    "memory": _memory_blobs,
}

# registry-level backends: name -> (metadata factory, artifact factory)
REGISTRY_BACKENDS: dict[str, tuple[Factory, Factory]] = {
    "sqlite+local": (_sqlite, _local_blobs),
}
