"""``modelreg doctor``: what is wrong with this installation and registry, and how to fix it.

:func:`diagnose` checks, without changing anything:

- the registry location (``--registry``, else ``$MODELREG_URI``, else ``$MODELREG_HOME`` or
  ``~/.modelreg/registry``): that it parses, and for a folder that it exists (or can be created),
  is a folder, is writable (a file is created and removed again), that its database opens, and
  that the disk has room;
- permissions: a registry folder that other users may write to, files owned by another user;
- which optional features (pip extras) are installed, and the command that adds a missing one
  (for the location's scheme a missing extra is an error);
- for a bucket: credentials in the environment or the usual files, the endpoint (an emulator or
  an S3-compatible server named by ``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``, an Azure
  connection string) in reach, then the registry itself opened and listed.

Each :class:`Check` has a status (``ok``, ``info``, ``warn``, ``fail``) and, when something is
wrong, ``fix``: what to do. ``modelreg doctor`` exits with 1 when a check failed.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = ["Check", "diagnose"]

LOW_SPACE = 100 * 1024 * 1024
"""Free bytes below which the disk of a registry folder is reported as nearly full."""


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is ``"ok"``, ``"info"``, ``"warn"`` or ``"fail"`` (broken)."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


_SCHEME_EXTRA = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}


def diagnose(location: str | None = None, *, timeout: float = 10.0) -> list[Check]:
    """Every check for the registry at ``location`` (default: where ``Registry()`` would open)."""
    from ._version import __version__

    python = f"Python {sys.version.split()[0]} ({sys.executable})"
    checks = [Check("modelreg", "info", f"modelreg {__version__} on {python}")]
    where, source = _where(location)
    checks.append(Check("registry", "info", f"{where} ({source})"))
    from .errors import MissingDependencyError, ModelregError
    from .uri import parse_location

    try:
        loc = parse_location(where, "registry", source=None if location is not None else source)
    except ModelregError as exc:
        scheme = where.split("://", 1)[0].lower() if "://" in where else ""
        if isinstance(exc, MissingDependencyError) and scheme in _SCHEME_EXTRA:
            checks.append(_missing_extra(scheme))
        else:
            checks.append(Check("location", "fail", exc.render("cli"), _fix_for(exc)))
    else:
        checks += _bucket(loc.target, timeout) if loc.kind == "url" else _folder(Path(loc.target).expanduser(), timeout)
    seen = {c.name for c in checks}  # an extra the location needs is reported with it already
    return checks + [c for c in _extras() if c.name not in seen]


def _where(location: str | None) -> tuple[str, str]:
    if location is not None:
        return location, "from --registry"
    env = os.environ.get("MODELREG_URI")
    if env:
        return env, "from $MODELREG_URI"
    from .uri import default_registry_path

    source = "from $MODELREG_HOME" if os.environ.get("MODELREG_HOME") else "the default"
    return str(default_registry_path()), source


def _extras() -> list[Check]:
    from .extras import EXTRAS, FRAMEWORK_EXTRAS, install_command, missing_modules

    out = []
    for extra in [*EXTRAS, *FRAMEWORK_EXTRAS]:
        missing = missing_modules(extra)
        if missing:
            detail = f"not installed (missing: {', '.join(missing)})"
            if extra in FRAMEWORK_EXTRAS:
                detail += f"; save_model/load_model need it for {extra} models"
            out.append(Check(f"extra {extra}", "info", detail, install_command(extra)))
        else:
            out.append(Check(f"extra {extra}", "ok", "installed"))
    return out


def _fix_for(exc: BaseException) -> str:
    from .errors import (
        AccessDeniedError,
        MissingDependencyError,
        SchemaVersionError,
        StorageNotFoundError,
        UnreachableError,
    )

    if isinstance(exc, MissingDependencyError):
        return "run the pip install command above"
    if isinstance(exc, AccessDeniedError):
        return "check the credentials and the permissions on the location (or that it is not on a read-only disk)"
    if isinstance(exc, StorageNotFoundError):
        return "create the bucket or container (modelreg never creates one), or fix the name"
    if isinstance(exc, UnreachableError):
        return "check the network and the endpoint, then run `modelreg doctor` again"
    if isinstance(exc, SchemaVersionError):
        return "upgrade modelreg: pip install -U modelreg"
    return "see the message above; `modelreg --help` lists the commands"


# -- a local folder ------------------------------------------------------------------------------------
def _folder(folder: Path, timeout: float) -> list[Check]:
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            return [Check("location", "fail", f"{folder} cannot be created: {parent} is not a folder", _elsewhere())]
        if not _can_write(parent):
            return [
                Check(
                    "location",
                    "fail",
                    f"{folder} does not exist and cannot be created: {parent} is not writable",
                    f"chmod u+w {parent}, or {_elsewhere()}",
                )
            ]
        return [Check("location", "ok", f"{folder} does not exist yet; the first registration creates it")]
    if not folder.is_dir():
        return [Check("location", "fail", f"{folder} is not a folder", _elsewhere())]
    checks = [Check("location", "ok", f"{folder} exists")]
    problem = _write_probe(folder)
    if problem:
        checks.append(
            Check(
                "writable",
                "fail",
                f"{folder} is not writable: {problem}",
                f"chmod -R u+w {folder} (as its owner), remount the disk read-write, or {_elsewhere()}; "
                "reading still works",
            )
        )
    else:
        checks.append(Check("writable", "ok", f"{folder} is writable"))
    checks += _permissions(folder, writable=problem is None)
    checks += _space(folder)
    db = folder / "modelreg.db"
    if db.exists():
        checks.append(_open(str(folder), timeout))
    else:
        checks.append(Check("database", "info", f"no {db.name} yet: an empty registry"))
    return checks


def _elsewhere() -> str:
    return "pick another folder with --registry PATH (or $MODELREG_HOME)"


def _can_write(folder: Path) -> bool:
    return _write_probe(folder) is None


def _write_probe(folder: Path) -> str | None:
    """None when a file can be created in ``folder`` (and is removed again), else why not."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".modelreg-doctor-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(name)
    return None


