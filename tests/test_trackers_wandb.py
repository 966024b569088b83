"""Run linkage with a real W&B run in offline mode (WANDB_MODE=offline, WANDB_DIR in tmp_path: no
network): register(run=wandb_run) takes its config, summary metrics and tags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wandb

from modelreg import Registry


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "wandb"
    folder.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(folder))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield folder


def _run(**kwargs: Any) -> Any:
    return wandb.init(project="churn", **kwargs)


def test_register_with_an_offline_wandb_run(offline: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    run = _run(
        config={"lr": 0.01, "layers": 3, "optimizer": {"name": "adam", "beta": 0.9}},
        tags=["baseline", "gpu"],
        name="first",
        group="sweep-a",
        job_type="train",
    )
    try:
        run.log({"loss": 0.9, "acc": 0.5})
        run.log({"loss": 0.4, "acc": 0.8})
        with Registry(tmp_path / "registry", actor="tester") as reg:
            mv = reg.register("churn", model, run=run, metrics={"acc": 0.81}, tags={"gpu": "a100"}, link_back=True)
            assert mv.params == {"lr": 0.01, "layers": 3, "optimizer": {"name": "adam", "beta": 0.9}}
            assert mv.metrics == {"loss": 0.4, "acc": 0.81}  # the summary's latest values; explicit wins
            assert mv.tags == {"baseline": "true", "gpu": "a100"}
            assert mv.lineage.run_id == run.id
            extra = mv.lineage.extra
            assert extra["tracker"] == "wandb"
            assert extra["project"] == "churn"
            assert (extra["run_name"], extra["group"], extra["job_type"]) == ("first", "sweep-a", "train")
            assert extra["offline"] is True
            assert mv.lineage.run_url is None  # an offline run has no URL until it is synced
            # link_back: a label on the run
            assert "modelreg:churn/1" in run.tags
            # W&B's own summary keys (_step, _runtime...) are not metrics
            assert not [k for k in mv.metrics if k.startswith("_")]
    finally:
        run.finish()
    assert list(offline.rglob("offline-run-*")), "the run was written offline, in WANDB_DIR"
