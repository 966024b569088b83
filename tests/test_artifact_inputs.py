"""What ``register`` accepts as an artifact: symlinks, special files, and files that change while
they are registered (src/modelreg/transfer.py). Each refusal says what is wrong and what to do, and
leaves the registry fully usable with nothing committed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modelreg import InvalidInputError, Registry, cli
from modelreg.errors import ArtifactChangedError
from modelreg.models import Artifact

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks and FIFOs")


def open_registry(kind: str, tmp_path: Path) -> Registry:
    if kind == "sqlite":
        return Registry(tmp_path / "reg")
    return Registry(metadata=f"json+file://{tmp_path}/m", artifacts=str(tmp_path / "b"))


@pytest.fixture(params=["sqlite", "json"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    r = open_registry(request.param, tmp_path)
    r.kind = request.param  # type: ignore[attr-defined]
    yield r
    r.close()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def blobs(reg: Registry) -> dict[str, bytes]:
    out = {}
    for info in reg.artifacts.iter_blobs():
        with reg.artifacts.open(info.digest) as f:
            out[info.digest] = f.read()
    return out


def assert_no_wrong_blob(reg: Registry) -> None:
    """The invariant change detection protects: no blob is stored under a digest its content does not have."""
    for name, data in blobs(reg).items():
        assert digest_of(data) == name, f"blob {name} holds other content"


def assert_usable(reg: Registry, models: list[str], tmp_path: Path) -> None:
    """verify, search, gc and list work and show exactly ``models`` (besides this check's own
    ``probe``), and a new registration commits and downloads."""
    report = reg.verify()
    assert report.ok, report.problems
    assert [m.name for m in reg.list_models() if m.name != "probe"] == models
    assert sorted({mv.name for mv in reg.search("")} - {"probe"}) == models
    reg.gc(grace=timedelta(0))
    assert_no_wrong_blob(reg)
    probe = reg.register("probe", write(tmp_path / "probe" / "p.bin", os.urandom(64)), capture=None)
    out = reg.download(probe.ref, tmp_path / "probe-out", overwrite=True)
    assert out.read_bytes() == (tmp_path / "probe" / "p.bin").read_bytes()
    assert reg.verify().ok
    assert [m.name for m in reg.list_models()] == sorted([*models, "probe"])


def refused(reg: Registry, path: Path, match: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidInputError, match=match) as info:
        reg.register("m", path, capture=None, **kwargs)
    return str(info.value)


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks, e.g. on a FIFO."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} blocked for {seconds}s (did it open a FIFO?)"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- symlinks: the artifact path itself ------------------------------------------------------------
def test_a_file_symlink_stores_the_target_and_records_it(reg: Registry, tmp_path: Path) -> None:
    target = write(tmp_path / "store" / "blobs" / "abc123", b"weights" * 100)
    link = tmp_path / "snap" / "model.safetensors"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    mv = reg.register("m", link, capture=None)
    assert mv.artifact.kind == "file"
    assert mv.artifact.name == "model.safetensors"
    assert [f.path for f in mv.artifact.files] == ["model.safetensors"]
    assert mv.artifact.symlink_target == str(target.resolve())
    assert mv.digest == digest_of(b"weights" * 100)
    out = reg.download(mv.ref, tmp_path / "out")
    assert out.name == "model.safetensors" and not out.is_symlink() and out.read_bytes() == b"weights" * 100
    with open_registry(reg.kind, tmp_path) as again:  # type: ignore[attr-defined] # persisted
        assert again.get_version(mv.ref).artifact.symlink_target == str(target.resolve())
    plain = reg.register("m", target, capture=None)
    assert plain.artifact.symlink_target is None and plain.digest == mv.digest
    assert_usable(reg, ["m"], tmp_path)


def test_a_folder_symlink_is_walked_and_recorded(reg: Registry, tmp_path: Path) -> None:
    real = tmp_path / "real"
    write(real / "a.txt", "a")
    write(real / "sub" / "b.txt", "b")
    link = tmp_path / "saved"
    link.symlink_to(real)
    mv = reg.register("m", link, capture=None)
    assert mv.artifact.kind == "directory" and mv.artifact.name == "saved"
    assert mv.artifact.symlink_target == str(real.resolve())
    assert [f.path for f in mv.artifact.files] == ["a.txt", "sub/b.txt"]
    assert mv.digest == reg.register("m", real, capture=None).digest


def test_old_artifact_records_load_without_the_new_field() -> None:
    old = {
        "kind": "file",
        "name": "m.bin",
        "digest": digest_of(b"x"),
        "size": 1,
        "files": [{"path": "m.bin", "digest": digest_of(b"x"), "size": 1}],
        "format": None,
    }
    art = Artifact.model_validate(old)
    assert art.symlink_target is None
    newer = Artifact.model_validate({**old, "symlink_target": "/x/m.bin", "from_the_future": 1})
    assert newer.symlink_target == "/x/m.bin"
    assert Artifact.model_validate(json.loads(newer.model_dump_json())) == newer


# -- symlinks inside a folder ------------------------------------------------------------------------
def test_links_inside_the_folder_are_stored_as_their_content(reg: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    write(folder / "weights.bin", b"W" * 1000)
    write(folder / "vocab" / "words.txt", "hello")
    (folder / "latest.bin").symlink_to("weights.bin")  # relative, file
    (folder / "abs.bin").symlink_to(folder / "weights.bin")  # absolute, file
    (folder / "tok").symlink_to("vocab", target_is_directory=True)  # folder
    (folder / "vocab" / "roundabout.bin").symlink_to("../../saved/weights.bin")  # leaves and comes back
    (folder / "chain").symlink_to("latest.bin")  # link to a link
    mv = reg.register("m", folder, capture=None)
    paths = [f.path for f in mv.artifact.files]
    assert paths == [
        "abs.bin",
        "chain",
        "latest.bin",
        "weights.bin",
        "tok/roundabout.bin",
        "tok/words.txt",
        "vocab/roundabout.bin",
        "vocab/words.txt",
    ]
    assert mv.artifact.symlink_target is None
    by_path = {f.path: f.digest for f in mv.artifact.files}
    assert {by_path[p] for p in ("abs.bin", "chain", "latest.bin", "weights.bin", "tok/roundabout.bin")} == {
        digest_of(b"W" * 1000)
    }
    assert len(blobs(reg)) == 2  # content is stored once
    out = reg.download(mv.ref, tmp_path / "out")
    assert tree(out) == {p: (b"hello" if p.endswith("words.txt") else b"W" * 1000) for p in paths}
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert_usable(reg, ["m"], tmp_path)


def test_a_plain_folder_keeps_its_manifest_order_and_digest(reg: Registry, tmp_path: Path) -> None:
    """The folder digest depends on the manifest order: each folder's files, then its subfolders."""
    folder = tmp_path / "saved"
    for rel in ("z.txt", "a/y.txt", "a/b/x.txt", "a/a.txt", "b.txt", "c/d.txt"):
        write(folder / rel, rel)
    mv = reg.register("m", folder, capture=None)
    expected = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        expected += [(Path(root) / n).relative_to(folder).as_posix() for n in sorted(names)]
    assert [f.path for f in mv.artifact.files] == expected
    manifest = json.dumps([[f.path, f.digest, f.size] for f in mv.artifact.files], separators=(",", ":"))
    assert mv.digest == digest_of(manifest.encode())


