"""Suggestions ("did you mean") for typos: the closest stage, alias, command, option, operator or key.

    >>> closest("prod", ["experimental", "staging", "production", "archived"])
    'production'
    >>> closest("tema", ["team", "owner"])
    'team'
    >>> closest("xyz", ["team", "owner"]) is None
    True
    >>> did_you_mean("regster", ["register", "list"])
    "; did you mean 'register'?"

Standard library only (:mod:`difflib`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

__all__ = ["closest", "closest_n", "did_you_mean"]


def closest_n(word: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` candidates close to ``word``, closest first, ignoring case: those that
    ``word`` begins (``prod`` -> ``production``), then by :func:`difflib.get_close_matches`."""
    options = list(dict.fromkeys(c for c in candidates if isinstance(c, str) and c))
    low = word.lower()
    by_low: dict[str, str] = {}
    for c in options:
        by_low.setdefault(c.lower(), c)
    if low in by_low and by_low[low] != word:
        return [by_low[low]]  # only the case differs
    found = [c for c in options if len(low) >= 2 and c.lower().startswith(low) and c.lower() != low]
    found.sort(key=len)
    for match in difflib.get_close_matches(low, list(by_low), n=n, cutoff=cutoff):
        if by_low[match] not in found and match != low:
            found.append(by_low[match])
    return found[:n]


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (see :func:`closest_n`), or None."""
    found = closest_n(word, candidates, n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str], show: Callable[[str], str] = repr, prefix: str = "; ") -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when none is close."""
    best = closest(word, candidates)
    return f"{prefix}did you mean {show(best)}?" if best is not None else ""
