"""``Registry.fetch``: verified read-only snapshots in the local cache, offline use, usage records."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from modelreg import IntegrityError, InvalidInputError, Registry, UnreachableError, UsageRecord, VersionNotFound
from modelreg.cli import main as cli_main
from tests.emulators import Bucket


def _folder(tmp_path: Path, name: str = "model") -> Path:
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(300_000))
    (folder / "sub" / "config.json").write_text('{"layers": 3}')
    return folder


def test_fetch_gives_a_read_only_snapshot_once(registry: Registry, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    mv = registry.register("churn", folder, capture=None)
    path = registry.fetch("churn/1")
    assert path.name == "model" and path.is_dir()
    assert (path / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert (path / "sub" / "config.json").read_text() == '{"layers": 3}'
    for f in (path / "weights.bin", path / "sub" / "config.json"):
        assert not f.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not path.stat().st_mode & stat.S_IWUSR  # the folder too: nothing can be added
    # same path for every form of the reference, no second download
    opened: list[str] = []
    real_open = registry.artifacts.get_file

    def spy(digest: str, *a: object, **k: object) -> None:
        opened.append(digest)
        real_open(digest, *a, **k)  # type: ignore[arg-type]

    registry.artifacts.get_file = spy  # type: ignore[method-assign]
    registry.set_alias("churn", "champion", 1)
    assert registry.fetch("churn@champion") == path
    assert registry.fetch("churn") == path
    assert registry.fetch(mv.digest) == path
    assert opened == []


def test_a_single_file_version(registry: Registry, tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx bytes")
    registry.register("churn", src, capture=None)
    path = registry.fetch("churn/1")
    assert path.name == "model.onnx" and path.read_bytes() == b"onnx bytes"


def test_a_changed_snapshot_is_rebuilt(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    folder = _folder(tmp_path)
    reg.register("churn", folder, capture=None)
    path = reg.fetch("churn/1")
    target = path / "sub" / "config.json"
    os.chmod(target.parent, 0o755)
    target.unlink()  # a file removed (or edited) by someone
    target.write_text('{"layers": 99}')
    again = reg.fetch("churn/1")
    assert again == path and (again / "sub" / "config.json").read_text() == '{"layers": 3}'
    # a damaged blob of the right size in the download cache is caught when a snapshot is built
    blob = reg.snapshots.blobs.path_for(reg.get_version("churn/1").artifact.files[0].digest)
    for f in reg.snapshots.root.rglob("*"):
        if f.is_dir():
            os.chmod(f, 0o755)
    import shutil

    shutil.rmtree(reg.snapshots.root)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.unlink()
    blob.write_bytes(bytes(data))
    # the damaged entry is evicted and fetched again from the store
    assert (reg.fetch("churn/1") / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert blob.read_bytes() == (folder / "weights.bin").read_bytes()


def test_a_corrupted_store_blob_is_never_served(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"good content")
    mv = reg.register("churn", src, capture=None)
    stored = Path(reg.artifacts._path(mv.digest))  # type: ignore[attr-defined]
    os.chmod(stored, 0o644)
    stored.write_bytes(b"evil content")
    with pytest.raises(IntegrityError, match="corrupted in the artifact store"):
        reg.fetch("churn/1")
    assert not any(p.is_file() for p in reg.snapshots.root.rglob("m.bin"))


def test_verify_rehashes_a_snapshot(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"x" * 1000)
    reg.register("churn", src, capture=None)
    path = reg.fetch("churn/1")
    # same size, same stamp: only a re-hash sees that the content differs
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"y")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert reg.fetch("churn/1").read_bytes().startswith(b"y")  # the cheap check trusts the stamp
    # verify re-hashes, finds the change and rebuilds from the store (the cached blob was the same
    # file: a snapshot's files are hard links to the download cache)
    assert reg.fetch("churn/1", verify=True).read_bytes() == b"x" * 1000


def test_fetch_errors(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    with pytest.raises(VersionNotFound):
        reg.fetch("sha256:" + "0" * 64)
    with pytest.raises(InvalidInputError):
        reg.fetch("sha256:nothex")
    src = tmp_path / "m.bin"
    src.write_bytes(b"abc")
    reg.register("churn", src, capture=None)
    with pytest.raises(VersionNotFound):
        reg.fetch("churn/7")
    with pytest.raises(InvalidInputError, match="plain files"):
        reg.load_model("churn/1")


def test_usage_records_and_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg", actor="svc")
    src = tmp_path / "m.bin"
    src.write_bytes(b"abc")
    reg.register("churn", src, capture=None)
    reg.fetch("churn/1")  # not recorded: off by default
    assert reg.metadata.list_usage("churn") == []
    reg.fetch("churn/1", record_use=True, purpose="nightly batch")
    used = reg.metadata.list_usage("churn")
    assert len(used) == 1
    u = used[0]
    assert (u.ref, u.action, u.actor, u.purpose, u.pid) == ("churn/1", "fetch", "svc", "nightly batch", os.getpid())
    assert u.digest == reg.get_version("churn/1").digest and u.host
    merged = reg.history("churn", usage=True)
    assert [type(e).__name__ for e in merged] == ["AuditEvent", "AuditEvent", "UsageRecord"]
    assert [e.action for e in reg.history("churn")] == ["create_model", "register"]  # the audit chain is untouched
    assert reg.verify().ok
    with pytest.raises(InvalidInputError, match="needs a model"):
        reg.history(usage=True)
    always = Registry(tmp_path / "reg", record_use=True)
    always.fetch("churn/1")
    assert [r.action for r in always.metadata.list_usage("churn", 1)] == ["fetch", "fetch"]


def test_usage_is_best_effort_for_a_read_only_process(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"abc")
    reg.register("churn", src, capture=None)

    def refuse(record: UsageRecord) -> None:
        from modelreg import AccessDeniedError

        raise AccessDeniedError("the registry is read-only for this process")

    reg.metadata.record_usage = refuse  # type: ignore[method-assign]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = reg.fetch("churn/1", record_use=True)
        reg.fetch("churn/1", record_use=True)
    assert path.read_bytes() == b"abc"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1  # one warning, not one per call
    assert "could not record the use of churn/1" in messages[0] and "read-only" in messages[0]


def test_cli_fetch_and_history_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"abc")
    Registry(root).register("churn", src, capture=None)
    assert cli_main(["--registry", root, "fetch", "churn/1", "--record-use", "--purpose", "smoke test"]) == 0
    out = capsys.readouterr().out.strip()
    assert Path(out).read_bytes() == b"abc"
    assert cli_main(["--registry", root, "--json", "fetch", "churn"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == out
    assert cli_main(["--registry", root, "history", "churn", "--usage"]) == 0
    table = capsys.readouterr().out
    assert "used (fetch)" in table and "smoke test" in table
    assert cli_main(["--registry", root, "history", "--usage"]) == 2
    assert "--usage needs a model" in capsys.readouterr().err


def test_snapshots_are_shared_by_processes(tmp_path: Path) -> None:
    """Two processes fetching the same version at once get the same complete snapshot."""
    root = tmp_path / "reg"
    Registry(root).register("churn", _folder(tmp_path), capture=None)
    code = (
        "import sys; from modelreg import Registry; "
        "p = Registry(sys.argv[1]).fetch('churn/1'); print(p); "
        "print(len((p / 'weights.bin').read_bytes()))"
    )
    env = {**os.environ}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({o[0] for o in outs}) == 1 and {o[1] for o in outs} == {"300000"}


@pytest.fixture
def bucket_registry(s3_bucket: Bucket, tmp_path: Path):
    options = {
        **s3_bucket.storage_options,
        "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
    }
    reg = Registry(f"{s3_bucket.url}/reg", storage_options=options)
    yield reg, s3_bucket
    reg.close()


def test_a_fetched_version_is_served_with_the_bucket_unreachable(bucket_registry, tmp_path: Path) -> None:
    reg, bucket = bucket_registry
    folder = _folder(tmp_path)
    mv = reg.register("churn", folder, capture=None)
    reg.transition("churn/1", "production")
    path = reg.fetch("churn@production")
    bucket.server.stop()
    try:
        assert reg.fetch("churn/1") == path  # by number: from the local record and snapshot
        assert reg.fetch(mv.digest) == path  # by digest
        with pytest.raises(UnreachableError, match="A stage or alias needs the metadata store; fetch a version number"):
            reg.fetch("churn@production")
        with pytest.raises(UnreachableError):
            reg.fetch("churn/2")  # never fetched
    finally:
        bucket.server.start()
        bucket.create()


def test_history_with_usage_renders_in_a_notebook(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg", actor="svc")
    src = tmp_path / "m.bin"
    src.write_bytes(b"abc")
    reg.register("churn", src, capture=None)
    reg.fetch("churn/1", record_use=True, purpose="<b>batch</b>")
    html = reg.history("churn", usage=True)._repr_html_()  # type: ignore[attr-defined]
    assert "used (fetch)" in html and "&lt;b&gt;batch&lt;/b&gt;" in html and "<b>batch" not in html
    assert html.count("<tr>") >= 3  # header, two events and the usage record
