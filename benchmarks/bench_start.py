"""Start-up of the embedded registry ("instant start"): fresh processes on a small local registry.

Medians of interleaved runs (20 by default), each in a new child process, bytecode cached as after
``pip install`` (``PYTHONPYCACHEPREFIX`` in a temporary folder):

1. ``python -c pass``: the bare interpreter, for reference.
2. ``python -c "from modelreg import Registry"``: wall time of the whole child.
3. ``Registry(folder)`` plus one ``get_version`` on an existing SQLite registry, timed inside the
   child with ``time.perf_counter`` after ``from modelreg import Registry`` has returned (target
   <= 20 ms); the child also reports ``Registry()`` and ``get_version`` apart.
4. ``python -m modelreg --registry <folder> list`` on the same registry, wall time of the whole
   process (target <= 150 ms).
5. Which heavy modules are in ``sys.modules`` after 3. and after ``modelreg list`` (asyncio, fsspec
   and its async machinery, cloud SDKs, web and data-frame libraries, sqlite-utils; target: none),
   and, from one ``-X importtime`` run, the modules that cost most after the import of 3.
6. A breakdown of 3. in another child (informational): pydantic's plugin discovery (it reads the
   entry points of every installed distribution when the process builds its first validator), then
   the import of each module the open path loads, then ``Registry()`` + ``get_version`` with all of
   them loaded.

It prints PASS/FAIL per target and exits 0, unless ``--check`` is given (then 1 if a target fails).

    python benchmarks/bench_start.py                  # 20 interleaved runs
    python benchmarks/bench_start.py --quick          # 7 runs
    python benchmarks/bench_start.py --src /tmp/old/src --runs 30   # another source tree, e.g. a
                                                                    # previous commit (git archive)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import FIND_HEAVY, ROOT, Report, Stats, fmt_time, machine_summary, run_child, src_env

MS = 1e-3
TARGETS = {"open_get": 20 * MS, "list": 150 * MS}


_OPEN_GET = (
    FIND_HEAVY
    + """
import json, sys, time
from modelreg import Registry
t0 = time.perf_counter()
reg = Registry(sys.argv[1])
t1 = time.perf_counter()
mv = reg.get_version("model-0", 1)
t2 = time.perf_counter()
assert mv.version == 1
print(json.dumps({"open_get": t2 - t0, "open": t1 - t0, "get": t2 - t1, "heavy": heavy(sys.modules)}))
"""
)

BREAKDOWN_MODULES = (
    "modelreg.governance.engine",
    "modelreg.cache",
    "modelreg.uri",
    "modelreg.stores.artifacts",
    "modelreg.stores.sqlite",
)

_BREAKDOWN = f"""
import importlib, json, sys, time
from modelreg import Registry
T = time.perf_counter
parts = {{}}
t = T()
try:
    from pydantic.plugin._loader import get_plugins
    list(get_plugins())
    parts["pydantic plugin discovery"] = T() - t
except ImportError:
    pass
for name in {BREAKDOWN_MODULES!r}:
    t = T()
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    parts["import " + name] = T() - t
t = T()
Registry(sys.argv[1]).get_version("model-0", 1)
parts["Registry() + get_version, those loaded"] = T() - t
print(json.dumps(parts))
"""

_CLI_MODULES = (
    FIND_HEAVY
    + """
