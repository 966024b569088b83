"""MkDocs hook: a navigation that tolerates pages being added or not written yet.

- an entry whose page does not exist is dropped (strict mode would fail on it);
- an entry ending in ``/`` lists every page of that folder (its ``index.md`` first);
- a page that no entry names is appended at the end, so no page is orphaned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _expand(entry: Any, docs: Path, named: set[str]) -> Any:
    """Return the entry with missing pages removed and folders expanded, or None."""
    if isinstance(entry, dict):
        (title, value), = entry.items()
        if isinstance(value, list):
            kept = [e for e in (_expand(item, docs, named) for item in value) if e is not None]
            return {title: kept} if kept else None
        if isinstance(value, str) and value.endswith("/"):
            folder = docs / value
            if not folder.is_dir():
                return None
            pages = sorted(p.relative_to(docs).as_posix() for p in folder.rglob("*.md"))
            pages.sort(key=lambda p: not p.endswith("/index.md"))
            named.update(pages)
            return {title: pages} if pages else None
        inner = _expand(value, docs, named)
        return {title: inner} if inner is not None else None
    if isinstance(entry, str):
        if "://" in entry:
            return entry
        if not (docs / entry).is_file():
            return None
        named.add(entry)
        return entry
    return entry


def on_config(config: Any) -> Any:
    nav = config.get("nav")
    if not nav:
        return config
    docs = Path(config["docs_dir"])
    named: set[str] = set()
    kept = [e for e in (_expand(item, docs, named) for item in nav) if e is not None]
    excluded = {"hooks"}
    for page in sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md")):
        if page not in named and page.split("/", 1)[0] not in excluded:
            kept.append(page)
    config["nav"] = kept
    return config
