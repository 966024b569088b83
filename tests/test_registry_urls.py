"""The registry URL grammar (``modelreg.uri``): what ``Registry(uri)``, ``Registry(metadata=...,
artifacts=...)``, ``--registry`` and ``$MODELREG_URI`` accept, and how a rejected location fails:
the exact error class, a message naming the location and the fix, and nothing created on disk."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from modelreg import InvalidInputError, MissingDependencyError, Registry, cli
from modelreg.extras import install_command
from modelreg.uri import parse_location
from tests.helpers import write

TODAY = "s3://"  # every "use instead" list names the storage schemes that work today

# (location, what the message must also contain): refused as a registry location
REJECTED = [
    # a known scheme followed by ':' but not '://'
    ("s3:/bucket/x", ["did you mean 's3://bucket/x'?", "'./s3:/bucket/x'"]),
    ("s3:x", ["did you mean 's3://x'?"]),
    ("s3a:/bucket/x", ["did you mean 's3a://bucket/x'?"]),
    ("gs:bucket", ["did you mean 'gs://bucket'?"]),
    ("gcs:/bucket/x", ["did you mean 'gcs://bucket/x'?"]),
    ("az:/c", ["did you mean 'az://c'?"]),
    ("abfs:c/x", ["did you mean 'abfs://c/x'?"]),
    ("S3:/Bucket/x", ["did you mean 's3://Bucket/x'?"]),
    ("file:/srv/reg", ["did you mean 'file:///srv/reg'?"]),
    ("memory:reg", ["did you mean 'memory://reg'?"]),
    ("sqlite:/srv/reg", ["did you mean 'sqlite:////srv/reg'?"]),
    # unknown schemes
    ("ftp://host/x", ["unknown scheme 'ftp'", TODAY]),
    ("foo://x", ["unknown scheme 'foo'", TODAY]),
    ("ftp:host/x", ["unknown scheme 'ftp'", TODAY, "'./ftp:host/x'"]),
    ("foo:/x", ["unknown scheme 'foo'", TODAY, "'./foo:/x'"]),
    # a bucket or container must be named
    ("s3://", ["names no bucket", "s3://<bucket>/<prefix>"]),
    ("s3:///x", ["names no bucket", "s3://<bucket>/<prefix>"]),
    ("gs://", ["names no bucket", "gs://<bucket>/<prefix>"]),
    ("az:///x", ["names no container", "az://<container>/<prefix>"]),
    ("abfss://", ["names no container", "abfss://<container>/<prefix>"]),
    ("file://", ["names no folder", "file:///"]),
    ("sqlite://", ["names no folder", "sqlite:///path/to/folder"]),
    ("", ["is empty", TODAY]),
    # PostgreSQL holds metadata only: a registry needs its artifact store too
    ("postgresql://user@db.example.com/registry", ["PostgreSQL metadata store only", "artifacts="]),
    ("postgres://db.example.com/registry", ["PostgreSQL metadata store only", "artifacts="]),
    ("postgresql+psycopg://db.example.com/registry", ["PostgreSQL metadata store only", "?artifacts="]),
    ("postgresql://db.example.com/registry?artifacts=s3:/b", ["did you mean 's3://b'?"]),
    ("postgresql://db.example.com/registry?artifacts=", ["empty ?artifacts= parameter"]),
    # reserved for later work
    ("https://registry.example.com/api/v1", ["HTTP API", "is not supported yet", TODAY]),
    ("http://localhost:8080/api/v1", ["HTTP API", "is not supported yet", TODAY]),
    ("https:registry.example.com", ["HTTP API", "is not supported yet"]),
    # a metadata-only form where a whole registry is expected
    ("json+s3://bucket/registry", ["metadata store only", "metadata=", "'s3://bucket/registry'"]),
]

# refused as metadata=...
REJECTED_METADATA = [
    ("s3:/bucket/meta", ["did you mean 's3://bucket/meta'?"]),
    ("json+s3:/bucket/meta", ["did you mean 'json+s3://bucket/meta'?"]),
    ("sqlite:/srv/reg.db", ["did you mean 'sqlite:////srv/reg.db'?"]),
    ("s3://bucket/meta", ["did you mean 'json+s3://bucket/meta'?"]),
    ("json+s3://", ["names no bucket"]),
    ("json+ftp://host/meta", ["json+ must be followed by a storage URL", TODAY]),
    ("json+https://host/meta", ["json+ must be followed by a storage URL", TODAY]),
    ("ftp://host/meta", ["unknown scheme 'ftp'", "sqlite:///path/to/reg.db", "json+"]),
    ("sqlite://", ["names no database file", "sqlite:///path/to/reg.db"]),
    ("meta/store", ["a plain path must end in .db", "sqlite:///path/to/reg.db"]),
    ("postgresql://db.example.com/reg?artifacts=s3://b/x", ["names its artifact store", "artifacts="]),
    ("https://registry.example.com/api/v1", ["HTTP API", "is not supported yet", "sqlite:///"]),
]

# refused as artifacts=...
REJECTED_ARTIFACTS = [
    ("s3:/bucket/blobs", ["did you mean 's3://bucket/blobs'?"]),
    ("gs:bucket", ["did you mean 'gs://bucket'?"]),
    ("az:/c", ["did you mean 'az://c'?"]),
    ("s3://", ["names no bucket"]),
    ("s3:///x", ["names no bucket"]),
    ("ftp://host/blobs", ["unknown scheme 'ftp'", TODAY]),
    ("foo://x", ["unknown scheme 'foo'", TODAY]),
    ("https://host/blobs", ["is not supported yet", TODAY]),
    ("sqlite:///srv/reg.db", ["names a metadata store, not an artifact store", TODAY]),
    ("json+s3://bucket/meta", ["names a metadata store, not an artifact store", TODAY]),
]

# the cloud extras: scheme URL, the module that is missing, the extra to install
EXTRAS = [
    ("s3://bucket/registry", "s3fs", "s3"),
    ("s3a://bucket/registry", "s3fs", "s3"),
    ("gs://bucket/registry", "gcsfs", "gcs"),
    ("gcs://bucket/registry", "gcsfs", "gcs"),
    ("az://container/registry", "adlfs", "azure"),
    ("abfs://container/registry", "adlfs", "azure"),
    ("abfss://container/registry", "adlfs", "azure"),
]


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder: a rejected location must leave it empty."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


def contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_names(message: str, location: str, needles: list[str]) -> None:
    assert repr(location) in message, f"the message does not name {location!r}: {message}"
    for needle in needles:
        assert needle in message, f"{needle!r} missing from: {message}"


def block(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``module`` (and its submodules) impossible to import, as if it were not installed."""
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


