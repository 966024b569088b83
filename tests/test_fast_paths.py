"""The shortcuts taken for speed give the same results as the plain way: the kernel-side copy
with read-back hashing, the deep copy of states, lineage capture outside git, lazy imports."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel

from modelreg.hashing import sha256_copy
from modelreg.lineage import capture_code
from modelreg.models import ModelState, Stage, VersionState


@pytest.mark.parametrize("size", [0, 1, 4096, 8 * 1024 * 1024 + 3])
def test_sha256_copy_between_files_hashes_what_it_wrote(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    seen: list[tuple[str, int, int]] = []
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "w+b", buffering=0) as dst:
        digest, n = sha256_copy(src, dst, total=size, progress=lambda *a: seen.append(a))
    assert (tmp_path / "dst").read_bytes() == data
    assert (digest, n) == ("sha256:" + hashlib.sha256(data).hexdigest(), size)
    if size:
        assert seen[-1] == ("download", size, size)


class _ReadOnly:
    """A stream with ``read`` only: no ``fileno``, no ``readinto``."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(n)


@pytest.mark.parametrize("kind", ["bytesio", "read-only", "buffered-ahead"])
def test_sha256_copy_streams_anything_else(tmp_path: Path, kind: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "src").write_bytes(data)
    with contextlib.ExitStack() as stack:
        if kind == "bytesio":
            src = io.BytesIO(data)
        elif kind == "read-only":
            src = _ReadOnly(data)
        else:  # a real file with data buffered ahead of its descriptor: the kernel copy would skip it
            src = stack.enter_context(open(tmp_path / "src", "rb"))
            src.read(10)
            src.seek(0)
        dst = stack.enter_context(open(tmp_path / "dst", "wb"))
        digest, n = sha256_copy(src, dst, total=len(data))
    assert (tmp_path / "dst").read_bytes() == data
    assert (digest, n) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def test_state_deep_copy_is_deep_and_equal() -> None:
    now = datetime.now(timezone.utc)
    state = ModelState(
        name="m",
        tags={"a": "b"},
        aliases={"champion": 2},
        last_version=2,
        versions={
            v: VersionState(
                stage=Stage.STAGING,
                tags={"t": str(v)},
                logged_metrics={"auc": 0.5},
                updated_at=now,
                note={"nested": [1, {"x": None}]},
            )
            for v in (1, 2)
        },
        extensions={"policy": {"gates": [{"metric": "auc", "min": 0.9}]}},
    )
    fast = state.model_copy(deep=True)
    plain = BaseModel.__deepcopy__(state)  # pydantic's own
    assert fast == plain == state
    assert fast.__pydantic_fields_set__ == state.__pydantic_fields_set__
    assert fast.versions[1].__pydantic_fields_set__ == state.versions[1].__pydantic_fields_set__
    # nothing mutable is shared with the original
    assert fast.versions is not state.versions and fast.versions[1] is not state.versions[1]
    assert fast.versions[1].tags is not state.versions[1].tags
    assert fast.versions[1].model_extra["note"]["nested"][1] is not state.versions[1].model_extra["note"]["nested"][1]
    assert fast.extensions["policy"]["gates"][0] is not state.extensions["policy"]["gates"][0]
    fast.versions[1].tags["t"] = "changed"
    fast.extensions["policy"]["gates"].clear()
    assert state.versions[1].tags["t"] == "1" and state.extensions["policy"]["gates"]
    assert copy.deepcopy(state.versions[2]) == state.versions[2]


def test_capture_code_outside_and_inside_a_work_tree(tmp_path: Path) -> None:
    outside = tmp_path / "plain" / "deep"
    outside.mkdir(parents=True)
    if subprocess.run(["git", "-C", str(outside), "rev-parse"], capture_output=True, check=False).returncode == 0:
        pytest.fail(f"{tmp_path} is inside a git work tree; the test needs a folder outside one")
    assert capture_code(outside) is None
    repo = tmp_path / "repo"
    sub = repo / "models"
    sub.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@x",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@x",
    }
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (sub / "m.bin").write_bytes(b"w")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "x"], check=True, env=env)
    code = capture_code(sub / "m.bin")
    assert code is not None and code.commit and code.dirty is False


def test_import_modelreg_loads_no_records_until_asked() -> None:
    code = (
        "import sys, modelreg\n"
        "assert 'pydantic' not in sys.modules and 'modelreg.registry' not in sys.modules, sorted(sys.modules)\n"
        "from modelreg import Registry, Stage, ModelVersion, IntegrityError\n"
        "assert Registry.__module__ == 'modelreg.registry' and Stage.PRODUCTION == 'production'\n"
        "assert set(modelreg.__all__) <= set(dir(modelreg))\n"
        "try:\n    modelreg.NoSuchThing\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "has no attribute 'NoSuchThing'" in out


def test_sha256_copy_into_a_write_only_file_hashes_every_byte(tmp_path) -> None:
    """A destination that cannot be read back takes the buffered path, not the kernel copy."""
    import hashlib

    from modelreg.hashing import sha256_copy

    data = os.urandom(3 * 1024 * 1024 + 5)
    src_path = tmp_path / "src.bin"
    src_path.write_bytes(data)
    for mode, buffering in (("wb", -1), ("wb", 0), ("w+b", 0)):
        dst_path = tmp_path / f"dst-{mode}-{buffering}.bin"
        with open(src_path, "rb") as src, open(dst_path, mode, buffering=buffering) as dst:
            got, n = sha256_copy(src, dst, total=len(data))
        assert (got, n) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        assert dst_path.read_bytes() == data
