"""The ``modelreg`` command line, run for real: in-process through ``main`` and as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from modelreg import Registry, cli
from modelreg.progress import ProgressBar, human_size

COMMANDS = [
    "register",
    "list",
    "versions",
    "show",
    "transition",
    "rollback",
    "alias",
    "tag",
    "describe",
    "log-metrics",
    "metrics",
    "download",
    "fetch",
    "history",
    "search",
    "compare",
    "verify",
    "gc",
    "purge",
    "archive",
    "sign",
    "signatures",
    "retention",
    "cache",
    "copy",
    "doctor",
    "completion",
    "import",  # an extension (modelreg.trackers.cli), listed here for its help
]


class CLI:
    """Runs ``modelreg --registry <tmp> ...`` in-process and returns (exit code, stdout, stderr)."""

    def __init__(self, registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.registry = registry
        self.capsys = capsys

    def __call__(self, *args: str, registry: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        argv = (["--registry", str(self.registry)] if registry else []) + list(args)
        rc = cli.main(argv)
        out, err = self.capsys.readouterr()
        return rc, out, err

    def ok(self, *args: str) -> str:
        rc, out, err = self(*args)
        assert rc == 0, f"modelreg {' '.join(args)} exited {rc}: {err}"
        return out

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(tmp_path / "reg", capsys)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx-model-bytes " * 1000)
    return path


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(6 * 1024 * 1024))
    return path


def _subprocess(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m modelreg ...``; output decoded without newline translation (progress bars use ``\\r``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelreg", *args],
        capture_output=True,
        env=env,
        input=stdin.encode() if stdin is not None else None,
        timeout=120,
    )
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _versions(run: CLI, path: Path, n: int, name: str = "churn") -> None:
    for i in range(n):
        data = path.with_name(f"{name.replace('/', '_')}-{i}.bin")
        data.write_bytes(f"{name} version {i}".encode())
        run.ok("register", name, str(data), "--metric", f"auc={0.8 + i / 100}", "--no-capture")


# -- help and parsing ------------------------------------------------------------------------------
def test_help_lists_every_command(run: CLI) -> None:
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert sorted(set(sub.choices) - ({name for name, _, _ in cli.EXTENSIONS} - set(COMMANDS))) == sorted(COMMANDS)
    rc, out, _ = run("--help", registry=False)
    assert rc == 0
    for command in COMMANDS:
        assert f"\n    {command} " in out, command
    assert "Exit codes" in out
    for command in COMMANDS:
        rc, out, _ = run(command, "--help", registry=False)
        assert rc == 0 and out.startswith("usage: modelreg"), command
        assert "--json" in out and "--registry" in out, command


def test_no_command_prints_help_and_exits_2(run: CLI) -> None:
    rc, _out, err = run(registry=False)
    assert rc == 2
    assert "usage: modelreg" in err and "register" in err


def test_usage_error_exits_2(run: CLI) -> None:
    rc, _, err = run("register", "churn")
    assert rc == 2
    assert "the following arguments are required: PATH" in err
    rc, _, err = run("frobnicate")
    assert rc == 2 and "invalid choice: 'frobnicate'" in err


def test_version_flag(run: CLI) -> None:
    import modelreg

    rc, out, _ = run("--version", registry=False)
    assert rc == 0 and out.strip() == f"modelreg {modelreg.__version__}"


def test_common_options_before_or_after_the_command(run: CLI, model_file: Path, tmp_path: Path) -> None:
    run.ok("register", "churn", str(model_file), "--no-capture")
    before = json.loads(run.ok("--json", "list"))
    after = json.loads(run.ok("list", "--json"))
    assert before == after and [m["name"] for m in before] == ["churn"]
    # --registry after the subcommand too
    rc = cli.main(["list", "--json", "--registry", str(tmp_path / "reg")])
    assert rc == 0
    out = run.capsys.readouterr().out
    assert json.loads(out)[0]["name"] == "churn"


# -- register and show -----------------------------------------------------------------------------
def test_register_with_every_option_and_show_json(run: CLI, model_file: Path) -> None:
    digest = "sha256:" + "ab" * 32
    mv = run.json(
        "register",
        "churn",
        str(model_file),
        "--param",
        "lr=0.1",
        "--param",
        "layers=[64, 32]",
        "--param",
        "optimizer=adam",
        "--param",
        "x=NaN",
        "--param",
        'nested={"a": {"b": true}}',
        "--metric",
        "auc=0.91",
        "--metric",
        "loss=1e-3",
        "--tag",
        "team=fraud",
        "--tag",
        "note=a=b",
        "--description",
        "first churn model",
        "--run-id",
        "run-42",
        "--run-url",
        "https://tracker.example/runs/42",
        "--dataset",
        "s3://data/churn.parquet@v3",
        "--dataset",
        f"gs://bucket/eval.csv@{digest}",
        "--dataset",
        "https://user@host.example/data/train",
        "--format",
        "onnx",
        "--no-capture",
    )
    assert mv["name"] == "churn" and mv["version"] == 1 and mv["stage"] == "experimental"
    assert mv["params"] == {
        "lr": 0.1,
        "layers": [64, 32],
        "optimizer": "adam",
        "x": "NaN",
        "nested": {"a": {"b": True}},
    }
    assert mv["metrics"] == {"auc": 0.91, "loss": 0.001}
    assert mv["tags"] == {"team": "fraud", "note": "a=b"}
    assert mv["description"] == "first churn model"
    assert mv["created_by"] == "tester"  # MODELREG_ACTOR, set by conftest
    lin = mv["lineage"]
    assert lin["run_id"] == "run-42" and lin["run_url"] == "https://tracker.example/runs/42"
    assert [(d["uri"], d.get("version"), d.get("digest")) for d in lin["datasets"]] == [
        ("s3://data/churn.parquet", "v3", None),
        ("gs://bucket/eval.csv", None, digest),
        ("https://user@host.example/data/train", None, None),
    ]
    assert lin["code"] is None and lin["environment"] is None  # --no-capture
    art = mv["artifact"]
    assert art["kind"] == "file" and art["name"] == "model.onnx" and art["format"] == "onnx"
    assert art["size"] == model_file.stat().st_size
    assert [f["path"] for f in art["files"]] == ["model.onnx"]

    assert run.json("show", "churn/1") == mv
    assert run.json("show", "churn") == mv


def test_register_text_output_and_capture(run: CLI, model_file: Path) -> None:
    out = run.ok("register", "churn", str(model_file))
    assert out.startswith("registered churn/1: file 'model.onnx', 16.6 KiB, sha256:")
    mv = run.json("show", "churn/1")
    assert mv["lineage"]["environment"]["python"] == sys.version.split()[0]


def test_register_folder_with_parent(run: CLI, model_file: Path, tmp_path: Path) -> None:
    run.ok("register", "churn", str(model_file), "--no-capture")
    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "data").write_bytes(b"weights" * 100)
    out = run.ok("register", "churn", str(folder), "--parent", "churn/1", "--no-capture")
    assert out.startswith("registered churn/2: folder 'saved_model', 705 B, sha256:")
    mv = run.json("show", "churn/2")
    assert mv["lineage"]["parents"] == ["churn/1"]
    assert sorted(f["path"] for f in mv["artifact"]["files"]) == ["saved_model.pb", "variables/data"]


def test_show_prints_a_version_fully(run: CLI, model_file: Path) -> None:
    run.ok(
        "register",
        "churn",
        str(model_file),
        "--param",
        "lr=0.1",
        "--metric",
        "auc=0.91",
        "--tag",
        "team=fraud",
        "--run-id",
        "run-7",
        "--dataset",
        "s3://d/x@v1",
        "--description",
        "hello there",
    )
    run.ok("log-metrics", "churn/1", "auc_live=0.87")
    run.ok("alias", "churn", "champion", "1")
    with Registry(run.registry) as reg:
        mv = reg.get_version("churn/1")
    out = run.ok("show", "churn@champion")
    lines = out.splitlines()
    assert lines[0] == "churn/1"
    for expected in [
        "  stage        experimental",
        "  aliases      champion",
        "  description  hello there",
        f"  digest       {mv.digest}",
        "params",
        "  lr  0.1",
        "metrics",
        "  auc  0.91",
        "logged metrics (latest values)",
        "  auc_live  0.87",
        "tags",
        "  team  fraud",
        "lineage",
        "run-7",
        "s3://d/x version v1",
        f"python {sys.version.split()[0]}",
        "files",
    ]:
        assert expected in out, expected
    assert any(ln.split() == ["model.onnx", *human_size(mv.size).split(), mv.digest] for ln in lines)
    assert "16.6 KiB (17000 bytes), 1 file(s)" in out


# -- list, versions --------------------------------------------------------------------------------
def test_list_and_versions(run: CLI, tmp_path: Path) -> None:
    rc, out, err = run("list")
    assert rc == 0 and out == "" and "no models yet" in err
    assert run.json("list") == []
    _versions(run, tmp_path, 3)
    _versions(run, tmp_path, 1, name="fraud/scorer")
    run.ok("transition", "churn/2", "production")

    out = run.ok("list")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSIONS", "LATEST", "STAGES", "ALIASES", "OWNER", "UPDATED", "(UTC)"]
    churn = next(ln for ln in lines if ln.startswith("churn "))
    assert churn.split()[:4] == ["churn", "3", "3", "production:2"]
    models = run.json("list")
    assert {m["name"]: m["version_count"] for m in models} == {"churn": 3, "fraud/scorer": 1}

    out = run.ok("versions", "churn")
    rows = [ln.split() for ln in out.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [("1", "experimental"), ("2", "production"), ("3", "experimental")]
    assert [v["version"] for v in run.json("versions", "churn", "--stage", "experimental")] == [1, 3]
    rc, _, err = run("versions", "churn", "--stage", "prod")
    assert rc == 2 and "unknown stage 'prod'; valid stages are: experimental, staging, production, archived" in err


# -- stages ----------------------------------------------------------------------------------------
def test_transition_both_forms_and_exclusive_production(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    assert run.ok("transition", "churn/1", "production", "--comment", "first").splitlines() == [
        "churn/1: experimental -> production"
    ]
    assert run.ok("transition", "churn", "2", "production", "-m", "beats v1").splitlines() == [
        "churn/1: production -> archived",
        "churn/2: experimental -> production",
    ]
    assert run.json("show", "churn@production")["version"] == 2
    assert run.json("transition", "churn/1", "staging")["stage"] == "staging"
    events = run.json("history", "churn")
    assert [e["comment"] for e in events if e["action"] == "transition"][:1] == ["first"]


def test_invalid_transition_names_allowed_targets(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 1)
    run.ok("transition", "churn/1", "production")
    rc, out, err = run("transition", "churn/1", "experimental")
    assert rc == 1 and out == ""
    assert err == (
        "error: cannot move churn/1 from production to experimental; allowed from production: staging, archived\n"
    )
    rc, _, err = run("transition", "churn/1", "live")
    assert rc == 2 and err.startswith("error: unknown stage 'live'")
    rc, _, err = run("transition", "churn/1", "2", "staging")
    assert rc == 2 and "give at most one of a version, a stage or an alias" in err
    rc, _, err = run("transition", "churn/1", "prod")
    assert rc == 2 and err.rstrip().endswith("did you mean 'production'?")
    rc, out, err = run("transition", "churn", "1")  # the version given where the stage goes
    assert rc == 2 and out == ""
    assert err == (
        "error: '1' is not a stage: the target stage is missing; use `modelreg transition churn 1 STAGE` or "
        "`modelreg transition churn/1 STAGE` with STAGE one of experimental, staging, production, archived\n"
    )


def test_transition_to_the_current_stage_is_a_notice(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    run.ok("transition", "churn/2", "production")
    events = run.json("history", "churn")
    rc, out, err = run("transition", "churn/2", "production", "-m", "again")
    assert (rc, out, err) == (0, "", "churn/2 is already in production; nothing to do\n")
    rc, out, err = run("transition", "churn", "2", "production", "--json")
    assert rc == 0 and json.loads(out)["stage"] == "production" and "already in production" in err
    assert run.json("history", "churn") == events  # no audit event
    rc, out, err = run("transition", "churn/2", "production", "--strict")
    assert rc == 1 and out == "" and err == "error: churn/2 is already in production; nothing to do\n"
    assert run.json("history", "churn") == events


def test_rollback(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    run.ok("transition", "churn/1", "production")
    run.ok("transition", "churn/2", "production")
    assert run.ok("rollback", "churn", "-m", "v2 regressed").splitlines() == [
        "churn/2: production -> archived",
        "churn/1: back in production",
    ]
    assert run.json("show", "churn@production")["version"] == 1
    rc, _, err = run("rollback", "churn", "--stage", "staging")
    assert rc == 1 and err.startswith("error: no version of 'churn' is in staging")
    assert run.json("rollback", "churn")["version"] == 2


def test_archive(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 1)
    assert run.ok("archive", "churn/1", "-m", "old").strip() == "churn/1: experimental -> archived"
    assert run.json("show", "churn/1")["stage"] == "archived"
    rc, out, err = run("archive", "churn/1")  # archived already: a notice, nothing written
    assert rc == 0 and out == "" and err == "churn/1 is already in archived; nothing to do\n"
    rc, _, err = run("archive", "churn/1", "--strict")
    assert rc == 1 and "already in archived" in err
    assert [e["action"] for e in run.json("history", "churn/1")].count("transition") == 1


# -- aliases, tags, descriptions, metrics ----------------------------------------------------------
def test_alias_set_list_and_delete(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 3)
    assert run.ok("alias", "churn", "champion", "2").strip() == "churn@champion -> churn/2"
    run.ok("transition", "churn/3", "production")
    assert run.json("alias", "churn@production", "challenger")["version"] == 3
    assert run.json("alias", "churn") == {"champion": 2, "challenger": 3}
    out = run.ok("alias", "churn")
    assert [ln.split() for ln in out.splitlines()] == [["ALIAS", "VERSION"], ["challenger", "3"], ["champion", "2"]]
    assert run.json("show", "churn@champion")["version"] == 2

    rc, _, err = run("alias", "churn", "champion")
    assert rc == 2 and "say which version 'champion' should point at" in err
    rc, _, err = run("alias", "churn", "production", "1")
    assert rc == 2 and "is a stage name" in err

    assert run.ok("alias", "churn", "champion", "--delete", "-m", "retired").strip() == (
        "removed alias churn@champion (was churn/2)"
    )
    assert run.json("history", "churn")[-1]["comment"] == "retired"
    assert run.json("alias", "churn", "challenger", "--delete") == {
        "name": "churn",
        "alias": "challenger",
        "deleted": True,
        "version": 3,
    }
    rc, out, err = run("alias", "churn")
    assert rc == 0 and out == "" and "has no aliases" in err
    rc, _, err = run("alias", "churn", "champion", "--delete")
    assert rc == 1 and "has no alias 'champion'" in err
    rc, _, err = run("show", "churn@champion")
    assert rc == 1 and "has no alias 'champion'" in err


def test_tag_set_remove_and_print(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 1)
    out = run.ok("tag", "churn/1", "team=fraud", "reviewed=yes")
    assert [ln.split() for ln in out.splitlines()] == [["TAG", "VALUE"], ["reviewed", "yes"], ["team", "fraud"]]
    assert run.json("tag", "churn/1", "--remove", "reviewed")["tags"] == {"team": "fraud"}
    assert run.json("tag", "churn/1")["tags"] == {"team": "fraud"}
    rc, _, err = run("tag", "churn/1", "team")
    assert rc == 2 and err == "error: tag 'team' must look like KEY=VALUE, e.g. team=fraud\n"
    rc, _, err = run("tag", "churn/1", "x=" + "v" * 6000)
    assert rc == 2 and "tag values are capped at 5000" in err


def test_describe_version_and_model(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 1)
    assert run.ok("describe", "churn/1", "retrained on Q3").strip() == "description of churn/1 updated"
    assert run.json("show", "churn/1")["description"] == "retrained on Q3"
    assert run.json("describe", "churn", "Churn model for retail", "--model")["description"] == "Churn model for retail"
    with Registry(run.registry) as reg:
        assert reg.get_model("churn").description == "Churn model for retail"
    proc = _subprocess("--registry", str(run.registry), "describe", "churn/1", "-", stdin="from stdin\n")
    assert proc.returncode == 0, proc.stderr
    assert run.json("show", "churn/1")["description"] == "from stdin\n"


def test_log_metrics_and_metric_history(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 1)
    run.ok("transition", "churn/1", "production")
    assert (
        run.ok("log-metrics", "churn@production", "auc_live=0.87", "--step", "1").strip()
        == "logged auc_live=0.87 on churn/1"
    )
    mv = run.json("log-metrics", "churn/1", "auc_live=0.85", "latency_ms=12", "--step", "2", "-m", "week 2")
    assert mv["logged_metrics"] == {"auc_live": 0.85, "latency_ms": 12.0}
    assert mv["metrics"] == {"auc": 0.8}
    points = run.json("metrics", "churn/1", "--key", "auc_live")
    assert [(p["value"], p["step"], p["source"]) for p in points] == [(0.87, 1, "log"), (0.85, 2, "log")]
    out = run.ok("metrics", "churn/1")
    rows = [ln.split()[:4] for ln in out.splitlines()[1:]]
    assert rows == [
        ["auc", "0.8", "register", "-"],
        ["auc_live", "0.87", "log", "1"],
        ["auc_live", "0.85", "log", "2"],
        ["latency_ms", "12", "log", "2"],
    ]
    rc, _, err = run("log-metrics", "churn/1", "auc_live=nan")
    assert rc == 2 and err == "error: metric 'auc_live' is nan; metrics must be finite numbers (no NaN or inf)\n"
    rc, _, err = run("log-metrics", "churn/1", "auc_live=high")
    assert rc == 2 and err == "error: metric 'auc_live': 'high' is not a number\n"


# -- download, history, search, compare ------------------------------------------------------------
def test_download(run: CLI, model_file: Path, tmp_path: Path) -> None:
    run.ok("register", "churn", str(model_file), "--no-capture")
    run.ok("transition", "churn/1", "production")
    dest = tmp_path / "deploy"
    out = run.ok("download", "churn@production", str(dest))
    assert out.strip() == str(dest / "model.onnx")
    assert (dest / "model.onnx").read_bytes() == model_file.read_bytes()
    rc, _, err = run("download", "churn@production", str(dest))
    assert (
        rc == 1 and "exists already; pass --overwrite or pick another folder\n" in err and "overwrite=True" not in err
    )
    info = run.json("download", "churn/1", str(dest), "--overwrite")
    assert info == {
        "ref": "churn/1",
        "path": str(dest / "model.onnx"),
        "digest": run.json("show", "churn/1")["artifact"]["digest"],
        "size": model_file.stat().st_size,
    }
    # a destination that is a file: the OSError is reported without a traceback
    rc, _, err = run("download", "churn/1", str(model_file))
    assert rc == 1 and err.startswith("error: ") and str(model_file) in err and "Traceback" not in err


def test_history(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    run.ok("--actor", "ana", "transition", "churn/2", "production", "-m", "ship it")
    run.ok("alias", "churn", "champion", "2", "--actor", "bob")
    run.ok("tag", "churn/1", "team=fraud")
    run.ok("log-metrics", "churn/2", "auc_live=0.9", "--step", "4")
    events = run.json("history", "churn")
    assert [e["action"] for e in events] == [
        "create_model",
        "register",
        "register",
        "transition",
        "set_alias",
        "set_tags",
        "log_metrics",
    ]
    assert [e["seq"] for e in events] == list(range(1, 8))
    assert events[3]["actor"] == "ana" and events[4]["actor"] == "bob" and events[5]["actor"] == "tester"

    out = run.ok("history", "churn")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["SEQ", "TIME", "(UTC)", "ACTOR"]
    transition = next(ln for ln in lines if " transition " in ln)
    assert "experimental -> production" in transition and "ship it" in transition and " ana " in transition
    assert "@champion: - -> 2" in out and "team: - -> fraud" in out and "auc_live: - -> 0.9; step=4" in out

    assert [e["version"] for e in run.json("history", "churn/2")] == [2, 2, 2, 2]
    assert [e["action"] for e in run.json("history", "churn", "--limit", "2")] == ["set_tags", "log_metrics"]
    everything = run.ok("history")
    assert everything.splitlines()[0].split()[0] == "MODEL"
    rc, _, err = run("history", "churn", "--limit", "-1")
    assert rc == 2 and "--limit must be 0 or more" in err

    run.ok("log-metrics", "churn/2", "auc_live=0.8")  # a second value: the line shows the one it replaced
    assert "auc_live: 0.9 -> 0.8" in run.ok("history", "churn", "--limit", "1")
    logged = run.json("history", "churn", "--limit", "2")  # both sides of the event have the same shape
    assert [(e["before"], e["after"]) for e in logged] == [
        ({"metrics": {"auc_live": None}}, {"metrics": {"auc_live": 0.9}, "step": 4}),
        ({"metrics": {"auc_live": 0.9}}, {"metrics": {"auc_live": 0.8}}),
    ]


def test_search(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 4)
    run.ok("tag", "churn/2", "team=fraud")
    run.ok("tag", "churn/4", "team=fraud")
    found = run.json("search", "metrics.auc > 0.8 and tags.team = 'fraud'", "--order-by", "metrics.auc desc")
    assert [(v["name"], v["version"]) for v in found] == [("churn", 4), ("churn", 2)]
    found = run.json("search", "--order-by", "version desc", "--limit", "2")
    assert [v["version"] for v in found] == [4, 3]
    out = run.ok("search", "tags.team = 'fraud'", "--order-by", "version")
    assert [ln.split()[0] for ln in out.splitlines()] == ["REF", "churn/2", "churn/4"]
    rc, out, err = run("search", "tags.team = 'nobody'")
    assert rc == 0 and out == "" and "no matching versions" in err
    rc, _, err = run("search", "metrics.auc >")
    assert rc == 2 and err.startswith("error: ")


def test_compare(run: CLI, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    run.ok("register", "churn", str(a), "--param", "lr=0.1", "--metric", "auc=0.8", "--no-capture")
    run.ok(
        "register", "churn", str(b), "--param", "lr=0.2", "--metric", "auc=0.9", "--tag", "team=fraud", "--no-capture"
    )
    cmp = run.json("compare", "churn/1", "churn/2")
    assert cmp["params"] == {"lr": {"a": 0.1, "b": 0.2}}
    assert cmp["metrics"] == {"auc": {"a": 0.8, "b": 0.9}}
    assert cmp["tags"] == {"team": {"a": None, "b": "fraud"}}
    assert cmp["files_added"] == ["b.bin"] and cmp["files_removed"] == ["a.bin"] and cmp["same_artifact"] is False
    out = run.ok("compare", "churn/1", "churn/2")
    assert out.splitlines()[0] == "churn/1 vs churn/2: different artifacts"
    assert [ln.split() for ln in out.splitlines() if ln.strip().startswith("lr")] == [["lr", "0.1", "0.2"]]
    assert "added    b.bin" in out and "removed  a.bin" in out
    assert run.ok("compare", "churn/1", "churn/1").splitlines() == [
        "churn/1 vs churn/1: same artifact",
        "no differences",
    ]


# -- verify, gc, purge -----------------------------------------------------------------------------
def _blob_path(registry: Path, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return registry / "blobs" / "sha256" / hexpart[:2] / hexpart[2:]


def test_verify_ok_and_corrupted_blob(run: CLI, model_file: Path) -> None:
    run.ok("register", "churn", str(model_file), "--no-capture")
    out = run.ok("verify")
    assert out.strip() == "ok: checked 1 model(s), 2 audit event(s), 1 blob(s) (16.6 KiB)"
    assert run.json("verify", "churn")["ok"] is True

    digest = run.json("show", "churn/1")["artifact"]["digest"]
    blob = _blob_path(run.registry, digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    rc, out, err = run("verify")
    assert rc == 1
    assert out.splitlines()[0].startswith("FAILED: 1 problem(s)")
    assert f"  [blob] churn/1: file 'model.onnx': blob {digest} is corrupted" in out
    assert err == "error: verification found 1 problem(s)\n"
    rc, out, _ = run("verify", "--json")
    report = json.loads(out)
    assert rc == 1 and report["ok"] is False and report["problems"][0]["kind"] == "blob"
    assert run.ok("verify", "--no-blobs").startswith("ok: ")
    rc, _, err = run("download", "churn/1", str(model_file.parent / "out"))
    assert rc == 1 and "error: churn/1: file 'model.onnx' is corrupted" in err


def test_purge_and_gc(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    digest = run.json("show", "churn/1")["artifact"]["digest"]
    rc, _, err = run("purge", "churn")
    assert rc == 2 and "purge needs an explicit version, e.g. 'churn/3'" in err
    run.ok("transition", "churn/1", "production")
    rc, _, err = run("purge", "churn/1")
    assert rc == 1 and "transition it to archived" in err
    run.ok("archive", "churn/1")
    assert run.ok("purge", "churn/1", "-m", "leaked data").startswith("purged churn/1; its number stays reserved")
    rc, _, err = run("show", "churn/1")
    assert rc == 1 and err == "error: model 'churn' has no version 1; list them with `modelreg versions churn`\n"
    assert run.json("history", "churn")[-1]["action"] == "purge"

    report = run.json("gc")  # default grace 1h: the blob is too young
    assert report["removed"] == [] and report["kept_recent"] == 1
    for grace, shown in (("5", "5s"), ("90", "1m30s"), ("1h30m", "1h30m"), ("2d", "2d")):  # always with a unit
        assert run.ok("gc", "--grace", grace, "--dry-run").splitlines()[0].endswith(f"1 newer than {shown}")
    out = run.ok("gc", "--grace", "0s", "--dry-run")
    assert out.splitlines() == [
        "would remove 1 unreferenced blob(s), 15 B; kept 1 in use and 0 newer than 0s",
        f"  {digest}",
    ]
    assert _blob_path(run.registry, digest).exists()
    report = run.json("gc", "--grace", "0s")
    assert (
        report["removed"] == [digest]
        and report["bytes_freed"] == len(b"churn version 0")
        and report["dry_run"] is False
    )
    assert not _blob_path(run.registry, digest).exists()
    rc, _, err = run("gc", "--grace", "soon")
    assert rc == 2 and "invalid duration 'soon'" in err

    # the number stays reserved
    data = tmp_path / "next.bin"
    data.write_bytes(b"next")
    assert run.json("register", "churn", str(data), "--no-capture")["version"] == 3


def test_parse_duration() -> None:
    assert cli.parse_duration("1h") == timedelta(hours=1)
    assert cli.parse_duration("30m") == timedelta(minutes=30)
    assert cli.parse_duration("0s") == timedelta(0)
    assert cli.parse_duration("1h30m") == timedelta(minutes=90)
    assert cli.parse_duration("2d") == timedelta(days=2)
    assert cli.parse_duration("1w") == timedelta(weeks=1)
    assert cli.parse_duration("90") == timedelta(seconds=90)
    assert cli.parse_duration("1.5h") == timedelta(minutes=90)
    for bad in ("", "h", "1x", "-1h", "1h 30m"):
        with pytest.raises(ValueError, match="invalid duration"):
            cli.parse_duration(bad)


def test_param_values() -> None:
    assert cli.parse_param_value("0.1") == 0.1
    assert cli.parse_param_value("3") == 3
    assert cli.parse_param_value("true") is True
    assert cli.parse_param_value("null") is None
    assert cli.parse_param_value('"3"') == "3"
    assert cli.parse_param_value("adam") == "adam"
    assert cli.parse_param_value("Infinity") == "Infinity"


# -- errors ----------------------------------------------------------------------------------------
def test_errors_in_process(run: CLI, model_file: Path) -> None:
    rc, out, err = run("show", "nope")
    assert (rc, out) == (1, "")
    assert err == "error: no model named 'nope'; list models with `modelreg list`\n"
    rc, _, err = run("register", "../x", str(model_file))
    assert rc == 2 and err.startswith("error: model name '../x' looks like a path; use letters, digits")
    rc, _, err = run("register", "churn", str(model_file), "--metric", "auc=NaN")
    assert rc == 2 and err == "error: metric 'auc' is nan; metrics must be finite numbers (no NaN or inf)\n"
    rc, _, err = run("register", "churn", str(model_file), "--param", "lr")
    assert rc == 2 and err == "error: --param 'lr' must look like KEY=VALUE, e.g. lr=0.1\n"
    rc, _, err = run("register", "churn", str(model_file.parent / "missing.onnx"))
    assert rc == 2 and "does not exist" in err
    rc, _, err = run("--actor", " ", "list")
    assert rc == 2 and "actor must be a non-empty string" in err
    with Registry(run.registry) as reg:
        assert reg.list_models() == []  # nothing was written by the failures


def test_errors_exit_codes_and_stderr_in_a_subprocess(tmp_path: Path, model_file: Path) -> None:
    reg = str(tmp_path / "reg")
    proc = _subprocess("--registry", reg, "show", "nope")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "error: no model named 'nope'; list models with `modelreg list`\n"

    proc = _subprocess("--registry", reg, "register", "../x", str(model_file))
    assert proc.returncode == 2 and proc.stderr.startswith("error: model name '../x' looks like a path")

    proc = _subprocess("--registry", reg, "register", "churn", str(model_file), "--metric", "auc=nan")
    assert proc.returncode == 2
    assert proc.stderr == "error: metric 'auc' is nan; metrics must be finite numbers (no NaN or inf)\n"

    assert _subprocess("--registry", reg, "register", "churn", str(model_file)).returncode == 0
    assert _subprocess("--registry", reg, "transition", "churn/1", "production").returncode == 0
    proc = _subprocess("--registry", reg, "transition", "churn/1", "experimental")
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: cannot move churn/1 from production to experimental; allowed from production: staging, archived\n"
    )

    proc = _subprocess("--registry", reg, "versions")
    assert proc.returncode == 2 and "the following arguments are required: NAME" in proc.stderr
    for p in (proc,):
        assert "Traceback" not in p.stderr


def test_registry_from_environment_in_a_subprocess(tmp_path: Path, model_file: Path) -> None:
    env = {**os.environ, "MODELREG_URI": str(tmp_path / "from-env"), "MODELREG_ACTOR": "ci-bot"}
    proc = _subprocess("register", "churn", str(model_file), "--no-capture", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["created_by"] == "ci-bot"
    with Registry(tmp_path / "from-env") as reg:
        assert [m.name for m in reg.list_models()] == ["churn"]
    # --registry wins over MODELREG_URI
    proc = _subprocess("--registry", str(tmp_path / "explicit"), "list", "--json", env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
    # neither: the default folder under MODELREG_HOME
    env = {k: v for k, v in env.items() if k != "MODELREG_URI"}
    env["MODELREG_HOME"] = str(tmp_path / "home")
    proc = _subprocess("register", "churn", str(model_file), "--no-capture", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "home" / "modelreg.db").exists()


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("modelreg.exe" if os.name == "nt" else "modelreg")
    assert script.exists(), "the package is installed with its `modelreg` entry point"
    proc = subprocess.run(
        [str(script), "--registry", str(tmp_path / "reg"), "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_keyboard_interrupt_exits_130(run: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Registry) -> list[object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(Registry, "list_models", interrupted)
    rc, out, err = run("list")
    assert (rc, out, err) == (130, "", "interrupted\n")


# -- progress --------------------------------------------------------------------------------------
def test_progress_bar_on_multi_megabyte_transfers(tmp_path: Path, big_file: Path) -> None:
    reg = str(tmp_path / "reg")
    proc = _subprocess("--registry", reg, "--progress", "register", "big", str(big_file), "--no-capture")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("registered big/1: file 'big.bin', 6.0 MiB")
    lines = proc.stderr.split("\n")
    assert lines[-1] == ""  # the bar finishes its line
    finals = [ln.rsplit("\r", 1)[-1].rstrip() for ln in lines[:-1]]
    assert [f.split()[0] for f in finals] == ["hash", "upload"]
    for final in finals:
        assert "100.0% [########################] 6.0 MiB/6.0 MiB" in final
    assert "\r" in proc.stderr

    out = tmp_path / "out"
    proc = _subprocess("--registry", reg, "download", "big/1", str(out), "--progress")
    assert proc.returncode == 0, proc.stderr
    final = proc.stderr.rstrip("\n").rsplit("\r", 1)[-1]
    assert final.startswith("download") and "100.0%" in final and "6.0 MiB/6.0 MiB" in final
    assert (out / "big.bin").read_bytes() == big_file.read_bytes()

    proc = _subprocess("--registry", reg, "verify", "--progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.rstrip("\n").rsplit("\r", 1)[-1].startswith("verify")

    # stderr is a pipe here: no bar unless forced, and --no-progress wins when given last
    proc = _subprocess("--registry", reg, "download", "big/1", str(out), "--overwrite")
    assert proc.returncode == 0 and proc.stderr == ""
    proc = _subprocess("--registry", reg, "--progress", "download", "big/1", str(out), "--overwrite", "--no-progress")
    assert proc.returncode == 0 and proc.stderr == ""


def test_progress_in_process_with_capsys(run: CLI, big_file: Path) -> None:
    rc, out, err = run("register", "big", str(big_file), "--progress", "--no-capture")
    assert rc == 0 and out.startswith("registered big/1")
    assert "hash" in err and "upload" in err and "6.0 MiB/6.0 MiB" in err
    rc, _, err = run("register", "big", str(big_file), "--no-capture")
    assert rc == 0 and err == ""


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_throttles_redraws() -> None:
    clock, stream = FakeClock(), io.StringIO()
    bar = ProgressBar(stream, force=True, clock=clock)
    total = 1000 * 1024
    for i in range(1, 1001):  # 1000 updates within one instant: one redraw, then the final state on close
        bar("upload", i * 1024, total)
    assert bar.redraws == 1
    bar.close()
    assert bar.redraws == 2
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "100.0% [########################] 1000.0 KiB/1000.0 KiB" in text.rsplit("\r", 1)[-1]

    clock2, stream2 = FakeClock(), io.StringIO()
    bar = ProgressBar(stream2, force=True, clock=clock2, min_interval=0.1)
    for i in range(1, 41):  # 40 updates over 5 s, one every 0.125 s: each may redraw
        clock2.now += 0.125
        bar("download", i, 80)
    assert bar.redraws == 40
    for i in range(41, 81):  # 40 updates over 1 s: at most 10 redraws per second
        clock2.now += 0.025
        bar("download", i, 80)
    assert bar.redraws == 40 + 10


def test_progress_bar_line_content_and_phases() -> None:
    clock, stream = FakeClock(), io.StringIO()
    bar = ProgressBar(stream, force=True, clock=clock)
    mib = 1024 * 1024
    bar("hash", 0, 10 * mib)
    clock.now += 1.0
    bar("hash", 5 * mib, 10 * mib)
    assert (
        stream.getvalue().rsplit("\r", 1)[-1]
        == "hash       50.0% [############............] 5.0 MiB/10.0 MiB  5.0 MiB/s"
    )
    clock.now += 1.0
    bar("hash", 10 * mib, 10 * mib)
    clock.now += 0.5
    bar("upload", 2 * mib, 4 * mib)  # a new phase ends the previous line
    bar.close()
    lines = stream.getvalue().split("\n")
    assert lines[0].rsplit("\r", 1)[-1].startswith("hash      100.0%")
    assert lines[1].rsplit("\r", 1)[-1].startswith("upload     50.0% [############............] 2.0 MiB/4.0 MiB")
    assert lines[2] == ""

    # folders report per file: throughput counts the bytes of every file in the phase
    clock, stream = FakeClock(), io.StringIO()
    bar = ProgressBar(stream, force=True, clock=clock)
    bar("hash", mib, mib)  # three files of 1 MiB, each reported once when done
    clock.now += 1.0
    bar("hash", mib, mib)
    clock.now += 1.0
    bar("hash", mib, mib)
    bar.close()
    assert (
        stream.getvalue().rsplit("\r", 1)[-1]
        == "hash      100.0% [########################] 1.0 MiB/1.0 MiB  1.5 MiB/s\n"
    )

    # unknown total
    clock, stream = FakeClock(), io.StringIO()
    bar = ProgressBar(stream, force=True, clock=clock)
    bar("download", 3 * mib, 0)
    assert stream.getvalue() == "\rdownload  3.0 MiB"


def test_progress_bar_only_on_a_terminal_and_only_for_long_phases() -> None:
    assert ProgressBar(io.StringIO()).enabled is False
    assert ProgressBar(io.StringIO(), force=True).enabled is True
    assert ProgressBar(FakeTTY(), force=False).enabled is False
    clock, tty = FakeClock(), FakeTTY()
    bar = ProgressBar(tty, clock=clock)
    assert bar.enabled is True
    bar("upload", 1, 2)
    bar("upload", 2, 2)  # finished within the delay: stays quiet
    bar.close()
    assert tty.getvalue() == ""
    bar("download", 1, 4)
    clock.now += 0.6
    bar("download", 2, 4)
    bar.close()
    assert tty.getvalue() == "\rdownload   50.0% [############............] 2 B/4 B  3 B/s\n"


def test_human_size() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(6 * 1024 * 1024) == "6.0 MiB"
    assert human_size(3 * 1024**4) == "3.0 TiB"


# -- extension point -------------------------------------------------------------------------------
HOOK_MODULE = """
import argparse

