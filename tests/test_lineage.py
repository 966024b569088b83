"""Lineage: what the caller records, and what ``capture="auto"`` fills in from git and the environment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import pytest

from modelreg import Lineage, Registry
from modelreg.lineage import capture_code
from tests.helpers import write

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV, "HOME": str(repo.parent)},
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree on branch ``main`` with one commit: train.py and model.bin."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root / "train.py", "print('train')\n")
    write(root / "model.bin", b"weights")
    git(root, "add", "train.py", "model.bin")
    git(root, "commit", "-q", "-m", "first")
    return root


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "reg")
    yield registry
    registry.close()


def test_capture_auto_records_commit_branch_and_clean_tree(reg: Registry, repo: Path) -> None:
    mv = reg.register("churn", repo / "model.bin", capture="auto")
    code = mv.lineage.code
    assert code is not None
    assert code.commit == git(repo, "rev-parse", "HEAD") and len(code.commit) == 40
    assert code.branch == "main"
    assert code.dirty is False
    assert code.repo == str(repo.resolve())  # no remote: the work tree's location
    env = mv.lineage.environment
    assert env is not None and env.python == platform.python_version()
    assert env.platform and env.packages.get("modelreg")
    assert reg.get_version("churn/1").lineage == mv.lineage  # stored, not only returned


def test_capture_auto_sees_a_dirty_tree(reg: Registry, repo: Path) -> None:
    write(repo / "untracked.txt", "untracked files do not make the tree dirty")
    assert reg.register("churn", repo / "model.bin").lineage.code.dirty is False  # default is capture="auto"
    write(repo / "train.py", "print('changed')\n")
    mv = reg.register("churn", repo / "model.bin")
    assert mv.lineage.code.dirty is True
    assert mv.lineage.code.commit == git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "-am", "second")
    clean = reg.register("churn", repo / "model.bin")
    assert clean.lineage.code.dirty is False and clean.lineage.code.commit != mv.lineage.code.commit
    assert [m.version for m in reg.search("lineage.code.dirty = true")] == [2]


def test_capture_from_a_folder_artifact_and_a_subfolder(reg: Registry, repo: Path) -> None:
    write(repo / "out" / "saved" / "weights.bin", b"w")
    git(repo, "add", "out")
    git(repo, "commit", "-q", "-m", "saved model")
    mv = reg.register("ranker", repo / "out" / "saved")
    assert mv.lineage.code.commit == git(repo, "rev-parse", "HEAD")
    assert mv.lineage.code.dirty is False


def test_detached_head_has_no_branch(reg: Registry, repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    code = reg.register("churn", repo / "model.bin").lineage.code
    assert code.branch is None and code.commit == git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("remote", "stored"),
    [
        ("https://ana:s3cr3t-token@github.com/acme/churn.git", "https://github.com/acme/churn.git"),
        ("https://x-access-token:ghp_s3cr3t@github.com/acme/churn", "https://github.com/acme/churn"),
        ("ssh://git:s3cr3t@git.example.com/acme/churn.git", "ssh://git.example.com/acme/churn.git"),
        ("https://github.com/acme/churn.git", "https://github.com/acme/churn.git"),
        ("git@github.com:acme/churn.git", "git@github.com:acme/churn.git"),
    ],
)
def test_credentials_in_the_remote_url_are_stripped(
    reg: Registry, repo: Path, tmp_path: Path, remote: str, stored: str
) -> None:
    git(repo, "remote", "add", "origin", remote)
    mv = reg.register("churn", repo / "model.bin")
    assert mv.lineage.code.repo == stored
    # the secret is nowhere in the registry: not in the record, not in the audit trail, not on disk
    assert "s3cr3t" not in mv.model_dump_json()
    assert all("s3cr3t" not in ev.model_dump_json() for ev in reg.history())
    for f in (tmp_path / "reg").glob("modelreg.db*"):  # the database and its WAL
        assert b"s3cr3t" not in f.read_bytes(), f.name


def test_capture_none_records_only_what_is_given(reg: Registry, repo: Path) -> None:
    write(repo / "train.py", "dirty\n")
    mv = reg.register("churn", repo / "model.bin", capture=None, lineage={"run_id": "run-7"})
    assert mv.lineage.code is None and mv.lineage.environment is None
    assert mv.lineage.model_dump(exclude_defaults=True) == {"run_id": "run-7"}
    bare = reg.register("churn", repo / "model.bin", capture=None)
    assert bare.lineage == Lineage()


def test_capture_env_and_code_separately(reg: Registry, repo: Path) -> None:
    only_env = reg.register("churn", repo / "model.bin", capture="env")
    assert only_env.lineage.code is None and only_env.lineage.environment is not None
    only_code = reg.register("churn", repo / "model.bin", capture="code")
    assert only_code.lineage.code is not None and only_code.lineage.environment is None


def test_explicit_lineage_wins_over_capture(reg: Registry, repo: Path) -> None:
    given = {
        "code": {"commit": "0" * 40, "repo": "https://example.com/acme/churn", "dirty": False},
        "environment": {"python": "3.99.0", "packages": {"torch": "9.9"}},
    }
    mv = reg.register("churn", repo / "model.bin", lineage=given, capture="auto")
    assert mv.lineage.code.commit == "0" * 40 and mv.lineage.code.branch is None
    assert mv.lineage.environment.python == "3.99.0" and mv.lineage.environment.packages == {"torch": "9.9"}


def test_outside_a_git_work_tree_code_is_not_captured(reg: Registry, tmp_path: Path) -> None:
    outside = write(tmp_path / "plain" / "model.bin", b"m")
    assert capture_code(outside) is None
    mv = reg.register("churn", outside, capture="auto")
    # code comes from the work tree holding the artifact only (never from an unrelated current directory)
    assert mv.lineage.code is None
    assert mv.lineage.environment is not None


def test_full_lineage_record_round_trips(reg: Registry, tmp_path: Path) -> None:
    f = write(tmp_path / "m.bin", b"m")
    reg.register("base", f, capture=None)
    reg.register("base", write(tmp_path / "n.bin", b"n"), capture=None)
    lineage = {
        "run_id": "4f2a",
        "run_url": "https://mlflow.example.com/#/experiments/1/runs/4f2a",
        "datasets": [
            {"uri": "s3://data/train.parquet", "version": "2026-11-01", "role": "train"},
            {"uri": "s3://data/eval.parquet", "digest": "sha256:" + "a" * 64, "role": "eval"},
        ],
        "parents": ["base/1", "models:/base/2", "base@production"],
        "extra": {"notebook": "train.ipynb", "epochs": 12, "nested": {"a": [1, 2.5, None]}},
    }
    mv = reg.register("churn", f, lineage=lineage, capture=None)
    got = reg.get_version("churn/1").lineage
    assert got == mv.lineage
    assert [d.uri for d in got.datasets] == ["s3://data/train.parquet", "s3://data/eval.parquet"]
    assert got.datasets[1].digest == "sha256:" + "a" * 64 and got.datasets[0].version == "2026-11-01"
    assert got.parents == ["base/1", "base/2", "base@production"]  # normalised references
    assert got.extra == {"notebook": "train.ipynb", "epochs": 12, "nested": {"a": [1, 2.5, None]}}
    assert json.loads(got.model_dump_json())["run_id"] == "4f2a"
    reg.register("churn", f, lineage={**lineage, "run_id": "5b3c"}, capture=None)
    assert reg.compare("churn/1", "churn/2").lineage == {"run_id": {"a": "4f2a", "b": "5b3c"}}
    assert [m.ref for m in reg.search("lineage.run_id = '5b3c'")] == ["churn/2"]
