"""Storage URLs and their fsspec filesystems: the scheme table, the optional packages each scheme
needs, and ``filesystem_for``. The stores open their filesystems here; :mod:`modelreg.uri`, which
parses registry locations and opens the stores, uses it too (like fsspec's own registry of
protocols, next to the implementations)."""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

from ..errors import InvalidInputError, MissingDependencyError

__all__ = [
    "DATABASE_SCHEMES",
    "LOCAL_SCHEMES",
    "SCHEMES",
    "SCHEME_PATTERN",
    "STORAGE_SCHEMES",
    "filesystem_for",
    "is_installed",
    "missing_dependency",
    "require_backend",
    "scheme_of",
]

# cloud scheme -> (module to import, extra to install)
SCHEMES: dict[str, tuple[str, str]] = {
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "az": ("adlfs", "azure"),
    "gcs": ("gcsfs", "gcs"),
    "gs": ("gcsfs", "gcs"),
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
}
DATABASE_SCHEMES: dict[str, tuple[str, str]] = {
    "postgresql": ("psycopg", "postgres"),
    "postgres": ("psycopg", "postgres"),
}
"""Schemes of metadata databases (``postgresql+<driver>`` reads as ``postgresql``): the module to
import and the extra to install. Metadata only: ``metadata=``, or with ``?artifacts=`` a registry."""
LOCAL_SCHEMES = ("file", "memory")
STORAGE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", *LOCAL_SCHEMES)
"""Schemes of storage URLs: a bucket registry, artifacts=, and what follows ``json+``."""
SCHEME_PATTERN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")


def scheme_of(url: str) -> str | None:
    """The lower-cased scheme of a ``scheme://...`` URL (grammar rules 2 and 3), else None."""
    m = SCHEME_PATTERN.match(url)
    return m.group(1).lower() if m and url[m.end() :].startswith("//") else None


def require_backend(scheme: str, url: str | None = None) -> None:
    """Import the fsspec implementation for ``scheme`` or raise a pip hint."""
    entry = SCHEMES.get(scheme)
    if entry is None:
        return
    module, extra = entry
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise missing_dependency(scheme, url, module, extra) from exc


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (gcsfs reads its settings then)."""
    if sys.modules.get(module) is not None:
        return True
    import importlib.util  # only storage URLs get here

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_dependency(scheme: str, url: str | None, module: str, extra: str) -> MissingDependencyError:
    from ..extras import install_command

    where = f"{url!r} uses the {scheme}:// scheme, which" if url else f"the {scheme}:// scheme"
    return MissingDependencyError(
        f"{where} needs the {module} package, which is not installed; install it with: {install_command(extra)}"
    )


def _quiet_gcsfs() -> None:
    # gcsfs reads this when first imported; its experimental zonal/HNS support
    # stalls ~60 s per bucket against an emulator (a custom endpoint)
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def filesystem_for(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Return ``(fsspec filesystem, root path)`` for a URL or local path."""
    import fsspec

    scheme = scheme_of(url)
    options = dict(storage_options or {})
    if scheme in ("gs", "gcs") and (options.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")):
        _quiet_gcsfs()
    if scheme is None:
        url = os.path.abspath(os.path.expanduser(url))
    elif scheme == "file":
        pass
    else:
        require_backend(scheme, url)
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise InvalidInputError(
                f"unknown storage scheme {scheme!r} in {url!r}; supported schemes: "
                + ", ".join(f"{s}://" for s in STORAGE_SCHEMES)
            ) from None
        raise
    except ImportError as exc:
        raise MissingDependencyError(f"opening {url!r} needs a package that is not installed: {exc}") from exc
    return fs, root
