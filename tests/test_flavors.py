"""modelreg.flavors: save native model objects into a folder and load them back, safely.

Each flavor's round trip trains a tiny model here, saves it, loads it in a fresh interpreter
(``sys.executable``) and compares that process's predictions with this one's on the same inputs.
The refusals (pickle, untrusted skops types, tampered model files), the missing-extra errors, the
library-drift warning, signature inference and third-party flavors through the entry-point group
are checked too. PyTorch is in tests/test_flavors_pytorch.py.
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from modelreg import flavors
from modelreg.errors import (
    IntegrityError,
    InvalidInputError,
    SchemaVersionError,
    UnsafeModelError,
)
from modelreg.flavors import MODEL_FILE, Flavor, LibraryVersionWarning, Saved
from modelreg.models import ModelInfo, Signature

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = (
    "numpy",
    "pandas",
    "sklearn",
    "skops",
    "joblib",
    "xgboost",
    "lightgbm",
    "onnx",
    "onnxruntime",
    "torch",
    "safetensors",
)

# --- data and models -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def frame(data: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(data[0], columns=["age", "income", "tenure", "score"])


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )


ROUND_TRIP = """
    import json, sys
    import numpy as np
    from modelreg.flavors import load, predict

    folder, inputs, out = sys.argv[1:4]
    options, columns = json.loads(sys.argv[4]), json.loads(sys.argv[5])
    X = np.load(inputs, allow_pickle=False)
    if columns:
        import pandas as pd
        X = pd.DataFrame(X, columns=columns)
    model = load(folder, **options)
    np.save(out + ".pred.npy", np.asarray(predict(model, X)), allow_pickle=False)
    if hasattr(model, "predict_proba"):
        np.save(out + ".proba.npy", model.predict_proba(X), allow_pickle=False)
    print(json.dumps({"class": type(model).__module__ + "." + type(model).__qualname__}))
"""


def round_trip(
    folder: Path, X: np.ndarray, tmp_path: Path, *, columns: list[str] | None = None, **options: Any
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Load ``folder`` in a fresh interpreter and predict ``X`` there: (predictions,
    probabilities or None, the loaded object's class)."""
    inputs, out = tmp_path / "inputs.npy", tmp_path / "out"
    np.save(inputs, X, allow_pickle=False)
    proc = run_python(ROUND_TRIP, str(folder), str(inputs), str(out), json.dumps(options), json.dumps(columns or []))
    assert proc.returncode == 0, proc.stderr
    proba = Path(f"{out}.proba.npy")
    return (
        np.load(f"{out}.pred.npy", allow_pickle=False),
        np.load(proba, allow_pickle=False) if proba.exists() else None,
        json.loads(proc.stdout.strip().splitlines()[-1])["class"],
    )


