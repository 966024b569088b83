"""``Registry.save_model`` / ``load_model`` with the real frameworks, on a local folder and on S3
(moto): every flavor round-trips into a fresh process with the same predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelreg import IntegrityError, Registry, UnsafeModelError
from modelreg.flavors import MODEL_FILE
from tests.emulators import Bucket

ROOT = Path(__file__).resolve().parents[1]

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 8)).astype(np.float32)
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)


def _sklearn() -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300).fit(X, Y), {}


def _xgboost() -> tuple[Any, dict[str, Any]]:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(X, Y), {}


def _lightgbm() -> tuple[Any, dict[str, Any]]:
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=8, num_leaves=7, verbose=-1).fit(X, Y), {}


def _onnx() -> tuple[Any, dict[str, Any]]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=300).fit(X, Y)
    return to_onnx(model, X[:1], options={"zipmap": False}), {}


def _pytorch() -> tuple[Any, dict[str, Any]]:
    import torch

    from tests.helpers.torch_nets import make_net

    torch.manual_seed(0)
    return make_net(8, 16).eval(), {"factory": "tests.helpers.torch_nets:make_net", "factory_kwargs": {"hidden": 16}}


def _arrays() -> tuple[Any, dict[str, Any]]:
    return {"w": rng.normal(size=(8, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}, {}


MAKERS: dict[str, Callable[[], tuple[Any, dict[str, Any]]]] = {
    "sklearn": _sklearn,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "onnx": _onnx,
    "pytorch": _pytorch,
    "safetensors": _arrays,
}

# what the fresh process prints: predictions on X[:10] as a JSON list, computed the way a user would
PREDICT = {
    "sklearn": "out = model.predict_proba(X).tolist()",
    "xgboost": "out = model.predict_proba(X).tolist()",
    "lightgbm": "out = model.predict_proba(X).tolist()",
    "onnx": "out = model.run(None, {model.get_inputs()[0].name: X})[1].tolist()",
    "pytorch": "import torch\nwith torch.no_grad():\n    out = model(torch.from_numpy(X)).numpy().tolist()",
    "safetensors": "out = (X @ model['w'] + model['b']).tolist()",
}


def _expected(flavor: str, model: Any) -> list[Any]:
    scope: dict[str, Any] = {"model": model, "X": X[:10]}
    if flavor == "onnx":
        import onnxruntime

        scope["model"] = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    exec(PREDICT[flavor], scope)
    return scope["out"]  # type: ignore[no-any-return]


def _load_in_fresh_process(uri: str, options: dict[str, Any] | None, ref: str, flavor: str) -> list[Any]:
    load_options = "factory=make_net" if flavor == "pytorch" else ""
    code = (
        textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from modelreg import Registry
        from tests.helpers.torch_nets import make_net
        X = np.asarray(json.loads(sys.argv[1]), dtype=np.float32)
        reg = Registry(sys.argv[2], storage_options=json.loads(sys.argv[3]) or None)
        model = reg.load_model(sys.argv[4], {load_options})
        assert reg.loaded_from(model).ref == sys.argv[4]
    """)
        + PREDICT[flavor]
        + "\nprint(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(X[:10].tolist()), uri, json.dumps(options or {}), ref],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    if request.param == "local":
        yield str(tmp_path / "reg"), None
    else:
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        yield f"{bucket.url}/reg", dict(bucket.storage_options)


