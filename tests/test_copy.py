"""``Registry.copy_to`` / ``modelreg copy SRC DST``: SQLite -> JSON (memory, local disk), JSON -> SQLite.

The copy must carry models, versions (same numbers, purged numbers stay taken),
blobs, stages, aliases, tags, logged metrics, extensions and the audit history
with the original actors, times and comments; the destination's audit chain
has the same hashes as the source's. It is idempotent, resumable after being
killed at any point, and verifies itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelreg import Registry
from modelreg.copy import copy_registry
from modelreg.errors import AlreadyExistsError, InvalidInputError
from modelreg.models import EventDraft, ModelState
from tests.test_json_store import forget


def build_source(reg: Registry, tmp: Path) -> None:
    """A registry with a bit of everything a copy has to carry."""
    files = tmp / "files"
    files.mkdir(exist_ok=True)

    def art(tag: str) -> Path:
        p = files / f"{tag}.bin"
        p.write_bytes(f"weights {tag} ".encode() * 50)
        return p

    reg.register(
        "churn",
        art("c1"),
        metrics={"auc": 0.81},
        params={"lr": 0.1},
        tags={"team": "growth"},
        actor="ana",
        capture=None,
        description="baseline",
    )
    reg.register("churn", art("c2"), metrics={"auc": 0.86}, actor="bo", capture=None)
    folder = tmp / "folder-model"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"layers": 3}')
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 300)
    reg.register("churn", folder, metrics={"auc": 0.9}, actor="ana", capture=None)
    reg.register("churn", art("c4"), actor="cy", capture=None)
    reg.transition("churn", 1, "production", actor="ana", comment="first prod")
    reg.transition("churn", 3, "production", actor="bo", comment="better auc")  # archives 1
    reg.set_alias("churn", "champion", 3, actor="bo")
    reg.set_alias("churn", "old", 1, actor="bo")
    reg.delete_alias("churn", "old", actor="bo")
    reg.set_tags("churn/3", {"approved": "yes"}, actor="dee")
    reg.log_metrics("churn/3", {"live_auc": 0.88}, step=1, actor="monitor", comment="week 1")
    reg.log_metrics("churn/3", {"live_auc": 0.87}, step=2, actor="monitor")
    reg.purge("churn/2", actor="ana", comment="leaked data")
    reg.update_model("churn", description="churn predictor", tags={"domain": "retention"}, actor="ana")
    reg.register("fraud/scorer", art("f1"), metrics={"auc": 0.99}, actor="eve", capture=None)
    reg.register("fraud/scorer", art("c1"), actor="eve", capture=None)  # same content as churn/1: one blob
    reg.metadata.update(
        "fraud/scorer",
        lambda s: (
            s.model_copy(update={"extensions": {"notes": {"r1": {"by": ["ana"], "status": "pending"}}}}),
            [EventDraft(action="annotate", actor="eve", version=1, after={"note": "r1"})],
        ),
    )
    reg.set_policy(reg.get_policy(), actor="admin", comment="store the default policy")  # the _registry document


def assert_same(src: Registry, dst: Registry, *, as_built: bool = True) -> None:
    assert [m.name for m in dst.list_models()] == [m.name for m in src.list_models()] == ["churn", "fraud/scorer"]
    for name in ("churn", "fraud/scorer", "_registry"):
        s_ev, d_ev = src.metadata.list_events(name), dst.metadata.list_events(name)
        assert [e.model_dump() for e in d_ev] == [e.model_dump() for e in s_ev]  # actors, times, comments, hashes
        assert dst.metadata.audit_head(name) == src.metadata.audit_head(name)
        assert dst.metadata.get_state(name) == src.metadata.get_state(name)
    for name in ("churn", "fraud/scorer"):
        assert dst.list_versions(name) == src.list_versions(name)
        s_model, d_model = src.get_model(name), dst.get_model(name)
        assert d_model.model_dump(exclude={"updated_at"}) == s_model.model_dump(exclude={"updated_at"})
    report = dst.verify()
    assert report.ok, report.problems
    if not as_built:
        return
    assert [v.version for v in dst.list_versions("churn")] == [1, 3, 4]
    assert dst.get_version("churn@production").version == 3 and dst.get_version("churn@champion").version == 3
    assert dst.get_version("churn/3").logged_metrics == {"live_auc": 0.87}
    assert dst.metadata.get_state("fraud/scorer").extensions["notes"]["r1"]["status"] == "pending"


def destinations(tmp: Path) -> dict[str, str]:
    return {"json-memory": f"memory://copy-{uuid.uuid4().hex}", "json-local": f"file://{tmp}/dst-json"}


@pytest.mark.parametrize("kind", ["json-memory", "json-local"])
def test_sqlite_to_json_copies_everything(tmp_path: Path, kind: str) -> None:
    src = Registry(tmp_path / "src")
    build_source(src, tmp_path)
    dst = Registry(destinations(tmp_path)[kind])
    report = src.copy_to(dst)
    assert report.ok, report.problems
    assert report.models == ["churn", "fraud/scorer"] and report.versions == 5
    # c1, c4, f1 and the folder's two files; c1 is used twice, churn/2's blob belonged to a purged version
    assert (report.blobs_copied, report.blobs_already_there) == (5, 1)
    assert_same(src, dst)
    # rollback works from the copied history
    assert dst.rollback("churn").version == 1
    out = dst.download("churn/3", tmp_path / "dl")
    assert (out / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 300


def test_copy_is_idempotent(tmp_path: Path) -> None:
    src = Registry(tmp_path / "src")
    build_source(src, tmp_path)
    dst = Registry(f"file://{tmp_path}/dst")
    first = copy_registry(src, dst)
    again = copy_registry(src, dst)
    assert first.ok and again.ok
    assert again.events_copied == 0 and again.blobs_copied == 0
    assert again.events_already_there == first.events_copied
    # the source moves on; a rerun brings only what is new
    src.transition("churn", 4, "staging", actor="ana")
    src.register("churn", tmp_path / "files" / "c4.bin", actor="ana", capture=None)
    third = copy_registry(src, dst)
    assert third.ok and third.events_copied == 2 and third.blobs_copied == 0
    assert_same(src, dst, as_built=False)
    assert [v.version for v in dst.list_versions("churn")] == [1, 3, 4, 5]


def test_json_to_sqlite(tmp_path: Path) -> None:
    src = Registry(f"memory://copy-src-{uuid.uuid4().hex}")
    build_source(src, tmp_path)
    dst = Registry(tmp_path / "dst-sqlite")
    report = src.copy_to(dst)
    assert report.ok, report.problems
    assert_same(src, dst)


def test_destination_with_another_history_is_refused(tmp_path: Path) -> None:
    src = Registry(tmp_path / "src")
    build_source(src, tmp_path)
    dst = Registry(f"file://{tmp_path}/dst")
    dst.register("churn", tmp_path / "files" / "c1.bin", actor="someone-else", capture=None)
    with pytest.raises(AlreadyExistsError, match="different history"):
        copy_registry(src, dst)


class Interrupted(BaseException):
    """The copying process died."""


def _interrupt_after(dst: Registry, k: int) -> None:
    meta = dst.metadata
    calls = {"n": 0}
    for meth in ("create_model", "add_version", "update", "purge_version"):
        real = getattr(meta, meth)

        def wrapper(*a: Any, _real: Any = real, **kw: Any) -> Any:
            calls["n"] += 1
            if calls["n"] > k:
                raise Interrupted
            return _real(*a, **kw)

        setattr(meta, meth, wrapper)


def test_interrupted_copy_resumes_at_every_step(tmp_path: Path) -> None:
    src = Registry(tmp_path / "src")
    build_source(src, tmp_path)
    k = 0
    while True:
        url = f"memory://resume-{uuid.uuid4().hex}"
        dst = Registry(url)
        _interrupt_after(dst, k)
        try:
            copy_registry(src, dst)
        except Interrupted:
            pass
        else:
            break  # k is past the last store write: nothing left to interrupt
        forget()
        partial = Registry(url)
        assert partial.verify().ok  # a half-copied registry is still consistent
        report = copy_registry(src, partial)
        assert report.ok, (k, report.problems)
        assert_same(src, partial)
        k += 3
    assert k > 9


CHILD = textwrap.dedent(
    """
    import os, sys
    from modelreg import Registry
    from modelreg.copy import copy_registry
    src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    target = Registry(dst)
    io = target.metadata.io
    seen = {"n": 0}
    for meth in ("create", "swap", "put"):
        real = getattr(io, meth)
        def wrapper(*a, _real=real, **kw):
            seen["n"] += 1
            if seen["n"] == k:
                os._exit(137)
            return _real(*a, **kw)
        setattr(io, meth, wrapper)
    copy_registry(Registry(src), target)
    print("finished")
    """
)


@pytest.mark.slow
def test_killed_copy_process_then_cli_rerun_finishes(tmp_path: Path) -> None:
    src_path = tmp_path / "src"
    src = Registry(src_path)
    build_source(src, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for k in (7, 41):  # during the first model's replay; during the second model's
        dst_url = f"file://{tmp_path}/dst-{k}"
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(src_path), dst_url, str(k)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 137, proc.stdout + proc.stderr
        cli = subprocess.run(
            [sys.executable, "-m", "modelreg", "copy", str(src_path), dst_url, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        out = json.loads(cli.stdout)
        assert out["verified"] is True and out["problems"] == [] and out["events_already_there"] > 0
        forget()
        assert_same(src, Registry(dst_url))


def test_cli_copy_reports_and_is_listed(tmp_path: Path) -> None:
    src_path = tmp_path / "src"
    build_source(Registry(src_path), tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    helped = subprocess.run(
        [sys.executable, "-m", "modelreg", "--help"], capture_output=True, text=True, env=env, check=True
    )
    assert "copy" in helped.stdout
    dst_url = f"file://{tmp_path}/dst"
    done = subprocess.run(
        [sys.executable, "-m", "modelreg", "copy", str(src_path), dst_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "copied 2 models, 5 versions" in done.stdout and "verified: ok" in done.stdout


def test_update_function_sees_copied_state(tmp_path: Path) -> None:
    """After a copy the destination is a normal registry: workflow rules apply to the copied stages."""
    src = Registry(tmp_path / "src")
    build_source(src, tmp_path)
    dst = Registry(f"file://{tmp_path}/dst")
    src.copy_to(dst)
    dst.transition("churn", 4, "production", actor="ana")
    state: ModelState = dst.metadata.get_state("churn")
    assert state.holders("production") == [4] and str(state.versions[3].stage) == "archived"


def test_copy_registry_takes_open_registries_and_copy_to_opens_a_location(tmp_path: Path) -> None:
    src = Registry(tmp_path / "src")
    build_source(src, tmp_path)
    with pytest.raises(InvalidInputError, match=r"copy_registry takes open registries.*copy_to"):
        copy_registry(src, str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()  # refused before anything was created
    report = src.copy_to(str(tmp_path / "dst"))
    assert report.ok
    with Registry(tmp_path / "dst") as dst:
        assert_same(src, dst)


def test_signatures_travel_with_a_copy(tmp_path: Path) -> None:
    from tests.test_signing import _folder, _make_key

    keys = tmp_path / "keys"
    keys.mkdir()
    priv, pub = _make_key(keys, "ana")
    src = Registry(tmp_path / "src", signing_key=priv, actor="ana")
    src.register("churn", _folder(tmp_path), capture=None, sign=True)
    src.register("churn", _folder(tmp_path, "v2", {"x.bin": b"2"}), capture=None, sign=True)
    src.transition("churn/2", "staging", sign=True)  # a signed audit event travels with the history
    src.purge("churn/1")  # its bundle is no longer linked: not copied
    (info,) = src.signatures("churn/2")
    for where in (f"memory://copy-{uuid.uuid4().hex}", tmp_path / "dst"):
        dst = Registry(where)
        report = src.copy_to(dst)
        assert report.ok, report.problems
        assert dst.artifacts.exists(info.bundle)
        (copied,) = dst.signatures("churn/2", trusted_keys=[pub])
        assert copied.valid and copied.trusted and copied.bundle == info.bundle
        assert dst.fetch("churn/2", require_signature=True, trusted_keys=[pub]).is_dir()
        assert dst.verify().ok
        (moved,) = [e for e in dst.history("churn") if e.action == "transition"]
        assert moved.after is not None and "signature" in moved.after
        again = src.copy_to(dst)
        assert again.ok and again.blobs_copied == 0
    assert report.blobs_copied == 4  # churn/2: weights.bin, sub/config.json, x.bin, and its signature bundle
