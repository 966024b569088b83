"""What a tracker adapter is: :class:`Tracker`, and the :class:`RunInfo` it reads from a run."""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError
from ..models import CodeVersion, Dataset

__all__ = ["RunInfo", "Tracker", "keep_valid", "plain_param", "strip_credentials"]

_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")


def strip_credentials(uri: str) -> str:
    """``uri`` without a ``user:password@`` part: a tracking URI is recorded, its secret is not."""
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>", uri)


def plain_param(value: Any) -> Any:
    """A tracker's parameter value as modelreg keeps it. MLflow stores every parameter as a string:
    a string that is exactly how Python writes an integer or a finite float (``"100"``, ``"0.1"``,
    ``"1e-05"``) becomes that number, so ``params.n_estimators > 50`` works; anything else
    (``"007"``, ``"1.50"``, ``"True"``, ``"adam"``) stays the string it was."""
    if not isinstance(value, str):
        return value
    if _INT.fullmatch(value) and len(value) <= 18:
        return int(value)
    try:
        number = float(value)
    except ValueError:
        return value
    if math.isfinite(number) and repr(number) == value:
        return number
    return value


def keep_valid(kind: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The entries of a run's params, metrics or tags (``kind``) that modelreg can keep, and the
    keys it cannot (a key with characters modelreg refuses, a NaN metric...): those are named in
    ``lineage.extra["not_carried"]`` rather than failing the registration."""
    from ..validation import check_metrics, check_params, check_tags

    check = {"params": check_params, "metrics": check_metrics, "tags": check_tags}[kind]
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in values.items():
        try:
            kept.update(check({key: value}))
        except InvalidInputError:
            dropped.append(f"{kind}.{key}")
    if kind == "tags" and len(kept) > 100:  # modelreg's MAX_TAGS: the first hundred by name
        for key in sorted(kept)[100:]:
            dropped.append(f"tags.{key}")
            del kept[key]
    return kept, dropped


class RunInfo(BaseModel):
    """What modelreg takes from one tracked run (an MLflow run, a W&B run...).

    ``params``, ``metrics`` (the latest value of each) and ``tags`` (user tags, not the
    tracker's own) seed the version's; explicit arguments of ``register`` win. ``extra`` goes
    to ``lineage.extra`` (the tracker, where it runs, experiment and model ids).
    """

    model_config = ConfigDict(frozen=True)

    tracker: str
    run_id: str
    run_url: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    code: CodeVersion | None = None
    datasets: list[Dataset] = Field(default_factory=list)
    user: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Tracker(abc.ABC):
    """An experiment tracker adapter, declared in the ``modelreg.trackers`` entry-point group.

    ``accepts`` must be cheap and must not import the tracker's library (it is asked about
    every run object passed to ``register``): look at the object's type and module, or at the
    form of a string. ``describe`` and ``link_back`` import the library when they run.
    """

    name: str = ""

    @abc.abstractmethod
    def accepts(self, run: Any) -> bool:
        """Whether ``run`` (an object of the tracker's library, or a string) is one of this tracker's runs."""

    @abc.abstractmethod
    def describe(self, run: Any) -> RunInfo:
        """Fetch the run's params, latest metrics, user tags, code, datasets and ids."""

    def link_back(self, run: Any, info: RunInfo, ref: str, registry_url: str | None) -> None:
        """Record on the run that it produced the registry version ``ref`` (``link_back=True``)."""
        raise InvalidInputError(f"the {self.name} tracker adapter cannot tag its runs (link_back=True)")
