"""Opening stores from registry locations: the one grammar for registry URLs.

Every location string goes through :func:`parse_location` before any I/O: ``Registry(uri)``,
``Registry(metadata=..., artifacts=...)``, the CLI's ``--registry`` and ``$MODELREG_URI``. A
rejected string raises :class:`~modelreg.errors.InvalidInputError` (or
:class:`~modelreg.errors.MissingDependencyError` for a missing extra) naming the string and the
fix, and creates no folder and no database file. See docs/storage.md, "Where a registry lives".

Which locations are opened:

- ``Registry()``: ``$MODELREG_URI`` if set (and not empty), else the default local folder
  (``$MODELREG_HOME`` or ``~/.modelreg/registry``).
- ``Registry("path/to/folder")`` or ``Registry("sqlite://path/to/folder")``: the embedded default,
  SQLite metadata in ``<folder>/modelreg.db`` and blobs in ``<folder>/blobs``.
- ``Registry("s3://bucket/prefix")`` (a storage URL): JSON metadata documents under
  ``<url>/metadata`` and blobs under ``<url>/blobs``, for a registry shared through a bucket.
- ``Registry(metadata=..., artifacts=...)``: explicit stores, as locations or store objects.
  Metadata: ``sqlite://<path to .db file>``, a plain path ending in ``.db``,
  ``json+<storage URL>``, or ``postgresql://user@host:5432/db`` (``postgres://`` too).
  Artifacts: a plain path or a storage URL.
- ``Registry("postgresql://user@host/db?artifacts=s3://bucket/blobs")``: PostgreSQL metadata and the
  artifact store named by the ``artifacts`` parameter, in one string (for ``--registry`` and
  ``$MODELREG_URI``); without ``artifacts`` a PostgreSQL URL is a metadata store only.

Grammar (``parse_location``):

1. A location given as an ``os.PathLike`` (e.g. ``pathlib.Path``) is always a plain path. The
   empty string is refused.
2. A string has a *scheme* when it matches ``^[A-Za-z][A-Za-z0-9+.-]+:`` at its very start: a
   letter, then at least one more letter, digit, ``+``, ``.`` or ``-``, then ``:``. A scheme is
   compared case-insensitively. One letter before the colon is a Windows drive, so ``C:\\x`` and
   ``C:/x`` are plain paths; so is anything that does not start with a letter, e.g.
   ``./models:v2`` or ``/srv/models:v2``.
3. A string with a scheme followed by ``//`` is a URL, read by its scheme:

   - storage schemes ``s3``, ``s3a``, ``gs``, ``gcs``, ``az``, ``abfs``, ``abfss`` (a bucket or
     container, which must be named: ``s3://`` and ``s3:///x`` are refused; each needs its extra,
     e.g. ``pip install "modelreg[s3]"``), ``file`` (a path must follow) and ``memory``;
   - ``sqlite``: read as SQLAlchemy and MLflow read it, three slashes then a relative path,
     four for an absolute one (``sqlite:///reg`` and ``sqlite:///./reg`` are the relative ``reg``,
     ``sqlite:////srv/reg`` is ``/srv/reg``; ``sqlite://reg`` is also ``reg``): the registry
     folder for ``Registry(uri)``, the database file for ``metadata=``;
   - ``json+<storage URL>``: JSON metadata documents under that URL, for ``metadata=`` only;
   - ``postgresql``, ``postgres``, ``postgresql+<driver>`` and ``postgres+<driver>``: metadata on
     PostgreSQL, a libpq connection URL (host, port, database, user and settings such as
     ``sslmode``; what it leaves out comes from the ``PG*`` environment variables, the service
     file and ``~/.pgpass``). modelreg reads two parameters itself and passes the rest to libpq:
     ``artifacts=<location>`` (the artifact store, which makes the URL a whole registry) and
     ``schema=<name>`` (the PostgreSQL schema of the tables, default ``modelreg``). Needs
     ``pip install "modelreg[postgres]"``. A password in the URL is never shown in messages;
   - reserved, not supported yet: ``http`` and ``https`` (a remote registry through its HTTP
     API, e.g. ``https://host/api/v1``);
   - any other scheme is refused as unknown.

4. A string with a scheme *not* followed by ``//`` is a malformed URL, and refused, when the
   scheme is a known name (every name in 3., ``json+<anything>``, and the other common URL
   schemes in ``OTHER_SCHEMES`` such as ``ftp`` or ``sftp``) or when ``:`` is followed by ``/``
   (``foo:/x``): a scheme that works today gets a "did you mean" hint (``s3:/bucket/x`` ->
   ``s3://bucket/x``), a reserved one "not supported yet", any other "unknown scheme".
5. Anything else is a plain path (``models:v2``, ``run:2024/x``). To use a local folder whose
   name would read as a URL, write it with ``./`` in front (``./s3:/bucket``) or as an absolute
   path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError, MissingDependencyError
from .stores._fs import (
    DATABASE_SCHEMES,
    SCHEME_PATTERN,
    SCHEMES,
    STORAGE_SCHEMES,
    filesystem_for,
    is_installed,
    missing_dependency,
    scheme_of,
)

if TYPE_CHECKING:
    from .stores.base import ArtifactStore, MetadataStore

__all__ = [
    "SCHEMES",
    "Location",
    "default_registry_path",
    "filesystem_for",
    "open_stores",
    "parse_location",
    "scheme_of",
]

RESERVED_SCHEMES: dict[str, str] = {
    "http": "a remote registry through its HTTP API (http://, https://)",
    "https": "a remote registry through its HTTP API (http://, https://)",
}
OTHER_SCHEMES = frozenset(
    {
        "adl",
        "ftp",
        "ftps",
        "git",
        "github",
        "hdfs",
        "hf",
        "mongodb",
        "mysql",
        "oss",
        "redis",
        "sftp",
        "smb",
        "ssh",
        "wasb",
        "wasbs",
        "webhdfs",
    }
)
"""Common URL schemes modelreg does not open; written without ``//`` they still read as a URL."""

