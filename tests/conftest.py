from __future__ import annotations

import pytest

from tests.backends import ARTIFACT_BACKENDS, METADATA_BACKENDS, REGISTRY_BACKENDS

pytest_plugins = ["tests.emulators", "tests.governance_support", "tests.postgres_server"]


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's registry and cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MODELREG_HOME", str(home / "registry"))
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(home / "cache"))
    monkeypatch.delenv("MODELREG_URI", raising=False)
    monkeypatch.setenv("MODELREG_ACTOR", "tester")
    import fsspec

    fsspec.AbstractFileSystem.clear_instance_cache()


@pytest.fixture(params=sorted(METADATA_BACKENDS))
def metadata_store(request: pytest.FixtureRequest, tmp_path):
    store = METADATA_BACKENDS[request.param](request, tmp_path)
    yield store
    store.close()


@pytest.fixture(params=sorted(ARTIFACT_BACKENDS))
def artifact_store(request: pytest.FixtureRequest, tmp_path):
    store = ARTIFACT_BACKENDS[request.param](request, tmp_path)
    yield store
    store.close()


@pytest.fixture(params=sorted(REGISTRY_BACKENDS))
def registry(request: pytest.FixtureRequest, tmp_path):
    """A fresh Registry on each registry-level backend."""
    from modelreg import Registry

    meta_factory, art_factory = REGISTRY_BACKENDS[request.param]
    reg = Registry(metadata=meta_factory(request, tmp_path), artifacts=art_factory(request, tmp_path))
    yield reg
    reg.close()
