"""The benchmark scripts keep working: their modelreg code runs at a tiny size.

Nothing here times anything or compares speed. ``benchmarks/bench_vs_mlflow.py`` compares against
MLflow, which is not a dependency of modelreg: these tests run its modelreg half, which needs nothing
extra; the MLflow half runs when the script itself is run (it installs MLflow in its own virtual
environment), not in the test suite.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPT = BENCH / "bench_vs_mlflow.py"


def load_worker():
    spec = importlib.util.spec_from_file_location("_vs_mlflow_worker", BENCH / "_vs_mlflow_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_mlflow_comparison_worker_runs_the_modelreg_workload(tmp_path: Path) -> None:
    """The worker's modelreg side, in this process: populate 20 versions, then every operation."""
    w = load_worker()
    side = w.ModelregSide(tmp_path / "registry", tmp_path / "scratch")
    assert side.open(first_read=False) > 0
    (total,), info = side.run("populate", {"versions": 20})
    assert total > 0 and info == {"versions": 20}
    side.close()

    side = w.ModelregSide(tmp_path / "registry", tmp_path / "scratch")
    assert side.open() > 0  # import + Registry + get_version(name, 1)
    try:
        samples, _ = side.run("get_version", {"versions": [1, 7, 20, 3], "skip": 1})
        assert len(samples) == 3 and all(s > 0 for s in samples)
        samples, info = side.run("get_alias", {"count": 4, "skip": 1})
        assert len(samples) == 3 and info == {"version": w.champion_of(20)} == {"version": 10}
        samples, info = side.run("search", {"count": 2})
        assert len(samples) == 2 and info == {"hits": w.expected_hits(20)} == {"hits": 2}
        samples, _ = side.run("set_alias", {"versions": [3, 5, 4], "skip": 1})
        assert len(samples) == 2 and side.get_alias(w.ALIAS_WRITE) == 4
        samples, _ = side.run("transition", {"versions": [6, 8, 9], "skip": 1})
        assert len(samples) == 4  # two versions, each to staging then production
        samples, info = side.run("register", {"count": 3, "skip": 1})
        assert len(samples) == 2 and info == {"first": 21, "last": 23}

        reg = side.reg
        assert reg.get_version(w.MODEL, 9).stage.value == "production"
        assert reg.get_version(w.MODEL, 8).stage.value == "archived"  # the previous production holder
        assert reg.get_version(w.MODEL, 6).stage.value == "archived"
        assert len(reg.search(w.SEARCH)) == 2  # the registered versions carry no tags
        with pytest.raises(ValueError, match="unknown operation"):
            side.run("nope", {})
    finally:
        side.close()


def test_mlflow_comparison_script_runs_modelreg_alone(tmp_path: Path) -> None:
    """The whole script (child workers, rounds, table) with ``--only modelreg``: no MLflow needed."""
    proc = run_script(
        "--only",
        "modelreg",
        "--versions",
        "20",
        "--rounds",
        "1",
        "--quick",
        "--opens",
        "1",
        "--tmpdir",
        str(tmp_path),
        "--markdown",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "search hits {'modelreg': 2}" in out
    for label in (
        "client open",
        "get_version by number",
        "get by alias",
        "tag search",
        "set alias",
        "transition",
        "register a 1 KiB file",
    ):
        assert re.search(rf"^\| {re.escape(label)}.* \| \d+(\.\d+)? \|$", out, re.MULTILINE), (label, out)
    assert "MLflow" not in out.split("populating", 1)[1]  # MLflow was never needed
    assert not list(tmp_path.iterdir()), "the script left its registries behind"


def test_mlflow_comparison_reports_a_broken_environment(tmp_path: Path) -> None:
    """No usable MLflow: a clear message and exit 2, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_script("--quick", "--venv", str(blocker / "venv"), "--tmpdir", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot make the MLflow environment" in proc.stderr and "Traceback" not in proc.stderr

    not_a_venv = tmp_path / "precious"
    not_a_venv.mkdir()
    (not_a_venv / "keep.txt").write_text("x")
    proc = run_script("--quick", "--venv", str(not_a_venv), "--tmpdir", str(tmp_path))
    assert proc.returncode == 2 and "is not a virtual environment" in proc.stderr
    assert (not_a_venv / "keep.txt").is_file()

    proc = run_script("--quick", "--mlflow-python", str(tmp_path / "no-python"))
    assert proc.returncode == 2 and "cannot import mlflow" in proc.stderr


def _run_bench(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_scale_benchmark_runs_every_change_on_both_stores() -> None:
    proc = _run_bench("bench_scale.py", "--small", "5", "--big", "30", "--calls", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for store in ("sqlite", "json"):
        for change in (
            "set_alias",
            "delete_alias",
            "transition",
            "rollback",
            "set_tags",
            "set_description",
            "log_metrics",
            "request+approve(+complete)",
        ):
            assert f"{store} {change}: 30 vs 5 versions" in proc.stdout, proc.stdout


def test_writers_benchmark_checks_what_the_concurrency_tests_check() -> None:
    proc = _run_bench("bench_writers.py", "--workers", "2", "--ops", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 processes x 10 mixed operations: throughput" in proc.stdout
    assert "verify() clean: PASS" in proc.stdout


def test_bucket_writers_benchmark_runs_modelreg_with_its_checks() -> None:
    """modelreg's half of the modelstore comparison on a moto server it starts (modelstore, not a
    dependency, is installed only when the script itself is run)."""
    proc = _run_bench("bench_bucket_writers.py", "--only", "modelreg", "--writers", "2", "--ops", "3", "--rounds", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "contention (2 x 3)" in proc.stdout and "alone (1 x 3)" in proc.stdout
    assert "PASS  modelreg: numbers 1..6 consecutive, none duplicated or lost" in proc.stdout, proc.stdout


def test_models_benchmark_runs_every_flavor() -> None:
    proc = _run_bench("bench_models.py", "--mb", "1", "--rounds", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for flavor in ("sklearn", "pytorch", "safetensors"):
        for label in ("save_model vs framework save + register", "load_model vs fetch + framework load (cold)"):
            assert f"{flavor} {label}: " in proc.stdout, proc.stdout


def test_postgres_benchmark_runs_every_measurement(postgres_server: object) -> None:
    """At a tiny size on its own throwaway cluster (the fixture only makes sure PostgreSQL can start)."""
    proc = _run_bench(
        "bench_postgres.py",
        *("--models", "6", "--per-model", "3", "--ops", "2", "--searches", "1", "--writers", "2", "--writer-ops", "3"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in (
        "register: 18 vs 6 versions (6 models)",
        "transition: 18 vs 6 versions (6 models)",
        "search over 18 versions returning",
        "2 writers x 3 ops over 2 models: p99 latency",
        "2 writers x 3 ops on one model: median latency",
    ):
        assert label in proc.stdout, proc.stdout


def test_http_benchmark_runs_at_a_tiny_size() -> None:
    """``modelreg serve`` in a child, 2 clients x 5 requests: every measurement is printed."""
    proc = _run_bench("bench_http.py", "--versions", "3", "--clients", "2", "--requests", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for label in (
        "get-by-alias, 2 clients: wall time per request",
        "get-by-alias, 2 clients: p99 latency",
        "search, 2 clients",
    ):
        assert label in proc.stdout, proc.stdout