SQLITE_FILENAME = "modelreg.db"
BLOBS_DIRNAME = "blobs"

_CONTAINER_SCHEMES = ("az", "abfs", "abfss")
_ROLES = {"registry": "registry location", "metadata": "metadata location", "artifacts": "artifact location"}


def default_registry_path() -> Path:
    home = os.environ.get("MODELREG_HOME")
    return Path(home).expanduser() if home else Path.home() / ".modelreg" / "registry"


@dataclass(frozen=True)
class Location:
    """A parsed location. ``kind`` is one of:

    - ``"path"``: a local path (``target``, not yet expanded);
    - ``"sqlite"``: the path after ``sqlite://`` (``target``);
    - ``"json"``: JSON metadata under the storage URL ``target``;
    - ``"url"``: the storage URL ``target``;
    - ``"postgres"``: the libpq connection URL ``target`` (modelreg's own parameters removed),
      with ``artifacts`` (the ``?artifacts=`` location, if given) and ``schema``. ``text`` is the
      location without its password.
    """

    text: str
    kind: str
    target: str
    scheme: str | None = None
    artifacts: str | None = None
    schema: str | None = None


def _reserved(scheme: str) -> str | None:
    return RESERVED_SCHEMES.get(scheme)


def _database(scheme: str) -> bool:
    """``postgresql``, ``postgres`` and their ``+<driver>`` forms (modelreg always uses psycopg)."""
    return scheme.partition("+")[0] in DATABASE_SCHEMES


def _redact(text: str) -> str:
    """A URL without the password of its ``user:password@`` part (for messages)."""
    m = SCHEME_PATTERN.match(text)
    if m is None or not text[m.end() :].startswith("//"):
        return text
    netloc = text[m.end() + 2 :].split("/", 1)[0].split("?", 1)[0]
    if "@" not in netloc or ":" not in netloc.rpartition("@")[0]:
        return text
    user = netloc.rpartition("@")[0].split(":", 1)[0]
    return text.replace(netloc, user + "@" + netloc.rpartition("@")[2], 1)


def _known(scheme: str) -> bool:
    return (
        scheme in STORAGE_SCHEMES
        or scheme == "sqlite"
        or scheme.startswith("json+")
        or _database(scheme)
        or _reserved(scheme) is not None
        or scheme in OTHER_SCHEMES
    )


