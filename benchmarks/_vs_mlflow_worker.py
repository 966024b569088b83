"""The worker of ``bench_vs_mlflow.py``: one registry client in one process, timed from inside.

It runs the same workload on either system and imports only that system's library:

- ``mlflow``: MLflow's Model Registry client (``MlflowClient``) on a SQLite database, run by the
  Python of the benchmark's own virtual environment (MLflow is not a dependency of modelreg);
- ``modelreg``: ``modelreg.Registry`` on a local folder, run by the benchmark's interpreter.

Usage (the benchmark starts it; by hand it is useful for profiling)::

    python _vs_mlflow_worker.py SYSTEM LOCATION [--fresh] [--durability full]

``LOCATION`` is the MLflow database file or the modelreg registry folder. The worker first opens
the client and times it: import of the library + construction of the client + a first read
(version 1 of the model; ``--fresh`` skips that read, for a registry that is still empty;
``--durability full`` opens modelreg's SQLite with ``synchronous=FULL``). It
writes one JSON line ``{"ok": true, "open": seconds}``, then reads commands from standard input,
one JSON object a line, ``{"op": NAME, "args": {...}}``, and answers each with one JSON line
``{"ok": true, "samples": [seconds, ...], "info": {...}}`` (or ``{"ok": false, "error": ...}``).
The samples are the wall times of the single calls, measured in this process, so they exclude
the process start and the pipe. ``{"op": "exit"}`` or the end of the input stops it.

The operations (see :data:`OPS`) take their version numbers from the command, so both systems
get the same ones; a leading ``skip`` count of calls is run but not reported (warm-up).

Only the standard library is imported at module level: ``import mlflow`` / ``import modelreg``
happen inside the timed open.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

MODEL = "bench-model"
TEAMS = ("fraud", "growth", "risk", "search", "ads", "vision", "speech", "ranking", "pricing", "ops")
ALIAS_READ = "champion"
"""Set once when populating; ``get_alias`` resolves it."""
ALIAS_WRITE = "challenger"
"""Moved by ``set_alias``."""
SEARCH = "tags.team = 'fraud'"
FILE_SIZE = 1024


def team_of(version: int) -> str:
    """The ``team`` tag of a populated version: version 1 is ``fraud``, then every tenth."""
    return TEAMS[(version - 1) % len(TEAMS)]


def expected_hits(versions: int) -> int:
    """How many populated versions the tag search matches (registered versions carry no tags)."""
    return sum(1 for v in range(1, versions + 1) if team_of(v) == "fraud")


def champion_of(versions: int) -> int:
    """The version the read alias points at."""
    return max(1, versions // 2)


def make_files(folder: Path, count: int, prefix: str) -> list[Path]:
    """``count`` new 1 KiB files of random bytes (each a distinct blob for modelreg)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        p = folder / f"{prefix}-{i}.bin"
        p.write_bytes(os.urandom(FILE_SIZE))
        out.append(p)
    return out


def _timed(calls: list[Callable[[], Any]], skip: int = 0) -> list[float]:
    out = []
    clock = time.perf_counter
    for fn in calls:
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out[skip:]


# -- the two systems ------------------------------------------------------------------------------


