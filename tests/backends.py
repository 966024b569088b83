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


def _cloud_blobs(fixture: str) -> Callable[[pytest.FixtureRequest, Path], Any]:
    """Blobs under ``<bucket>/blobs`` on an emulator (fixtures in tests/emulators.py)."""

    def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        from modelreg.stores.artifacts import FsspecArtifactStore

        bucket = request.getfixturevalue(fixture)
        return FsspecArtifactStore(f"{bucket.url}/blobs", **bucket.storage_options)

    factory.__name__ = f"_{fixture}_blobs"
    return factory


_s3_blobs = _cloud_blobs("s3_bucket")
_gcs_blobs = _cloud_blobs("gcs_bucket")
_azure_blobs = _cloud_blobs("azure_container")


def _json_local(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from modelreg.stores.json import JSONMetadataStore

    return JSONMetadataStore(f"file://{tmp_path}/registry/metadata")


def _json_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    import uuid

    from modelreg.stores.json import JSONMetadataStore

    return JSONMetadataStore(f"memory://registry-{uuid.uuid4().hex}/metadata")


def _cloud_json(fixture: str) -> Callable[[pytest.FixtureRequest, Path], Any]:
    """JSON metadata under ``<bucket>/registry/metadata`` on an emulator."""

    def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        from modelreg.stores.json import JSONMetadataStore

        bucket = request.getfixturevalue(fixture)
        return JSONMetadataStore(f"{bucket.url}/registry/metadata", storage_options=bucket.storage_options)

    factory.__name__ = f"_{fixture}_json"
    return factory


_s3_json = _cloud_json("s3_bucket")
_gcs_json = _cloud_json("gcs_bucket")
_azure_json = _cloud_json("azure_container")


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A PostgresMetadataStore on a fresh database of the test server (tests/postgres_server.py)."""
    from modelreg.stores.postgres import PostgresMetadataStore

    return PostgresMetadataStore(request.getfixturevalue("postgres_dsn"), pool_size=4)


Factory = Callable[[pytest.FixtureRequest, Path], Any]

METADATA_BACKENDS: dict[str, Factory] = {
    "sqlite": _sqlite,
    "json-local": _json_local,
    "json-memory": _json_memory,
    "json-s3": _s3_json,
    "json-gcs": _gcs_json,
    "json-azure": _azure_json,
    "postgres": _postgres,
}

ARTIFACT_BACKENDS: dict[str, Factory] = {
    "local": _local_blobs,
    "memory": _memory_blobs,
    "s3": _s3_blobs,
    "gcs": _gcs_blobs,
    "azure": _azure_blobs,
}

# registry-level backends: name -> (metadata factory, artifact factory)
REGISTRY_BACKENDS: dict[str, tuple[Factory, Factory]] = {
    "sqlite+local": (_sqlite, _local_blobs),
    "sqlite+s3": (_sqlite, _s3_blobs),
    "sqlite+gcs": (_sqlite, _gcs_blobs),
    "sqlite+azure": (_sqlite, _azure_blobs),
    "json+local": (_json_local, _local_blobs),
    "json+memory": (_json_memory, _memory_blobs),
    "json+s3": (_s3_json, _s3_blobs),
    "json+gcs": (_gcs_json, _gcs_blobs),
    "json+azure": (_azure_json, _azure_blobs),
    "postgres+local": (_postgres, _local_blobs),
    "postgres+s3": (_postgres, _s3_blobs),
}