# -- refusals ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_link_leaving_the_folder_is_refused_unless_asked(reg: Registry, tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "elsewhere"
    write(outside / "secret.txt", "not part of the model")
    folder = tmp_path / "saved"
    write(folder / "weights.bin", "w")
    if kind == "file":
        (folder / "sub").mkdir()
        (folder / "sub" / "leak").symlink_to(outside / "secret.txt")
        bad = "sub/leak"
    else:
        (folder / "leak").symlink_to(outside, target_is_directory=True)
        bad = "leak"
    msg = refused(reg, folder, "outside the folder")
    assert repr(str(folder / bad)) in msg and repr(str(folder)) in msg
    assert "follow_symlinks=True" in msg and "--follow-symlinks" not in msg  # Python's words in Python
    with pytest.raises(InvalidInputError) as info:
        reg.register("m", folder, capture=None)
    in_the_cli = info.value.render("cli")  # what `modelreg register` prints
    assert (
        "pass --follow-symlinks to store what it points to" in in_the_cli and "follow_symlinks=True" not in in_the_cli
    )
    assert blobs(reg) == {}  # refused before anything was hashed or uploaded
    assert_usable(reg, [], tmp_path)

    mv = reg.register("m", folder, capture=None, follow_symlinks=True)
    stored = {f.path: f.digest for f in mv.artifact.files}
    assert stored[f"{bad}/secret.txt" if kind == "folder" else bad] == digest_of(b"not part of the model")
    out = reg.download(mv.ref, tmp_path / "out")
    assert (out / (f"{bad}/secret.txt" if kind == "folder" else bad)).read_text() == "not part of the model"
    assert_usable(reg, ["m"], tmp_path)


