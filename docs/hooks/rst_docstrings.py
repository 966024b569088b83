"""Griffe extension: render the reStructuredText bits of modelreg's docstrings as Markdown.

- ``:class:`X``` and the other Sphinx roles become inline code;
- doctest lines (``>>>``/``...``) become a fenced ``pycon`` block, without ``# doctest:`` flags;
- a paragraph ending in ``::`` (an RST literal block) ends in ``:`` instead.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):`~?([^`]+)`")
_DOCTEST_FLAG = re.compile(r"\s*#\s*doctest:.*$")


def to_markdown(text: str) -> str:
    text = _ROLE.sub(r"`\1`", text)
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            out.extend(["", "```pycon", *block, "```", ""])
            block.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>") or (block and stripped.startswith("...")):
            block.append(_DOCTEST_FLAG.sub("", stripped))
            continue
        flush()
        if stripped.endswith("::") and not stripped.startswith("::"):
            line = line.rstrip()[:-1]
        out.append(line)
    flush()
    return "\n".join(out).strip("\n")


class RstDocstrings(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = to_markdown(obj.docstring.value)
