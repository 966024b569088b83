"""What ``import modelreg`` exports, in the style of httpx's exported-members test.

The package loads most public names on first access (module ``__getattr__``), so ``dir()`` and
``vars()`` cannot be compared with ``__all__`` directly (``__dir__`` is built from ``__all__``).
These tests look at the sources of truth instead, in a fresh interpreter where nothing was loaded
before: every name in ``__all__`` resolves to the object its home module defines, every lazy name
is in ``__all__``, the ``TYPE_CHECKING`` block that type checkers read lists the same names, and
nothing public exists that ``__all__`` does not name.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import modelreg

INIT = Path(modelreg.__file__)
PRIVATE_EXPORTS = {"__version__"}


def test_all_is_sorted_and_unique() -> None:
    assert modelreg.__all__ == sorted(set(modelreg.__all__))


def test_every_exported_name_resolves_in_a_fresh_interpreter() -> None:
    code = textwrap.dedent("""
        import json, sys
        import modelreg
        before = sorted(n for n in vars(modelreg) if not n.startswith("_"))
        homes = {}
        for name in modelreg.__all__:
            value = getattr(modelreg, name)
            homes[name] = getattr(value, "__module__", None) if not isinstance(value, str) else "str"
        after = sorted(n for n in vars(modelreg) if not n.startswith("_") or n in ("__version__",))
        print(json.dumps({"before": before, "homes": homes, "after": after}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    # every exported object is modelreg's own (not a re-export of a third-party name)
    foreign = {n: m for n, m in got["homes"].items() if m not in ("str", None) and not m.startswith("modelreg")}
    assert foreign == {}
    # once everything was resolved, the public namespace is exactly __all__ (plus the submodules that
    # importing the lazy names loaded as attributes of the package)
    submodules = {p.stem for p in INIT.parent.glob("*.py")} | {p.name for p in INIT.parent.iterdir() if p.is_dir()}
    extra = set(got["after"]) - set(modelreg.__all__) - submodules
    assert extra == set(), f"public names missing from __all__: {sorted(extra)}"
    assert set(modelreg.__all__) <= set(got["after"])


def _lazy_table_and_type_checking_names() -> tuple[set[str], set[str]]:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    lazy: set[str] = set()
    checking: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "_LAZY" and isinstance(node.value, ast.Dict):
                lazy = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "_typing.TYPE_CHECKING"):
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom):
                    checking |= {a.asname or a.name for a in imp.names}
    return lazy, checking


def test_lazy_names_and_type_checking_imports_agree_with_all() -> None:
    lazy, checking = _lazy_table_and_type_checking_names()
    assert lazy, "the _LAZY table was not found in modelreg/__init__.py"
    assert lazy <= set(modelreg.__all__), sorted(lazy - set(modelreg.__all__))
    assert checking == lazy, (sorted(checking - lazy), sorted(lazy - checking))
    eager = set(modelreg.__all__) - lazy - PRIVATE_EXPORTS
    # the names imported eagerly are the errors: cheap, and needed to catch what modelreg raises
    assert all(getattr(modelreg, n).__module__ == "modelreg.errors" for n in eager), sorted(eager)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        modelreg.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("modelreg.NoSuchThing resolved")