class Side:
    """One system's client. Subclasses implement the calls; :meth:`run` times them."""

    system = ""

    def __init__(self, location: str | os.PathLike[str], scratch: str | os.PathLike[str]) -> None:
        self.location = Path(location)
        self.scratch = Path(scratch)

    # implemented by each system
    def open(self, first_read: bool = True) -> float:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def where(self) -> str:
        """The folder the library was imported from."""
        module = sys.modules.get(self.system)
        return str(Path(module.__file__).parent) if module and module.__file__ else "?"

    def close(self) -> None:
        pass

    def create_model(self) -> None:
        raise NotImplementedError

    def register(self, path: Path, tags: dict[str, str] | None) -> int:
        raise NotImplementedError

    def get_version(self, v: int) -> int:
        raise NotImplementedError

    def get_alias(self, alias: str) -> int:
        raise NotImplementedError

    def set_alias(self, alias: str, v: int) -> None:
        raise NotImplementedError

    def transition(self, v: int, stage: str) -> None:
        raise NotImplementedError

    def search(self, query: str) -> int:
        raise NotImplementedError

    # the operations, as the benchmark sends them ------------------------------------------------
    def run(self, op: str, args: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
        try:
            fn = OPS[op]
        except KeyError:
            raise ValueError(f"unknown operation {op!r}; known: {sorted(OPS)}") from None
        return fn(self, **args)

    def op_populate(self, versions: int) -> tuple[list[float], dict[str, Any]]:
        """Create the model, ``versions`` tagged versions, and the read alias. One sample: the total."""
        files = make_files(self.scratch / "populate", versions, "v")
        t0 = time.perf_counter()
        self.create_model()
        for i, path in enumerate(files, start=1):
            got = self.register(path, {"team": team_of(i)})
            if got != i:
                raise RuntimeError(f"{self.system}: registered version {got}, expected {i}")
        self.set_alias(ALIAS_READ, champion_of(versions))
        total = time.perf_counter() - t0
        for p in files:
            p.unlink()
        return [total], {"versions": versions}

    def op_register(self, count: int, skip: int = 0) -> tuple[list[float], dict[str, Any]]:
        files = make_files(self.scratch / "register", count, f"r{time.time_ns()}")
        got: list[int] = []
        samples = _timed([lambda p=p: got.append(self.register(p, None)) for p in files], skip)
        return samples, {"first": got[0], "last": got[-1]}

    def op_get_version(self, versions: list[int], skip: int = 0) -> tuple[list[float], dict[str, Any]]:
        got: list[int] = []
        samples = _timed([lambda v=v: got.append(self.get_version(v)) for v in versions], skip)
        if got != versions:
            raise RuntimeError(f"{self.system}: get_version returned other versions than asked for")
        return samples, {}

    def op_get_alias(self, count: int, skip: int = 0) -> tuple[list[float], dict[str, Any]]:
        got: list[int] = []
        samples = _timed([lambda: got.append(self.get_alias(ALIAS_READ))] * count, skip)
        return samples, {"version": got[-1]}

    def op_set_alias(self, versions: list[int], skip: int = 0) -> tuple[list[float], dict[str, Any]]:
        samples = _timed([lambda v=v: self.set_alias(ALIAS_WRITE, v) for v in versions], skip)
        now = self.get_alias(ALIAS_WRITE)
        if now != versions[-1]:
            raise RuntimeError(f"{self.system}: alias {ALIAS_WRITE!r} is on {now}, expected {versions[-1]}")
        return samples, {}

    def op_transition(self, versions: list[int], skip: int = 0) -> tuple[list[float], dict[str, Any]]:
        """Each version to staging, then the same version to production (which archives the previous
        production version): the calls alternate staging, production, staging, ..."""
        calls = []
        for v in versions:
            calls.append(lambda v=v: self.transition(v, "staging"))
            calls.append(lambda v=v: self.transition(v, "production"))
        return _timed(calls, 2 * skip), {}

    def op_search(self, count: int, skip: int = 0) -> tuple[list[float], dict[str, Any]]:
        hits: list[int] = []
        samples = _timed([lambda: hits.append(self.search(SEARCH))] * count, skip)
        if len(set(hits)) != 1:
            raise RuntimeError(f"{self.system}: the search returned {sorted(set(hits))} versions on different calls")
        return samples, {"hits": hits[0]}


class ModelregSide(Side):
    system = "modelreg"

    durability = "normal"
    """SQLite's ``durability`` (``"full"``: ``synchronous=FULL``, a sync at every commit, as MLflow's SQLite)."""

    def open(self, first_read: bool = True) -> float:
        t0 = time.perf_counter()
        from modelreg import Registry

        if self.durability == "normal":  # the default, passed as nothing
            self.reg = Registry(self.location, actor="bench")
        else:
            self.reg = Registry(self.location, actor="bench", durability=self.durability)
        if first_read:
            self.reg.get_version(MODEL, 1)
        return time.perf_counter() - t0

    def version(self) -> str:
        import modelreg

        return getattr(modelreg, "__version__", "?")

    def close(self) -> None:
        self.reg.close()

    def create_model(self) -> None:
        self.reg.create_model(MODEL)

    def register(self, path: Path, tags: dict[str, str] | None) -> int:
        return self.reg.register(MODEL, path, capture=None, tags=tags).version

    def get_version(self, v: int) -> int:
        return self.reg.get_version(MODEL, v).version

    def get_alias(self, alias: str) -> int:
        return self.reg.get_version(f"{MODEL}@{alias}").version

    def set_alias(self, alias: str, v: int) -> None:
        self.reg.set_alias(MODEL, alias, v)

    def transition(self, v: int, stage: str) -> None:
        self.reg.transition(MODEL, v, stage)

    def search(self, query: str) -> int:
        return len(self.reg.search(query))


class MlflowSide(Side):
    system = "mlflow"
    STAGES: ClassVar[dict[str, str]] = {"staging": "Staging", "production": "Production"}

    def open(self, first_read: bool = True) -> float:
        # transition_model_version_stage is deprecated in MLflow 3 (FutureWarning) but still there;
        # the warning is silenced here, in the benchmark only
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*transition_model_version_stage")
        t0 = time.perf_counter()
        from mlflow import MlflowClient

        uri = "sqlite:///" + str(self.location.resolve())
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if first_read:
            self.client.get_model_version(MODEL, "1")
        return time.perf_counter() - t0

    def version(self) -> str:
        import mlflow

        return mlflow.__version__

    def create_model(self) -> None:
        self.client.create_registered_model(MODEL)

    def register(self, path: Path, tags: dict[str, str] | None) -> int:
        return int(self.client.create_model_version(MODEL, source=str(path), tags=tags).version)

    def get_version(self, v: int) -> int:
        return int(self.client.get_model_version(MODEL, str(v)).version)

    def get_alias(self, alias: str) -> int:
        return int(self.client.get_model_version_by_alias(MODEL, alias).version)

    def set_alias(self, alias: str, v: int) -> None:
        self.client.set_registered_model_alias(MODEL, alias, str(v))

    def transition(self, v: int, stage: str) -> None:
        # to production, the previous production versions go to Archived, as modelreg does
        self.client.transition_model_version_stage(
            MODEL, str(v), self.STAGES[stage], archive_existing_versions=stage == "production"
        )

    def search(self, query: str) -> int:
        return len(self.client.search_model_versions(query))


SIDES: dict[str, type[Side]] = {"modelreg": ModelregSide, "mlflow": MlflowSide}

OPS: dict[str, Callable[..., tuple[list[float], dict[str, Any]]]] = {
    "populate": Side.op_populate,
    "register": Side.op_register,
    "get_version": Side.op_get_version,
    "get_alias": Side.op_get_alias,
    "set_alias": Side.op_set_alias,
    "transition": Side.op_transition,
    "search": Side.op_search,
}


# -- the command loop -------------------------------------------------------------------------------


def serve(side: Side, fresh: bool, inp: Any, out: Any) -> None:
    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        opened = side.open(first_read=not fresh)
    except Exception as exc:  # reported to the parent, which shows the worker's log
        reply({"ok": False, "error": f"open failed: {type(exc).__name__}: {exc}"})
        raise
    reply(
        {"ok": True, "open": opened, "version": side.version(), "python": sys.version.split()[0], "where": side.where()}
    )
    for line in inp:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "exit":
            break
        try:
            samples, info = side.run(cmd["op"], cmd.get("args") or {})
        except Exception as exc:
            reply({"ok": False, "error": f"{cmd.get('op')}: {type(exc).__name__}: {exc}"})
            raise
        reply({"ok": True, "samples": samples, "info": info})
    side.close()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in SIDES:
        print(
            f"usage: {Path(__file__).name} {{{'|'.join(SIDES)}}} LOCATION [--fresh] [--durability full]",
            file=sys.stderr,
        )
        return 2
    # replies go to a private copy of stdout; whatever a library prints goes to stderr instead
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    location = Path(argv[1])
    scratch = Path(os.environ.get("BENCH_SCRATCH") or location.parent / f"scratch-{argv[0]}-{os.getpid()}")
    side = SIDES[argv[0]](location, scratch)
    opts = argv[2:]
    if "--durability" in opts and isinstance(side, ModelregSide):
        side.durability = opts[opts.index("--durability") + 1]
    serve(side, "--fresh" in opts, sys.stdin, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
