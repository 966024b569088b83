"""A local registry starts without loading what only buckets, the web UI or data frames need.

Each check runs in a fresh interpreter (``sys.executable``) and looks at ``sys.modules`` afterwards:
opening a registry folder and using it (register, get_version, list, search, download, verify, gc),
and the command line (``modelreg --registry <folder> list`` and other read commands), must not import
asyncio, fsspec (its async machinery included), a cloud SDK, the web UI's stack, pandas or numpy.
sqlite-utils is only allowed in the process that creates the database (it builds the tables); a
process that opens an existing registry does without it. Nothing here times anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

FORBIDDEN = (
    "asyncio",
    "fsspec",
    "fsspec.asyn",
    "modelreg.stores._cloud",
    "s3fs",
    "gcsfs",
    "adlfs",
    "boto3",
    "botocore",
    "aiobotocore",
    "azure",
    "google",
    "aiohttp",
    "starlette",
    "jinja2",
    "pandas",
    "numpy",
    "sqlite_utils",
)
"""Modules (and their submodules) that the local path must not import. ``fsspec`` itself and
``modelreg.stores._cloud`` are where asyncio came from: a local store needs neither."""

ONLY_WHEN_CREATING = ("sqlite_utils", "pandas", "numpy")
"""Creating a registry builds its tables with sqlite-utils, which imports pandas and numpy when they
are installed (as in the test environment, for the model flavors): once per registry, never when
an existing one is opened."""


def loaded(modules: list[str], forbidden: tuple[str, ...] = FORBIDDEN) -> list[str]:
    """The forbidden names that ``modules`` contains, themselves or through a submodule."""
    names = set(modules)
    return sorted(f for f in forbidden if f in names or any(m.startswith(f + ".") for m in names))


def run_python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


USE_REGISTRY = """
    import json, os, sys
    from modelreg import Registry

    folder, work, name = sys.argv[1], sys.argv[2], sys.argv[3]
    model = os.path.join(work, name + ".bin")
    with open(model, "wb") as f:
        f.write(name.encode() * 100)
    reg = Registry(folder)
    mv = reg.register(name, model, metrics={"auc": 0.9}, tags={"team": "fraud"}, capture="auto")
    assert reg.get_version(name, mv.version).digest == mv.digest
    assert reg.get_version(name).version == mv.version
    assert name in [m.name for m in reg.list_models()]
    assert [v.ref for v in reg.search("metrics.auc > 0.5 and tags.team = 'fraud'") if v.name == name]
    out = reg.download(f"{name}/{mv.version}", os.path.join(work, name + "-out"))
    assert open(out, "rb").read() == name.encode() * 100
    reg.verify()
    reg.gc()
    reg.close()
    print(json.dumps({"modules": sorted(sys.modules)}))
"""


def test_a_local_registry_loads_no_async_cloud_or_web_modules(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    # first process: creates the database (sqlite-utils builds the tables)
    first = run_python(USE_REGISTRY, str(folder), str(tmp_path), "churn", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    found = loaded(json.loads(first.stdout)["modules"])
    assert [m for m in found if m not in ONLY_WHEN_CREATING] == []
    # second process: opens the existing registry and does it all again, without sqlite-utils
    second = run_python(USE_REGISTRY, str(folder), str(tmp_path), "fraud", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert loaded(json.loads(second.stdout)["modules"]) == []


def _make_registry(folder: Path, tmp_path: Path) -> None:
    setup = run_python(
        """
        import sys
        from modelreg import Registry
        with open(sys.argv[2], "wb") as f:
            f.write(b"weights" * 100)
        reg = Registry(sys.argv[1])
        reg.register("churn", sys.argv[2], metrics={"auc": 0.9}, capture=None)
        reg.transition("churn", 1, "staging")
        reg.close()
    """,
        str(folder),
        str(tmp_path / "m.bin"),
        cwd=tmp_path,
    )
    assert setup.returncode == 0, setup.stderr


def test_cli_read_commands_load_no_async_cloud_or_web_modules(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    _make_registry(folder, tmp_path)
    out = run_python(
        """
        import contextlib, io, json, sys
        from modelreg.cli import main

        folder = sys.argv[1]
        codes = []
        with contextlib.redirect_stdout(io.StringIO()) as text:
            for argv in (["list"], ["list", "--json"], ["versions", "churn"], ["show", "churn@staging"],
                         ["search", "metrics.auc > 0.5"], ["history", "churn"]):
                codes.append(main(["--registry", folder, *argv]))
        print(json.dumps({"codes": codes, "output": text.getvalue(), "modules": sorted(sys.modules)}))
    """,
        str(folder),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["codes"] == [0] * 6 and "churn" in got["output"]
    assert loaded(got["modules"]) == []


def test_python_m_modelreg_list_loads_no_async_cloud_or_web_modules(tmp_path: Path) -> None:
    """The real entry point, ``python -m modelreg``; ``-X importtime`` lists every module it imports."""
    folder = tmp_path / "registry"
    _make_registry(folder, tmp_path)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelreg", "--registry", str(folder), "list"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "churn" in out.stdout
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "modelreg.registry" in imported or "modelreg.stores.sqlite" in imported  # the listing is real
    assert loaded(imported) == []


def test_reading_a_version_loads_no_cli_or_logging_machinery(tmp_path: Path) -> None:
    """A service that opens the registry to load its model imports neither argparse (the command
    line's) nor logging (imported when something is logged), nor builds a pydantic validator."""
    folder = tmp_path / "registry"
    _make_registry(folder, tmp_path)
    out = run_python(
        """
        import json, sys
        from modelreg import Registry
        from modelreg.models import ModelVersion

        reg = Registry(sys.argv[1])
        mv = reg.get_version("churn@staging")
        latest = reg.get_version("churn")
        print(json.dumps({"ref": mv.ref, "latest": latest.ref, "modules": sorted(sys.modules),
                          "validator_built": ModelVersion.__pydantic_complete__}))
    """,
        str(folder),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert (got["ref"], got["latest"]) == ("churn/1", "churn/1")
    assert loaded(got["modules"], ("argparse", "logging", "gettext")) == []
    assert got["validator_built"] is False