# -- Registry(uri) -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("location", "needles"), REJECTED, ids=[r[0] or "empty" for r in REJECTED])
def test_registry_refuses(cwd: Path, location: str, needles: list[str]) -> None:
    with pytest.raises(InvalidInputError) as info:
        Registry(location)
    assert type(info.value) is InvalidInputError
    assert_names(str(info.value), location, needles)
    assert contents(cwd) == []


@pytest.mark.parametrize(
    ("location", "needles"),
    [r for r in REJECTED if r[0]],  # "" means the default
    ids=[r[0] for r in REJECTED if r[0]],
)
def test_modelreg_uri_is_read_by_the_same_grammar(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, location: str, needles: list[str]
) -> None:
    monkeypatch.setenv("MODELREG_URI", location)
    with pytest.raises(InvalidInputError) as info:
        Registry()
    assert type(info.value) is InvalidInputError
    assert_names(str(info.value), location, [*needles, "$MODELREG_URI"])
    assert contents(cwd) == []
    assert not Path(os.environ["MODELREG_HOME"]).exists()


def test_a_path_object_is_always_a_path(cwd: Path) -> None:
    with Registry(Path("s3:") / "bucket") as reg:
        reg.register("churn", write(cwd.parent / "m.bin", b"m"), capture=None)
    assert (cwd / "s3:" / "bucket" / "modelreg.db").is_file()


# -- Registry(metadata=..., artifacts=...) ----------------------------------------------------------------
@pytest.mark.parametrize(("location", "needles"), REJECTED_METADATA, ids=[r[0] for r in REJECTED_METADATA])
def test_metadata_refuses(cwd: Path, location: str, needles: list[str]) -> None:
    with pytest.raises(InvalidInputError) as info:
        Registry(metadata=location, artifacts="blobs")
    assert type(info.value) is InvalidInputError
    assert_names(str(info.value), location, needles)
    assert contents(cwd) == []


