"""Install hints name the command that works for how modelreg was installed: from PyPI, from a
checkout (``pip install -e .`` or ``pip install .``) or from git; ``modelreg[all]`` is every
optional feature."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelreg import MissingDependencyError, cli
from modelreg.extras import EXTRAS, extra_installed, install_command, localize_install_hints, missing_modules

CHECKOUT = {"url": "file:///home/ana/src/modelreg", "dir_info": {"editable": True}}


def test_from_pypi() -> None:
    assert install_command("s3", direct_url={}) == 'pip install "modelreg[s3]"'
    archive = {"url": "https://files.example/modelreg-0.1.0.tar.gz", "archive_info": {}}
    assert install_command("ui", direct_url=archive) == 'pip install "modelreg[ui]"'


def test_from_a_checkout() -> None:
    assert install_command("ui", direct_url=CHECKOUT, cwd="/tmp") == 'pip install -e "/home/ana/src/modelreg[ui]"'
    assert install_command("ui", direct_url=CHECKOUT, cwd="/home/ana/src/modelreg") == 'pip install -e ".[ui]"'
    copied = {"url": "file:///home/ana/src/modelreg", "dir_info": {}}  # pip install . (not editable)
    assert install_command("gcs", direct_url=copied, cwd="/tmp") == 'pip install "/home/ana/src/modelreg[gcs]"'
    spaced = {"url": "file:///home/ana/my%20code/modelreg", "dir_info": {"editable": True}}
    assert install_command("s3", direct_url=spaced, cwd="/") == 'pip install -e "/home/ana/my code/modelreg[s3]"'


def test_from_git() -> None:
    git = {"url": "https://github.com/acme/modelreg.git", "vcs_info": {"vcs": "git", "requested_revision": "v0.1"}}
    assert install_command("azure", direct_url=git) == (
        'pip install "modelreg[azure] @ git+https://github.com/acme/modelreg.git@v0.1"'
    )


def test_this_install_is_a_checkout_and_hints_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import distribution

    info = json.loads(distribution("modelreg").read_text("direct_url.json") or "{}")
    assert info.get("dir_info", {}).get("editable"), "the test environment installs modelreg with pip install -e"
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    assert install_command("ui") == f'pip install -e "{root}[ui]"'
    monkeypatch.chdir(root)
    assert install_command("ui") == 'pip install -e ".[ui]"'
    text = 'the web UI needs starlette; install it with: pip install "modelreg[ui]"'
    assert localize_install_hints(text) == 'the web UI needs starlette; install it with: pip install -e ".[ui]"'
    assert localize_install_hints("nothing to install") == "nothing to install"
    # every MissingDependencyError gets the right command, also one raised with the PyPI form
    assert str(MissingDependencyError(text)).endswith('pip install -e ".[ui]"')


def test_a_missing_extra_on_the_command_line_names_the_checkout_command(tmp_path: Path) -> None:
    blocker = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 's3fs':\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from modelreg import cli\n"
        "sys.exit(cli.main(['--registry', 's3://bucket/reg', 'list']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == cli.EXIT_FAILURE
    root = Path(__file__).resolve().parents[1]
    assert proc.stderr.rstrip().endswith(f'install it with: pip install -e "{root}[s3]"'), proc.stderr


def test_extras_installed_here() -> None:
    assert set(EXTRAS) == {"s3", "gcs", "azure", "ui"}
    for extra in EXTRAS:  # the test environment installs [all]
        assert extra_installed(extra) and missing_modules(extra) == []


def test_a_module_that_cannot_be_imported_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "adlfs" or m.startswith("adlfs.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "adlfs", None)
    assert missing_modules("azure") == ["adlfs"] and not extra_installed("azure")