def _permissions(folder: Path, writable: bool) -> list[Check]:
    out = []
    st = folder.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "every user" if st.st_mode & stat.S_IWOTH else "its group"
        out.append(
            Check(
                "permissions",
                "warn",
                f"{folder} is writable by {who} (mode {stat.filemode(st.st_mode)}): others can change the registry",
                f"chmod go-w {folder}, unless the registry is shared on purpose",
            )
        )
    uid = os.getuid() if hasattr(os, "getuid") else None
    foreign = []
    for path in (folder, folder / "modelreg.db", folder / "blobs", folder / "blobs" / "tmp"):
        try:
            owner = path.stat().st_uid
        except OSError:
            continue
        if uid is not None and uid != 0 and owner != uid:
            foreign.append(path)
        if writable and path.exists() and not os.access(path, os.W_OK):  # (a read-only folder: said above)
            out.append(
                Check("permissions", "fail", f"{path} is not writable by this user", f"chmod u+w {path} (as its owner)")
            )
    if foreign:
        out.append(
            Check(
                "permissions",
                "warn",
                f"owned by another user: {', '.join(map(str, foreign))}",
                "run modelreg as that user, or chown the registry folder to this one",
            )
        )
    if not out and writable:
        out.append(Check("permissions", "ok", "the folder, database and blob folders are this user's to write"))
    return out


def _space(folder: Path) -> list[Check]:
    import shutil

    from .formatting import human_size

    free = shutil.disk_usage(folder).free
    if free < LOW_SPACE:
        return [Check("disk", "warn", f"only {human_size(free)} free on the disk of {folder}", "free some space")]
    return [Check("disk", "ok", f"{human_size(free)} free")]


def _open(where: str, timeout: float) -> Check:
    """Open the registry and list its models (in a thread: a bucket may not answer)."""
    box: dict[str, Any] = {}

    def attempt() -> None:
        try:
            from .registry import Registry

            with Registry(where) as reg:
                box["models"] = len(reg.list_models())
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=attempt, name="modelreg-doctor", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return Check(
            "open", "fail", f"opening the registry took more than {timeout:g} s", "check the network and the endpoint"
        )
    error = box.get("error")
    if error is not None:
        from .errors import ModelregError

        text = error.render("cli") if isinstance(error, ModelregError) else f"{type(error).__name__}: {error}"
        return Check("open", "fail", f"cannot open the registry: {text}", _fix_for(error))
    return Check("open", "ok", f"opened: {box['models']} model(s)")


