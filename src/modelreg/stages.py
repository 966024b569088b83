"""The stage transition table and exclusivity rules.

==============  =========================================
from            allowed targets
==============  =========================================
experimental    staging, production, archived
staging         production, experimental, archived
production      staging, archived
archived        experimental, staging, production
==============  =========================================

``production`` is exclusive: promoting a version there moves the previous
holder to ``archived`` (recorded as its own audit event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import InvalidTransitionError
from .models import Stage

__all__ = ["DEFAULT_TRANSITIONS", "StageRules"]

DEFAULT_TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.EXPERIMENTAL: frozenset({Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.EXPERIMENTAL, Stage.ARCHIVED}),
    Stage.PRODUCTION: frozenset({Stage.STAGING, Stage.ARCHIVED}),
    Stage.ARCHIVED: frozenset({Stage.EXPERIMENTAL, Stage.STAGING, Stage.PRODUCTION}),
}

_ORDER = [Stage.EXPERIMENTAL, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED]


@dataclass(frozen=True)
class StageRules:
    """Which transitions are allowed and which stages hold at most one version."""

    transitions: Mapping[Stage, frozenset[Stage]] = field(default_factory=lambda: dict(DEFAULT_TRANSITIONS))
    exclusive: frozenset[Stage] = frozenset({Stage.PRODUCTION})
    displaced_to: Stage = Stage.ARCHIVED

    def allowed(self, source: Stage) -> list[Stage]:
        targets = self.transitions.get(source, frozenset())
        return [s for s in _ORDER if s in targets]

    def check(self, name: str, version: int, source: Stage, target: Stage) -> None:
        if source == target:
            raise InvalidTransitionError(
                f"{name}/{version} is already in {target.value}; nothing to do"
            )
        if target not in self.transitions.get(source, frozenset()):
            allowed = ", ".join(s.value for s in self.allowed(source)) or "none"
            raise InvalidTransitionError(
                f"cannot move {name}/{version} from {source.value} to {target.value}; "
                f"allowed from {source.value}: {allowed}"
            )

    @classmethod
    def from_table(cls, table: Mapping[str, Iterable[str]], exclusive: Iterable[str] = ("production",)) -> StageRules:
        return cls(
            transitions={Stage(k): frozenset(Stage(t) for t in v) for k, v in table.items()},
            exclusive=frozenset(Stage(s) for s in exclusive),
        )