@pytest.mark.parametrize(("location", "needles"), REJECTED_ARTIFACTS, ids=[r[0] for r in REJECTED_ARTIFACTS])
def test_artifacts_refuses(cwd: Path, location: str, needles: list[str]) -> None:
    # the metadata URL is valid and would create ./meta/: nothing is opened before both are checked
    with pytest.raises(InvalidInputError) as info:
        Registry(metadata="sqlite:///./meta/reg.db", artifacts=location)
    assert type(info.value) is InvalidInputError
    assert_names(str(info.value), location, needles)
    assert contents(cwd) == []


# -- missing extras ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "module", "extra"), EXTRAS, ids=[e[0].split(":")[0] for e in EXTRAS])
def test_a_missing_extra_is_reported_before_anything_is_created(
    cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    module: str,
    extra: str,
) -> None:
    block(monkeypatch, module)
    fix = install_command(extra)  # pip install "modelreg[s3]", or -e "<checkout>[s3]" from a checkout
    assert fix.startswith("pip install ") and f"[{extra}]" in fix
    attempts = [
        lambda: Registry(url),
        lambda: Registry(metadata="sqlite:///./meta/reg.db", artifacts=f"{url}/blobs"),
        lambda: Registry(metadata=f"json+{url}/metadata", artifacts="blobs"),
    ]
    for attempt in attempts:
        with pytest.raises(MissingDependencyError) as info:
            attempt()
        assert type(info.value) is MissingDependencyError
        assert url in str(info.value) and module in str(info.value) and fix in str(info.value)
    capsys.readouterr()
    assert cli.main(["--registry", url, "list"]) == cli.EXIT_FAILURE
    _out, err = capsys.readouterr()
    assert err.startswith("error: ") and fix in err and url in err and "Traceback" not in err
    assert contents(cwd) == []


# -- the CLI -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("location", "needles"), REJECTED, ids=[r[0] or "empty" for r in REJECTED])
def test_cli_refuses(cwd: Path, capsys: pytest.CaptureFixture[str], location: str, needles: list[str]) -> None:
    capsys.readouterr()
    rc = cli.main(["--registry", location, "list"])
    out, err = capsys.readouterr()
    assert rc == cli.EXIT_USAGE, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and out == ""
    assert_names(err, location, needles)
    assert contents(cwd) == []


