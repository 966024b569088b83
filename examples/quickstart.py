"""modelreg quickstart: register, promote, fetch, audit and roll back a model.

Runs on the default registry: ``$MODELREG_URI`` if set, else the folder
``$MODELREG_HOME``, else ``~/.modelreg/registry``. Run it again and it
registers two further versions of the same model.

    pip install . && python examples/quickstart.py
"""

from __future__ import annotations

import pickle
import random
import tempfile
from pathlib import Path

from modelreg import Registry

MODEL = "quickstart/churn"


def train(workdir: Path, *, lr: float, seed: int) -> tuple[Path, float]:
    """Stand-in for a training job: writes a pickled "model" and returns its AUC."""
    rng = random.Random(seed)
    model = {"kind": "logistic-regression", "lr": lr, "weights": [rng.gauss(0, 1) for _ in range(64)]}
    path = workdir / f"model-lr{lr}.pkl"
    path.write_bytes(pickle.dumps(model))
    auc = round(0.80 + 0.1 * lr + rng.uniform(0, 0.02), 4)
    return path, auc


def section(title: str) -> None:
    print(f"\n== {title}")


def brief(data: dict | None) -> str:
    """A short rendering of an audit event's before/after (digests abbreviated)."""
    if not data:
        return "-"
    return ", ".join(f"{k}={str(v)[:19] + '...' if str(v).startswith('sha256:') else v}" for k, v in data.items())


def main() -> None:
    reg = Registry()  # the default location; Registry("path/to/folder") for another one
    print(f"registry: {reg!r}")

    with tempfile.TemporaryDirectory(prefix="modelreg-quickstart-") as tmp:
        work = Path(tmp)
        seed = random.randrange(1_000_000)

        section("register two versions")
        data = {"uri": "s3://data/churn/train.parquet", "version": "2026-11-01"}
        path_a, auc_a = train(work, lr=0.1, seed=seed)
        v_a = reg.register(
            MODEL,
            path_a,
            params={"lr": 0.1, "features": ["tenure", "plan", "usage"]},
            metrics={"auc": auc_a},
            tags={"team": "fraud", "framework": "pickle"},
            lineage={"run_id": f"run-{seed}", "datasets": [data]},
            description="baseline",
            actor="ana",
        )
        print(f"registered {v_a.ref}  auc={auc_a}  digest={v_a.digest[:19]}...  {v_a.size} bytes")

        path_b, auc_b = train(work, lr=0.5, seed=seed + 1)
        v_b = reg.register(
            MODEL,
            path_b,
            params={"lr": 0.5, "features": ["tenure", "plan", "usage"]},
            metrics={"auc": auc_b},
            tags={"team": "fraud", "framework": "pickle"},
            lineage={"run_id": f"run-{seed + 1}", "datasets": [data], "parents": [v_a.ref]},
            description="higher learning rate, fine-tuned from the baseline",
            actor="ana",
        )
        print(f"registered {v_b.ref}  auc={auc_b}  parents={v_b.lineage.parents}")

        section("promote to production")
        reg.transition(MODEL, v_a.version, "production", comment="baseline goes live", actor="ana")
        prod = reg.transition(MODEL, v_b.version, "production", comment="beats the baseline", actor="bo")
        print(f"{prod.ref} is in {prod.stage}; {v_a.ref} is now {reg.get_version(v_a.ref).stage}")
        reg.set_alias(MODEL, "champion", v_b.version, actor="bo")
        print(f"{MODEL}@champion -> {reg.get_version(MODEL + '@champion').ref}")

        section("log a metric measured after deployment")
        live = reg.log_metrics(f"{MODEL}@production", {"auc_live": round(auc_b - 0.03, 4)}, actor="monitor")
        print(f"{live.ref}: registered metrics {live.metrics}, logged later {live.logged_metrics}")

        section("search")
        found = reg.search(
            f"name = '{MODEL}' and metrics.auc > 0.8 and tags.team = 'fraud'", order_by="metrics.auc desc", limit=3
        )
        for mv in found:
            print(f"  {mv.ref:<24} {mv.stage.value:<12} auc={mv.metrics['auc']}")

        section("compare")
        diff = reg.compare(v_a.ref, v_b.ref)
        for key, change in {**diff.params, **diff.metrics}.items():
            print(f"  {key}: {change['a']} -> {change['b']}")
        print(f"  same artifact: {diff.same_artifact}")

        section("download the production model (sha256-verified)")
        out = reg.download(f"{MODEL}@production", work / "deploy")
        model = pickle.loads(out.read_bytes())
        print(f"downloaded {out.name} ({out.stat().st_size} bytes), lr={model['lr']}")

        section("audit history")
        for ev in reg.history(MODEL)[-8:]:
            change = f"{brief(ev.before)} -> {brief(ev.after)}" if ev.before else brief(ev.after)
            note = f"  ({ev.comment})" if ev.comment else ""
            target = f"v{ev.version}" if ev.version else "model"
            print(f"  #{ev.seq:<3} {ev.actor:<8} {ev.action:<13} {target:<6} {change}{note}")

        section("verify")
        report = reg.verify(MODEL)
        print(f"verify ok={report.ok}: {report.events_checked} events, {report.blobs_checked} blobs checked")

        section("roll back production")
        restored = reg.rollback(MODEL, comment="live AUC dropped", actor="bo")
        print(f"{restored.ref} is back in production; {v_b.ref} is now {reg.get_version(v_b.ref).stage}")

    reg.close()
    print("\ndone: run it again to register further versions")


if __name__ == "__main__":
    main()
