"""Shell completion: the bash script of ``modelreg completion bash`` runs in a real bash, with the
words split as bash splits them, and completes commands, options, stages and the registry's names."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from modelreg import Registry, cli
from modelreg.completion import FILES, candidates, script, split_line
from tests.helpers import write

BIN = Path(sys.executable).parent


def bash_words(line: str) -> list[str]:
    """``COMP_WORDS`` as bash makes them: split at blanks, and at the characters of its default
    ``COMP_WORDBREAKS`` (``@``, ``=``, ``:``...), which become words of their own."""
    words = []
    for token in line.split():
        words += [part for part in re.split(r"([@><=;|&(:]+)", token) if part]
    if not line or line[-1].isspace():
        words.append("")
    return words


def complete(line: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """What bash offers (COMPREPLY) for ``line`` with the cursor at its end."""
    words = bash_words(line)
    code = "\n".join(
        [
            'eval "$(modelreg completion bash)"',
            f"COMP_LINE={shlex.quote(line)}",
            "COMP_POINT=${#COMP_LINE}",
            "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
            f"COMP_CWORD={len(words) - 1}",
            "COMPREPLY=()",
            "_modelreg_complete",
            "printf '%s\\n' \"${COMPREPLY[@]}\"",
        ]
    )
    proc = subprocess.run(["bash", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.split("\n") if w]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    with Registry(home) as reg:
        for i in range(2):
            reg.register("churn", write(tmp_path / f"c{i}.bin", f"churn {i}"), capture=None)
        reg.register("fraud/scorer", write(tmp_path / "f.bin", "fraud"), capture=None)
        reg.set_alias("churn", "champion", 2)
    environ = {**os.environ, "MODELREG_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    environ.pop("MODELREG_URI", None)
    return environ


def test_bash_completes_commands_options_and_stages(tmp_path: Path, env: dict[str, str]) -> None:
    assert complete("modelreg tr", tmp_path, env) == ["transition"]
    everything = complete("modelreg ", tmp_path, env)
    assert {"register", "transition", "doctor", "completion", "ui", "policy"} <= set(everything)
    assert not [c for c in everything if c.startswith("_")]  # the hidden callback is not offered
    assert complete("modelreg show --js", tmp_path, env) == ["--json"]
    assert "--strict" in complete("modelreg transition --", tmp_path, env)
    assert complete("modelreg transition churn/1 st", tmp_path, env) == ["staging"]
    assert complete("modelreg transition churn 1 pro", tmp_path, env) == ["production"]
    assert complete("modelreg versions churn --stage ar", tmp_path, env) == ["archived"]
    assert complete("modelreg completion ", tmp_path, env) == ["bash", "fish", "zsh"]
    assert complete("modelreg cache ", tmp_path, env) == ["clear", "info"]
    assert {"--port", "--read-only"} <= set(complete("modelreg ui --", tmp_path, env))  # an extension's options


def test_bash_completes_names_versions_and_aliases_from_the_registry(tmp_path: Path, env: dict[str, str]) -> None:
    assert complete("modelreg show ", tmp_path, env) == ["churn", "fraud/scorer"]
    assert complete("modelreg show ch", tmp_path, env) == ["churn"]
    assert complete("modelreg show churn/", tmp_path, env) == ["churn/1", "churn/2"]
    assert complete("modelreg show fraud/scorer/", tmp_path, env) == ["fraud/scorer/1"]
    # bash splits at '@': the word being completed is '@' or what follows it
    assert complete("modelreg show churn@", tmp_path, env) == [
        "@archived",
        "@champion",
        "@experimental",
        "@production",
        "@staging",
    ]
    assert complete("modelreg download churn@pro", tmp_path, env) == ["production"]
    assert complete("modelreg show churn@ch", tmp_path, env) == ["champion"]
    assert complete("modelreg alias churn ", tmp_path, env) == ["champion"]
    assert complete("modelreg alias churn best ", tmp_path, env) == ["1", "2"]
    assert complete("modelreg --json compare churn/1 chu", tmp_path, env) == ["churn"]


def test_bash_completes_paths_where_a_path_goes(tmp_path: Path, env: dict[str, str]) -> None:
    write(tmp_path / "model.pkl", b"m")
    (tmp_path / "models").mkdir()
    assert sorted(complete("modelreg register churn mod", tmp_path, env)) == ["model.pkl", "models"]
    assert sorted(complete("modelreg --registry mod", tmp_path, env)) == ["model.pkl", "models"]
    assert complete("modelreg download churn@production models/", tmp_path, env) == []  # an empty folder


def test_the_registry_on_the_line_and_no_registry_created(tmp_path: Path, env: dict[str, str]) -> None:
    other = tmp_path / "other"
    with Registry(other) as reg:
        reg.register("ranker", write(tmp_path / "r.bin", "r"), capture=None)
    assert complete(f"modelreg --registry {other} show ", tmp_path, env) == ["ranker"]
    assert complete(f"modelreg show --registry={other} r", tmp_path, env) == ["ranker"]
    missing = tmp_path / "nothing-here"
    assert complete(f"modelreg --registry {missing} show ", tmp_path, env) == []
    assert not missing.exists()  # completing a word never creates a registry


def test_the_scripts() -> None:
    bash = script("bash")
    assert "complete -F _modelreg_complete modelreg" in bash and "__complete --line" in bash
    syntax = subprocess.run(["bash", "-n"], input=bash, capture_output=True, text=True, timeout=60)
    assert syntax.returncode == 0, syntax.stderr
    assert script("zsh").startswith("#compdef modelreg") and "compdef _modelreg_complete modelreg" in script("zsh")
    assert "complete -c modelreg -f -a '(__modelreg_complete)'" in script("fish")
    for shell in ("bash", "zsh", "fish"):
        proc = subprocess.run([sys.executable, "-m", "modelreg", "completion", shell], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout == script(shell), proc.stderr


def test_the_callback_directly(tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert split_line("modelreg show 'churn") == ["show", "churn"]  # an open quote
    assert split_line("modelreg ") == [""] and split_line("modelreg") == [""]
    assert candidates(["gc", "--gr"], cli.build_parser) == ["--grace"]
    assert candidates(["register", "churn", ""], cli.build_parser) == [FILES]
    capsys.readouterr()
    assert cli.main(["__complete", "--", "versions", "churn", "--stage", "st"]) == 0  # zsh and fish: words
    assert capsys.readouterr().out == "staging\n"
    assert cli.main(["__complete", "--line", "modelreg show churn@pro", "--cur", "pro"]) == 0  # bash
    assert capsys.readouterr().out == "production\n"
    assert cli.main(["__complete", "--line", "modelreg 'unterminated \\"]) == 0  # never fails
