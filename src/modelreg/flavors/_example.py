"""An input example written next to a saved model in a format that loads without running code:
``.npy`` / ``.npz`` (numpy, ``allow_pickle=False``) or JSON (data frames included)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, InvalidInputError

__all__ = ["read_example", "write_example"]

STEM = "input_example"


def _module(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


def _jsonable(value: Any) -> Any:
    """``json.dumps`` default: numpy arrays and scalars (and torch tensors) as lists and numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__qualname__} is not JSON data")


def _numpy_array(value: Any) -> Any:
    """``value`` as a numpy array when it is a numpy array or a torch tensor, else None."""
    module = _module(value)
    if module == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape"):
        return value
    if module == "torch" and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return None


def write_example(example: Any, folder: Path) -> str:
    """Write ``example`` into ``folder``; the file's name."""
    if _module(example) == "pandas" and hasattr(example, "to_json"):
        kind = "dataframe" if hasattr(example, "columns") else "series"
        payload = {
            "type": kind,
            "split": json.loads(example.to_json(orient="split", date_format="iso", double_precision=15)),
            "dtypes": {str(k): str(v) for k, v in example.dtypes.items()}
            if kind == "dataframe"
            else str(example.dtype),
        }
        name = f"{STEM}.json"
        (folder / name).write_text(json.dumps(payload), encoding="utf-8")
        return name
    array = _numpy_array(example)
    if array is not None and not array.dtype.hasobject:
        import numpy as np

        name = f"{STEM}.npy"
        np.save(folder / name, array, allow_pickle=False)
        return name
    if isinstance(example, Mapping) and example:
        arrays = {str(k): _numpy_array(v) for k, v in example.items()}
        if all(a is not None and not a.dtype.hasobject for a in arrays.values()):
            import numpy as np

            name = f"{STEM}.npz"
            with open(folder / name, "wb") as f:
                np.savez(f, **arrays)
            return name
    try:
        text = json.dumps({"type": "json", "data": example}, default=_jsonable)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(
            f"cannot store an input example of type {type(example).__qualname__} safely ({e}): pass a numpy "
            "array, a pandas DataFrame, a dict of arrays, or JSON data"
        ) from e
    name = f"{STEM}.json"
    (folder / name).write_text(text, encoding="utf-8")
    return name


def read_example(path: Path) -> Any:
    """The example written by :func:`write_example` at ``path`` (never unpickles)."""
    if path.suffix in (".npy", ".npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        kind = payload["type"]
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{path} is not an input example written by modelreg: {e}") from e
    if kind == "json":
        return payload.get("data")
    if kind in ("dataframe", "series"):
        import pandas as pd

        split = payload["split"]
        if kind == "series":
            series = pd.Series(split["data"], index=split.get("index"), name=split.get("name"))
            return series.astype(payload["dtypes"])
        frame = pd.DataFrame(split["data"], columns=split["columns"], index=split.get("index"))
        for column, dtype in payload.get("dtypes", {}).items():
            if column in frame.columns:
                try:
                    frame[column] = frame[column].astype(dtype)
                except (TypeError, ValueError):
                    pass  # a dtype JSON cannot carry back (e.g. a timezone): kept as read
        return frame
    raise IntegrityError(f"{path} holds an input example of unknown type {kind!r}")
