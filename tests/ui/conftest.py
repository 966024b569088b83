from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelreg import Registry
from tests.ui.demo import populate


@pytest.fixture
def reg_path(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def demo_registry(reg_path: Path, tmp_path: Path) -> Iterator[Registry]:
    """A local registry with three models and a history (see tests/ui/demo.py)."""
    reg = Registry(reg_path)
    populate(reg, tmp_path / "work")
    yield reg
    reg.close()


@pytest.fixture
def client(demo_registry: Registry):
    from starlette.testclient import TestClient

    from modelreg.ui import create_app

    with TestClient(create_app(demo_registry)) as c:
        yield c