def test_cli_refuses_a_bad_modelreg_uri(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELREG_URI", "s3:/bucket/x")
    capsys.readouterr()
    assert cli.main(["list"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "$MODELREG_URI" in err and "did you mean 's3://bucket/x'?" in err
    assert contents(cwd) == []


def test_cli_as_a_subprocess_prints_no_traceback(cwd: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "modelreg", "--registry", "s3:/bucket/x", "list"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == cli.EXIT_USAGE
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "did you mean 's3://bucket/x'?" in proc.stderr
    assert contents(cwd) == []


# -- what still opens ----------------------------------------------------------------------------------
def _register_and_read(reg: Registry, tmp_path: Path) -> None:
    mv = reg.register("churn", write(tmp_path / "model.bin", b"weights"), capture=None)
    assert reg.download(mv.ref, tmp_path / f"out-{uuid.uuid4().hex}").read_bytes() == b"weights"


@pytest.mark.parametrize(
    "location", ["reg", "./models:v2", "models:v2", "run:2024/x", "~/reg", "C:/x", "C:\\x", "./s3:/bucket/x"]
)
def test_plain_paths_open(cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str) -> None:
    monkeypatch.setenv("HOME", str(cwd))
    with Registry(location) as reg:
        _register_and_read(reg, tmp_path)
    folder = Path(location).expanduser()
    assert (cwd / folder / "modelreg.db").is_file()


def test_sqlite_folder_forms_open(cwd: Path, tmp_path: Path) -> None:
    with Registry(f"sqlite:///{tmp_path / 'abs'}") as reg:  # four slashes: an absolute path
        _register_and_read(reg, tmp_path)
    assert (tmp_path / "abs" / "modelreg.db").is_file()
    with Registry("sqlite://rel") as reg:
        _register_and_read(reg, tmp_path)
    with Registry("sqlite:///./dot") as reg:
        _register_and_read(reg, tmp_path)
    assert (cwd / "rel" / "modelreg.db").is_file() and (cwd / "dot" / "modelreg.db").is_file()


def test_explicit_stores_open(cwd: Path, tmp_path: Path) -> None:
    with Registry(metadata=f"json+file://{tmp_path / 'meta'}", artifacts=f"file://{tmp_path / 'blobs'}") as reg:
        _register_and_read(reg, tmp_path)
    assert (tmp_path / "meta").is_dir() and (tmp_path / "blobs").is_dir()
    with Registry(metadata=f"sqlite:///{tmp_path / 'sq' / 'reg.db'}", artifacts="./my:blobs") as reg:
        _register_and_read(reg, tmp_path)
    assert (tmp_path / "sq" / "reg.db").is_file() and (cwd / "my:blobs").is_dir()
    with Registry(metadata="sqlite:///./m/reg.db", artifacts="blobs") as reg:
        _register_and_read(reg, tmp_path)
    assert (cwd / "m" / "reg.db").is_file()


def test_memory_and_file_registries_open(tmp_path: Path) -> None:
    with Registry(f"memory://urls-{uuid.uuid4().hex}") as reg:
        _register_and_read(reg, tmp_path)
    with Registry(f"file://{tmp_path / 'js'}") as reg:
        _register_and_read(reg, tmp_path)
    assert (tmp_path / "js" / "metadata").is_dir() and (tmp_path / "js" / "blobs").is_dir()
    with Registry(
        metadata=f"json+memory://urls-{uuid.uuid4().hex}/metadata", artifacts=f"memory://urls-{uuid.uuid4().hex}/blobs"
    ) as reg:
        _register_and_read(reg, tmp_path)


def test_cli_opens_a_path_with_a_colon(cwd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write(tmp_path / "model.bin", b"weights")
    capsys.readouterr()
    assert cli.main(["--registry", "./models:v2", "register", "churn", str(model)]) == 0
    assert cli.main(["--registry", "./models:v2", "list"]) == 0
    assert "churn" in capsys.readouterr().out
    assert (cwd / "models:v2" / "modelreg.db").is_file()


# -- the rule itself, without I/O -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("models", "path"),
        ("/srv/models", "path"),
        ("./models:v2", "path"),
        ("/srv/models:v2", "path"),
        ("models:v2", "path"),
        ("run:2024/x", "path"),
        ("~/reg", "path"),
        ("C:\\x", "path"),
        ("C:/x", "path"),
        ("c:x", "path"),
        ("C://x", "path"),
        ("1s3:/x", "path"),
        ("_s3:/x", "path"),
        ("sqlite:///srv/reg", "sqlite"),
        ("sqlite://reg", "sqlite"),
        ("s3://bucket/x", "url"),
        ("S3://bucket/x", "url"),
        ("memory://", "url"),
        ("file:///srv/x", "url"),
    ],
)
def test_the_grammar(text: str, kind: str) -> None:
    assert parse_location(text).kind == kind


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("sqlite:///reg", "reg"),
        ("sqlite:////srv/reg", "/srv/reg"),
        ("sqlite://reg", "reg"),
        ("sqlite:///./reg", "./reg"),
        ("sqlite:///srv/reg", "srv/reg"),
    ],
)
def test_sqlite_paths_read_as_sqlalchemy_does(text: str, target: str) -> None:
    assert parse_location(text).target == target
    assert parse_location(text + ".db", "metadata").target == target + ".db"


def test_a_folder_that_cannot_be_created_is_a_backend_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelreg import StorageNotFoundError

    (tmp_path / "afile").write_text("not a folder")
    target = tmp_path / "afile" / "reg"
    with pytest.raises(StorageNotFoundError, match=r"could not create the folder .*afile/reg.*Not a directory"):
        Registry(target)
    with pytest.raises(StorageNotFoundError, match="could not create the folder"):
        Registry(metadata=f"sqlite:///{target}/reg.db", artifacts=str(tmp_path / "blobs"))
    assert cli.main(["--registry", str(target), "list"]) == 4  # StorageNotFoundError's exit code
    assert "error: could not create the folder" in capsys.readouterr().err
