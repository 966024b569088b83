"""modelreg against MLflow's Model Registry: the same workload on both, alternating, at 1,000 versions.

MLflow is not a dependency of modelreg: the script makes its own virtual environment
(``<cache>/bench-mlflow-venv``, ``python -m venv`` + ``pip install mlflow``) and runs the MLflow
side in child processes of that environment, and the modelreg side in child processes of this
interpreter, the same way. Each child is ``_vs_mlflow_worker.py``: it opens one client, then takes
commands on its standard input and reports the time of every single call as JSON, measured inside
the process (no process start, no pipe).

MLflow uses a SQLite database (tracking and registry URI ``sqlite:///<tmp>/mlflow.db``), modelreg its
default local registry (SQLite metadata + blobs in a folder). Both get one model with ``--versions``
versions (each tagged ``team``, one in ten ``fraud``, and an alias), populated once through each
system's public API and timed apart; every round then works on a fresh copy of that populated
registry, so every round starts from the same state. Per round:

- **open**: a new process imports the library, constructs the client and reads version 1
  (``--opens`` extra processes per system, plus the one that runs the operations);
- **get_version** by number (random versions), **get by alias** (``get_model_version_by_alias`` /
  ``get_version("name@alias")``), **tag search** ``tags.team = 'fraud'`` (both must return the same
  number of versions, all of them), **set alias** (``set_registered_model_alias`` / ``set_alias``),
  **transition** (``transition_model_version_stage`` with ``archive_existing_versions`` for
  production / ``transition``; each version to staging, then to production, alternating), and
  **register** a new 1 KiB file (``create_model_version`` with the file as its source /
  ``register(name, file, capture=None)``), in that order.

The two systems alternate: within a round each operation runs on one system and then on the other,
and who goes first changes from one operation and one round to the next. The first call of each
operation in a worker is a warm-up and is not counted. Medians are over all the counted calls of all
rounds.

Goal: modelreg at least 3x faster on every operation, and 15x at the median of the speed-ups. The
script prints PASS/FAIL against it and exits 0 (``--check``: 1 if the goal is missed); it exits 2 if
the MLflow environment cannot be made.

    python benchmarks/bench_vs_mlflow.py                    # 1,000 versions, 5 rounds
    python benchmarks/bench_vs_mlflow.py --quick --keep     # fewer calls, 3 rounds; keep the venv
    python benchmarks/bench_vs_mlflow.py --only modelreg    # modelreg's side alone, no MLflow
    python benchmarks/bench_vs_mlflow.py --durability full  # modelreg's SQLite syncing every commit, as MLflow's
    python benchmarks/bench_vs_mlflow.py --modelreg-src /tmp/head/src   # another tree's modelreg (git archive)

``tests/test_bench_scripts.py`` runs the modelreg half at 20 versions (and the MLflow half too when
``MODELREG_BENCH_MLFLOW_PYTHON`` names a Python with MLflow).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _vs_mlflow_worker as W  # noqa: E402 - found through the path set just above
from _util import (  # noqa: E402
    ROOT,
    OtherLibrary,
    SetupError,
    bench_venv,
    ensure_venv,
    fmt_time,
    machine_summary,
    probe_version,
    src_env,
)

WORKER = HERE / "_vs_mlflow_worker.py"
SYSTEMS = ("mlflow", "modelreg")
OPERATIONS = ("open", "get_version", "get_alias", "search", "set_alias", "transition", "register")
LABELS = {
    "open": "client open (new process: import + client + first read)",
    "get_version": "get_version by number",
    "get_alias": "get by alias",
    "search": "tag search (all matches)",
    "set_alias": "set alias",
    "transition": "transition (staging / production alternating)",
    "register": "register a 1 KiB file",
}
GOAL_EACH = 3.0
GOAL_MEDIAN = 15.0


# -- the MLflow environment -------------------------------------------------------------------------


def default_venv() -> Path:
    return bench_venv("bench-mlflow-venv")


def mlflow_env() -> dict[str, str]:
    """The environment of the MLflow children: no modelreg on the path, no telemetry."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    return env


def mlflow_library(spec: str = "mlflow") -> OtherLibrary:
    """MLflow as installed from the pip requirement ``spec``; its SQLite registry needs SQLAlchemy."""
    return OtherLibrary(
        label="MLflow",
        packages=(spec,),
        probe="import mlflow, sqlalchemy; print(mlflow.__version__)",
        env=mlflow_env,
        hint="; MLflow's SQLite registry needs the full 'mlflow' package (mlflow-skinny lacks SQLAlchemy)",
    )


def probe_mlflow(python: Path) -> str | None:
    """MLflow's version in that interpreter, or None when it does not import (with SQLAlchemy)."""
    return probe_version(python, mlflow_library())