def model_file(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    return data


def rewrite(folder: Path, **changes: Any) -> None:
    data = model_file(folder)
    data.update(changes)
    (folder / MODEL_FILE).write_text(json.dumps(data), encoding="utf-8")


# --- the module itself ---------------------------------------------------------------------


def test_importing_and_detecting_imports_no_framework(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")
    proc = run_python(
        """
        import json, sys
        import modelreg.flavors as f
        assert f.available_flavors() == ["files", "lightgbm", "onnx", "pytorch", "safetensors", "sklearn", "xgboost"]
        assert f.detect(sys.argv[1]) == "files"
        assert f.infer_signature({"age": [31, 45], "city": ["Oslo", "Rome"]}).kind == "columns"
        before = sorted(sys.modules)
        from sklearn.linear_model import LinearRegression
        assert f.detect(LinearRegression()) == "sklearn"
        print(json.dumps({"before": before, "after": sorted(sys.modules)}))
        """,
        str(tmp_path / "weights.bin"),
    )
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout)
    assert [m for m in modules["before"] if m.partition(".")[0] in FRAMEWORKS] == []
    # detecting a scikit-learn model tries every flavor, and imports none of the other frameworks
    others = {"skops", "xgboost", "lightgbm", "onnx", "onnxruntime", "torch", "safetensors"}
    assert [m for m in modules["after"] if m.partition(".")[0] in others] == []


def test_builtin_flavors_are_declared_as_entry_points() -> None:
    points = {ep.name: ep.value for ep in flavors.flavor_entry_points() if ep.value.startswith("modelreg.")}
    assert points == {
        "files": "modelreg.flavors.files:FilesFlavor",
        "lightgbm": "modelreg.flavors.lightgbm:LightGBMFlavor",
        "onnx": "modelreg.flavors.onnx:OnnxFlavor",
        "pytorch": "modelreg.flavors.pytorch:PyTorchFlavor",
        "safetensors": "modelreg.flavors.safetensors:SafetensorsFlavor",
        "sklearn": "modelreg.flavors.sklearn:SklearnFlavor",
        "xgboost": "modelreg.flavors.xgboost:XGBoostFlavor",
    }
    assert {n: flavors.get_flavor(n).extra for n in points} == {
        "files": None,
        "lightgbm": "lightgbm",
        "onnx": "onnx",
        "pytorch": "pytorch",
        "safetensors": "safetensors",
        "sklearn": "sklearn",
        "xgboost": "xgboost",
    }


def test_detect_picks_the_framework(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = data
    model_path = tmp_path / "model.onnx"
    model_path.write_bytes(to_onnx(LinearRegression().fit(X, y), X[:1]).SerializeToString())
    (tmp_path / "notes.txt").write_text("hello")
    xgb_clf = xgb.XGBClassifier(n_estimators=2).fit(X, y)
    lgb_reg = lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, X[:, 0])
    assert flavors.detect(LogisticRegression()) == "sklearn"
    assert flavors.detect(make_pipeline(StandardScaler(), LogisticRegression())) == "sklearn"
    # the scikit-learn wrappers derive from sklearn classes: their own flavor comes first
    assert flavors.detect(xgb_clf) == "xgboost"
    assert flavors.detect(xgb_clf.get_booster()) == "xgboost"
    assert flavors.detect(lgb_reg) == "lightgbm"
    assert flavors.detect(lgb_reg.booster_) == "lightgbm"
    assert flavors.detect(to_onnx(LinearRegression().fit(X, y), X[:1])) == "onnx"
    assert flavors.detect(model_path) == "onnx"
    assert flavors.detect(X) == "safetensors"
    assert flavors.detect({"w": X, "b": y}) == "safetensors"
    assert flavors.detect(tmp_path / "notes.txt") == "files"
    assert flavors.detect(str(tmp_path)) == "files"
    with pytest.raises(InvalidInputError, match=r"no flavor saves a builtins\.object: pass flavor="):
        flavors.detect(object())
    with pytest.raises(InvalidInputError, match=r"no flavor saves"):
        flavors.detect({"w": X, "name": "not an array"})


# --- sklearn -------------------------------------------------------------------------------


def test_sklearn_skops_round_trip(frame: pd.DataFrame, data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    y = data[1]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)
    info = flavors.save(model, tmp_path / "m", input_example=frame.head(3))
    assert (info.flavor, info.format, info.path, info.unsafe) == ("sklearn", "skops", "model.skops", False)
    assert info.object_class == "sklearn.pipeline.Pipeline"
    assert info.libraries == {"scikit-learn": metadata.version("scikit-learn"), "skops": metadata.version("skops")}
    assert (tmp_path / "m" / "requirements.txt").read_text().splitlines() == [
        f"scikit-learn=={metadata.version('scikit-learn')}",
        f"skops=={metadata.version('skops')}",
    ]
    assert info.signature == Signature(
        kind="columns",
        inputs=[{"name": c, "dtype": "float64"} for c in frame.columns],
        outputs=[{"dtype": "int64", "shape": [None]}],
    )
    written = model_file(tmp_path / "m")
    assert written["modelreg_model"] == 1
    assert flavors.read_info(tmp_path / "m") == info
    assert ModelInfo.model_validate({k: v for k, v in written.items() if k != "modelreg_model"}) == info
    pd.testing.assert_frame_equal(flavors.load_input_example(tmp_path / "m"), frame.head(3))

    pred, proba, cls = round_trip(tmp_path / "m", frame.to_numpy(), tmp_path, columns=list(frame.columns))
    assert cls == "sklearn.pipeline.Pipeline"
    np.testing.assert_array_equal(pred, model.predict(frame))
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=1e-12)


