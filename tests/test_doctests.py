"""The examples in modelreg's docstrings run (``doctest``), none is skipped.

Each module's examples run in a fresh temporary folder (they use ``./models`` and a
``model.onnx`` file there); a few names the examples assume (``reg`` with a registered model for
the HTML helpers, a signed webhook ``request`` and its ``secret`` for the receiver's check) are
provided as globals.
"""

from __future__ import annotations

import doctest
import importlib
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "modelreg"


def modules_with_examples() -> list[str]:
    names = []
    for path in sorted(SRC.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


def _globals(tmp_path: Path) -> dict[str, object]:
    from modelreg import Registry
    from modelreg.governance.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx weights")
    reg = Registry(tmp_path / "example-registry")
    reg.register("churn", model, metrics={"auc": 0.9}, capture=None)
    secret, body, stamp = "s3cret", b'{"action": "transition"}', str(int(time.time()))
    request = SimpleNamespace(body=body, headers={TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, stamp, body)})
    return {"reg": reg, "secret": secret, "request": request}


def test_every_module_with_examples_is_collected() -> None:
    found = modules_with_examples()
    assert {"modelreg", "modelreg.registry", "modelreg.html", "modelreg.ui"} <= set(found), found
    assert not [p for p in SRC.rglob("*.py") if "+SKIP" in p.read_text(encoding="utf-8")]


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "cache"))
    module = importlib.import_module(name)
    extra = _globals(tmp_path)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name, globs={**vars(module), **extra})
    assert tests, f"{name} has '>>> ' in its source but no docstring example was found"
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (see above)"
    assert os.getcwd() == str(tmp_path)
