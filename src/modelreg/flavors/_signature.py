"""Signature inference from an input example (and an output). Duck-typed: numpy and pandas are
never imported here; an example that is one of their objects brings them along."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ..errors import InvalidInputError
from ..models import ColumnSpec, Signature

__all__ = ["describe", "infer_signature"]

Kind = Literal["tensor", "columns", "tensors"]


def infer_signature(example: Any, output: Any = None) -> Signature:
    """The signature of a model taking ``example`` (and returning ``output``, if given).

    - a numpy array (or a torch tensor, or nested lists of numbers): kind ``"tensor"``, its dtype
      and shape with None for the first (batch) dimension;
    - a pandas DataFrame (or Series, or a list of records): kind ``"columns"``, name and dtype of
      each column;
    - a dict: kind ``"columns"`` when every value is a 1-D array or flat list of one length (or
      every value a scalar), else ``"tensors"``, one tensor per key.

    >>> infer_signature({"age": [31, 45], "city": ["Oslo", "Rome"]}).inputs[1]
    ColumnSpec(name='city', dtype='str', shape=None)
    """
    kind, inputs = describe(example)
    outputs = describe(output)[1] if output is not None else []
    return Signature(kind=kind, inputs=inputs, outputs=outputs)


def describe(value: Any) -> tuple[Kind, list[ColumnSpec]]:
    """The layout (kind) and the specs of ``value``, as :func:`infer_signature` explains."""
    module = type(value).__module__.partition(".")[0]
    if module == "pandas" and hasattr(value, "dtypes") and hasattr(value, "columns"):
        return "columns", [ColumnSpec(name=str(c), dtype=_dtype(t)) for c, t in value.dtypes.items()]
    if module == "pandas" and hasattr(value, "dtype") and hasattr(value, "name"):
        name = None if value.name is None else str(value.name)
        return "columns", [ColumnSpec(name=name, dtype=_dtype(value.dtype))]
    if _is_array(value):
        return "tensor", [ColumnSpec(dtype=_dtype(value.dtype), shape=_batch(tuple(value.shape)))]
    if isinstance(value, Mapping):
        return _describe_mapping(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
        return _describe_records(value)
    if isinstance(value, (list, tuple)):
        shape, leaves = _nested(value)
        return "tensor", [ColumnSpec(dtype=_py_dtype(leaves), shape=_batch(shape))]
    raise InvalidInputError(
        f"cannot infer a signature from a {type(value).__module__}.{type(value).__qualname__}: pass a numpy "
        "array, a pandas DataFrame, a dict of arrays or lists, or give signature= yourself"
    )


def _is_array(value: Any) -> bool:
    """A numpy array, torch tensor or alike (not a numpy scalar, which has shape ())."""
    return hasattr(value, "dtype") and isinstance(getattr(value, "shape", None), (tuple, list)) and len(value.shape) > 0


def _dtype(dtype: Any) -> str:
    text = str(dtype)
    return text.removeprefix("torch.")


def _batch(shape: Sequence[int]) -> list[int | None]:
    return [None, *(int(d) for d in shape[1:])] if shape else []


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, bytes)) or (
        hasattr(value, "dtype") and tuple(getattr(value, "shape", (1,))) == ()
    )


def _py_dtype(values: Iterable[Any]) -> str:
    """A numpy-style dtype name for Python (or numpy scalar) values: ``int64``, ``float64``,
    ``bool``, ``str``, ``bytes``, or ``object`` for a mix."""
    names: set[str] = set()
    for v in values:
        if isinstance(v, bool):
            names.add("bool")
        elif isinstance(v, int):
            names.add("int64")
        elif isinstance(v, float):
            names.add("float64")
        elif isinstance(v, str):
            names.add("str")
        elif isinstance(v, bytes):
            names.add("bytes")
        elif hasattr(v, "dtype"):
            names.add(_dtype(v.dtype))
        else:
            names.add("object")
    if len(names) == 1:
        return names.pop()
    if names == {"int64", "float64"}:
        return "float64"
    return "object"


def _nested(value: Sequence[Any]) -> tuple[tuple[int, ...], list[Any]]:
    """The shape of regular nested lists (the first element's, inner lists of other lengths count
    as that length) and their leaves."""
    shape: list[int] = []
    probe: Any = value
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    leaves: list[Any] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            leaves.append(item)
    return tuple(shape), leaves


def _length_1d(value: Any) -> int | None:
    """The length of a 1-D array or a flat list, else None."""
    if _is_array(value):
        return int(value.shape[0]) if len(value.shape) == 1 else None
    if isinstance(value, (list, tuple)) and not any(isinstance(v, (list, tuple, Mapping)) for v in value):
        return len(value)
    return None


def _describe_mapping(value: Mapping[Any, Any]) -> tuple[Kind, list[ColumnSpec]]:
    if not value:
        raise InvalidInputError("cannot infer a signature from an empty dict: give signature= yourself")
    if all(_is_scalar(v) for v in value.values()):
        return "columns", [ColumnSpec(name=str(k), dtype=_py_dtype([v])) for k, v in value.items()]
    lengths = {_length_1d(v) for v in value.values()}
    if len(lengths) == 1 and None not in lengths:
        return "columns", [ColumnSpec(name=str(k), dtype=_column_dtype(v)) for k, v in value.items()]
    specs: list[ColumnSpec] = []
    for k, v in value.items():
        if _is_array(v):
            specs.append(ColumnSpec(name=str(k), dtype=_dtype(v.dtype), shape=_batch(tuple(v.shape))))
        elif isinstance(v, (list, tuple)):
            shape, leaves = _nested(v)
            specs.append(ColumnSpec(name=str(k), dtype=_py_dtype(leaves), shape=_batch(shape)))
        elif _is_scalar(v):
            specs.append(ColumnSpec(name=str(k), dtype=_py_dtype([v]), shape=[]))
        else:
            raise InvalidInputError(
                f"cannot infer a signature from the {type(v).__qualname__} under {k!r}: "
                "use arrays, lists or scalars, or give signature= yourself"
            )
    return "tensors", specs


def _column_dtype(value: Any) -> str:
    return _dtype(value.dtype) if _is_array(value) else _py_dtype(value)


def _describe_records(records: Sequence[Mapping[Any, Any]]) -> tuple[Kind, list[ColumnSpec]]:
    """A list of dicts (JSON records): one column per key, in first-seen order."""
    columns: dict[str, list[Any]] = {}
    for record in records:
        for k, v in record.items():
            columns.setdefault(str(k), []).append(v)
    return "columns", [ColumnSpec(name=k, dtype=_py_dtype(v)) for k, v in columns.items()]