import contextlib, io, json, sys
from modelreg.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(["--registry", sys.argv[1], "list"])
print(json.dumps({"rc": rc, "heavy": heavy(sys.modules)}))
"""
)

_SETUP = """
import os, sys
from modelreg import Registry
folder, work = sys.argv[1], sys.argv[2]
reg = Registry(folder)
for m in range(5):
    for v in range(3):
        path = os.path.join(work, f"m{m}-{v}.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(1024))
        reg.register(f"model-{m}", path, metrics={"auc": 0.8 + v / 100}, tags={"team": "fraud"}, capture=None,
                     actor="bench")
reg.transition("model-0", 3, "production", actor="bench")
reg.close()
"""


def import_costs(py: str, env: dict[str, str], folder: Path, top: int) -> list[tuple[str, float]]:
    """The modules imported after ``from modelreg import Registry`` by opening the registry and one
    get_version, with their cumulative ``-X importtime`` (top-level imports of that step only)."""
    code = (
        "import sys\nfrom modelreg import Registry\nprint('--mark--', file=sys.stderr, flush=True)\n"
        "Registry(sys.argv[1]).get_version('model-0', 1)\n"
    )
    r = run_child([py, "-X", "importtime", "-c", code, str(folder)], env=env)
    after = r.stderr.split("--mark--", 1)[-1]
    out = []
    for line in after.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith(" ") and not name.startswith("  "):  # one space: imported by the step itself
            with contextlib.suppress(ValueError):
                out.append((name.strip(), int(cumulative) * 1e-6))
    return sorted(out, key=lambda x: -x[1])[:top]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--runs", type=int, default=None, help="child processes per measurement (default 20, 7 with --quick)"
    )
    ap.add_argument("--quick", action="store_true", help="fewer runs")
    ap.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    ap.add_argument("--markdown", action="store_true", help="also print the results as a Markdown table")
    ap.add_argument("--tmpdir", default=None, help="where to put the registry and the bytecode cache")
    ap.add_argument("--src", default=None, help="the modelreg source folder to measure (default: this checkout's src/)")
    args, unknown = ap.parse_known_args(argv)
    if unknown:  # `nox -s bench -- ...` passes the same options to every script
        print(f"(ignoring options for other scripts: {' '.join(unknown)})", file=sys.stderr)
    runs = args.runs or (7 if args.quick else 20)

    print(f"modelreg start-up benchmark, {_dt.date.today().isoformat()}: {machine_summary()}")
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-bench-start-", dir=args.tmpdir))
    env = src_env(
        {
            "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
            "MODELREG_CACHE_DIR": str(workdir / "cache"),
            "MODELREG_ACTOR": "bench",
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("MODELREG_URI", None)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.src).resolve()), *env["PYTHONPATH"].split(os.pathsep)[1:]])
    py = sys.executable
    report = Report("start")
    try:
        folder = workdir / "registry"
        run_child([py, "-c", _SETUP, str(folder), str(workdir)], env=env)
        cmds = {
            "pass": [py, "-c", "pass"],
            "import": [py, "-c", "from modelreg import Registry"],
            "open_get": [py, "-c", _OPEN_GET, str(folder)],
            "list": [py, "-m", "modelreg", "--registry", str(folder), "list"],
            "breakdown": [py, "-c", _BREAKDOWN, str(folder)],
        }
        print(
            f"\n[start] {runs} interleaved runs of each, a registry of 5 models x 3 versions "
            f"(src: {args.src or ROOT / 'src'})",
            flush=True,
        )
        for cmd in cmds.values():  # warm the bytecode cache and the page cache
            run_child(cmd, env=env)
        walls: dict[str, list[float]] = {k: [] for k in cmds}
        inner: dict[str, list[float]] = {"open_get": [], "open": [], "get": []}
        heavy_open: set[str] = set()
        parts: dict[str, list[float]] = {}
        for _ in range(runs):
            for key, cmd in cmds.items():
                r = run_child(cmd, env=env)
                walls[key].append(r.wall)
                if key == "breakdown":
                    for k, v in json.loads(r.stdout).items():
                        parts.setdefault(k, []).append(v)
                elif key == "open_get":
                    got = json.loads(r.stdout)
                    for k, samples in inner.items():
                        samples.append(got[k])
                    heavy_open.update(got["heavy"])
        cli = json.loads(run_child([py, "-c", _CLI_MODULES, str(folder)], env=env).stdout)

        bare = Stats.of(walls["pass"]).median
        report.add("python -c pass", bare)
        imp = Stats.of(walls["import"]).median
        report.add(
            'python -c "from modelreg import Registry"',
            imp,
            baseline=f"+{fmt_time(imp - bare)} over pass",
            note=f"(p90 {fmt_time(Stats.of(walls['import']).p(0.9))})",
        )
        og = Stats.of(inner["open_get"])
        report.add(
            "Registry(folder) + get_version, after the import (in the child)",
            og.median,
            target=TARGETS["open_get"],
            note=f"(Registry() {fmt_time(Stats.of(inner['open']).median)}, get_version "
            f"{fmt_time(Stats.of(inner['get']).median)}; p90 {fmt_time(og.p(0.9))}; whole child "
            f"{fmt_time(Stats.of(walls['open_get']).median)})",
        )
        ls = Stats.of(walls["list"])
        report.add(
            "python -m modelreg --registry <folder> list (whole process)",
            ls.median,
            target=TARGETS["list"],
            baseline=f"+{fmt_time(ls.median - bare)} over pass",
            note=f"(p90 {fmt_time(ls.p(0.9))})",
        )

        def names(found: list[str] | set[str]) -> str:
            return ", ".join(sorted(found)) or "none"

        def count(n: float) -> str:
            return "none" if n == 0 else f"{n:.0f} module(s)"

        report.add(
            "heavy modules after Registry() + get_version",
            float(len(heavy_open)),
            target=0,
            fmt=count,
            note=f"({names(heavy_open)})" if heavy_open else "",
        )
        report.add(
            "heavy modules after `modelreg list`",
            float(len(cli["heavy"])),
            target=0,
            fmt=count,
            note=f"({names(cli['heavy'])})" if cli["heavy"] else "",
        )

        for what, samples in parts.items():
            report.add(f"breakdown: {what}", Stats.of(samples).median)

        print(
            "\n  slowest imports of Registry() + get_version (one -X importtime run, cumulative; "
            "importtime inflates them):"
        )
        for name, seconds in import_costs(py, env, folder, top=10):
            print(f"    {fmt_time(seconds):>9}  {name}")
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)

    return report.finish(markdown=args.markdown, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