def test_the_passwd_case(reg: Registry, tmp_path: Path) -> None:
    """A link to a system file inside a folder is not uploaded silently; the artifact path itself,
    given explicitly, is the user's choice and is recorded as a link."""
    folder = tmp_path / "saved"
    write(folder / "weights.bin", "w")
    (folder / "passwd").symlink_to("/etc/passwd")
    msg = refused(reg, folder, r"'.*saved/passwd' is a symlink to '/etc/passwd', outside the folder")
    assert "follow_symlinks=True" in msg
    link = tmp_path / "model.bin"
    link.symlink_to("/etc/passwd")
    mv = reg.register("m", link, capture=None)
    assert mv.artifact.symlink_target == os.path.realpath("/etc/passwd")


def _dangling(folder: Path) -> str:
    (folder / "gone").symlink_to("does-not-exist")
    return "gone"


def _loop(folder: Path) -> str:
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    return "a"


def _self_loop(folder: Path) -> str:
    (folder / "sub").mkdir()
    (folder / "sub" / "me").symlink_to("me")
    return "sub/me"


def _folder_loop(folder: Path) -> str:
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..", target_is_directory=True)
    return "sub/up"


def _root_loop(folder: Path) -> str:
    (folder / "zz").symlink_to(".", target_is_directory=True)
    return "zz"


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe")
    return "pipe"


def _fifo_via_link(folder: Path) -> str:
    (folder / "z").mkdir()
    os.mkfifo(folder / "z" / "pipe")
    (folder / "link").symlink_to("z/pipe")
    return "link"  # met before z/pipe: a folder's files come before its subfolders


def _socket(folder: Path) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(folder / "s.sock"))
    except OSError as exc:  # e.g. a path longer than sun_path
        pytest.skip(f"cannot create a unix socket here: {exc}")
    finally:
        sock.close()
    return "s.sock"


def _device(folder: Path) -> str:
    (folder / "null").symlink_to("/dev/null")  # refused even when links may leave the folder
    return "null"


REFUSALS = {
    "dangling": (_dangling, r"is a dangling symlink: it points to 'does-not-exist', which does not exist"),
    "loop": (_loop, r"is a symlink loop"),
    "self-loop": (_self_loop, r"is a symlink loop"),
    "folder-loop": (_folder_loop, r"is a symlink to '\.\.', a folder that contains it: a symlink loop"),
    "root-loop": (_root_loop, r"is a symlink to '\.', a folder that contains it: a symlink loop"),
    "fifo": (_fifo, r"is a FIFO \(named pipe\); only regular files and folders"),
    "fifo-via-link": (_fifo_via_link, r"'.*saved/link' is a symlink to 'z/pipe', a FIFO \(named pipe\)"),
    "socket": (_socket, r"is a socket; only regular files and folders"),
    "device": (_device, r"is a symlink to '/dev/null', a character device"),
}


