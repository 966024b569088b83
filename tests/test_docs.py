"""The documentation is tested: the site builds in strict mode, every error and CLI command is
documented, and the code in the README and the guides runs as written."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

QUICKSTART_COMMAND = "pip install . && python examples/quickstart.py"
TEST_COMMAND = "python3 -m pip install -q nox && python3 -m nox -s tests"

# pages whose ```python blocks run, in order, as one script per page
RUNNABLE_PAGES = [README, DOCS / "getting-started.md", DOCS / "concepts.md", DOCS / "models.md", DOCS / "errors.md"]


def sandbox_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MODELREG_HOME": str(tmp_path / "home"),
        "MODELREG_ACTOR": "docs",
        "PYTHONIOENCODING": "utf-8",
        "NO_MKDOCS_2_WARNING": "1",
    }
    env.pop("MODELREG_URI", None)
    return env


def run_python_blocks(page: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a page's python blocks in order, in one namespace, in a fresh folder and registry."""
    blocks = fenced_blocks(page, "python")
    assert blocks, f"{page.name} has no python blocks"
    runner = tmp_path / "run_blocks.py"
    runner.write_text(
        "import json, sys\n"
        "ns = {'__name__': '__main__'}\n"
        "for line, code in json.loads(sys.argv[1]):\n"
        f"    exec(compile(code, f'{page.name}, block at line {{line}}', 'exec'), ns)\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(runner), json.dumps(blocks)],
        cwd=tmp_path,
        env=sandbox_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"code in {page.name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


# -- the site -------------------------------------------------------------------------------------
def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env=sandbox_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in (
        "modelreg.Registry.register",
        "modelreg.models.ModelVersion",
        "modelreg.errors.IntegrityError",
        "modelreg.stores.base.MetadataStore",
        "modelreg.testing.MetadataStoreConformance",
    ):
        assert f'id="{anchor}"' in api, f"the API reference lacks {anchor}"
    assert ":class:`" not in api and "doctest:" not in api, "reST markup leaked into the API reference"
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html, (
            f"{page} loads web fonts; the site must work offline (theme.font: false)"
        )
    for name in ("getting-started", "concepts", "storage", "errors", "cli", "api"):
        assert (site / name / "index.html").is_file(), f"page {name} was not built"


def _load_nav_hook():
    spec = importlib.util.spec_from_file_location("nav_hook", DOCS / "hooks" / "nav.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nav_drops_missing_pages_and_lists_folders(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "backends").mkdir(parents=True)
    for page in ("index.md", "cli.md", "extra.md", "backends/s3.md", "backends/index.md", "backends/gcs.md"):
        (docs / page).write_text(f"# {page}\n", encoding="utf-8")
    config = {
        "docs_dir": str(docs),
        "nav": [
            {"Home": "index.md"},
            {"Backends": "backends/"},
            {"Not written yet": "sharing.md"},
            {"Reference": [{"CLI": "cli.md"}, {"Missing": "ui.md"}]},
            {"Empty": [{"Gone": "gone.md"}]},
            {"No folder": "nothing/"},
        ],
    }
    nav = _load_nav_hook().on_config(config)["nav"]
    assert nav == [
        {"Home": "index.md"},
        {"Backends": ["backends/index.md", "backends/gcs.md", "backends/s3.md"]},
        {"Reference": [{"CLI": "cli.md"}]},
        "extra.md",
    ]


def test_nav_names_every_page() -> None:
    """Every page appears in mkdocs.yml's nav (the hook would only append strays at the end)."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    named: set[str] = set()

    def walk(entry: object) -> None:
        if isinstance(entry, dict):
            for value in entry.values():
                walk(value)
        elif isinstance(entry, list):
            for item in entry:
                walk(item)
        elif isinstance(entry, str):
            named.add(entry)

    walk(config["nav"])
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if rel.startswith("hooks/"):
            continue
        folder = rel.split("/", 1)[0] + "/" if "/" in rel else None
        assert rel in named or folder in named, f"docs/{rel} is not in the nav of mkdocs.yml"


# -- reference pages stay complete ------------------------------------------------------------
def test_every_error_is_documented() -> None:
    from modelreg import errors

    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)\s*$", text, re.MULTILINE))
    tree = text.split("```text", 1)[1].split("```", 1)[0]
    for name in errors.__all__:
        assert name in headings, f"{name} has no '## {name}' section in docs/errors.md"
        assert re.search(rf"\b{name}\b", tree), f"{name} is missing from the hierarchy in docs/errors.md"
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "**Do**" in section or name == "ModelregError", f"the {name} section says nothing about what to do"
    stale = headings - set(errors.__all__)
    assert not stale, f"docs/errors.md documents errors that do not exist: {sorted(stale)}"
    for name in errors.__all__:  # the documented tree matches the real parents
        cls = getattr(errors, name)
        parent = next((b.__name__ for b in cls.__mro__[1:] if b.__name__ in errors.__all__), None)
        if parent is None:
            continue
        lines = tree.splitlines()
        child = next(i for i, line in enumerate(lines) if re.search(rf"\b{name}\b", line))
        indent = lines[child].index(name)
        above = [line for line in lines[:child] if re.search(r"\w", line[:indent])]
        assert above and parent in above[-1], f"docs/errors.md draws {name} under the wrong parent (expected {parent})"


def cli_commands() -> list[str]:
    from modelreg.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    raise AssertionError("modelreg.cli.build_parser() has no subcommands")


def test_every_cli_command_is_documented() -> None:
    cli_md = DOCS / "cli.md"
    assert cli_md.is_file(), "docs/cli.md is missing"
    text = cli_md.read_text(encoding="utf-8")
    documented = set(re.findall(r"^## modelreg ([a-z][a-z0-9-]*)\s*$", text, re.MULTILINE))
    commands = cli_commands()
    for core in (
        "register",
        "list",
        "versions",
        "show",
        "transition",
        "rollback",
        "alias",
        "download",
        "history",
        "search",
        "compare",
        "verify",
        "gc",
    ):
        assert core in commands
    missing = [c for c in commands if c not in documented]
    assert not missing, f"CLI commands without a '## modelreg <command>' section in docs/cli.md: {missing}"
    stale = sorted(documented - set(commands))
    assert not stale, f"docs/cli.md documents commands that do not exist: {stale}"


# -- README ------------------------------------------------------------------------------------------
def test_readme_gives_the_two_commands_near_the_top() -> None:
    text = README.read_text(encoding="utf-8")
    top = text[: text.index("\n## ")]
    assert f"```bash\n{QUICKSTART_COMMAND}\n```" in top
    assert f"```bash\n{TEST_COMMAND}\n```" in top
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines(), ".ci/run must run the README's test command exactly"
    assert (ROOT / "examples" / "quickstart.py").is_file()


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_readme_code_runs(tmp_path: Path) -> None:
    """The Python quickstart, then every `modelreg ...` line of the README, on a fresh default registry."""
    out = run_python_blocks(README, tmp_path).stdout
    assert "churn/1 production" in out
    assert "True" in out.splitlines(), "the README's verify() did not print True"

    commands = [
        line
        for _, block in fenced_blocks(README, "bash")
        for line in block.splitlines()
        if line.startswith("modelreg ")
    ]
    names = {shlex.split(c)[1] for c in commands}
    for expected in (
        "register",
        "list",
        "versions",
        "show",
        "transition",
        "rollback",
        "download",
        "search",
        "history",
        "verify",
        "gc",
    ):
        assert expected in names, f"the README shows no `modelreg {expected}` example"
    env = sandbox_env(tmp_path)
    for command in commands:
        argv = shlex.split(command, comments=True)
        proc = subprocess.run(
            [sys.executable, "-m", "modelreg", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout}\n{proc.stderr}"

    from modelreg import Registry

    with Registry(tmp_path / "home") as reg:
        assert reg.get_version("churn@production").version == 1  # after the README's rollback
        assert reg.get_version("churn/2").metrics == {"auc": 0.93}
        assert (tmp_path / "deploy" / "model.pkl").is_file()
        assert reg.verify().ok


def test_readme_blocks_work_pasted_twice_into_one_folder(tmp_path: Path) -> None:
    """Every python and shell block of the README, in the order they appear, run twice in one fresh
    folder with one registry: the python blocks by a fresh interpreter each, the shell blocks by
    bash with the installed ``modelreg`` command (the install and test commands at the top aside)."""
    blocks = [("python", line, code) for line, code in fenced_blocks(README, "python")]
    blocks += [
        ("bash", line, code)
        for line, code in fenced_blocks(README, "bash")
        if code.strip() not in (QUICKSTART_COMMAND, TEST_COMMAND)
    ]
    blocks.sort(key=lambda block: block[1])
    assert {lang for lang, _, _ in blocks} == {"python", "bash"}
    env = sandbox_env(tmp_path)
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    assert shutil.which("modelreg", path=env["PATH"]) == str(bindir / "modelreg"), "the console script is not installed"
    quickstart = blocks[0][1]  # the Python quickstart comes first
    printed = []
    for attempt in (1, 2):
        for lang, line, code in blocks:
            argv = [sys.executable, "-c", code] if lang == "python" else ["bash", "-e", "-o", "pipefail", "-c", code]
            proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, (
                f"run {attempt}: the {lang} block at line {line} of README.md failed:\n{proc.stdout}\n{proc.stderr}"
            )
            if line == quickstart:
                printed.append(proc.stdout)
    assert "churn/1 production" in printed[0] and "churn/3 production" in printed[1]
    assert all(out.splitlines()[-1] == "True" for out in printed), "the README's verify() did not print True"

    from modelreg import Registry

    with Registry(tmp_path / "home") as reg:
        # each run: the python block registers and promotes one version, the shell block registers the
        # next, promotes it ("churn", the latest) and rolls back to the python block's
        assert [v.version for v in reg.list_versions("churn")] == [1, 2, 3, 4]
        assert reg.get_version("churn@production").version == 3
        assert [v.version for v in reg.list_versions("churn", stage="archived")] == [1, 2, 4]
        assert (tmp_path / "deploy" / "model.pkl").read_bytes() == b"trained weights"
        assert reg.verify().ok


@pytest.mark.parametrize("page", [p for p in RUNNABLE_PAGES if p != README], ids=lambda p: p.name)
def test_guide_code_runs(page: Path, tmp_path: Path) -> None:
    run_python_blocks(page, tmp_path)
