"""Developer and CI sessions. `nox -s tests` is the README's test command.

It installs modelreg with every extra, the npm emulators (Azurite) from
package.json, Debian's Chromium for the browser tests and Debian's PostgreSQL server for the
PostgreSQL tests when they are missing,
checks formatting and lint with ruff and types with mypy, and runs the
whole suite with CI-strict emulator checks when CI=true.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent


def _ensure_chromium(session: nox.Session) -> None:
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error("Chromium is needed for the browser tests: install Debian's 'chromium' package")
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "chromium",
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


def _ensure_postgres(session: nox.Session) -> None:
    """Debian's PostgreSQL server for tests/postgres_server.py (initdb and postgres)."""
    if shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error("PostgreSQL is needed for the PostgreSQL tests: install Debian's 'postgresql' package")
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "postgresql",
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    if (ROOT / "package.json").exists():
        npm = "ci" if (ROOT / "package-lock.json").exists() else "install"
        session.run("npm", npm, "--no-audit", "--no-fund", "--loglevel=error", external=True)
    _ensure_chromium(session)
    _ensure_postgres(session)


LINTED = ("src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """Install everything, check formatting and lint (ruff) and types (mypy), then run the whole
    test suite, emulators included."""
    _install(session)
    session.run("python", "-m", "ruff", "format", "--check", *LINTED)
    session.run("python", "-m", "ruff", "check", *LINTED)
    session.run("python", "-m", "mypy")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark scripts and print their figures."""
    _install(session)
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site in strict mode into site/."""
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict")