@pytest.mark.parametrize("follow", [False, True], ids=["default", "follow_symlinks"])
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_special_members_are_refused(reg: Registry, tmp_path: Path, case: str, follow: bool) -> None:
    folder = tmp_path / "saved"
    write(folder / "weights.bin", "w")
    make, match = REFUSALS[case]
    bad = make(folder)
    if case == "device" and not follow:
        match = "outside the folder"
    msg = within(10, lambda: refused(reg, folder, match, follow_symlinks=follow))
    assert repr(str(folder / bad)) in msg
    assert blobs(reg) == {}
    assert_usable(reg, [], tmp_path)
    for entry in folder.iterdir():  # without the offending members the folder registers
        if entry.name != "weights.bin":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    mv = reg.register("m", folder, capture=None, follow_symlinks=follow)
    assert [f.path for f in mv.artifact.files] == ["weights.bin"]
    assert_usable(reg, ["m"], tmp_path)


@pytest.mark.parametrize("what", ["fifo", "fifo-link", "device", "dangling", "missing"])
def test_the_artifact_path_itself_is_checked(reg: Registry, tmp_path: Path, what: str) -> None:
    path = tmp_path / "model.bin"
    if what == "fifo":
        os.mkfifo(path)
        match = r"'.*model\.bin' is a FIFO \(named pipe\); .* register a regular file or a folder"
    elif what == "fifo-link":
        os.mkfifo(tmp_path / "pipe")
        path.symlink_to("pipe")
        match = r"'.*model\.bin' is a symlink to 'pipe', a FIFO \(named pipe\)"
    elif what == "device":
        path = Path("/dev/null")
        match = r"'/dev/null' is a character device"
    elif what == "dangling":
        path.symlink_to("nowhere")
        match = r"'.*model\.bin' is a dangling symlink: it points to 'nowhere'"
    else:
        match = r"artifact path '.*model\.bin' does not exist"
    within(10, lambda: refused(reg, path, match))
    assert_usable(reg, [], tmp_path)


