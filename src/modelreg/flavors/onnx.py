"""ONNX models: an ``onnx.ModelProto``, the bytes of one, or the path of a ``.onnx`` file, written
as one self-contained ``model.onnx`` (a model with external data files is refused: its weights
could be read from anywhere). Loading returns an ``onnxruntime.InferenceSession`` (or, with
``proto=True``, the ``onnx.ModelProto``); an ONNX graph is data, no code from the artifact runs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import IntegrityError, InvalidInputError
from ..models import ColumnSpec, ModelInfo
from .base import Flavor, Saved, base_classes, library_versions, top_modules

__all__ = ["OnnxFlavor"]

_FILE = "model.onnx"
_SESSION = "onnxruntime.capi.onnxruntime_inference_collection.InferenceSession"
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}
"""onnxruntime's type names -> numpy dtype names."""


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of ``graph`` and of its subgraphs (initializers and attributes)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


class OnnxFlavor(Flavor):
    """ONNX models, run with onnxruntime."""

    name = "onnx"
    extra = "onnx"
    formats: ClassVar[dict[str, bool]] = {"onnx": False}
    priority = 20

    def detect(self, obj: Any) -> bool:
        if isinstance(obj, (str, os.PathLike)):
            return os.fspath(obj).endswith(".onnx") and os.path.isfile(obj)
        return "onnx" in top_modules(obj) and type(obj).__name__ == "ModelProto"

    def _proto(self, obj: Any) -> Any:
        """``obj`` (a ModelProto, bytes or a path) as a ModelProto, refused if it has external data."""
        onnx = self.require("onnx")
        if isinstance(obj, (str, os.PathLike)):
            obj = Path(obj).read_bytes()
        if isinstance(obj, (bytes, bytearray, memoryview)):
            try:
                obj = onnx.load_model_from_string(bytes(obj))
            except Exception as e:  # protobuf's DecodeError and friends
                raise InvalidInputError(f"not an ONNX model: {e}") from e
        if not isinstance(obj, onnx.ModelProto):
            raise InvalidInputError(
                f"the onnx flavor saves an onnx.ModelProto, its bytes or a .onnx path, not a {type(obj).__qualname__}"
            )
        return obj

    def _external(self, proto: Any) -> list[str]:
        """The names of the tensors of ``proto`` stored in external files."""
        onnx = self.require("onnx")
        found = [t.name for t in _tensors(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
        for function in proto.functions:
            for node in function.node:
                for attribute in node.attribute:
                    if attribute.HasField("t") and attribute.t.data_location == onnx.TensorProto.EXTERNAL:
                        found.append(attribute.t.name)
        return found

    def save(self, obj: Any, folder: Path, **options: Any) -> Saved:
        """Write ``model.onnx``."""
        self.reject_options(options, "save")
        proto = self._proto(obj)
        external = self._external(proto)
        if external:
            raise InvalidInputError(
                f"the ONNX model keeps tensors in external files ({', '.join(external[:5])}): load it with its "
                "external data and save the ModelProto (a model file of up to 2 GB), or save its folder with "
                "flavor='files'"
            )
        (folder / _FILE).write_bytes(proto.SerializeToString())
        return Saved(
            format="onnx",
            path=_FILE,
            libraries=library_versions("onnx", "onnxruntime"),
            object_class="onnx.ModelProto",
        )

    def load(
        self,
        folder: Path,
        info: ModelInfo,
        *,
        allow_unsafe: bool = False,
        proto: bool = False,
        providers: Sequence[Any] | None = None,
        sess_options: Any = None,
        **options: Any,
    ) -> Any:
        """An ``onnxruntime.InferenceSession`` on the CPU (or ``providers``, ``sess_options``),
        or the ``onnx.ModelProto`` with ``proto=True``."""
        self.reject_options(options, "load")
        onnx = self.require("onnx")
        path = folder / info.path
        model = onnx.load_model(str(path), load_external_data=False)
        external = self._external(model)
        if external:
            raise IntegrityError(
                f"{path} refers to external data files ({', '.join(external[:5])}), which modelreg never writes: "
                "the model was tampered with"
            )
        if proto:
            return model
        ort = self.require("onnxruntime")
        return ort.InferenceSession(
            str(path), sess_options=sess_options, providers=list(providers or ["CPUExecutionProvider"])
        )

    def _session(self, model: Any) -> Any:
        if _SESSION in base_classes(model):
            return model
        proto = self._proto(model)
        ort = self.require("onnxruntime")
        return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    def predicts(self, model: Any) -> bool:
        return _SESSION in base_classes(model) or self.detect(model)

    def predict(self, model: Any, data: Any) -> Any:
        """The first output of the session for ``data`` (an array or a DataFrame for the first
        input, or a dict of input name -> array); arrays are cast to the input's element type."""
        session = self._session(model)
        return self._run(session, data)[0]

    def _run(self, session: Any, data: Any) -> list[Any]:
        inputs = session.get_inputs()
        if isinstance(data, Mapping):
            types = {i.name: i.type for i in inputs}
            feeds = {k: self._cast(v, types.get(k)) for k, v in data.items()}
        else:
            if hasattr(data, "to_numpy"):
                data = data.to_numpy()
            feeds = {inputs[0].name: self._cast(data, inputs[0].type)}
        return list(session.run(None, feeds))

    def _cast(self, value: Any, onnx_type: str | None) -> Any:
        np = self.require("numpy")
        array = np.asarray(value)
        dtype = _DTYPES.get(onnx_type or "")
        if dtype is not None and dtype != "str" and array.dtype != np.dtype(dtype):
            array = array.astype(dtype)
        return array

    def infer_outputs(self, model: Any, example: Any) -> list[ColumnSpec]:
        """The graph's declared outputs: name, type and shape (None for a symbolic dimension)."""
        session = self._session(model)
        specs: list[ColumnSpec] = []
        for output in session.get_outputs():
            shape = output.shape if isinstance(output.shape, list) else None
            specs.append(
                ColumnSpec(
                    name=output.name,
                    dtype=_DTYPES.get(output.type, output.type),
                    shape=None if shape is None else [d if isinstance(d, int) else None for d in shape],
                )
            )
        return specs