@pytest.mark.parametrize("flavor", sorted(MAKERS))
def test_round_trip_into_a_fresh_process(flavor: str, where: tuple[str, dict[str, Any] | None]) -> None:
    uri, options = where
    model, flavor_options = MAKERS[flavor]()
    reg = Registry(uri, storage_options=options)
    example = {"w": None} if flavor == "safetensors" else X[:3]
    mv = reg.save_model(
        "churn",
        model,
        input_example=None if flavor == "safetensors" else example,
        options=flavor_options,
        metrics={"auc": 0.9},
        tags={"team": "fraud"},
    )
    assert mv.model is not None and mv.model.flavor == flavor and mv.artifact.format == flavor
    assert mv.model.unsafe is False and mv.model.libraries and mv.model.requirements
    assert mv.metrics == {"auc": 0.9} and mv.tags == {"team": "fraud"}
    if flavor != "safetensors":
        sig = mv.model.signature
        assert sig is not None and sig.kind == "tensor"
        assert sig.inputs[0].dtype == "float32" and sig.inputs[0].shape == [None, 8]
    assert reg.get_version(mv.ref).model == mv.model  # as stored
    assert [v.ref for v in reg.search(f"model.flavor = '{flavor}'")] == [mv.ref]
    assert (reg.fetch(mv.ref) / MODEL_FILE).is_file()
    got = _load_in_fresh_process(uri, options, mv.ref, flavor)
    np.testing.assert_allclose(np.asarray(got), np.asarray(_expected(flavor, model)), rtol=1e-5, atol=1e-6)


def test_pickle_needs_allow_unsafe(tmp_path: Path) -> None:
    model, _ = _sklearn()
    reg = Registry(tmp_path / "reg")
    mv = reg.save_model("churn", model, options={"format": "joblib"})
    assert mv.model is not None and mv.model.unsafe and mv.model.format == "joblib"
    with pytest.raises(UnsafeModelError) as err:
        reg.load_model(mv.ref)
    message = str(err.value)
    assert "allow_unsafe=True" in message and "skops" in message
    loaded = reg.load_model(mv.ref, allow_unsafe=True)
    np.testing.assert_allclose(loaded.predict_proba(X[:5]), model.predict_proba(X[:5]))
    assert reg.verify().ok


def test_a_tampered_model_file_in_the_store_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    mv = reg.save_model("churn", _sklearn()[0])
    entry = next(f for f in mv.artifact.files if f.path == MODEL_FILE)
    stored = Path(reg.artifacts._path(entry.digest))  # type: ignore[attr-defined]
    os.chmod(stored, 0o644)
    doc = json.loads(stored.read_text())
    doc["path"] = "../../../../etc/passwd"
    stored.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match=f"file '{MODEL_FILE}' is corrupted in the artifact store"):
        reg.load_model(mv.ref)
    assert not reg.verify().ok


def test_register_reads_a_saved_folder_and_usage_is_recorded(tmp_path: Path) -> None:
    from modelreg import flavors

    model, _ = _sklearn()
    folder = tmp_path / "exported"
    folder.mkdir()
    info = flavors.save(model, folder, input_example=X[:2])
    reg = Registry(tmp_path / "reg", actor="svc")
    mv = reg.register("churn", folder, capture=None)
    assert mv.model == info and mv.artifact.format == "sklearn"
    loaded = reg.load_model("churn", record_use=True, purpose="batch scoring")
    assert reg.loaded_from(loaded) is not None and reg.loaded_from(loaded).digest == mv.digest  # type: ignore[union-attr]
    assert reg.loaded_from(model) is None
    used = reg.metadata.list_usage("churn")
    assert [(u.action, u.purpose, u.actor) for u in used] == [("load", "batch scoring", "svc")]


def test_save_model_refuses_unknown_keywords(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    with pytest.raises(TypeError, match="flavor options in options="):
        reg.save_model("churn", _sklearn()[0], format="joblib")
    assert reg.list_models() == []


def test_cli_show_prints_flavor_and_signature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelreg.cli import main

    reg = Registry(tmp_path / "reg")
    reg.save_model("churn", _sklearn()[0], input_example=X[:2])
    assert main(["--registry", str(tmp_path / "reg"), "show", "churn/1"]) == 0
    out = capsys.readouterr().out
    assert "model object" in out and "flavor" in out and "sklearn" in out and "skops" in out
    assert "(tensor) (tensor): float32[?, 8]" in out or "float32[?, 8]" in out
