"""examples/governance.py and the code of docs/governance.md run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from modelreg import Registry, Stage
from tests.helpers import fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "governance.py"
PAGE = ROOT / "docs" / "governance.md"


def run_example(tmp_path: Path) -> str:
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "home"), "PYTHONIOENCODING": "utf-8"}
    env.pop("MODELREG_URI", None)
    env.pop("MODELREG_ACTOR", None)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"governance.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_governance_example_runs_twice(tmp_path: Path) -> None:
    first = run_example(tmp_path)
    for line in (
        "stored; every client now enforces it",
        "registered governance/churn/1 (auc 0.85) and governance/churn/2 (auc 0.87)",
        "PolicyViolation: 1 unmet gate(s)",
        "  - approvals: production needs 1 approval from group 'risk'",
        "ana cannot approve her own model: separation of duties: ana@example.com registered this version",
        "completed; governance/churn@production is governance/churn/1",
        "completed; governance/churn/2 is in production, governance/churn/1 is now archived",
        "refused without a comment: rolling governance/churn@production back to version 1 is an emergency rollback",
        "governance/churn/1 is back in production; governance/churn/2 is now archived",
        "carla@example.com    approve             v1 production  (reviewed the fairness report)",
        "oncall@example.com   rollback            v1 production (emergency)  (v2 times out on batch scoring)",
        (
            "in-process listener saw: ['governance/churn/1 -> production', 'governance/churn/1 -> archived', "
            "'governance/churn/2 -> production']"
        ),
        "  deploy governance/churn/1 (transition by carla@example.com)",
        "  deploy governance/churn/2 (transition by dev@example.com)",
        "  deploy governance/churn/1 (rollback by oncall@example.com)",
        "verify ok=True",
    ):
        assert line in first, f"{line!r} missing from the example's output:\n{first}"
    assert (tmp_path / "home" / "modelreg.db").is_file(), "the example must use the default registry"

    second = run_example(tmp_path)
    for line in (
        "registered governance/churn/3 (auc 0.87) and governance/churn/4 (auc 0.89)",
        "completed; governance/churn/4 is in production, governance/churn/3 is now archived",
        "governance/churn/3 is back in production; governance/churn/4 is now archived",
        "verify ok=True",
    ):
        assert line in second, f"{line!r} missing from the second run's output:\n{second}"
    assert "#1 " not in second.split("== the history")[1].split("==")[0], "the second run shows only its own history"

    with Registry(tmp_path / "home") as reg:
        assert reg.get_version("governance/churn@production").version == 3
        assert [r.status for r in reg.list_requests("all")] == ["completed"] * 4
        assert len(reg.policy_history()) == 1  # the unchanged policy was not stored again
        assert reg.verify().ok
        assert reg.get_version("governance/churn/4").stage == Stage.ARCHIVED


def test_governance_page_code_runs(tmp_path: Path) -> None:
    blocks = fenced_blocks(PAGE, "python")
    assert len(blocks) >= 8
    runner = tmp_path / "run_blocks.py"
    runner.write_text(
        "import json, sys\n"
        "ns = {'__name__': '__main__'}\n"
        "for line, code in json.loads(sys.argv[1]):\n"
        "    exec(compile(code, f'governance.md, block at line {line}', 'exec'), ns)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "MODELREG_HOME": str(tmp_path / "home"), "MODELREG_ACTOR": "docs"}
    env.pop("MODELREG_URI", None)
    proc = subprocess.run(
        [sys.executable, str(runner), json.dumps(blocks)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"code in governance.md failed:\n{proc.stdout}\n{proc.stderr}"
    assert "cannot move churn/1 from experimental to production: 1 unmet gate of the registry policy:" in proc.stdout
    assert "deploy churn 1" in proc.stdout
