"""The Weights & Biases tracker adapter: ``register(..., run=wandb_run)``.

A run is the live run ``wandb.init()`` returned (online or offline), a run of W&B's public API
(``wandb.Api().run("entity/project/id")``), or the string ``"wandb:entity/project/id"`` (read
through the public API, which needs the network and W&B credentials).

What is taken: the run's config as params (nested values kept as JSON), the run summary's
numbers as metrics (the latest logged value of each; W&B's own ``_step``, ``_runtime`` and
``_timestamp`` are left out), W&B's tags (labels: each becomes a modelreg tag with the value
``"true"``), the git commit and remote W&B recorded, the run id and URL (an offline run has no
URL until it is synced), and under ``lineage.extra``: the tracker, entity and project, run name,
group, job type and sweep id. A live run's summary is read while the run is open: register
before ``run.finish()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import CodeVersion
from .base import RunInfo, Tracker, keep_valid, strip_credentials

__all__ = ["WandbTracker", "describe_wandb_run"]

LINK_PREFIX = "modelreg:"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _summary(run: Any) -> dict[str, Any]:
    summary = getattr(run, "summary", None)
    if summary is None:
        return {}
    try:
        return {k: summary[k] for k in summary.keys()}  # noqa: SIM118 - a W&B Summary is not a dict
    except Exception:  # a public-API summary of a deleted run, or a closed live run
        return {}


def _config(run: Any) -> dict[str, Any]:
    config = getattr(run, "config", None)
    if config is None:
        return {}
    if hasattr(config, "as_dict"):
        config = config.as_dict()
    out = {}
    for key, value in dict(config).items():
        if key.startswith("_"):
            continue
        if isinstance(value, Mapping) and set(value) == {"value", "desc"}:  # the public API's layout
            value = value["value"]
        out[key] = value
    return out


def _code(run: Any) -> CodeVersion | None:
    settings = getattr(run, "settings", None)
    commit = getattr(settings, "git_commit", None)
    remote = getattr(settings, "git_remote_url", None)
    metadata = getattr(run, "metadata", None)  # a public-API run: what the SDK recorded
    if isinstance(metadata, Mapping) and isinstance(metadata.get("git"), Mapping):
        commit = commit or metadata["git"].get("commit")
        remote = remote or metadata["git"].get("remote")
    if not commit and not remote:
        return None
    return CodeVersion(commit=commit or None, repo=strip_credentials(remote) if remote else None)


def describe_wandb_run(run: Any) -> RunInfo:
    """What modelreg takes from a W&B run object (a live run, or one of the public API)."""
    params, dropped = keep_valid("params", _config(run))
    numbers = {k: _number(v) for k, v in _summary(run).items() if not k.startswith("_")}
    metrics, more = keep_valid("metrics", {k: v for k, v in numbers.items() if v is not None})
    dropped += more
    labels = [str(t) for t in (getattr(run, "tags", None) or []) if not str(t).startswith(LINK_PREFIX)]
    tags, more = keep_valid("tags", dict.fromkeys(labels, "true"))
    dropped += more
    extra: dict[str, Any] = {"tracker": "wandb"}
    for key in ("entity", "project", "name", "group", "job_type", "sweep_id"):
        value = getattr(run, key, None)
        if key == "sweep_id" and value is None:
            sweep = getattr(run, "sweep", None)
            value = getattr(sweep, "id", None)
        if isinstance(value, str) and value:
            extra["run_name" if key == "name" else key] = value
    if getattr(run, "offline", False):
        extra["offline"] = True
    if dropped:
        extra["not_carried"] = dropped
    url = getattr(run, "url", None)
    return RunInfo(
        tracker="wandb",
        run_id=str(run.id),
        run_url=url if isinstance(url, str) and url else None,
        params=params,
        metrics=metrics,
        tags=tags,
        code=_code(run),
        extra=extra,
    )


class WandbTracker(Tracker):
    """W&B runs: a live ``wandb.init()`` run, a public-API run, or ``"wandb:entity/project/id"``."""

    name = "wandb"

    def accepts(self, run: Any) -> bool:
        if isinstance(run, str):
            return run.startswith("wandb:")
        return type(run).__module__.startswith("wandb.") and hasattr(run, "id")

    def _run(self, run: Any) -> Any:
        if isinstance(run, str):
            import wandb

            return wandb.Api().run(run.removeprefix("wandb:"))
        return run

    def describe(self, run: Any) -> RunInfo:
        return describe_wandb_run(self._run(run))

    def link_back(self, run: Any, info: RunInfo, ref: str, registry_url: str | None) -> None:
        """Adds the label ``modelreg:<ref>`` to the run's tags (a live run, or a public-API run,
        which is saved)."""
        target = self._run(run)
        label = LINK_PREFIX + ref
        current = tuple(getattr(target, "tags", None) or ())
        if label not in current:
            target.tags = (*current, label) if isinstance(current, tuple) else [*current, label]
            if hasattr(target, "update") and not hasattr(target, "log"):  # a public-API run is saved explicitly
                target.update()
