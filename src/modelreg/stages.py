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

This is the default. The table a registry enforces is the transition part of
its governance :class:`~modelreg.governance.Policy` (``policy.stage_rules()``),
stored in the registry so that every client applies the same one; a
``StageRules`` given to ``Registry(rules=...)`` only applies while the registry
has no stored policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidTransitionError
from .models import EventDraft, ModelState, Stage, utcnow

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
            raise InvalidTransitionError(f"{name}/{version} is already in {target.value}; nothing to do")
        if target not in self.transitions.get(source, frozenset()):
            allowed = ", ".join(s.value for s in self.allowed(source)) or "none"
            raise InvalidTransitionError(
                f"cannot move {name}/{version} from {source.value} to {target.value}; "
                f"allowed from {source.value}: {allowed}"
            )

    def move(
        self,
        state: ModelState,
        version: int,
        target: Stage,
        actor: str,
        comment: str | None,
        action: str = "transition",
        extra: dict[str, Any] | None = None,
    ) -> list[EventDraft]:
        """Move ``version`` to ``target`` in ``state`` (a mutable copy) and return the audit events.

        Checks the table first. For an exclusive target the previous holders move to
        :attr:`displaced_to`, each recorded as its own event before the move itself.
        ``extra`` is merged into the moved version's ``after`` (e.g. the request id).
        """
        source = Stage(state.versions[version].stage)
        self.check(state.name, version, source, target)
        now = utcnow()
        events = []
        if target in self.exclusive:
            for other in state.holders(target):
                if other == version:
                    continue
                displaced = self.displaced_to
                state.versions[other] = state.versions[other].model_copy(update={"stage": displaced, "updated_at": now})
                events.append(
                    EventDraft(
                        action=action,
                        actor=actor,
                        version=other,
                        before={"stage": target.value},
                        after={"stage": displaced.value},
                        comment=f"replaced in {target.value} by version {version}",
                    )
                )
        state.versions[version] = state.versions[version].model_copy(update={"stage": target, "updated_at": now})
        events.append(
            EventDraft(
                action=action,
                actor=actor,
                version=version,
                before={"stage": source.value},
                after={"stage": target.value, **(extra or {})},
                comment=comment,
            )
        )
        return events

    @classmethod
    def from_table(cls, table: Mapping[str, Iterable[str]], exclusive: Iterable[str] = ("production",)) -> StageRules:
        return cls(
            transitions={Stage(k): frozenset(Stage(t) for t in v) for k, v in table.items()},
            exclusive=frozenset(Stage(s) for s in exclusive),
        )
