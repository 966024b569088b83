"""modelreg governance: a policy, a transition request, approvals, promotion, rollback, history.

Runs on the default registry: ``$MODELREG_URI`` if set, else the folder
``$MODELREG_HOME``, else ``~/.modelreg/registry``. It stores a policy in that
registry (every client then enforces it), so point it at a scratch registry:

    MODELREG_HOME=/tmp/modelreg-demo python examples/governance.py
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from modelreg import PolicyViolation, Registry
from modelreg.governance import Gate, Policy

MODEL = "governance/churn"


def train(workdir: Path, seed: int, auc: float) -> tuple[Path, dict]:
    """Stand-in for a training job: writes a "model" file and returns its lineage."""
    path = workdir / f"model-{seed}.json"
    path.write_text(json.dumps({"seed": seed, "weights": [random.Random(seed).random() for _ in range(16)]}))
    lineage = {
        "run_id": f"run-{seed}",
        "datasets": [{"uri": "s3://data/churn/train.parquet", "digest": "sha256:" + "ab" * 32}],
        "code": {"commit": "4f2c1e9", "repo": "git@example.com:ml/churn.git", "dirty": False},
    }
    return path, lineage


def section(title: str) -> None:
    print(f"\n== {title}")


def main() -> None:
    reg = Registry()
    print(f"registry: {reg!r}")
    seen: list[str] = []
    reg.on("transition", lambda ev: seen.append(f"{ev.model}/{ev.version} -> {ev.after['stage']}"))
    cursor = reg.events(since="now").cursor  # a deployer would persist this

    section("the policy: production needs a risk review, the same AUC or better, and full lineage")
    policy = Policy(
        groups={"risk": ["carla@example.com", "dev@example.com"]},
        gates={
            "production": Gate(
                approvals=[{"count": 1, "group": "risk"}],
                metrics=["metrics.auc >= @production - 0.002", "metrics.auc >= 0.8"],
                lineage=["dataset_digest", "code_commit"],
            )
        },
    )
    reg.set_policy(policy, actor="lead@example.com", comment="model risk policy v1")
    print(f"policy {reg.get_policy().digest()[:19]} stored; every client now enforces it")

    with tempfile.TemporaryDirectory(prefix="modelreg-governance-") as tmp:
        work = Path(tmp)
        seed = random.randrange(1_000_000)
        earlier = reg.list_versions(MODEL) if MODEL in [m.name for m in reg.list_models()] else []
        start = len(reg.history(MODEL)) if earlier else 0
        base = 0.85 + 0.01 * len(earlier)  # each run trains better models than the last

        section("register two versions (ana trains them)")
        path, lineage = train(work, seed, base)
        v1 = reg.register(
            MODEL, path, metrics={"auc": round(base, 4)}, lineage=lineage, capture=None, actor="ana@example.com"
        )
        path, lineage = train(work, seed + 1, base + 0.02)
        v2 = reg.register(
            MODEL, path, metrics={"auc": round(base + 0.02, 4)}, lineage=lineage, capture=None, actor="ana@example.com"
        )
        print(f"registered {v1.ref} (auc {v1.metrics['auc']}) and {v2.ref} (auc {v2.metrics['auc']})")

        section("a direct promotion is refused, with every unmet gate")
        try:
            reg.transition(v1.ref, "production", actor="ana@example.com")
        except PolicyViolation as exc:
            print(f"PolicyViolation: {len(exc.unmet)} unmet gate(s)")
            for line in exc.unmet:
                print(f"  - {line[:100]}")

        section("request, approve, promote")
        req = reg.request_transition(v1.ref, "production", "first release", actor="ana@example.com")
        print(f"{req.id}: {req.status}, waiting for: {req.unmet}")
        try:
            reg.approve(req.id, actor="ana@example.com")
        except PolicyViolation as exc:
            print(f"ana cannot approve her own model: {exc.unmet[0]}")
        req = reg.approve(req.id, actor="carla@example.com", comment="reviewed the fairness report")
        print(f"{req.id}: {req.status}; {MODEL}@production is {reg.get_version(MODEL + '@production').ref}")

        req = reg.request_transition(v2.ref, "production", "retrained, +0.02 auc", actor="ana@example.com")
        req = reg.approve(req.id, actor="dev@example.com")
        print(f"{req.id}: {req.status}; {v2.ref} is in production, {v1.ref} is now {reg.get_version(v1.ref).stage}")

        section("roll back (an emergency: it bypasses the gates, so a reason is required)")
        try:
            reg.rollback(MODEL, actor="oncall@example.com")
        except PolicyViolation as exc:
            print(f"refused without a comment: {str(exc).splitlines()[0][:90]}...")
        restored = reg.rollback(MODEL, comment=f"v{v2.version} times out on batch scoring", actor="oncall@example.com")
        print(f"{restored.ref} is back in production; {v2.ref} is now {reg.get_version(v2.ref).stage}")

        section("the history")
        for ev in reg.history(MODEL)[start:]:
            if ev.action in ("request_transition", "approve", "transition", "rollback"):
                after = ev.after or {}
                what = after.get("stage") or after.get("to") or ""
                extra = " (emergency)" if after.get("emergency") else ""
                print(
                    f"  #{ev.seq:<3} {ev.actor:<20} {ev.action:<19} v{ev.version} {what}{extra}"
                    + (f"  ({ev.comment})" if ev.comment else "")
                )
        print(f"in-process listener saw: {seen}")

        section("what a deployer following the events feed sees")
        page = reg.events(since=cursor, actions=["transition", "rollback"], models=[MODEL])
        for ev in page:
            if (ev.after or {}).get("stage") == "production":
                print(f"  deploy {ev.model}/{ev.version} ({ev.action} by {ev.actor})")

        section("verify")
        report = reg.verify(MODEL)
        print(f"verify ok={report.ok}: {report.events_checked} events checked")

    reg.close()


if __name__ == "__main__":
    main()