@pytest.mark.parametrize(("fmt", "filename"), [("joblib", "model.joblib"), ("pickle", "model.pkl")])
def test_sklearn_pickle_formats_need_allow_unsafe(
    fmt: str, filename: str, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    info = flavors.save(model, tmp_path / "m", format=fmt)
    assert (info.format, info.path, info.unsafe) == (fmt, filename, True)
    with pytest.raises(UnsafeModelError) as refused:
        flavors.load(tmp_path / "m")
    message = str(refused.value)
    assert f"loading a {fmt} sklearn model runs code from the artifact" in message
    assert "allow_unsafe=True" in message
    assert "format='skops'" in message
    # tampering with the file's own "unsafe" flag changes nothing: the format decides
    rewrite(tmp_path / "m", unsafe=False)
    with pytest.raises(UnsafeModelError):
        flavors.load(tmp_path / "m")
    pred, _, cls = round_trip(tmp_path / "m", X, tmp_path, allow_unsafe=True)
    assert cls == "sklearn.linear_model._logistic.LogisticRegression"
    np.testing.assert_array_equal(pred, model.predict(X))


def test_skops_refuses_untrusted_types_and_lists_them(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = data
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression()).fit(X, y)
    flavors.save(model, tmp_path / "m")
    with pytest.raises(UnsafeModelError) as refused:
        flavors.load(tmp_path / "m")
    message = str(refused.value)
    assert "holds types that skops does not trust by default: _operator.neg." in message
    assert "pass trusted=['_operator.neg']" in message
    with pytest.raises(UnsafeModelError, match=r"_operator.neg"):
        flavors.load(tmp_path / "m", trusted=["something.else"])
    loaded = flavors.load(tmp_path / "m", trusted=["_operator.neg"])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    pred, _, _ = round_trip(tmp_path / "m", X, tmp_path, allow_unsafe=True)
    np.testing.assert_array_equal(pred, model.predict(X))


# --- xgboost and lightgbm ------------------------------------------------------------------


def test_xgboost_classifier_round_trip(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = data
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(X, y)
    info = flavors.save(model, tmp_path / "m", input_example=X[:2])
    assert (info.format, info.path, info.options) == ("ubj", "model.ubj", {"wrapper": "XGBClassifier"})
    assert "scikit-learn" in info.libraries and info.libraries.keys() & {"xgboost", "xgboost-cpu"}
    assert info.signature is not None
    assert info.signature.inputs[0].shape == [None, 4] and info.signature.outputs[0].dtype == "int64"
    pred, proba, cls = round_trip(tmp_path / "m", X, tmp_path)
    assert cls == "xgboost.sklearn.XGBClassifier"
    np.testing.assert_array_equal(pred, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-6)


def test_xgboost_booster_round_trip_in_json(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X = data[0]
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=X[:, 0]), num_boost_round=4)
    info = flavors.save(booster, tmp_path / "m", format="json")
    assert (info.format, info.path, info.options) == ("json", "model.json", {"wrapper": "Booster"})
    json.loads((tmp_path / "m" / "model.json").read_text())  # XGBoost's own JSON
    pred, proba, cls = round_trip(tmp_path / "m", X, tmp_path)
    assert (cls, proba) == ("xgboost.core.Booster", None)
    np.testing.assert_allclose(pred, booster.inplace_predict(X), rtol=1e-6)


def test_xgboost_refuses_a_tampered_class(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X = data[0]
    flavors.save(xgb.XGBRegressor(n_estimators=2).fit(X, X[:, 0]), tmp_path / "m")
    rewrite(tmp_path / "m", options={"wrapper": "os.system"})
    with pytest.raises(IntegrityError, match=r"unknown class 'os.system'"):
        flavors.load(tmp_path / "m")


def test_lightgbm_classifier_with_labels_and_feature_names(
    frame: pd.DataFrame, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    labels = np.array(["churn", "stay", "upsell"])[(frame["age"] > 0).to_numpy().astype(int) + (frame["tenure"] > 1)]
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(frame, labels)
    info = flavors.save(model, tmp_path / "m", input_example=frame.head(2))
    assert (info.format, info.path) == ("text", "model.txt")
    assert info.options["classes"] == ["churn", "stay", "upsell"] and info.options["feature_names"] is True
    assert info.signature is not None and info.signature.outputs[0].dtype == "<U6"
    pred, proba, cls = round_trip(tmp_path / "m", frame.to_numpy(), tmp_path, columns=list(frame.columns))
    assert cls == "lightgbm.sklearn.LGBMClassifier"
    np.testing.assert_array_equal(pred, model.predict(frame))
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=1e-12)
    loaded = flavors.load(tmp_path / "m")
    assert list(loaded.feature_names_in_) == list(frame.columns) and loaded.n_features_in_ == 4


def test_lightgbm_regressor_and_booster_round_trip(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, _ = data
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1).fit(X, X[:, 1])
    flavors.save(model, tmp_path / "reg")
    pred, proba, cls = round_trip(tmp_path / "reg", X, tmp_path)
    assert (cls, proba) == ("lightgbm.sklearn.LGBMRegressor", None)
    np.testing.assert_allclose(pred, model.predict(X), rtol=1e-12)

    info = flavors.save(model.booster_, tmp_path / "booster")
    assert info.options == {"wrapper": "Booster"}
    pred, _, cls = round_trip(tmp_path / "booster", X, tmp_path)
    assert cls == "lightgbm.basic.Booster"
    np.testing.assert_allclose(pred, model.booster_.predict(X), rtol=1e-12)


# --- onnx ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(data: tuple[np.ndarray, np.ndarray]) -> tuple[Any, LogisticRegression]:
    X, y = data
    sk = LogisticRegression().fit(X.astype(np.float32), y)
    return to_onnx(sk, X[:1].astype(np.float32), options={"zipmap": False}), sk


def test_onnx_round_trip(
    onnx_model: tuple[Any, LogisticRegression], data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    proto, sk = onnx_model
    X = data[0]
    info = flavors.save(proto, tmp_path / "m", input_example=X[:2].astype(np.float32))
    assert (info.flavor, info.format, info.path, info.object_class) == ("onnx", "onnx", "model.onnx", "onnx.ModelProto")
    assert info.signature == Signature(
        kind="tensor",
        inputs=[{"dtype": "float32", "shape": [None, 4]}],
        outputs=[
            {"name": "label", "dtype": "int64", "shape": [None]},
            {"name": "probabilities", "dtype": "float32", "shape": [None, 2]},
        ],
    )
    # float64 inputs are cast to the graph's float32
    pred, _, cls = round_trip(tmp_path / "m", X, tmp_path)
    assert cls == "onnxruntime.capi.onnxruntime_inference_collection.InferenceSession"
    np.testing.assert_array_equal(pred, sk.predict(X.astype(np.float32)))
    loaded = flavors.load(tmp_path / "m", proto=True)
    assert loaded.SerializeToString() == proto.SerializeToString()


def test_onnx_from_bytes_and_from_a_path(onnx_model: tuple[Any, LogisticRegression], tmp_path: Path) -> None:
    proto, _ = onnx_model
    (tmp_path / "given.onnx").write_bytes(proto.SerializeToString())
    flavors.save(tmp_path / "given.onnx", tmp_path / "from-path")
    flavors.save(proto.SerializeToString(), tmp_path / "from-bytes", flavor="onnx")
    for name in ("from-path", "from-bytes"):
        assert (tmp_path / name / "model.onnx").read_bytes() == proto.SerializeToString()
    with pytest.raises(InvalidInputError, match=r"not an ONNX model"):
        flavors.save(b"\xff\xff not onnx", tmp_path / "bad", flavor="onnx")
    assert not (tmp_path / "bad").exists()  # a failed save leaves nothing behind


def test_onnx_refuses_external_data(tmp_path: Path) -> None:
    import onnx
    from onnx import helper, numpy_helper

    weights = numpy_helper.from_array(np.ones(4, dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "add",
        [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [None, 4])],
        initializer=[weights],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    external = onnx.ModelProto()
    external.CopyFrom(proto)
    tensor = external.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../secret.bin"
    with pytest.raises(InvalidInputError, match=r"keeps tensors in external files"):
        flavors.save(external, tmp_path / "m")
    flavors.save(proto, tmp_path / "ok")
    (tmp_path / "ok" / "model.onnx").write_bytes(external.SerializeToString())
    with pytest.raises(IntegrityError, match=r"refers to external data files"):
        flavors.load(tmp_path / "ok")


# --- safetensors and files -----------------------------------------------------------------

SAFETENSORS_CHILD = """
    import json, sys
    import numpy as np
    from modelreg.flavors import load
    loaded = load(sys.argv[1])
    arrays = loaded if isinstance(loaded, dict) else {"single": loaded}
    np.savez(sys.argv[2], **arrays)
    print(json.dumps({"class": type(loaded).__module__ + "." + type(loaded).__qualname__, "keys": list(arrays)}))
"""


def test_safetensors_arrays_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    weights = {"z.weight": rng.normal(size=(3, 2)).astype(np.float32), "a.bias": np.arange(3, dtype=np.int16)}
    single = np.asfortranarray(rng.normal(size=(4, 5)))  # not C-contiguous
    info = flavors.save(weights, tmp_path / "dict")
    assert (info.flavor, info.format, info.object_class) == ("safetensors", "safetensors", "dict")
    assert info.options == {"framework": "numpy", "single": False, "keys": ["z.weight", "a.bias"]}
    flavors.save(single, tmp_path / "single")
    for name, expected in (("dict", weights), ("single", {"single": single})):
        out = tmp_path / f"{name}.npz"
        proc = run_python(SAFETENSORS_CHILD, str(tmp_path / name), str(out))
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["keys"] == list(expected)  # in the saved order
        assert result["class"] == ("builtins.dict" if name == "dict" else "numpy.ndarray")
        with np.load(out, allow_pickle=False) as got:
            for key, array in expected.items():
                np.testing.assert_array_equal(got[key], array)
                assert got[key].dtype == array.dtype
    with pytest.raises(InvalidInputError, match=r"Python objects"):
        flavors.save(np.array([{"a": 1}], dtype=object), tmp_path / "objects", flavor="safetensors")


FILES_CHILD = """
    import hashlib, json, sys
    from pathlib import Path
    from modelreg.flavors import load
    path = load(sys.argv[1])
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digests = {p.relative_to(path).as_posix() if path.is_dir() else p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in files}
    print(json.dumps(digests))
"""


def test_files_round_trip(tmp_path: Path) -> None:
    import hashlib

    source = tmp_path / "tokenizer"
    (source / "sub").mkdir(parents=True)
    (source / "vocab.txt").write_text("a\nb\n")
    (source / "sub" / "merges.bin").write_bytes(bytes(range(256)))
    info = flavors.save(source, tmp_path / "dir")
    assert (info.flavor, info.format, info.path) == ("files", "directory", "tokenizer")
    info = flavors.save(source / "vocab.txt", tmp_path / "file", name="vocabulary.txt")
    assert (info.format, info.path) == ("file", "vocabulary.txt")
    proc = run_python(FILES_CHILD, str(tmp_path / "dir"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "sub/merges.bin": hashlib.sha256(bytes(range(256))).hexdigest(),
        "vocab.txt": hashlib.sha256(b"a\nb\n").hexdigest(),
    }
    assert flavors.load(tmp_path / "file") == tmp_path / "file" / "vocabulary.txt"
    with pytest.raises(InvalidInputError, match=r"a name modelreg uses"):
        flavors.save(source / "vocab.txt", tmp_path / "clash", name="requirements.txt")
    assert not (tmp_path / "clash").exists()


def test_files_refuses_a_symlink_leading_outside(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    flavors.save(tmp_path / "src", tmp_path / "m")
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "m" / "src" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(IntegrityError, match=r"is a symlink to .*secret.txt, outside the model folder"):
        flavors.load(tmp_path / "m")


# --- save's checks and the input example ---------------------------------------------------


def test_save_wants_an_empty_folder(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "old.txt").write_text("x")
    with pytest.raises(InvalidInputError, match=r"is not empty"):
        flavors.save(data[0], tmp_path / "m")
    with pytest.raises(InvalidInputError, match=r"is not a folder"):
        flavors.save(data[0], tmp_path / "m" / "old.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match=r"takes no option 'colour'"):
        flavors.save(data[0], tmp_path / "empty", colour="red")
    assert (tmp_path / "empty").is_dir() and list((tmp_path / "empty").iterdir()) == []


def test_input_examples_are_stored_without_pickle(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, _ = data
    cases: list[tuple[Any, str]] = [
        (X[:3], "input_example.npy"),
        ({"ids": np.arange(3), "emb": X[:3]}, "input_example.npz"),
        ({"age": [31, 45], "city": ["Oslo", "Rome"]}, "input_example.json"),
        (pd.Series([1.5, 2.5], name="x"), "input_example.json"),
    ]
    for i, (example, name) in enumerate(cases):
        folder = tmp_path / str(i)
        info = flavors.save(X, folder, input_example=example)
        assert info.model_dump()["input_example"] == name
        got = flavors.load_input_example(folder)
        if isinstance(example, dict) and name.endswith(".npz"):
            assert got.keys() == example.keys()
            for k in example:
                np.testing.assert_array_equal(got[k], example[k])
        elif isinstance(example, pd.Series):
            pd.testing.assert_series_equal(got, example)
        elif isinstance(example, np.ndarray):
            np.testing.assert_array_equal(got, example)
        else:
            assert got == example
    assert flavors.load_input_example(tmp_path / "0") is not None
    flavors.save(X, tmp_path / "none")
    assert flavors.load_input_example(tmp_path / "none") is None
    with pytest.raises(
        InvalidInputError, match=r"cannot store an input example of type list safely \(object is not JSON data\)"
    ):
        flavors.save(X, tmp_path / "bad", input_example=[object()], signature={"kind": "tensor", "inputs": []})


# --- signatures ----------------------------------------------------------------------------


def test_signature_of_numpy_arrays() -> None:
    sig = flavors.infer_signature(np.zeros((5, 3, 2), dtype=np.float32), output=np.zeros(5, dtype=np.int64))
    assert sig.model_dump() == {
        "kind": "tensor",
        "inputs": [{"name": None, "dtype": "float32", "shape": [None, 3, 2]}],
        "outputs": [{"name": None, "dtype": "int64", "shape": [None]}],
    }
    assert flavors.infer_signature([[1, 2.5], [3, 4]]).inputs[0].model_dump() == {
        "name": None,
        "dtype": "float64",
        "shape": [None, 2],
    }


def test_signature_of_a_dataframe() -> None:
    df = pd.DataFrame({"age": [31, 45], "income": [1.5, 2.0], "member": [True, False]})
    sig = flavors.infer_signature(df)
    assert sig.kind == "columns"
    assert [(c.name, c.dtype, c.shape) for c in sig.inputs] == [
        ("age", "int64", None),
        ("income", "float64", None),
        ("member", "bool", None),
    ]
    records = flavors.infer_signature([{"age": 31, "city": "Oslo"}, {"age": 45.5, "city": "Rome"}])
    assert [(c.name, c.dtype) for c in records.inputs] == [("age", "float64"), ("city", "str")]


def test_signature_of_dicts() -> None:
    columns = flavors.infer_signature({"age": np.array([31, 45]), "city": ["Oslo", "Rome"]})
    assert columns.kind == "columns"
    assert [(c.name, c.dtype, c.shape) for c in columns.inputs] == [("age", "int64", None), ("city", "str", None)]
    row = flavors.infer_signature({"age": 31, "member": True})
    assert (row.kind, [c.dtype for c in row.inputs]) == ("columns", ["int64", "bool"])
    tensors = flavors.infer_signature({"ids": np.zeros((2, 7), dtype=np.int32), "mask": [[1, 1], [1, 0]]})
    assert tensors.kind == "tensors"
    assert [(c.name, c.dtype, c.shape) for c in tensors.inputs] == [
        ("ids", "int32", [None, 7]),
        ("mask", "int64", [None, 2]),
    ]
    ragged = flavors.infer_signature({"a": [1, 2, 3], "b": [1.0]})
    assert ragged.kind == "tensors"
    with pytest.raises(InvalidInputError, match=r"cannot infer a signature from a builtins.object"):
        flavors.infer_signature(object())
    with pytest.raises(InvalidInputError, match=r"empty dict"):
        flavors.infer_signature({})


def test_an_example_the_model_rejects_fails_the_save(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = data
    with pytest.raises(InvalidInputError, match=r"the model failed on input_example \(ValueError: X has 2 features"):
        flavors.save(LogisticRegression().fit(X, y), tmp_path / "m", input_example=X[:2, :2])
    assert not (tmp_path / "m").exists()


def test_a_given_signature_is_kept_and_checked(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    given = {"kind": "columns", "inputs": [{"name": "age", "dtype": "int64"}]}
    info = flavors.save(data[0], tmp_path / "m", input_example=data[0][:2], signature=given)
    assert info.signature == Signature.model_validate(given)
    with pytest.raises(InvalidInputError, match=r"signature is not a valid Signature"):
        flavors.save(data[0], tmp_path / "bad", signature={"kind": "matrix", "inputs": []})


# --- tampered model files ------------------------------------------------------------------


@pytest.fixture
def saved(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> Path:
    X, y = data
    flavors.save(LogisticRegression().fit(X, y), tmp_path / "m")
    return tmp_path / "m"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../outside.skops", "not a plain relative path"),
        ("/etc/passwd", "not a plain relative path"),
        ("sub/../../x", "not a plain relative path"),
        ("", "not a plain relative path"),
        ("C:/model.skops", "names a drive"),
    ],
)
def test_a_model_path_leaving_the_folder_is_refused(saved: Path, path: str, problem: str) -> None:
    rewrite(saved, path=path)
    with pytest.raises(IntegrityError, match=problem):
        flavors.load(saved)
    with pytest.raises(IntegrityError, match=problem):
        flavors.read_info(saved)


def test_a_symlink_leading_outside_is_refused(saved: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.skops").write_bytes((saved / "model.skops").read_bytes())
    (saved / "model.skops").unlink()
    (saved / "model.skops").symlink_to(tmp_path / "elsewhere.skops")
    with pytest.raises(IntegrityError, match=r"resolves outside the model folder .* through a symlink"):
        flavors.load(saved)


def test_unknown_flavor_wrong_format_and_broken_files_are_refused(saved: Path) -> None:
    original = (saved / MODEL_FILE).read_text()
    rewrite(saved, flavor="catboost")
    with pytest.raises(InvalidInputError, match=r"unknown flavor 'catboost'.*'modelreg.flavors' entry-point group"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text(original)
    rewrite(saved, format="onnx")
    with pytest.raises(InvalidInputError, match=r"says format 'onnx', which the sklearn flavor does not write"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text("{not json")
    with pytest.raises(InvalidInputError, match=r"is not JSON"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match=r"holds a JSON list"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text(
        json.dumps({k: v for k, v in json.loads(original).items() if k != "modelreg_model"})
    )
    with pytest.raises(InvalidInputError, match=r"no 'modelreg_model' format number"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text(json.dumps({**json.loads(original), "modelreg_model": 2}))
    with pytest.raises(SchemaVersionError, match=r"written by a newer modelreg"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text(json.dumps({**json.loads(original), "path": ["x"]}))
    with pytest.raises(InvalidInputError, match=r"not a valid model description"):
        flavors.load(saved)
    (saved / MODEL_FILE).write_text(original)
    (saved / "model.skops").unlink()
    with pytest.raises(IntegrityError, match=r"has no 'model.skops'"):
        flavors.load(saved)
    (saved / MODEL_FILE).unlink()
    # the MLmodel file written for MLflow's loaders is read instead, as for an MLflow model folder
    with pytest.raises(IntegrityError, match=r"has no 'model.skops', which MLmodel names"):
        flavors.load(saved)
    (saved / "MLmodel").unlink()
    with pytest.raises(InvalidInputError, match=r"is not a saved model: it has no modelreg-model.json"):
        flavors.load(saved)


# --- library versions and missing extras ---------------------------------------------------


def test_library_version_drift_warns(saved: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    installed = metadata.version("scikit-learn")
    rewrite(saved, libraries={"scikit-learn": "0.24.2", "skops": metadata.version("skops")})
    with pytest.warns(LibraryVersionWarning) as caught:
        model = flavors.load(saved)
    assert [str(w.message) for w in caught] == [
        f"the sklearn model in {saved} was saved with scikit-learn 0.24.2; {installed} is installed: it may load "
        "differently or not at all (pip install 'scikit-learn==0.24.2' to match)"
    ]
    assert caught[0].filename == __file__  # points at the caller
    np.testing.assert_array_equal(model.predict(data[0]), LogisticRegression().fit(*data).predict(data[0]))


MISSING = """
    import json, sys
    blocked = json.loads(sys.argv[1])
    for name in blocked:
        sys.modules[name] = None  # import fails as if the package were not installed
    from modelreg.errors import MissingDependencyError
    from modelreg.flavors import load
    messages = {}
    for flavor, folder in json.loads(sys.argv[2]).items():
        try:
            load(folder)
        except MissingDependencyError as e:
            messages[flavor] = str(e)
    print(json.dumps(messages))
"""


def test_a_missing_framework_names_the_extra(
    data: tuple[np.ndarray, np.ndarray], onnx_model: tuple[Any, LogisticRegression], tmp_path: Path
) -> None:
    X, y = data
    folders = {
        "sklearn": LogisticRegression().fit(X, y),
        "xgboost": xgb.XGBRegressor(n_estimators=2).fit(X, X[:, 0]),
        "lightgbm": lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, X[:, 0]),
        "onnx": onnx_model[0],
        "safetensors": {"w": X},
    }
    for name, model in folders.items():
        flavors.save(model, tmp_path / name)
    blocked = ["skops", "xgboost", "lightgbm", "onnx", "onnxruntime", "safetensors"]
    proc = run_python(MISSING, json.dumps(blocked), json.dumps({n: str(tmp_path / n) for n in folders}))
    assert proc.returncode == 0, proc.stderr
    messages = json.loads(proc.stdout)
    assert sorted(messages) == sorted(folders)
    for name, message in messages.items():
        assert f"the {name} flavor needs " in message and "which is not installed: pip install " in message
        assert f'[{name}]"' in message, message  # 'pip install "modelreg[x]"', or the checkout's folder


def test_saving_without_the_framework_names_the_extra(tmp_path: Path) -> None:
    proc = run_python(
        """
        import sys
        sys.modules["skops"] = None
        from sklearn.linear_model import LinearRegression
        from modelreg.errors import MissingDependencyError
        from modelreg.flavors import save
        try:
            save(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), sys.argv[1])
        except MissingDependencyError as e:
            print(e)
        """,
        str(tmp_path / "m"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "the sklearn flavor needs skops, which is not installed: pip install" in proc.stdout
    assert '[sklearn]"' in proc.stdout
    assert not (tmp_path / "m").exists()


# --- predict -------------------------------------------------------------------------------


def test_predict_is_uniform_over_the_tabular_flavors(
    data: tuple[np.ndarray, np.ndarray], onnx_model: tuple[Any, LogisticRegression]
) -> None:
    X, y = data
    sk = LogisticRegression().fit(X, y)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), num_boost_round=2)
    np.testing.assert_array_equal(flavors.predict(sk, X), sk.predict(X))
    np.testing.assert_array_equal(flavors.predict(booster, X), booster.inplace_predict(X))
    proto, onnx_sk = onnx_model
    # a ModelProto runs in a session made for the call; a dict feeds inputs by name
    np.testing.assert_array_equal(flavors.predict(proto, X), onnx_sk.predict(X.astype(np.float32)))
    np.testing.assert_array_equal(flavors.predict(proto, {"X": X}), onnx_sk.predict(X.astype(np.float32)))
    with pytest.raises(InvalidInputError, match=r"no uniform predict for a numpy.ndarray"):
        flavors.predict(X, X)


# --- third-party flavors -------------------------------------------------------------------


class Greeting:
    """A model object no built-in flavor knows."""

    def __init__(self, text: str) -> None:
        self.text = text


class GreetingFlavor(Flavor):
    """A third-party flavor, as a package would declare it."""

    name = "greeting"
    extra = None
    formats = {"txt": False}  # noqa: RUF012 - as a subclass writes it

    def detect(self, obj: Any) -> bool:
        return isinstance(obj, Greeting)

    def save(self, obj: Any, folder: Path, **options: Any) -> Saved:
        (folder / "greeting.txt").write_text(obj.text)
        return Saved(format="txt", path="greeting.txt", options={"length": len(obj.text)})

    def load(self, folder: Path, info: ModelInfo, *, allow_unsafe: bool = False, **options: Any) -> Any:
        return Greeting((folder / info.path).read_text())


def test_a_flavor_from_an_entry_point(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    builtin = flavors.flavor_entry_points()
    extra = [
        metadata.EntryPoint("greeting", f"{__name__}:GreetingFlavor", flavors.ENTRY_POINT_GROUP),
        metadata.EntryPoint("broken", "no_such_package.flavor:Flavor", flavors.ENTRY_POINT_GROUP),
        metadata.EntryPoint("misnamed", f"{__name__}:GreetingFlavor", flavors.ENTRY_POINT_GROUP),
        # a package that claims a built-in name does not replace it
        metadata.EntryPoint("sklearn", f"{__name__}:GreetingFlavor", flavors.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(flavors, "flavor_entry_points", lambda: builtin + extra)
    flavors.refresh()
    try:
        assert "greeting" in flavors.available_flavors()
        assert type(flavors.get_flavor("sklearn")).__name__ == "SklearnFlavor"
        assert flavors.detect(Greeting("hi")) == "greeting"
        info = flavors.save(Greeting("hello"), tmp_path / "m")
        assert (info.flavor, info.format, info.object_class) == ("greeting", "txt", f"{__name__}.Greeting")
        assert flavors.load(tmp_path / "m").text == "hello"
        with pytest.raises(InvalidInputError, match=r"unknown flavor 'broken' \(its entry point .* failed to load"):
            flavors.get_flavor("broken")
        with pytest.raises(InvalidInputError, match=r"names a flavor called 'greeting'"):
            flavors.get_flavor("misnamed")
    finally:
        monkeypatch.undo()
        flavors.refresh()
    assert "greeting" not in flavors.available_flavors()


PLUGIN = """
from pathlib import Path
from modelreg.flavors import Flavor, Saved

class Vocabulary:
    def __init__(self, words):
        self.words = list(words)

class VocabularyFlavor(Flavor):
    name = "vocabulary"
    extra = None
    formats = {"lines": False}

    def detect(self, obj):
        return isinstance(obj, Vocabulary)

    def save(self, obj, folder, **options):
        (Path(folder) / "vocab.txt").write_text("\\n".join(obj.words))
        return Saved(format="lines", path="vocab.txt")

    def load(self, folder, info, *, allow_unsafe=False, **options):
        return Vocabulary((Path(folder) / info.path).read_text().split("\\n"))
"""


def test_a_flavor_from_an_installed_distribution(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "modelreg_vocabulary-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "modelreg_vocabulary.py").write_text(PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: modelreg-vocabulary\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelreg.flavors]\nvocabulary = modelreg_vocabulary:VocabularyFlavor\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = run_python(
        """
        import json, sys
        from modelreg import flavors
        from modelreg_vocabulary import Vocabulary
        info = flavors.save(Vocabulary(["a", "b"]), sys.argv[1])
        print(json.dumps({"flavors": flavors.available_flavors(), "info": info.model_dump(mode="json"),
                          "words": flavors.load(sys.argv[1]).words}))
        """,
        str(tmp_path / "m"),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "vocabulary" in result["flavors"]
    assert (result["info"]["flavor"], result["info"]["path"]) == ("vocabulary", "vocab.txt")
    assert result["words"] == ["a", "b"]