# -- a bucket --------------------------------------------------------------------------------------------
def _bucket(url: str, timeout: float) -> list[Check]:
    from .extras import missing_modules

    scheme = url.split("://", 1)[0].lower()
    extra = _SCHEME_EXTRA.get(scheme)
    checks: list[Check] = []
    if extra is not None and missing_modules(extra):
        return [_missing_extra(scheme)]
    probe: Callable[[], list[Check]] = {"s3": _aws, "gcs": _gcp, "azure": _azure}.get(extra or "", list)
    found = probe()
    checks += found
    if any(c.status == "fail" for c in found):
        return checks  # the endpoint is out of reach: opening would only wait for the retries
    checks.append(_open(url, timeout))
    return checks


def _missing_extra(scheme: str) -> Check:
    from .extras import install_command

    extra = _SCHEME_EXTRA[scheme]
    detail = f"{scheme}:// needs the {extra} extra, which is not installed"
    return Check(f"extra {extra}", "fail", detail, install_command(extra))


def _reach(name: str, endpoint: str, what: str) -> Check:
    """Whether a TCP connection to ``endpoint`` (a URL or host:port) opens within 3 seconds."""
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        return Check(
            name,
            "fail",
            f"{what} {endpoint} is not in reach: {exc.strerror or exc}",
            f"start the server (or emulator) on {host}:{port}, or fix the setting that names it",
        )
    return Check(name, "ok", f"{what} {endpoint} answers")


def _first_env(*names: str) -> tuple[str, str] | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return name, value
    return None


def _aws() -> list[Check]:
    home = Path.home()
    sources = [n for n in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE") if os.environ.get(n)]
    sources += [
        f"~/.aws/{f.name}"
        for f in (
            Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials")),
            Path(os.environ.get("AWS_CONFIG_FILE", home / ".aws" / "config")),
        )
        if f.is_file()
    ]
    if os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        sources.append("the container's task role")
    if sources:
        checks = [Check("credentials", "ok", "AWS credentials from " + ", ".join(sources))]
    else:
        checks = [
            Check(
                "credentials",
                "warn",
                "no AWS credentials in the environment or ~/.aws (an instance role may still provide them)",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run `aws configure`",
            )
        ]
    endpoint = _first_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    if endpoint:
        checks.append(_reach("endpoint", endpoint[1], f"the S3 endpoint (${endpoint[0]})"))
    return checks


def _gcp() -> list[Check]:
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        return [
            Check("credentials", "info", "an emulator needs no credentials"),
            _reach("endpoint", emulator, "the GCS emulator ($STORAGE_EMULATOR_HOST)"),
        ]
    adc = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    default = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
    if adc and not Path(adc).is_file():
        return [
            Check(
                "credentials",
                "fail",
                f"$GOOGLE_APPLICATION_CREDENTIALS names {adc}, which does not exist",
                "point it at a service-account key file, or unset it",
            )
        ]
    if adc or default.is_file():
        return [Check("credentials", "ok", f"Google credentials from {adc or default}")]
    return [
        Check(
            "credentials",
            "warn",
            "no Google credentials file (on Google Cloud the metadata server may still provide them)",
            "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS",
        )
    ]


def _azure() -> list[Check]:
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if conn:
        parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
        checks = [Check("credentials", "ok", "Azure credentials from $AZURE_STORAGE_CONNECTION_STRING")]
        if parts.get("BlobEndpoint"):
            checks.append(_reach("endpoint", parts["BlobEndpoint"], "the blob endpoint of the connection string"))
        return checks
    settings = ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_ID")
    names = [n for n in settings if os.environ.get(n)]
    if names:
        return [Check("credentials", "ok", "Azure settings from " + ", ".join(f"${n}" for n in names))]
    return [
        Check(
            "credentials",
            "warn",
            "no Azure credentials in the environment (a managed identity may still provide them)",
            "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with a key, SAS token or `az login`",
        )
    ]