# -- workers ----------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Worker:
    """One ``_vs_mlflow_worker.py`` child: opens its client (timed inside), then runs commands."""

    modelreg_durability: str = "normal"
    """modelreg's SQLite ``durability`` in the children (``--durability``)."""
    modelreg_src: Path | None = None
    """Where the modelreg children import modelreg from (first on their PYTHONPATH); None: this checkout's src/."""

    def __init__(
        self, system: str, python: str | os.PathLike[str], location: Path, log: Path, *, fresh: bool = False
    ) -> None:
        self.system = system
        self.log_path = log
        env = mlflow_env() if system == "mlflow" else self.modelreg_env()
        env["BENCH_SCRATCH"] = str(location.parent / f"scratch-{system}")
        argv = [str(python), str(WORKER), system, str(location)] + (["--fresh"] if fresh else [])
        if system == "modelreg" and self.modelreg_durability != "normal":
            argv += ["--durability", self.modelreg_durability]
        self.log = open(log, "ab")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True, bufsize=1
        )
        hello = self._read()
        self.open_time: float = hello["open"]
        self.version: str = hello["version"]
        self.python: str = hello["python"]
        self.where: str = hello.get("where", "?")

    @classmethod
    def modelreg_env(cls) -> dict[str, str]:
        env = src_env()
        if cls.modelreg_src is not None:
            env["PYTHONPATH"] = str(cls.modelreg_src) + os.pathsep + env["PYTHONPATH"]
        return env

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise WorkerError(f"the {self.system} worker exited ({self.proc.returncode}):\n{self.tail()}")
        msg = json.loads(line)
        if not msg.get("ok"):
            raise WorkerError(f"the {self.system} worker failed: {msg.get('error')}\n{self.tail()}")
        return msg

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def run(self, op: str, **args: Any) -> tuple[list[float], dict[str, Any]]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"the {self.system} worker is gone:\n{self.tail()}") from None
        msg = self._read()
        return msg["samples"], msg["info"]

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the workload ---------------------------------------------------------------------------------------


def counts(args: argparse.Namespace) -> dict[str, int]:
    """Counted calls per operation, per worker and round (each op has one more call, the warm-up)."""
    if args.quick:
        return {"get_version": 50, "get_alias": 50, "search": 4, "set_alias": 10, "transition": 5, "register": 10}
    return {"get_version": 200, "get_alias": 200, "search": 10, "set_alias": 30, "transition": 15, "register": 30}


def location(system: str, folder: Path) -> Path:
    return folder / ("mlflow.db" if system == "mlflow" else "registry")


def populate(system: str, python: str, folder: Path, versions: int) -> tuple[float, str, str, str]:
    """Fill a new registry of ``system`` in ``folder``; return (seconds, library version, its Python, the
    folder the library came from)."""
    folder.mkdir(parents=True, exist_ok=True)
    with Worker(system, python, location(system, folder), folder / f"{system}-populate.log", fresh=True) as w:
        samples, _ = w.run("populate", versions=versions)
        return samples[0], w.version, w.python, w.where