def _works_today(role: str) -> str:
    urls = ", ".join(f"{s}://" for s in STORAGE_SCHEMES)
    if role == "metadata":
        return (
            "sqlite:///path/to/reg.db, a path ending in .db, json+<storage URL> "
            "(e.g. json+s3://bucket/registry/metadata), or postgresql://user@host:5432/db"
        )
    if role == "artifacts":
        return f"a folder path, or a storage URL ({urls})"
    return (
        f"a folder path, sqlite://<folder>, a storage URL ({urls}), "
        "or postgresql://user@host/db?artifacts=<storage URL>"
    )


def _suggest(scheme: str, rest: str) -> str:
    """``s3:/bucket/x`` -> ``s3://bucket/x``; ``file:/tmp/x`` -> ``file:///tmp/x``."""
    base = scheme[len("json+") :] if scheme.startswith("json+") else scheme
    if base == "sqlite":  # an absolute path takes four slashes
        return f"{scheme}:///{rest}"
    if base == "file":
        return f"{scheme}://{rest}"
    return f"{scheme}://{rest.lstrip('/')}"


def parse_location(value: str | os.PathLike[str], role: str = "registry", *, source: str | None = None) -> Location:
    """Read ``value`` by the module's grammar, for ``role`` ``"registry"``, ``"metadata"`` or
    ``"artifacts"``; raise InvalidInputError or MissingDependencyError naming it and the fix.

    Nothing is imported, opened or created. ``source`` names where the value came from (e.g.
    ``"$MODELREG_URI"``) for the message.
    """
    text = os.fspath(value)
    what = f"{_ROLES[role]} {_redact(text)!r}" + (f" (from {source})" if source else "")

    def fail(detail: str, hint_folder: bool = False) -> InvalidInputError:
        if hint_folder:
            detail += f" (for a local folder of that name, write './{text}')"
        return InvalidInputError(f"{what}: {detail}")

    if not text.strip():
        raise fail(f"is empty; use {_works_today(role)}")
    m = None if not isinstance(value, str) else SCHEME_PATTERN.match(text)  # a PathLike is always a path
    if m is None:
        return _for_role(Location(text, "path", text), role, fail)
    scheme, rest = m.group(1).lower(), text[m.end() :]
    is_url = rest.startswith("//")
    if not is_url and not _known(scheme) and not rest.startswith("/"):
        return _for_role(Location(text, "path", text), role, fail)  # rule 5: e.g. models:v2

    purpose = _reserved(scheme)
    if purpose is not None:
        raise fail(f"{purpose} is not supported yet; today use {_works_today(role)}")
    if not _known(scheme) or scheme in OTHER_SCHEMES:
        raise fail(f"unknown scheme {scheme!r}; supported: {_works_today(role)}", hint_folder=not is_url)
    if not is_url:
        raise fail(
            f"is not a valid URL ('{scheme}:' must be followed by '//'); did you mean {_suggest(scheme, rest)!r}?",
            hint_folder=True,
        )

    if _database(scheme):
        return _postgres_location(text, role, fail)
    if scheme == "sqlite":
        # as SQLAlchemy and MLflow read it: sqlite:///reg.db is the relative reg.db,
        # sqlite:////srv/reg.db the absolute /srv/reg.db
        path = rest[2:]
        if path.startswith("/"):
            path = path[1:]
        if path in ("", "/"):
            noun, example = (
                ("database file", "sqlite:///path/to/reg.db")
                if role == "metadata"
                else ("folder", "sqlite:///path/to/folder")
            )
            raise fail(f"names no {noun}; use {example}")
        return _for_role(Location(text, "sqlite", path, scheme), role, fail)
    if scheme.startswith("json+"):
        inner = text[len("json+") :]
        inner_scheme = scheme_of(inner)
        if inner_scheme not in STORAGE_SCHEMES:
            raise fail(
                "json+ must be followed by a storage URL ("
                + ", ".join(f"{s}://" for s in STORAGE_SCHEMES)
                + "), e.g. json+s3://bucket/registry/metadata or json+file:///srv/registry/metadata"
            )
        _check_storage_url(inner, str(inner_scheme), fail)
        return _for_role(Location(text, "json", inner, inner_scheme), role, fail)
    _check_storage_url(text, scheme, fail)
    return _for_role(Location(text, "url", text, scheme), role, fail)


