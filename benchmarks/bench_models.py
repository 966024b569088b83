"""save_model / load_model against the framework's own save and load plus register / fetch.

For a model of about 100 MB (``--mb``) in each of three flavors, on the embedded default registry
(SQLite + a local folder), measured interleaved in one process, medians of ``--rounds`` runs:

- **save**: ``reg.save_model(name, obj)`` against the baseline a user would write by hand: the
  framework's own save into a fresh folder (the same format the flavor writes) then
  ``reg.register(name, folder)``;
- **load**: ``reg.load_model(ref)`` against ``reg.fetch(ref)`` then the framework's own load of that
  path, both cold (the local snapshot and download cache emptied before each run, so both
  download and verify the blobs) and warm (the snapshot already on disk).

Target (issue: model objects): save_model and load_model add at most 10% to the baseline.

Flavors: ``sklearn`` (a KNeighborsClassifier holding ~100 MB of training data, skops),
``pytorch`` (an MLP with ~100 MB of float32 weights, safetensors + factory) and ``safetensors``
(a dict of numpy arrays).

    python benchmarks/bench_models.py                # 100 MB, 5 rounds
    python benchmarks/bench_models.py --mb 10 --rounds 3 --only sklearn
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import Report, fmt_time, machine_summary

TARGET_RATIO = 1.10


def make_net(hidden: int = 1024, layers: int = 4) -> Any:
    import torch

    mods: list[Any] = []
    for _ in range(layers):
        mods += [torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
    return torch.nn.Sequential(*mods)


def _sklearn(mb: int) -> tuple[Any, Callable[[Any, Path], None], Callable[[Path], Any], dict[str, Any]]:
    import numpy as np
    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier

    rows = mb * 1024 * 1024 // (16 * 8)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 16))
    model = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, (X[:, 0] > 0).astype(int))

    def save(obj: Any, folder: Path) -> None:
        sio.dump(obj, folder / "model.skops")

    def load(path: Path) -> Any:
        file = path / "model.skops"
        return sio.load(file, trusted=sio.get_untrusted_types(file=file))

    return model, save, load, {}


def _pytorch(mb: int) -> tuple[Any, Callable[[Any, Path], None], Callable[[Path], Any], dict[str, Any]]:
    from safetensors.torch import load_file, save_file

    hidden = 1024
    layers = max(1, round(mb * 1024 * 1024 / (4 * (hidden * hidden + hidden))))
    model = make_net(hidden, layers)

    def save(obj: Any, folder: Path) -> None:
        save_file(obj.state_dict(), str(folder / "model.safetensors"))

    def load(path: Path) -> Any:
        net = make_net(hidden, layers)
        net.load_state_dict(load_file(str(path / "model.safetensors")))
        return net

    options = {"factory": f"{__name__}:make_net", "factory_kwargs": {"hidden": hidden, "layers": layers}}
    return model, save, load, options


def _safetensors(mb: int) -> tuple[Any, Callable[[Any, Path], None], Callable[[Path], Any], dict[str, Any]]:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    n = mb * 1024 * 1024 // 4 // 4
    rng = np.random.default_rng(0)
    arrays = {f"layer{i}": rng.normal(size=n).astype(np.float32) for i in range(4)}

    def save(obj: Any, folder: Path) -> None:
        save_file(obj, str(folder / "model.safetensors"))

    def load(path: Path) -> Any:
        return load_file(str(path / "model.safetensors"))

    return arrays, save, load, {}


FLAVORS = {"sklearn": _sklearn, "pytorch": _pytorch, "safetensors": _safetensors}


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run_flavor(reg: Any, work: Path, flavor: str, mb: int, rounds: int) -> tuple[dict[str, list[float]], int]:
    """Samples of every measurement for one flavor, each pair interleaved (order alternating)."""
    model, fw_save, fw_load, options = FLAVORS[flavor](mb)
    load_options = {"factory": make_net} if flavor == "pytorch" else {}
    samples: dict[str, list[float]] = {k: [] for k in ("save", "save_base", "load", "load_base", "warm", "warm_base")}
    size = 0

    def by_hand() -> Any:
        # what a user writes without save_model: a temporary folder, the framework's save, register
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            fw_save(model, folder)
            return reg.register(f"{flavor}-hand", folder, capture=None)

    def ours() -> Any:
        return reg.save_model(f"{flavor}-saved", model, options=options, capture=None)

    for i in range(rounds):
        order = 1 if i % 2 else -1
        for key, fn in (("save_base", by_hand), ("save", ours))[::order]:
            elapsed, mv = _timed(fn)
            samples[key].append(elapsed)
            size = mv.size
        ref = f"{flavor}-saved/{i + 1}"

        def base_load(ref: str = ref) -> Any:
            return fw_load(reg.fetch(ref))

        def our_load(ref: str = ref) -> Any:
            return reg.load_model(ref, **load_options)

        for key, fn in (("load_base", base_load), ("load", our_load))[::order]:
            _clear(work / "cache")  # cold: download and verify again
            os.sync()  # start each cold run with no dirty pages of the previous one being written back
            samples[key].append(_timed(fn)[0])
        reg.fetch(ref)  # warm: the snapshot is on disk
        for key, fn in (("warm_base", base_load), ("warm", our_load))[::order]:
            samples[key].append(_timed(fn)[0])
        _clear(work / "cache")
    return samples, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=100, help="model size in MB (default 100)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(FLAVORS), help="flavors to run, comma-separated")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    from modelreg import Registry

    print(machine_summary())
    report = Report(f"save_model / load_model, {args.mb} MB models")
    work = Path(tempfile.mkdtemp(prefix="modelreg-bench-models-"))
    try:
        reg = Registry(work / "reg", cache=work / "cache")
        for flavor in args.only.split(","):
            samples, size = run_flavor(reg, work, flavor, args.mb, args.rounds)
            print(f"\n{flavor}: {size / 1e6:.1f} MB artifact, {args.rounds} rounds")
            for ours_key, base_key, label in (
                ("save", "save_base", "save_model vs framework save + register"),
                ("load", "load_base", "load_model vs fetch + framework load (cold)"),
                ("warm", "warm_base", "load_model vs fetch + framework load (warm snapshot)"),
            ):
                ours_t, base_t = _median(samples[ours_key]), _median(samples[base_key])
                report.add(
                    f"{flavor} {label}",
                    ours_t / base_t,
                    target=TARGET_RATIO,
                    fmt=lambda r: f"{r:.3f}x",
                    baseline=fmt_time(base_t),
                    note=f"{fmt_time(ours_t)} vs {fmt_time(base_t)}",
                )
        reg.close()
    finally:
        _clear(work)
    return report.finish(markdown=args.markdown, check=args.check)


def _clear(path: Path) -> None:
    """Remove a folder that holds read-only snapshot folders."""
    if path.exists():
        for p in path.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
