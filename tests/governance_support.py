"""Fixtures and helpers shared by the governance, events and webhook tests.

Governance only touches metadata, so its tests run once per *metadata* store:
one registry-level backend per distinct metadata factory in
``tests/backends.py`` (preferring one with local blobs), instead of every
metadata x artifact combination.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import REGISTRY_BACKENDS

ROOT = Path(__file__).resolve().parents[1]


def _blob_rank(key: str) -> int:
    blobs = key.rpartition("+")[2]
    return {"local": 0, "memory": 1}.get(blobs, 2)


def distinct_metadata_backends() -> list[str]:
    chosen: dict[Any, str] = {}
    for key in sorted(REGISTRY_BACKENDS, key=lambda k: (_blob_rank(k), k)):
        meta, _ = REGISTRY_BACKENDS[key]
        chosen.setdefault(meta, key)
    return sorted(chosen.values())


GOV_BACKENDS = distinct_metadata_backends()


@pytest.fixture(params=GOV_BACKENDS)
def gov_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh Registry (default actor ``ana``) on each metadata store."""
    from modelreg import Registry

    meta, art = REGISTRY_BACKENDS[request.param]
    reg = Registry(metadata=meta(request, tmp_path), artifacts=art(request, tmp_path), actor="ana")
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Any]:
    """A Registry on SQLite, for tests of store-independent logic (gate evaluation, messages)."""
    from modelreg import Registry

    reg = Registry(tmp_path / "reg", actor="ana")
    yield reg
    reg.close()


def model_file(tmp_path: Path, content: bytes = b"weights") -> Path:
    path = tmp_path / f"model-{abs(hash(content)) % 10_000}.bin"
    path.write_bytes(content)
    return path


SHARED_BACKENDS = {
    "sqlite": lambda root: str(root / "reg"),
    "json-file": lambda root: "file://" + str(root / "shared"),
}
"""Registry locations that several processes can open at once."""


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``sys.argv[1:] == args``."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def start_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
