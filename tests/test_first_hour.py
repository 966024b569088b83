"""What a newcomer meets in the first hour: suggestions for typos ("did you mean"), advice written for
where the reader is (Python or the command line), and ``--json`` output that scripts can use as is."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import pytest

from modelreg import AlreadyExistsError, InvalidInputError, PolicyViolation, Registry, VersionNotFound, cli
from modelreg.errors import Message, ModelregError, Remedy, render
from modelreg.governance import Gate, Policy
from modelreg.suggest import closest, closest_n, did_you_mean
from tests.helpers import write
from tests.test_cli import CLI, _versions


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(tmp_path / "reg", capsys)


# -- did you mean ------------------------------------------------------------------------------------
def test_closest() -> None:
    stages = ["experimental", "staging", "production", "archived"]
    assert closest("prod", stages) == "production"  # a prefix
    assert closest("prodution", stages) == "production"  # a typo
    assert closest("STAGING", stages) == "staging"  # only the case differs
    assert closest("staging", stages) is None  # the word itself is no suggestion
    assert closest("zzz", stages) is None
    assert closest_n("auc_lve", ["auc", "auc_live", "f1"]) == ["auc_live", "auc"]  # closest first
    assert closest_n("au", ["auc_live", "auc", "f1"]) == ["auc", "auc_live"]  # prefixes: shortest first
    assert did_you_mean("tema", ["team"]) == "; did you mean 'team'?"
    assert did_you_mean("tema", ["owner"]) == ""


def test_stage_and_alias_typos_in_python(tmp_path: Path) -> None:
    with Registry(tmp_path / "reg") as reg:
        mv = reg.register("churn", write(tmp_path / "m.bin", b"m"), capture=None)
        with pytest.raises(VersionNotFound) as info:
            reg.get_version("churn@prod")
        assert str(info.value) == "model 'churn' has no alias 'prod' (aliases: none); did you mean 'churn@production'?"
        reg.set_alias("churn", "champion", mv.version)
        with pytest.raises(
            VersionNotFound, match=r"has no alias 'champ' \(aliases: champion\); did you mean 'churn@champion'\?$"
        ):
            reg.get_version("churn@champ")
        with pytest.raises(VersionNotFound, match=r"has no alias 'xyz' \(aliases: champion\)$"):  # nothing close
            reg.get_version("churn@xyz")
        with pytest.raises(
            VersionNotFound, match=r"has no alias 'champoin' \(aliases: champion\); did you mean 'champion'\?$"
        ):
            reg.delete_alias("churn", "champoin")
        with pytest.raises(InvalidInputError, match=r"unknown stage 'prodution'; .*; did you mean 'production'\?$"):
            reg.transition("churn", mv.version, "prodution")


def test_typos_on_the_command_line(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 1)
    rc, _, err = run("regster", "churn", "model.bin")
    assert rc == 2 and err.endswith("error: argument COMMAND: invalid choice: 'regster'; did you mean 'register'?\n")
    rc, _, err = run("frobnicate")  # nothing close: the list of commands
    assert rc == 2 and "invalid choice: 'frobnicate' (choose from " in err and "did you mean" not in err
    rc, _, err = run("cache", "inf")
    assert rc == 2 and err.endswith("invalid choice: 'inf'; did you mean 'info'?\n")
    rc, _, err = run("list", "--jsn")
    assert rc == 2 and err.endswith("unrecognized arguments: --jsn; did you mean '--json' instead of '--jsn'?\n")
    rc, _, err = run("transition", "churn/1", "production", "--comennt", "x")
    assert rc == 2 and "did you mean '--comment' instead of '--comennt'?" in err
    rc, out, err = run("show", "churn@prod")
    assert (rc, out) == (1, "")
    assert err == "error: model 'churn' has no alias 'prod' (aliases: none); did you mean 'churn@production'?\n"
    rc, _, err = run("transition", "churn/1", "prodution")
    assert rc == 2 and err.rstrip().endswith("did you mean 'production'?")
    rc, _, err = run("search", "metrics.auc => 0.9")
    assert rc == 2 and "unknown operator '=>' in search query; did you mean '>='?" in err
    rc, _, err = run("search", "metric.auc > 0.9")
    assert rc == 2 and err.rstrip().endswith("did you mean 'metrics.auc'?")


def test_a_search_on_a_key_no_version_has_warns_on_stderr(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    run.ok("tag", "churn/1", "team=fraud")
    rc, out, err = run("search", "tags.tema = 'fraud'")
    assert (rc, out) == (0, "")
    assert err == (
        "warning: no version has the tag key 'tema', so tags.tema matches nothing; did you mean 'tags.team'?\n"
        "no matching versions\n"
    )
    rc, out, err = run("search", "tags.tema = 'fraud'", "--json")  # stdout stays JSON
    assert rc == 0 and json.loads(out) == [] and err.startswith("warning: no version has the tag key 'tema'")
    rc, out, err = run("search", "tags.team = 'nobody'")  # the key exists: no warning
    assert (rc, err) == (0, "no matching versions\n")


# -- remedies in the reader's words ------------------------------------------------------------------
def test_remedy_and_message_render_for_python_and_the_cli() -> None:
    overwrite = Remedy("pass overwrite=True", "pass --overwrite")
    exc = AlreadyExistsError("'out/m.bin' exists already", remedy=overwrite)
    assert str(exc) == "'out/m.bin' exists already; pass overwrite=True"
    assert exc.render("cli") == "'out/m.bin' exists already; pass --overwrite"
    assert exc.render() == str(exc) and exc.remedy == overwrite
    again = pickle.loads(pickle.dumps(exc))  # across processes (multiprocessing, logging handlers)
    assert (str(again), again.render("cli"), again.remedy) == (str(exc), exc.render("cli"), overwrite)

    tags = Remedy("reg.set_tags('churn/1', {'ticket': ...})", "`modelreg tag churn/1 ticket=VALUE`")
    line = Message("tag 'ticket': add it with ", tags)
    assert line == "tag 'ticket': add it with reg.set_tags('churn/1', {'ticket': ...})"  # a str: the Python form
    assert line.cli == "tag 'ticket': add it with `modelreg tag churn/1 ticket=VALUE`"
    nested = Message("2 gates:\n  - ", line, "\n  - ", Message("run ", overwrite))
    assert nested.remedies == (tags, overwrite)
    assert (
        render(nested, "cli")
        == "2 gates:\n  - tag 'ticket': add it with `modelreg tag churn/1 ticket=VALUE`\n  - run pass --overwrite"
    )
    exc2 = PolicyViolation(nested, [line])
    assert exc2.remedy == tags and exc2.unmet == [line] and exc2.render("cli") == nested.cli
    assert render("plain text", "cli") == "plain text" and ModelregError("no remedy").render("cli") == "no remedy"


def test_the_cli_prints_the_cli_form_of_every_remedy(run: CLI, tmp_path: Path, model_file_: Path) -> None:
    run.ok("register", "churn", str(model_file_), "--no-capture")
    dest = tmp_path / "deploy"
    run.ok("download", "churn/1", str(dest))
    rc, _, err = run("download", "churn/1", str(dest))
    assert rc == 1 and err.endswith("' exists already; pass --overwrite or pick another folder\n")
    assert "overwrite=True" not in err

    folder = tmp_path / "saved"
    write(folder / "weights.bin", b"w")
    write(tmp_path / "outside.txt", b"x")
    (folder / "link").symlink_to(tmp_path / "outside.txt")
    rc, _, err = run("register", "churn", str(folder), "--no-capture")
    assert rc == 2 and "pass --follow-symlinks to store what it points to" in err and "follow_symlinks=" not in err

    rc, _, err = run("events", "--since", "bogus")
    assert rc == 2 and "pass --since the cursor an earlier `modelreg events` printed" in err
    assert "reg.events()" not in err


def test_policy_advice_names_commands_on_the_command_line(run: CLI, tmp_path: Path, model_file_: Path) -> None:
    run.ok("register", "churn", str(model_file_), "--no-capture")
    with Registry(run.registry) as reg:
        gate = Gate(metrics=["metrics.auc >= 0.9"], tags=["ticket"], description=True)
        reg.set_policy(Policy(gates={"production": gate}), actor="admin")
        with pytest.raises(PolicyViolation) as info:  # Python: the library's words
            reg.transition("churn/1", "production")
    python_text = str(info.value)
    assert "log it with reg.log_metrics('churn/1', {'auc': ...})" in python_text
    assert "add it with reg.set_tags('churn/1', {'ticket': ...})" in python_text
    assert "set one with reg.set_description('churn/1', '...')" in python_text
    rc, out, err = run("transition", "churn/1", "production")  # the CLI: the commands to run
    assert (rc, out) == (1, "")
    assert "log it with `modelreg log-metrics churn/1 auc=NUMBER`" in err
    assert "add it with `modelreg tag churn/1 ticket=VALUE`" in err
    assert "set one with `modelreg describe churn/1 TEXT`" in err
    assert "reg." not in err
    out = run("policy", "check", "churn/1", "production")[1]
    assert "`modelreg log-metrics churn/1 auc=NUMBER`" in out and "reg." not in out


@pytest.fixture
def model_file_(tmp_path: Path) -> Path:
    return write(tmp_path / "model.onnx", b"onnx-model-bytes " * 100)


# -- JSON for scripts --------------------------------------------------------------------------------
def test_json_versions_carry_ref_digest_size_stage_and_aliases_at_the_top(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 2)
    run.ok("alias", "churn", "champion", "2")
    shown = run.json("show", "churn@champion")
    assert isinstance(shown, dict)
    assert list(shown)[:7] == ["ref", "name", "version", "stage", "aliases", "digest", "size"]
    assert shown["ref"] == "churn/2" and shown["aliases"] == ["champion"] and shown["stage"] == "experimental"
    assert shown["digest"] == shown["artifact"]["digest"] and shown["size"] == shown["artifact"]["size"]
    with Registry(run.registry) as reg:
        full = reg.get_version("churn/2").model_dump(mode="json")
    assert {k: shown[k] for k in full} == full  # every key of the record is still there
    for args in (("versions", "churn"), ("search", "version > 0"), ("transition", "churn/1", "staging")):
        got = run.json(*args)
        records = got if isinstance(got, list) else [got]
        assert records and all({"ref", "digest", "size", "stage", "aliases", "artifact"} <= set(r) for r in records)
        assert all(r["ref"] == f"{r['name']}/{r['version']}" for r in records)


def test_search_order_by_a_backquoted_key_on_the_command_line(run: CLI, tmp_path: Path) -> None:
    _versions(run, tmp_path, 3)
    run.ok("tag", "churn/1", "model family=b")
    run.ok("tag", "churn/3", "model family=c")
    found = run.json("search", "--order-by", "tags.`model family` desc", "--order-by", "version")
    assert [v["ref"] for v in found] == ["churn/3", "churn/1", "churn/2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli.main(["--registry", str(run.registry), "search", "tags.`model family` = 'b'", "--json"]) == 0