def _postgres_location(text: str, role: str, fail: Any) -> Location:
    """A ``postgresql://`` location: modelreg's parameters (``artifacts``, ``schema``) taken out,
    the rest left to libpq; refused where it does not fit ``role``. Nothing is imported."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit

    parts = urlsplit(text)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("artifacts", "schema")}
    rest = [(k, v) for k, v in query if k not in ("artifacts", "schema")]
    query_text = urlencode(rest, quote_via=quote)
    target = f"postgresql://{parts.netloc}{parts.path}" + (f"?{query_text}" if query_text else "")
    artifacts = ours.get("artifacts")
    if role == "artifacts":
        raise fail(f"names a metadata store, not an artifact store; use {_works_today('artifacts')}")
    if artifacts is not None and not artifacts.strip():
        raise fail("has an empty ?artifacts= parameter; name the artifact store, e.g. ?artifacts=s3://bucket/blobs")
    if role == "registry" and not artifacts:
        raise fail(
            "names a PostgreSQL metadata store only; a registry also needs an artifact store: pass "
            "Registry(metadata=<this URL>, artifacts='s3://bucket/blobs'), or name it in the URL with "
            "?artifacts=<location> (e.g. 'postgresql://user@host/db?artifacts=s3://bucket/blobs')"
        )
    if role == "metadata" and artifacts is not None:
        raise fail("names its artifact store with ?artifacts=; as metadata=... pass the artifact store as artifacts=")
    if "schema" in ours and not ours["schema"].strip():
        raise fail("has an empty ?schema= parameter; name the PostgreSQL schema or leave it out (default: modelreg)")
    if artifacts is not None:
        try:
            parse_location(artifacts, "artifacts")  # refused now, before anything is opened
        except MissingDependencyError:
            raise
        except InvalidInputError as exc:
            raise fail(f"its ?artifacts= parameter is refused: {exc}") from None
    module, extra = DATABASE_SCHEMES["postgresql"]
    if not is_installed(module):
        raise missing_dependency("postgresql", _redact(text), module, extra)
    return Location(_redact(text), "postgres", target, "postgresql", artifacts=artifacts, schema=ours.get("schema"))


def _check_storage_url(url: str, scheme: str, fail: Any) -> None:
    body = url.split("://", 1)[1]
    if scheme in SCHEMES:
        if not body.split("/", 1)[0]:
            noun = "container" if scheme in _CONTAINER_SCHEMES else "bucket"
            raise fail(f"names no {noun}; use {scheme}://<{noun}>/<prefix>, e.g. {scheme}://my-{noun}/registry")
        module, extra = SCHEMES[scheme]
        if not is_installed(module):
            raise missing_dependency(scheme, url, module, extra)
    elif scheme == "file" and body.strip("/") == "":
        raise fail("names no folder; use file:///absolute/path/to/folder")


def _for_role(loc: Location, role: str, fail: Any) -> Location:
    """Refuse a well-formed location that does not fit ``role``."""
    if role == "registry" and loc.kind == "json":
        raise fail(
            f"json+<url> names a metadata store only; pass it as metadata=... together with "
            f"artifacts=..., or open the whole registry at {loc.target!r}"
        )
    if role == "artifacts" and loc.kind in ("sqlite", "json"):
        raise fail(f"names a metadata store, not an artifact store; use {_works_today('artifacts')}")
    if role == "metadata":
        if loc.kind == "url":
            raise fail(
                f"a storage URL holds JSON metadata only with the json+ prefix; did you mean "
                f"{'json+' + loc.text!r}? (or use {_works_today('metadata')})"
            )
        if loc.kind == "path" and not loc.text.endswith(".db"):
            raise fail(f"unsupported metadata location (a plain path must end in .db); use {_works_today('metadata')}")
    return loc


def _child(url: str, name: str) -> str:
    """``s3://b/reg`` + ``metadata`` -> ``s3://b/reg/metadata``; ``memory://`` + ``x`` -> ``memory://x``."""
    return url + name if url.endswith("://") else f"{url.rstrip('/')}/{name}"