def add_commands(subparsers):
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("who")
    p.set_defaults(func=hello)
    q = subparsers.add_parser("models-count", help="count models")
    q.set_defaults(func=count)
    w = subparsers.add_parser("where", help="a command with its own --registry and a handler(args)")
    w.add_argument("--registry", "-r", default=None)
    w.set_defaults(func=where)

def hello(ctx, args):
    if ctx.json:
        ctx.emit({"hello": args.who})
    else:
        ctx.out(f"hello {args.who}")

def count(ctx, args):
    ctx.out(str(len(ctx.registry.list_models())))
    return 3

def where(args):
    print(f"registry={args.registry} json={args.json}")
"""


def test_extension_commands_are_imported_only_when_run(
    run: CLI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_file: Path,
) -> None:
    pkg = tmp_path / "ext"
    pkg.mkdir()
    (pkg / "modelreg_hello_ext.py").write_text(HOOK_MODULE)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.delitem(sys.modules, "modelreg_hello_ext", raising=False)
    target = "modelreg_hello_ext:add_commands"
    monkeypatch.setattr(
        cli,
        "EXTENSIONS",
        [("hello", "say hello", target), ("models-count", "count models", target), ("where", "where", target)],
    )

    rc, out, _ = run("--help", registry=False)
    assert rc == 0 and "hello" in out and "models-count" in out
    assert "modelreg_hello_ext" not in sys.modules

    assert run.ok("hello", "world") == "hello world\n"
    assert "modelreg_hello_ext" in sys.modules
    assert run.json("hello", "ana") == {"hello": "ana"}
    rc, out, _ = run("hello", "--help", registry=False)
    assert rc == 0 and "usage: modelreg hello" in out and "--registry" in out
    rc, _, err = run("hello")
    assert rc == 2 and "the following arguments are required: who" in err

    run.ok("register", "churn", str(model_file), "--no-capture")
    rc, out, _ = run("models-count")
    assert (rc, out) == (3, "1\n")

    # a parser that redefines a common option, and a handler that takes only args
    assert run("--json", "where", registry=False)[1] == "registry=None json=True\n"
    assert run("--registry", "a", "where", registry=False)[1] == "registry=a json=False\n"
    assert run("where", "-r", "b", registry=False)[1] == "registry=b json=False\n"
    assert run("--registry", "a", "where", "--registry", "b", registry=False)[1] == "registry=b json=False\n"


def test_ui_command_is_registered_lazily() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from modelreg import cli; rc = cli.main(['--help']); "
            "print('UI_IMPORTED' if 'modelreg.ui' in sys.modules else 'UI_NOT_IMPORTED'); sys.exit(rc)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\n    ui " in proc.stdout and proc.stdout.rstrip().endswith("UI_NOT_IMPORTED")
    proc = _subprocess("ui", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: modelreg ui") and "--port" in proc.stdout
