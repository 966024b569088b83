"""Opening stores from URLs.

Rules (see docs/concepts.md, "Where a registry lives"):

- ``Registry()``: ``$MODELREG_URI`` if set, else the default local folder
  (``$MODELREG_HOME`` or ``~/.modelreg/registry``).
- ``Registry("path/to/folder")``: a plain path is the embedded default, SQLite
  metadata in ``<folder>/modelreg.db`` and blobs in ``<folder>/blobs``.
- ``Registry("s3://bucket/prefix")`` (any URL with a scheme): JSON metadata
  documents and blobs under that root, for a registry shared through a bucket.
- ``Registry(metadata=..., artifacts=...)``: explicit stores, as URLs or objects.
  Metadata URLs: ``sqlite:///path/reg.db``, or a ``json+<fsspec url>``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, MissingDependencyError

__all__ = ["default_registry_path", "filesystem_for", "open_stores", "SCHEMES"]

# scheme -> (module to import, extra to install)
SCHEMES: dict[str, tuple[str, str]] = {
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "az": ("adlfs", "azure"),
    "gcs": ("gcsfs", "gcs"),
    "gs": ("gcsfs", "gcs"),
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
}

SQLITE_FILENAME = "modelreg.db"
BLOBS_DIRNAME = "blobs"


def default_registry_path() -> Path:
    home = os.environ.get("MODELREG_HOME")
    return Path(home).expanduser() if home else Path.home() / ".modelreg" / "registry"


def scheme_of(url: str) -> str | None:
    if "://" not in url:
        return None
    scheme = url.split("://", 1)[0].lower()
    if len(scheme) == 1:  # a Windows drive letter, e.g. C://
        return None
    return scheme


def require_backend(scheme: str) -> None:
    """Import the fsspec implementation for ``scheme`` or raise a pip hint."""
    entry = SCHEMES.get(scheme)
    if entry is None:
        return
    module, extra = entry
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {scheme}:// scheme needs the {module} package, which is not installed; "
            f'install it with: pip install "modelreg[{extra}]"'
        ) from exc


def filesystem_for(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Return ``(fsspec filesystem, root path)`` for a URL or local path."""
    import fsspec

    scheme = scheme_of(url)
    options = dict(storage_options or {})
    if scheme in ("gs", "gcs") and (options.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")):
        # gcsfs reads this when first imported; its experimental zonal/HNS support
        # stalls ~60 s per bucket against an emulator (a custom endpoint)
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    if scheme is None:
        url = os.path.abspath(os.path.expanduser(url))
    elif scheme == "file":
        pass
    else:
        require_backend(scheme)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            known = ", ".join(sorted({*SCHEMES, "file", "memory"}))
            raise InvalidInputError(f"unknown storage scheme {scheme!r} in {url!r}; supported schemes: {known}") from None
        raise
    return fs, root


def open_stores(
    uri: str | os.PathLike[str] | None = None,
    *,
    metadata: Any = None,
    artifacts: Any = None,
    storage_options: dict[str, Any] | None = None,
    **store_kwargs: Any,
) -> tuple[Any, Any]:
    """Resolve the Registry constructor's arguments to ``(MetadataStore, ArtifactStore)``."""
    from .stores.artifacts import FsspecArtifactStore
    from .stores.base import ArtifactStore, MetadataStore

    if uri is not None and (metadata is not None or artifacts is not None):
        raise InvalidInputError("pass either a registry location or metadata=/artifacts=, not both")
    if uri is None and metadata is None and artifacts is None:
        uri = os.environ.get("MODELREG_URI") or str(default_registry_path())
    options = dict(storage_options or {})

    if uri is not None:
        uri = os.fspath(uri)
        scheme = scheme_of(uri)
        if scheme is None or scheme == "sqlite":
            folder = Path(uri[len("sqlite://"):] if scheme == "sqlite" else uri).expanduser()
            if folder.suffix == ".db":
                raise InvalidInputError(
                    f"{uri!r} looks like a database file; pass a folder, or metadata='sqlite:///{folder}' "
                    "together with artifacts=..."
                )
            folder.mkdir(parents=True, exist_ok=True)
            from .stores.sqlite import SQLiteMetadataStore

            return (
                SQLiteMetadataStore(folder / SQLITE_FILENAME, **store_kwargs),
                FsspecArtifactStore(str(folder / BLOBS_DIRNAME)),
            )
        root = uri.rstrip("/")
        meta = _json_store(f"{root}/metadata", options, store_kwargs)
        return meta, FsspecArtifactStore(f"{root}/{BLOBS_DIRNAME}", **options)

    if metadata is None or artifacts is None:
        raise InvalidInputError("pass both metadata= and artifacts= (URLs or store objects), or one registry location")
    if isinstance(metadata, MetadataStore):
        meta_store = metadata
    else:
        meta_store = _metadata_from_url(os.fspath(metadata), options, store_kwargs)
    if isinstance(artifacts, ArtifactStore):
        art_store = artifacts
    else:
        art_store = FsspecArtifactStore(os.fspath(artifacts), **options)
    return meta_store, art_store


def _metadata_from_url(url: str, options: dict[str, Any], store_kwargs: dict[str, Any]) -> Any:
    scheme = scheme_of(url)
    if scheme == "sqlite":
        from .stores.sqlite import SQLiteMetadataStore

        path = url[len("sqlite://"):]
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:] if path.startswith("/./") else path
        if not path or path == "/":
            raise InvalidInputError(f"{url!r} names no database file; use sqlite:///path/to/reg.db")
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return SQLiteMetadataStore(Path(path).expanduser(), **store_kwargs)
    if scheme is not None and scheme.startswith("json+"):
        return _json_store(url[len("json+"):], options, store_kwargs)
    if scheme is None and url.endswith(".db"):
        from .stores.sqlite import SQLiteMetadataStore

        return SQLiteMetadataStore(Path(url).expanduser(), **store_kwargs)
    raise InvalidInputError(
        f"unsupported metadata location {url!r}; use sqlite:///path/reg.db or json+<url> "
        "(e.g. json+s3://bucket/registry/metadata)"
    )


def _json_store(url: str, options: dict[str, Any], store_kwargs: dict[str, Any]) -> Any:
    try:
        from .stores.json import JSONMetadataStore
    except ImportError as exc:  # pragma: no cover - the JSON store ships with modelreg
        raise MissingDependencyError(f"the JSON metadata store is unavailable: {exc}") from exc
    return JSONMetadataStore(url, storage_options=options, **store_kwargs)
