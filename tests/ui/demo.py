"""A small, realistic registry for the UI tests and the docs screenshots (all through the public API)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from modelreg import Registry

XSS = "<script>alert(1)</script>"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _lineage(i: int, parents: list[str] | None = None) -> dict[str, Any]:
    return {
        "run_id": f"run-{4100 + i}",
        "run_url": f"https://mlflow.example.com/#/experiments/7/runs/run-{4100 + i}",
        "code": {
            "commit": f"{(0x9F3C2A1 + i * 7919):07x}e1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8"[:40],
            "repo": "git@github.com:acme/churn-model.git",
            "branch": "main",
            "dirty": i == 5,
        },
        "datasets": [
            {"uri": "s3://acme-data/churn/train.parquet", "version": f"2026-10-{10 + i:02d}", "role": "train"},
            {"uri": "s3://acme-data/churn/holdout.parquet", "version": "2026-10-01", "role": "eval"},
        ],
        "parents": parents or [],
        "environment": {
            "python": "3.11.7",
            "platform": "Linux-6.1-x86_64",
            "packages": {"scikit-learn": "1.7.2", "numpy": "2.3.1"},
        },
    }


@contextlib.contextmanager
def _clock(spread: bool) -> Iterator[Callable[..., None]]:
    """With ``spread``, make the registry's clock start 100 days ago and advance on demand,
    so that the history (and the stage timeline) looks like weeks of work, not one second."""
    if not spread:
        yield lambda **_: None
        return
    import modelreg.models as records

    real = records.datetime
    state = {"t": datetime.now(timezone.utc) - timedelta(days=100)}

    class Clock(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            state["t"] += timedelta(seconds=7)
            return state["t"] if tz else state["t"].replace(tzinfo=None)

    def advance(**delta: float) -> None:
        state["t"] += timedelta(**delta)

    records.datetime = Clock  # type: ignore[misc]
    try:
        yield advance
    finally:
        records.datetime = real  # type: ignore[misc]


def populate(reg: Registry, workdir: Path, *, spread: bool = False) -> dict[str, Any]:
    """Register three models with a history of transitions, aliases, tags and logged metrics."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _clock(spread) as advance:
        _populate(reg, workdir, advance)


def _populate(reg: Registry, workdir: Path, advance: Callable[..., None]) -> None:
    aucs = [0.842, 0.861, 0.858, 0.874, 0.889, 0.883, 0.901, 0.897]
    for i, auc in enumerate(aucs, start=1):
        advance(days=i % 2 + 2, hours=3)
        f = _write(workdir / f"churn-{i}" / "model.onnx", f"churn model {i}\n".encode() * (200 * i))
        reg.register(
            "churn",
            f,
            actor="ana" if i % 3 else "ben",
            capture=None,
            format="onnx",
            params={
                "max_depth": 4 + i % 3,
                "learning_rate": round(0.1 / i, 4),
                "n_estimators": 100 * i,
                "features": {"window_days": 30 if i < 5 else 60, "drop_na": True},
            },
            metrics={"auc": auc, "f1": round(auc - 0.12 + (i % 2) * 0.01, 3), "latency_ms": 14.0 - i * 0.7},
            tags={"team": "retention", "framework": "xgboost"},
            lineage=_lineage(i, parents=[f"churn/{i - 1}"] if i > 1 else []),
            description=f"Gradient-boosted churn classifier, iteration {i}.",
        )
    reg.update_model("churn", description="Predicts which customers cancel within 30 days.", actor="ana")
    advance(days=1)
    reg.transition("churn", 2, "staging", actor="ana", comment="first candidate")
    advance(days=4)
    reg.transition("churn", 2, "production", actor="ben", comment="A/B test passed")
    advance(days=6)
    reg.transition("churn", 4, "staging", actor="ana")
    advance(days=5)
    reg.transition("churn", 4, "production", actor="ben", comment="+1.3 auc points")
    advance(days=7)
    reg.transition("churn", 5, "staging", actor="ana")
    advance(days=4)
    reg.transition("churn", 7, "staging", actor="ana", comment="best offline auc")
    advance(days=3)
    reg.transition("churn", 5, "production", actor="ben", comment="latency win")
    reg.transition("churn", 1, "archived", actor="ana")
    reg.set_alias("churn", "champion", 5, actor="ben")
    reg.set_alias("churn", "challenger", 7, actor="ana")
    for week, value in enumerate([0.887, 0.881, 0.874, 0.869], start=1):
        advance(days=7)
        reg.log_metrics("churn/5", {"auc": value}, step=week, actor="monitor", comment=f"weekly eval, week {week}")
    reg.set_tags("churn/5", {"approved_by": "risk-team"}, actor="ben")

    folder = workdir / "fraud"
    for i in range(1, 4):
        _write(folder / f"v{i}" / "model.pt", f"weights {i}".encode() * 1000)
        _write(folder / f"v{i}" / "config.json", json.dumps({"layers": 3 + (i > 2), "dropout": 0.1}).encode())
        _write(folder / f"v{i}" / "tokenizer" / "vocab.txt", b"a\nb\nc\n" * 50)
        advance(days=1)
        reg.register(
            "fraud/detector",
            folder / f"v{i}",
            actor="chen",
            capture=None,
            format="pytorch",
            params={"layers": 3 + (i > 2), "dropout": 0.1, "lr": 0.001 * i},
            metrics={"precision": 0.91 + i / 100, "recall": 0.78 + i / 50},
            tags={"team": "fraud"},
            lineage={"run_id": f"fr-{i}", "datasets": [{"uri": "gs://acme/fraud/2026-q3"}]},
        )
    reg.update_model("fraud/detector", description="Card-fraud detector for the payments API.", actor="chen")
    reg.transition("fraud/detector", 2, "production", actor="chen")
    reg.transition("fraud/detector", 3, "staging", actor="chen")

    f = _write(workdir / "pricing" / "model.pkl", b"pricing model")
    reg.register("pricing", f, actor="dana", capture=None, metrics={"rmse": 12.4}, params={"alpha": 0.5})


