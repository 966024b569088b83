"""Automatic lineage capture: the git state of the code and the Python environment."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

from .models import CodeVersion, Environment

__all__ = ["KEY_PACKAGES", "capture_code", "capture_environment"]

KEY_PACKAGES = (
    "modelreg",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torch",
    "tensorflow",
    "keras",
    "jax",
    "xgboost",
    "lightgbm",
    "catboost",
    "onnx",
    "onnxruntime",
    "transformers",
    "statsmodels",
)

_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _maybe_in_work_tree(cwd: Path) -> bool:
    """False only when git can find no work tree from ``cwd``: ``GIT_DIR`` and ``GIT_WORK_TREE``
    are unset and neither ``cwd`` nor any parent (of its logical or its resolved path) has a
    ``.git`` entry, which is where git's discovery looks."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return True
    try:
        paths = {cwd.absolute(), cwd.resolve()}
    except (OSError, RuntimeError):
        return True
    for path in paths:
        for folder in (path, *path.parents):
            if os.path.lexists(os.path.join(folder, ".git")):
                return True
    return False


def capture_code(start: str | os.PathLike[str] | None = None) -> CodeVersion | None:
    """Commit, remote, branch and dirty flag of the git work tree containing ``start`` (default: cwd).

    Credentials embedded in the remote URL (``https://user:token@host``) are removed.
    Returns None outside a git work tree or when git is not installed.
    """
    cwd = Path(start or os.getcwd())
    if cwd.is_file():
        cwd = cwd.parent
    if not _maybe_in_work_tree(cwd):
        return None  # git would say so too; starting it costs milliseconds on every register
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if not top:
        return None
    commit = _git(["rev-parse", "HEAD"], cwd)
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote:
        remote = _CREDENTIALS_IN_URL.sub(r"\g<scheme>", remote)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return CodeVersion(
        commit=commit,
        repo=remote or top,
        branch=None if branch == "HEAD" else branch,
        dirty=None if status is None else bool(status),
    )


@functools.lru_cache(maxsize=1)
def capture_environment() -> Environment:
    """Python version, platform and the installed versions of well-known ML packages."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return Environment(
        python=sys.version.split()[0],
        platform=platform.platform(terse=True),
        packages=packages,
    )
