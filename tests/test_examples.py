"""The scripts in examples/ run as a user would run them: in a subprocess, on the default registry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "home"), "PYTHONIOENCODING": "utf-8"}
    env.pop("MODELREG_URI", None)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_every_example_is_tested() -> None:
    """Each script in examples/ is run by this module or by another test module that names it."""
    here = Path(__file__)
    others = [p.read_text(encoding="utf-8") for p in here.parent.glob("test_*.py") if p != here]
    tested = {"quickstart.py", "folder_model.py", "train_and_serve.py"}
    untested = [
        p.name
        for p in sorted(EXAMPLES.glob("*.py"))
        if p.name not in tested and not any(p.name in text for text in others)
    ]
    assert not untested, f"examples that no test runs: {untested}"


def test_quickstart_runs_twice_on_the_default_registry(tmp_path: Path) -> None:
    first = run_example("quickstart.py", tmp_path)
    home = tmp_path / "home"
    assert (home / "modelreg.db").is_file(), "the quickstart must use the default location ($MODELREG_HOME)"
    assert list((home / "blobs" / "sha256").glob("*/*")), "no blobs were stored"
    for line in (
        "registered quickstart/churn/1",
        "registered quickstart/churn/2",
        "quickstart/churn/2 is in production; quickstart/churn/1 is now archived",
        "quickstart/churn@champion -> quickstart/churn/2",
        "logged later {'auc_live':",
        "same artifact: False",
        "lr=0.5",
        "verify ok=True",
        "quickstart/churn/1 is back in production; quickstart/churn/2 is now archived",
    ):
        assert line in first, f"{line!r} missing from the quickstart's output:\n{first}"
    assert re.search(r"lr: 0\.1 -> 0\.5", first)

    second = run_example("quickstart.py", tmp_path)
    for line in (
        "registered quickstart/churn/3",
        "registered quickstart/churn/4",
        "quickstart/churn/4 is in production; quickstart/churn/3 is now archived",
        "verify ok=True",
        "quickstart/churn/3 is back in production; quickstart/churn/4 is now archived",
    ):
        assert line in second, f"{line!r} missing from the second run's output:\n{second}"

    from modelreg import Registry

    with Registry(home) as reg:
        assert [mv.version for mv in reg.list_versions("quickstart/churn")] == [1, 2, 3, 4]
        assert reg.get_version("quickstart/churn@production").version == 3
        assert reg.verify().ok


def test_quickstart_honours_modelreg_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere"
    monkeypatch.setenv("MODELREG_URI", str(target))
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (target / "modelreg.db").is_file()
    assert not (tmp_path / "home").exists()


def test_folder_model(tmp_path: Path) -> None:
    out = run_example("folder_model.py", tmp_path)
    for line in (
        "registered nlp/sentiment/1: directory with 3 files",
        "tokenizer/vocab.txt",
        "registered nlp/sentiment/2, fine-tuned from nlp/sentiment/1",
        "files changed: ['weights.bin']; 6 files in the two versions, 4 blobs stored",
        "lineage of nlp/sentiment/2: nlp/sentiment/2 <- nlp/sentiment/1",
        "-> ['nlp/sentiment/2', 'nlp/sentiment/1']",
        "downloaded nlp/sentiment@staging (nlp/sentiment/2) to a folder: "
        "['config.json', 'tokenizer/vocab.txt', 'weights.bin']",
        "verify ok=True",
    ):
        assert line in out, f"{line!r} missing from folder_model.py's output:\n{out}"

    again = run_example("folder_model.py", tmp_path)
    assert "registered nlp/sentiment/4, fine-tuned from nlp/sentiment/3" in again
    assert "verify ok=True" in again

    from modelreg import Registry

    with Registry(tmp_path / "home") as reg:
        blobs = list(reg.artifacts.iter_blobs())
        # config.json and vocab.txt are identical in all four versions: 2 shared blobs + 4 weights
        assert len(blobs) == 6
        assert reg.get_version("nlp/sentiment/4").lineage.parents == ["nlp/sentiment/3"]


def test_folder_model_takes_a_registry_argument(tmp_path: Path) -> None:
    out = run_example("folder_model.py", tmp_path, str(tmp_path / "team"))
    assert "verify ok=True" in out
    assert (tmp_path / "team" / "modelreg.db").is_file()
    assert not (tmp_path / "home").exists()


def test_train_and_serve(tmp_path: Path) -> None:
    out = run_example("train_and_serve.py", tmp_path)
    for pattern in (
        r"saved examples/churn-sklearn/1: flavor=sklearn format=skops unsafe=False",
        r"signature: tensor, requirements: .*scikit-learn==",
        r"served examples/churn-sklearn/1 sha256:[0-9a-f]{12} predictions \[",
        r"same predictions in the serving process: True",
        r"usage log of examples/churn-sklearn: 1 record\(s\), last: load of examples/churn-sklearn/1 "
        r"for 'example scoring'",
    ):
        assert re.search(pattern, out), f"{pattern!r} missing from train_and_serve.py's output:\n{out}"
    again = run_example("train_and_serve.py", tmp_path)
    assert "served examples/churn-sklearn/2" in again and "usage log of examples/churn-sklearn: 2 record(s)" in again