def iris_model_info(*, unsafe: bool = True, text: str = "") -> Any:
    """What ``Registry.save_model`` records for a scikit-learn classifier (``ModelVersion.model``);
    ``text`` goes into the user-controlled strings (class name, column names, library names)."""
    from modelreg import ColumnSpec, ModelInfo, Signature

    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return ModelInfo(
        flavor="sklearn",
        format="joblib" if unsafe else "skops",
        path="model/model.joblib" if unsafe else "model/model.skops",
        object_class="sklearn.ensemble.RandomForestClassifier" + text,
        libraries={"scikit-learn": "1.7.2", "numpy": "2.3.1", **({"lib" + text: "1.0"} if text else {})},
        requirements=["scikit-learn==1.7.2", "numpy==2.3.1"],
        unsafe=unsafe,
        signature=Signature(
            kind="columns",
            inputs=[ColumnSpec(name=c + text, dtype="float64") for c in columns],
            outputs=[ColumnSpec(dtype="int64", shape=[None])],
        ),
    )


def add_model_version(reg: Registry, name: str, workdir: Path, info: Any, *, actor: str = "ana") -> Any:
    """Commit a version that carries ``info`` (a ModelInfo) the way ``Registry.register`` commits a
    draft: one file stored in the artifact store, then one atomic ``metadata.add_version``."""
    from modelreg.models import EventDraft, RegisteredModel, Stage, VersionDraft, utcnow
    from modelreg.transfer import store_artifact

    f = _write(workdir / name.replace("/", "-") / "model.joblib", f"{name} weights\n".encode() * 300)
    artifact = store_artifact(reg.artifacts, f, format=info.format)
    draft = VersionDraft(name=name, artifact=artifact, created_by=actor, model=info, metrics={"accuracy": 0.96})
    event = EventDraft(
        action="register",
        actor=actor,
        after={"digest": artifact.digest, "size": artifact.size, "files": len(artifact.files), "stage": "experimental"},
    )
    now = utcnow()
    created = (
        RegisteredModel(name=name, owner=actor, created_at=now, updated_at=now),
        EventDraft(action="create_model", actor=actor, after={"owner": actor}),
    )
    mv = reg.metadata.add_version(draft, event, create=created)
    assert mv.model == info and mv.stage == Stage.EXPERIMENTAL
    return mv