def copy_registry(system: str, src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    a, b = location(system, src), location(system, dst)
    if a.is_dir():
        shutil.copytree(a, b)
    else:
        shutil.copy2(a, b)
    return b


def plan_round(rng: random.Random, versions: int, n: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The arguments of each operation for one round (the same for both systems)."""
    tr = rng.sample(range(2, versions + 1), n["transition"] + 1)  # distinct, still experimental
    al: list[int] = []
    while len(al) < n["set_alias"] + 1:  # each call moves the alias
        v = rng.randint(1, versions)
        if not al or v != al[-1]:
            al.append(v)
    return {
        "get_version": {"versions": [rng.randint(1, versions) for _ in range(n["get_version"] + 1)], "skip": 1},
        "get_alias": {"count": n["get_alias"] + 1, "skip": 1},
        "search": {"count": n["search"] + 1, "skip": 1},
        "set_alias": {"versions": al, "skip": 1},
        "transition": {"versions": tr, "skip": 1},
        "register": {"count": n["register"] + 1, "skip": 1},
    }


def run_rounds(
    systems: Sequence[str], pythons: dict[str, str], snapshots: dict[str, Path], workdir: Path, args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """The interleaved rounds; returns samples[system][operation] in seconds."""
    n = counts(args)
    rng = random.Random(args.seed)
    samples: dict[str, dict[str, list[float]]] = {s: {op: [] for op in OPERATIONS} for s in systems}
    hits: dict[str, int] = {}
    for r in range(args.rounds):
        order = list(systems) if r % 2 == 0 else list(reversed(systems))
        rdir = workdir / f"round-{r}"
        locs = {s: copy_registry(s, snapshots[s], rdir / s) for s in systems}
        t0 = time.perf_counter()
        for k in range(args.opens):
            for s in order if k % 2 == 0 else order[::-1]:
                with Worker(s, pythons[s], locs[s], rdir / f"{s}.log") as w:
                    samples[s]["open"].append(w.open_time)
        plan = plan_round(rng, args.versions, n)
        workers: dict[str, Worker] = {}
        try:
            for s in order:
                workers[s] = Worker(s, pythons[s], locs[s], rdir / f"{s}.log")
                samples[s]["open"].append(workers[s].open_time)
            for i, op in enumerate(OPERATIONS[1:]):
                for s in order if i % 2 == 0 else order[::-1]:
                    got, info = workers[s].run(op, **plan[op])
                    samples[s][op].extend(got)
                    if op == "search":
                        hits[s] = info["hits"]
        finally:
            for w in workers.values():
                w.close()
        if len(set(hits.values())) > 1:
            raise SystemExit(f"the tag searches returned different numbers of versions: {hits}")
        expected = W.expected_hits(args.versions)
        if any(h != expected for h in hits.values()):
            raise SystemExit(f"the tag search returned {hits}, expected {expected} versions")
        line = ", ".join(
            f"{s} {fmt_time(statistics.median(samples[s]['get_version'][-n['get_version'] :]))}" for s in systems
        )
        print(
            f"  round {r + 1}/{args.rounds} ({order[0]} first) "
            f"in {time.perf_counter() - t0:.1f} s; get_version {line}; search hits {hits}",
            flush=True,
        )
        shutil.rmtree(rdir, ignore_errors=True)
    return samples


# -- the report -------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    v = seconds * 1e3
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def summarize(samples: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    rows = []
    for op in OPERATIONS:
        row: dict[str, Any] = {"op": op, "label": LABELS[op]}
        for s, per in samples.items():
            row[s] = statistics.median(per[op])
            row[f"{s}_n"] = len(per[op])
        if "mlflow" in row and "modelreg" in row:
            row["speedup"] = row["mlflow"] / row["modelreg"]
            row["ok"] = row["speedup"] >= GOAL_EACH
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    both = "speedup" in rows[0]
    head = ["operation"] + (["MLflow ms (median)"] if "mlflow" in rows[0] else []) + ["modelreg ms (median)"]
    if both:
        head += ["speed-up", f">= {GOAL_EACH:g}x"]
    lines = [head]
    for r in rows:
        cells = [r["label"]] + ([ms(r["mlflow"])] if "mlflow" in r else []) + [ms(r["modelreg"])]
        if both:
            cells += [f"{r['speedup']:.1f}x", "PASS" if r["ok"] else "FAIL"]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c) + " |" for c in lines[1:]]
        return "\n".join(out)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        out.append(
            "  ".join(
                c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(line, widths, strict=False))
            ).rstrip()
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        if proc.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "src"],
                check=False,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
            return proc.stdout.strip() + (" (src/ has uncommitted changes)" if dirty else "")
    return "unknown"


# -- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=1000, help="versions of the one model (default 1000)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, 3 with --quick)")
    ap.add_argument(
        "--opens",
        type=int,
        default=None,
        help="extra open-only processes per system and round (default 2, 1 with --quick)",
    )
    ap.add_argument("--quick", action="store_true", help="fewer calls per operation and fewer rounds")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="reuse the MLflow virtual environment if it works, and keep it afterwards "
        "(without it, the environment is made anew and removed at the end)",
    )
    ap.add_argument(
        "--venv", type=Path, default=None, help=f"where the MLflow environment goes (default {default_venv()})"
    )
    ap.add_argument("--mlflow", default="mlflow", help="the pip requirement to install (default 'mlflow')")
    ap.add_argument(
        "--mlflow-python", default=None, help="an existing Python with MLflow to use instead of making an environment"
    )
    ap.add_argument(
        "--only",
        choices=SYSTEMS,
        default=None,
        help="time one system alone (no comparison, no goal); --only modelreg needs no MLflow",
    )
    ap.add_argument(
        "--modelreg-src",
        type=Path,
        default=None,
        help="time the modelreg package found in this folder (e.g. an export of another commit's "
        "src/) instead of this checkout's src/",
    )
    ap.add_argument(
        "--durability",
        choices=("normal", "full"),
        default="normal",
        help="modelreg's SQLite durability: normal (its default: WAL, synchronous=NORMAL) or full "
        "(synchronous=FULL, a sync at every commit, as MLflow's SQLite database does)",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of the version numbers each operation uses")
    ap.add_argument("--tmpdir", default=None, help="where the registries go")
    ap.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    args = ap.parse_args(argv)
    if args.versions < counts(args)["transition"] + 2:
        ap.error(
            "--versions is too small for the transitions of a round (each moves a new version); "
            "try --quick or more versions"
        )
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.opens = args.opens if args.opens is not None else (1 if args.quick else 2)
    systems = (args.only,) if args.only else SYSTEMS
    if args.modelreg_src is not None:
        if not (args.modelreg_src / "modelreg" / "__init__.py").is_file():
            ap.error(f"--modelreg-src {args.modelreg_src}: no modelreg package in that folder")
        Worker.modelreg_src = args.modelreg_src.resolve()

    Worker.modelreg_durability = args.durability
    tree = f"modelreg from {Worker.modelreg_src}" if Worker.modelreg_src else f"commit {git_commit()}"
    print(f"modelreg vs MLflow model registry, {_dt.date.today().isoformat()}, {tree}: {machine_summary()}", flush=True)
    venv = args.venv or default_venv()
    made_venv = False
    pythons: dict[str, str] = {"modelreg": sys.executable}
    if "mlflow" in systems:
        if args.mlflow_python:
            found = probe_mlflow(Path(args.mlflow_python))
            if not found:
                print(f"error: {args.mlflow_python} cannot import mlflow and sqlalchemy", file=sys.stderr)
                return 2
            pythons["mlflow"] = args.mlflow_python
        else:
            try:
                python, _ = ensure_venv(venv, mlflow_library(args.mlflow), args.keep)
            except (SetupError, OSError, subprocess.SubprocessError) as exc:
                print(f"error: cannot make the MLflow environment: {exc}", file=sys.stderr)
                return 2
            pythons["mlflow"] = str(python)
            made_venv = not args.keep

    workdir = Path(tempfile.mkdtemp(prefix="modelreg-bench-mlflow-", dir=args.tmpdir))
    try:
        snapshots: dict[str, Path] = {}
        versions: dict[str, str] = {}
        print(
            f"\npopulating one model with {args.versions:,} versions on each system (once; every round "
            "works on a copy) ...",
            flush=True,
        )
        pop: dict[str, float] = {}
        for s in systems:
            snapshots[s] = workdir / f"populated-{s}"
            pop[s], versions[s], py, where = populate(s, pythons[s], snapshots[s], args.versions)
            print(
                f"  {s} {versions[s]} (Python {py}, from {where}): {pop[s]:.1f} s, "
                f"{pop[s] / args.versions * 1e3:.2f} ms a version",
                flush=True,
            )
        for s in systems:  # warm the page cache and the bytecode caches; not counted
            with Worker(s, pythons[s], location(s, snapshots[s]), workdir / f"{s}-warmup.log"):
                pass
        n = counts(args)
        print(
            f"\n{args.rounds} rounds, each on a fresh copy: {args.opens + 1} opens per system, then "
            + ", ".join(f"{op} x{n[op]}" for op in OPERATIONS[1:])
            + " (+1 warm-up call each) ...",
            flush=True,
        )
        samples = run_rounds(systems, pythons, snapshots, workdir, args)
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if made_venv:
            shutil.rmtree(venv, ignore_errors=True)

    rows = summarize(samples)
    lib = ", ".join(f"{'MLflow' if s == 'mlflow' else 'modelreg'} {versions[s]}" for s in systems)
    print(
        f"\n{lib}, Python {platform.python_version()}; {args.versions:,} versions of one model; "
        f"{args.rounds} rounds; medians of all counted calls; modelreg's SQLite durability: {args.durability}"
        + (" (synchronous=FULL)" if args.durability == "full" else " (its default: WAL, synchronous=NORMAL)")
    )
    print(
        "populate (once, through the public API): "
        + ", ".join(f"{s} {pop[s]:.1f} s ({pop[s] / args.versions * 1e3:.2f} ms a version)" for s in systems)
    )
    print()
    print(table(rows, markdown=False))
    if args.markdown:
        print()
        print(table(rows, markdown=True))
    if args.only:
        return 0
    med = statistics.median(r["speedup"] for r in rows)
    missed = [r["label"] for r in rows if not r["ok"]]
    ok = not missed and med >= GOAL_MEDIAN
    print(
        f"\nmedian speed-up: {med:.1f}x (goal >= {GOAL_MEDIAN:g}x: {'PASS' if med >= GOAL_MEDIAN else 'FAIL'}); "
        f"every operation >= {GOAL_EACH:g}x: {'PASS' if not missed else 'FAIL (' + '; '.join(missed) + ')'}"
    )
    print(f"goal: {'PASS' if ok else 'FAIL'}")
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
