"""Experiment trackers: link a registered version to the run that trained it.

``reg.register("churn", "model.onnx", run=run)`` (and ``save_model``) accepts a run of a tracker
(an MLflow ``Run``/``ActiveRun`` or run id, a W&B run object) and fills the version from it: the
run's params, the latest value of each metric and its user tags (explicit arguments win), and its
lineage (run id and URL, code commit, datasets, and under ``lineage.extra`` the tracker, where
it runs, experiment and model ids). ``link_back=True`` also tags the run with the version's ref.

Adapters are found through the ``modelreg.trackers`` entry-point group (modelreg's MLflow and
W&B adapters included), so a package adds a tracker by declaring a :class:`Tracker` subclass
there. Nothing here imports a tracker's library until a run of it is passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from ..errors import InvalidInputError
from ..models import Lineage
from .base import RunInfo, Tracker, plain_param, strip_credentials

__all__ = [
    "ENTRY_POINT_GROUP",
    "RunInfo",
    "Tracker",
    "available_trackers",
    "describe_run",
    "find_tracker",
    "link_back",
    "merge_run",
    "plain_param",
    "strip_credentials",
]

ENTRY_POINT_GROUP = "modelreg.trackers"

_BUILTIN: dict[str, str] = {
    "mlflow": "modelreg.trackers.mlflow:MlflowTracker",
    "wandb": "modelreg.trackers.wandb:WandbTracker",
}
"""The built-in adapters, as declared in modelreg's entry points (also used from a source tree)."""

_found: dict[str, Tracker] | None = None


def _trackers() -> dict[str, Tracker]:
    global _found
    if _found is not None:
        return _found
    points = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    declared = {ep.name for ep in points}
    points += [metadata.EntryPoint(n, v, ENTRY_POINT_GROUP) for n, v in _BUILTIN.items() if n not in declared]
    points.sort(key=lambda ep: (ep.value != _BUILTIN.get(ep.name), ep.name))  # modelreg's own win their names
    found: dict[str, Tracker] = {}
    for ep in points:
        if ep.name in found:
            continue
        try:
            loaded = ep.load()
        except Exception:  # a broken third-party adapter must not break the others
            continue
        tracker = loaded() if isinstance(loaded, type) else loaded
        if isinstance(tracker, Tracker):
            found[ep.name] = tracker
    _found = found
    return found


def available_trackers() -> list[str]:
    """Names of the tracker adapters found (``mlflow``, ``wandb``, and any installed package's)."""
    return sorted(_trackers())


def find_tracker(run: Any) -> Tracker:
    """The adapter for ``run``; InvalidInputError when no tracker knows it."""
    trackers = _trackers()
    # built-in adapters last: a third-party adapter may recognise more specific objects
    for name in sorted(trackers, key=lambda n: (n in _BUILTIN, n)):
        if trackers[name].accepts(run):
            return trackers[name]
    raise InvalidInputError(
        f"run= got {type(run).__name__} {str(run)[:60]!r}, which no tracker adapter recognises; pass an MLflow "
        f"Run or ActiveRun or run id ('mlflow:<run id>'), or a W&B run (adapters: {', '.join(available_trackers())})"
    )


def describe_run(run: Any) -> tuple[Tracker, RunInfo]:
    """The adapter for ``run`` and what it reads from the run."""
    tracker = find_tracker(run)
    return tracker, tracker.describe(run)


def _filled(value: Any) -> bool:
    return value is not None and value != [] and value != {} and value != ""


def merge_run(
    info: RunInfo,
    *,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, float] | None,
    tags: Mapping[str, str] | None,
    lineage: Lineage | Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, float], dict[str, str], dict[str, Any]]:
    """``register``'s params, metrics, tags and lineage with the run's underneath: a key or a
    lineage field given explicitly wins over the run's."""
    if isinstance(lineage, Lineage):
        given: dict[str, Any] = {k: getattr(lineage, k) for k in Lineage.model_fields}
        given.update(lineage.model_extra or {})
    elif isinstance(lineage, Mapping):
        given = dict(lineage)
    elif lineage is None:
        given = {}
    else:
        raise InvalidInputError(f"lineage must be a Lineage or a mapping, got {type(lineage).__name__}")
    from_run: dict[str, Any] = {
        "run_id": info.run_id,
        "run_url": info.run_url,
        "code": info.code,
        "datasets": list(info.datasets),
    }
    merged = {k: v for k, v in from_run.items() if _filled(v)}
    merged.update({k: v for k, v in given.items() if _filled(v) and k != "extra"})
    extra = dict(info.extra)
    if isinstance(given.get("extra"), Mapping):
        extra.update(given["extra"])
    merged["extra"] = extra
    return (
        {**info.params, **dict(params or {})},
        {**info.metrics, **dict(metrics or {})},
        {**info.tags, **dict(tags or {})},
        merged,
    )


def link_back(tracker: Tracker, run: Any, info: RunInfo, ref: str, registry_url: str | None) -> None:
    """Tag ``run`` with the registry version ``ref`` it produced (``register(..., link_back=True)``)."""
    tracker.link_back(run, info, ref, strip_credentials(registry_url) if registry_url else None)