def open_stores(
    uri: str | os.PathLike[str] | None = None,
    *,
    metadata: Any = None,
    artifacts: Any = None,
    storage_options: dict[str, Any] | None = None,
    **store_kwargs: Any,
) -> tuple[MetadataStore, ArtifactStore]:
    """Resolve the Registry constructor's arguments to ``(MetadataStore, ArtifactStore)``.

    Every location is parsed (and refused) before any store is opened or any folder created.
    """
    from .stores.artifacts import FsspecArtifactStore
    from .stores.base import ArtifactStore, MetadataStore

    if uri is not None and (metadata is not None or artifacts is not None):
        raise InvalidInputError("pass either a registry location or metadata=/artifacts=, not both")
    source = None
    if uri is None and metadata is None and artifacts is None:
        env = os.environ.get("MODELREG_URI")
        if env:
            uri, source = env, "$MODELREG_URI"
        else:
            uri = default_registry_path()
    options = dict(storage_options or {})

    if uri is not None:
        loc = parse_location(uri, "registry", source=source)
        if loc.kind == "postgres" and loc.artifacts is not None:
            art = parse_location(loc.artifacts, "artifacts")
            return _postgres_store(loc, store_kwargs), FsspecArtifactStore(art.target, **options)
        if loc.kind == "url":
            meta = _json_store(_child(loc.target, "metadata"), options, store_kwargs)
            return meta, FsspecArtifactStore(_child(loc.target, BLOBS_DIRNAME), **options)
        folder = Path(loc.target).expanduser()
        if folder.suffix == ".db":
            raise InvalidInputError(
                f"{loc.text!r} looks like a database file; pass a folder, or metadata='sqlite:///{folder}' "
                "together with artifacts=..."
            )
        _make_folder(folder, loc.text)
        from .stores.sqlite import SQLiteMetadataStore

        return (
            SQLiteMetadataStore(folder / SQLITE_FILENAME, **store_kwargs),
            FsspecArtifactStore(str(folder / BLOBS_DIRNAME)),
        )

    if metadata is None or artifacts is None:
        raise InvalidInputError("pass both metadata= and artifacts= (URLs or store objects), or one registry location")
    meta_loc = None if isinstance(metadata, MetadataStore) else parse_location(os.fspath(metadata), "metadata")
    art_loc = None if isinstance(artifacts, ArtifactStore) else parse_location(os.fspath(artifacts), "artifacts")
    meta_store = metadata if meta_loc is None else _open_metadata(meta_loc, options, store_kwargs)
    art_store = artifacts if art_loc is None else FsspecArtifactStore(art_loc.target, **options)
    return meta_store, art_store


def _open_metadata(loc: Location, options: dict[str, Any], store_kwargs: dict[str, Any]) -> MetadataStore:
    if loc.kind == "json":
        return _json_store(loc.target, options, store_kwargs)
    if loc.kind == "postgres":
        return _postgres_store(loc, store_kwargs)
    from .stores.sqlite import SQLiteMetadataStore

    path = Path(loc.target).expanduser()
    if loc.kind == "sqlite":
        _make_folder(path.parent, loc.text)
    return SQLiteMetadataStore(path, **store_kwargs)


def _make_folder(folder: Path, given: str) -> None:
    """Create a registry's folder; a failure is a BackendError of its kind (access denied, no
    space, a file in the way...) naming the folder, never a raw OSError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from .stores._cloud import translate

        raise translate(
            exc, backend="local", location=given, action="create", obj=f"the folder {str(folder)!r}"
        ) from exc


def _postgres_store(loc: Location, store_kwargs: dict[str, Any]) -> MetadataStore:
    """Open :class:`~modelreg.stores.postgres.PostgresMetadataStore` (psycopg is imported here, first)."""
    try:
        from .stores.postgres import PostgresMetadataStore
    except ImportError as exc:
        module, extra = DATABASE_SCHEMES["postgresql"]
        raise missing_dependency("postgresql", loc.text, module, extra) from exc
    kwargs = dict(store_kwargs)
    if loc.schema:
        kwargs.setdefault("schema", loc.schema)
    return PostgresMetadataStore(loc.target, **kwargs)


def _json_store(url: str, options: dict[str, Any], store_kwargs: dict[str, Any]) -> MetadataStore:
    try:
        from .stores.json import JSONMetadataStore
    except ImportError as exc:  # pragma: no cover - the JSON store ships with modelreg
        raise MissingDependencyError(f"the JSON metadata store is unavailable: {exc}") from exc
    return JSONMetadataStore(url, storage_options=options, **store_kwargs)