def test_an_unreadable_subfolder_is_an_error_not_a_gap(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "saved"
    write(folder / "weights.bin", "w")
    write(folder / "locked" / "x.bin", "x")
    if os.geteuid() == 0:  # root reads every folder: simulate the permission error
        scandir = os.scandir

        def denied(path: Any = ".") -> Any:
            if os.fspath(path).endswith("locked"):
                raise PermissionError(13, "Permission denied")
            return scandir(path)

        monkeypatch.setattr(os, "scandir", denied)
    (folder / "locked").chmod(0)
    try:
        msg = refused(reg, folder, r"cannot list the folder '.*saved/locked': Permission denied")
    finally:
        (folder / "locked").chmod(stat.S_IRWXU)
        monkeypatch.undo()
    assert msg
    assert_usable(reg, [], tmp_path)


# -- content that changes while it is registered ------------------------------------------------------
class Mutator:
    """A progress callback that changes a file once, the first time ``phase`` is reported."""

    def __init__(self, phase: str, change: Callable[[], None]) -> None:
        self.phase, self.change, self.done = phase, change, False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase == self.phase and not self.done:
            self.done = True
            self.change()


def append(path: Path, data: bytes = b" and more") -> Callable[[], None]:
    def change() -> None:
        with path.open("ab") as f:
            f.write(data)

    return change


def assert_changed_error(exc: pytest.ExceptionInfo[ArtifactChangedError], path: Path) -> None:
    msg = str(exc.value)
    assert isinstance(exc.value, InvalidInputError)
    assert msg.startswith(f"{str(path)!r} changed while it was being registered (")
    assert "nothing was registered" in msg and "Register again once the file is no longer being written" in msg


@pytest.mark.parametrize("phase", ["hash", "upload"])
def test_a_file_growing_while_registered_is_refused(reg: Registry, tmp_path: Path, phase: str) -> None:
    original = os.urandom(100_000)
    path = write(tmp_path / "src" / "model.bin", original)
    mutate = Mutator(phase, append(path))
    with pytest.raises(ArtifactChangedError) as exc:
        reg.register("churn", path, capture=None, progress=mutate)
    assert mutate.done
    assert_changed_error(exc, path)
    assert blobs(reg) == {}  # a blob uploaded under the old digest is gone
    assert_usable(reg, [], tmp_path)
    mv = reg.register("churn", path, capture=None)  # now stable
    assert mv.version == 1 and mv.digest == digest_of(original + b" and more")
    assert reg.download(mv.ref, tmp_path / "out").read_bytes() == original + b" and more"
    assert_usable(reg, ["churn"], tmp_path)


def test_a_file_replaced_by_rename_while_hashed_is_refused(reg: Registry, tmp_path: Path) -> None:
    """The atomic-save pattern (write a temporary file, rename it over the old one)."""
    path = write(tmp_path / "src" / "model.bin", b"old" * 1000)

    def save() -> None:
        write(tmp_path / "src" / ".model.tmp", b"new" * 1000)
        os.replace(tmp_path / "src" / ".model.tmp", path)

    with pytest.raises(ArtifactChangedError, match=r"\(it was replaced by a new file while it was read\)") as exc:
        reg.register("churn", path, capture=None, progress=Mutator("hash", save))
    assert_changed_error(exc, path)
    assert_usable(reg, [], tmp_path)


def test_a_file_deleted_while_hashed_is_refused(reg: Registry, tmp_path: Path) -> None:
    path = write(tmp_path / "src" / "model.bin", b"x" * 1000)
    with pytest.raises(ArtifactChangedError, match=r"\(it was deleted while it was read\)") as exc:
        reg.register("churn", path, capture=None, progress=Mutator("hash", path.unlink))
    assert_changed_error(exc, path)
    assert_usable(reg, [], tmp_path)


def test_an_upload_failing_because_the_file_changed_says_so(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.errors import BackendError

    path = write(tmp_path / "src" / "model.bin", b"x" * 1000)
    put_file = reg.artifacts.put_file

    def failing(digest: str, source: Any, **kwargs: Any) -> None:
        put_file(digest, source, **kwargs)  # published, then the file changes and the store fails
        append(path)()
        raise BackendError("upload of blob failed")

    monkeypatch.setattr(reg.artifacts, "put_file", failing)
    with pytest.raises(ArtifactChangedError, match="its size, time or inode differ while uploading") as exc:
        reg.register("churn", path, capture=None)
    assert isinstance(exc.value.__context__, BackendError)
    assert blobs(reg) == {}
    monkeypatch.undo()
    assert_usable(reg, [], tmp_path)


def test_a_same_size_rewrite_the_stat_misses_is_caught_by_hashing_the_blob(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With coarse file times a rewrite of the same size may leave the stat unchanged: on a store on
    this machine the uploaded blob is hashed, and a blob that does not match its digest is deleted."""
    from modelreg import transfer

    monkeypatch.setattr(transfer, "_check_unchanged", lambda *a: None)  # the stat sees nothing
    monkeypatch.setattr(transfer, "_key", lambda st: (0, 0, 0, 0, 0))
    path = write(tmp_path / "src" / "model.bin", b"A" * 5000)
    with pytest.raises(ArtifactChangedError, match="the uploaded content differs from what was hashed") as exc:
        reg.register("churn", path, capture=None, progress=Mutator("hash", lambda: path.write_bytes(b"B" * 5000)))
    assert_changed_error(exc, path)
    assert blobs(reg) == {}
    monkeypatch.undo()
    assert_usable(reg, [], tmp_path)
    assert reg.register("churn", path, capture=None).digest == digest_of(b"B" * 5000)


def test_a_blob_shared_with_another_version_is_never_deleted(reg: Registry, tmp_path: Path) -> None:
    data = b"shared weights" * 1000
    first = reg.register("churn", write(tmp_path / "a" / "model.bin", data), capture=None)
    path = write(tmp_path / "b" / "model.bin", data)
    with pytest.raises(ArtifactChangedError) as exc:  # the dedup path: nothing is uploaded
        reg.register("fraud", path, capture=None, progress=Mutator("upload", append(path)))
    assert_changed_error(exc, path)
    assert set(blobs(reg)) == {first.digest}
    assert reg.download(first.ref, tmp_path / "out").read_bytes() == data
    assert_usable(reg, ["churn"], tmp_path)


def test_a_folder_with_one_changing_file_commits_nothing(reg: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    write(folder / "a.bin", b"a" * 3000)
    write(folder / "b.bin", b"b" * 3000)
    reg.register("churn", write(tmp_path / "v1.bin", b"v1"), capture=None)
    uploads: list[int] = []

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "upload" and done == total:
            uploads.append(done)
            if len(uploads) == 2:  # b.bin is being uploaded
                (folder / "b.bin").write_bytes(b"c" * 4000)

    with pytest.raises(ArtifactChangedError) as exc:
        reg.register("churn", folder, capture=None, progress=progress)
    assert_changed_error(exc, folder / "b.bin")
    assert [mv.version for mv in reg.list_versions("churn")] == [1]
    assert digest_of(b"b" * 3000) not in blobs(reg)
    assert_usable(reg, ["churn"], tmp_path)
    mv = reg.register("churn", folder, capture=None)
    assert mv.version == 2 and {f.path: f.size for f in mv.artifact.files} == {"a.bin": 3000, "b.bin": 4000}


def test_every_artifact_store_detects_a_change_during_upload(artifact_store: Any, tmp_path: Path) -> None:
    """On object stores the stat check finds the change and the blob this call uploaded is deleted
    (it cannot be re-read cheaply); on local stores the blob is hashed back as well."""
    from modelreg.stores.sqlite import SQLiteMetadataStore

    metadata = SQLiteMetadataStore(tmp_path / "reg.db")
    reg = Registry(metadata=metadata, artifacts=artifact_store)
    try:
        original = os.urandom(200_000)
        path = write(tmp_path / "src" / "model.bin", original)
        mutate = Mutator("upload", append(path))
        with pytest.raises(ArtifactChangedError) as exc:
            reg.register("churn", path, capture=None, progress=mutate)
        assert mutate.done
        assert_changed_error(exc, path)
        if artifact_store.remote:  # uploaded by this call and not verifiable: deleted
            assert not artifact_store.exists(digest_of(original))
        assert_no_wrong_blob(reg)
        assert reg.list_models() == [] and list(reg.search("")) == [] and reg.verify().ok
        mv = reg.register("churn", path, capture=None)
        assert reg.download(mv.ref, tmp_path / "out").read_bytes() == original + b" and more"
        assert reg.verify().ok
        reg.gc(grace=timedelta(0))
        assert_no_wrong_blob(reg)
    finally:
        metadata.close()  # the artifact_store fixture closes the store


# -- the CLI -------------------------------------------------------------------------------------------
def test_cli_follow_symlinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = cli.main(["--registry", str(tmp_path / "reg"), *args])
        out, err = capsys.readouterr()
        return rc, out, err

    write(tmp_path / "shared" / "tokenizer.json", "{}")
    folder = tmp_path / "saved"
    write(folder / "weights.bin", "w")
    (folder / "tokenizer.json").symlink_to(tmp_path / "shared" / "tokenizer.json")
    rc, out, err = run("register", "m", str(folder), "--no-capture")
    assert rc == 2 and out == ""
    assert err.startswith(f"error: {str(folder / 'tokenizer.json')!r} is a symlink to ")
    assert "outside the folder" in err and "--follow-symlinks" in err
    rc, out, err = run("register", "m", str(folder), "--no-capture", "--follow-symlinks", "--json")
    assert rc == 0, err
    assert sorted(f["path"] for f in json.loads(out)["artifact"]["files"]) == ["tokenizer.json", "weights.bin"]

    link = tmp_path / "model.bin"
    link.symlink_to(folder / "weights.bin")
    rc, out, err = run("register", "m", str(link), "--no-capture")
    assert rc == 0, err
    assert out.startswith(f"registered m/2: file 'model.bin' (symlink to {str(folder / 'weights.bin')!r}), ")

    os.mkfifo(tmp_path / "pipe")
    rc, out, err = within(10, lambda: run("register", "m", str(tmp_path / "pipe"), "--no-capture"))
    assert rc == 2 and "is a FIFO (named pipe)" in err

    capsys.readouterr()
    assert cli.main(["register", "--help"]) == 0
    assert "--follow-symlinks" in capsys.readouterr().out
