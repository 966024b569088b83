"""Small helpers shared by the registry tests (files on disk, registry snapshots)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HELPERS = Path(__file__).parent


def write(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` (creating parent folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def make_folder(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create a folder holding ``files`` (relative POSIX path -> content)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        write(root / rel, data)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` as relative POSIX path -> content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def blob_files(registry_root: Path) -> list[Path]:
    """The content-addressed blob files of an embedded registry folder."""
    base = registry_root / "blobs" / "sha256"
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


def temp_files(registry_root: Path) -> list[Path]:
    """Leftovers of uploads in flight under ``blobs/tmp``."""
    base = registry_root / "blobs" / "tmp"
    return sorted(p for p in base.iterdir() if p.is_file()) if base.exists() else []


def blob_path(registry_root: Path, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return registry_root / "blobs" / "sha256" / hexpart[:2] / hexpart[2:]


def make_writable(path: Path) -> None:
    """Blob files are published read-only (0444); tests that damage one chmod it first."""
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)


def snapshot(reg: Any) -> dict[str, Any]:
    """Everything a registry exposes: models, versions, audit events and stored blobs.

    Two equal snapshots mean nothing observable changed in between.
    """
    return {
        "models": [m.model_dump() for m in reg.list_models()],
        "versions": [v.model_dump() for v in reg.metadata.iter_all_versions()],
        "events": [e.model_dump() for e in reg.history()],
        "blobs": sorted(b.digest for b in reg.artifacts.iter_blobs()),
    }


def metadata_snapshot(reg: Any) -> dict[str, Any]:
    """Like :func:`snapshot` without the blob listing."""
    snap = snapshot(reg)
    del snap["blobs"]
    return snap


def assert_verified(reg: Any) -> None:
    report = reg.verify()
    assert report.ok, [p.detail for p in report.problems]


def run_helper(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``tests/helpers/<script>`` with this interpreter and the current environment."""
    return subprocess.run(
        [sys.executable, str(HELPERS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        check=False,
    )


def start_helper(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPERS / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _fast_backends() -> list[str]:
    from tests.backends import REGISTRY_BACKENDS

    return sorted(k for k in REGISTRY_BACKENDS if k.rsplit("+", 1)[-1] in ("local", "memory"))


FAST_BACKENDS = _fast_backends()
"""Registry backends that need no emulator: for tests of workflow rules and messages with many
cases, where cloud round trips add only time (the ``registry`` fixture covers every backend)."""


def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Body of a fixture parametrised over backend names of tests/backends.py's REGISTRY_BACKENDS."""
    from modelreg import Registry
    from tests.backends import REGISTRY_BACKENDS

    meta_factory, art_factory = REGISTRY_BACKENDS[request.param]
    reg = Registry(metadata=meta_factory(request, tmp_path), artifacts=art_factory(request, tmp_path))
    yield reg
    reg.close()


def fenced_blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each fenced block of ``lang`` in a Markdown file."""
    blocks, current, start = [], None, 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if current is None and re.fullmatch(rf"```{lang}\s*", line):
            current, start = [], n + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, f"unclosed code block at line {start} of {path}"
    return blocks
