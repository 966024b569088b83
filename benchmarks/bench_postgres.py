"""PostgreSQL metadata store: cost flat in the size of the registry, search, concurrent writers.

- **register and transition at 1,000 vs 100,000 versions** across 1,000 models: the median of
  ``Registry.register`` and ``Registry.transition`` when every model has 1 version, then again
  when every model has 100; target: the second at most 1.3x the first;
- **a tag and metric search over 100,000 versions returning 100**
  (``tags.team = 't7' and metrics.auc >= 0.5``): median, target <= 20 ms;
- **16 concurrent writer processes over 16 models** (mixed register, transition, set_alias,
  set_tags, log_metrics): throughput target >= 500 ops/s and p99 latency <= 100 ms; the same 16
  writers **on one model** (they queue on its row lock) reported alongside, no target.

Populating goes through the MetadataStore (one shared artifact, several threads). The server is
``--dsn`` (an empty database or schema: the script creates schema ``bench_<random>`` and drops it
afterwards), else a throwaway cluster started like the test suite's (tests/postgres_server.py;
needs Debian's postgresql package). The comparison with MLflow on the same server is not part
of this script.

    python benchmarks/bench_postgres.py                       # 1,000 models, 1 vs 100 versions each
    python benchmarks/bench_postgres.py --models 200 --per-model 20 --ops 20   # quicker
    python benchmarks/bench_postgres.py --dsn postgresql://me@db/bench --check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import Report, fmt_time, machine_summary  # noqa: E402

FLAT_TARGET = 1.3
SEARCH_TARGET = 0.020
WRITERS_OPS_TARGET = 500.0
WRITERS_P99_TARGET = 0.100


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def fmt_rate(x: float) -> str:
    return f"{x:.0f} ops/s"


@contextlib.contextmanager
def server(dsn: str | None, workdir: Path) -> Iterator[str]:
    """A DSN to benchmark on: ``dsn`` itself, or a fresh database on a throwaway cluster."""
    if dsn:
        yield dsn
        return
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import PostgresServer

    workdir.mkdir(parents=True, exist_ok=True)
    for folder in (workdir.parent, workdir):  # the postgres user must reach its cluster folder
        folder.chmod(0o755)
    cluster = PostgresServer(workdir / "cluster")
    cluster.start()
    try:
        yield cluster.dsn(cluster.create_database())
    finally:
        cluster.stop()


def open_registry(dsn: str, schema: str, blobs: Path, **kw: Any) -> Any:
    from modelreg import Registry

    return Registry(metadata=dsn, artifacts=str(blobs), schema=schema, **kw)


def populate(reg: Any, names: list[str], per_model: int, start: int, threads: int) -> None:
    """Give every model versions ``start+1 .. per_model`` (tags, metrics) through the store."""
    from modelreg.hashing import sha256_file
    from modelreg.models import Artifact, EventDraft, FileEntry, RegisteredModel, VersionDraft, utcnow

    blob = Path(tempfile.mkdtemp()) / "model.bin"
    blob.write_bytes(b"bench weights" * 100)
    digest, size = sha256_file(blob)
    reg.artifacts.put_file(digest, blob)
    artifact = Artifact(
        kind="file",
        name="model.bin",
        digest=digest,
        size=size,
        files=[FileEntry(path="model.bin", digest=digest, size=size)],
    )
    store = reg.metadata

    def fill(i_name: tuple[int, str]) -> None:
        i, name = i_name
        if start == 0:
            now = utcnow()
            store.create_model(
                RegisteredModel(name=name, owner="bench", created_at=now, updated_at=now),
                EventDraft(action="create_model", actor="bench"),
            )
        for v in range(start, per_model):
            k = i * per_model + v
            draft = VersionDraft(
                name=name,
                artifact=artifact,
                created_by="bench",
                tags={"team": f"t{k % 500}"},
                metrics={"auc": (k * 7919 % 1000) / 1000},
            )
            store.add_version(draft, EventDraft(action="register", actor="bench"))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, enumerate(names)))


def time_ops(reg: Any, names: list[str], ops: int, tmp: Path) -> dict[str, list[float]]:
    """``ops`` registrations and transitions, each on another model (interleaved)."""
    out: dict[str, list[float]] = {"register": [], "transition": []}
    for i in range(ops):
        name = names[(i * 37) % len(names)]
        f = tmp / f"op-{uuid.uuid4().hex}.bin"
        f.write_bytes(f"op {i} {uuid.uuid4()}".encode())
        t0 = time.perf_counter()
        mv = reg.register(name, f, capture=None, actor="bench")
        t1 = time.perf_counter()
        reg.transition(name, mv.version, "staging", actor="bench")
        t2 = time.perf_counter()
        out["register"].append(t1 - t0)
        out["transition"].append(t2 - t1)
        f.unlink()
    return out


WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from pathlib import Path
    from modelreg import Registry
    from modelreg.errors import InvalidTransitionError
    dsn, schema, blobs, models, worker, n_ops, out, go = sys.argv[1:9]
    models, worker, n_ops = json.loads(models), int(worker), int(n_ops)
    reg = Registry(metadata=dsn, artifacts=blobs, schema=schema, actor=f"w{worker}", pool_size=1)
    rnd = random.Random(worker)
    name = models[worker % len(models)]
    tmp = Path(out).parent
    lat = []
    while not Path(go).exists():
        time.sleep(0.005)
    start = time.perf_counter()
    for i in range(n_ops):
        op = rnd.choice(["register", "transition", "set_alias", "set_tags", "log_metrics"])
        t0 = time.perf_counter()
        if op == "register":
            f = tmp / f"w{worker}-{i}.bin"
            f.write_bytes(f"worker {worker} op {i}".encode())
            reg.register(name, f, capture=None)
        else:
            v = rnd.randint(1, 5)
            try:
                if op == "transition":
                    reg.transition(name, v, rnd.choice(["staging", "production", "archived"]))
                elif op == "set_alias":
                    reg.set_alias(name, "champion", v)
                elif op == "set_tags":
                    reg.set_tags(f"{name}/{v}", {f"w{worker}": str(i)})
                else:
                    reg.log_metrics(f"{name}/{v}", {"live": i / 100})
            except InvalidTransitionError:
                pass
        lat.append(time.perf_counter() - t0)
    end = time.perf_counter()
    reg.close()
    Path(out).write_text(json.dumps({"lat": lat, "start": start, "end": end}))
    """
)


def writers(
    dsn: str, schema: str, blobs: Path, models: list[str], n: int, ops: int, tmp: Path
) -> tuple[float, list[float]]:
    """``n`` processes, ``ops`` operations each, on ``models``; (ops/s, latencies)."""
    go = tmp / f"go-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    procs, outs = [], []
    for w in range(n):
        out = tmp / f"writer-{uuid.uuid4().hex}.json"
        outs.append(out)
        args = [dsn, schema, str(blobs), json.dumps(models), str(w), str(ops), str(out), str(go)]
        procs.append(
            subprocess.Popen([sys.executable, "-c", WORKER, *args], env=env, stderr=subprocess.PIPE, text=True)
        )
    time.sleep(1.0)  # let them import and connect
    go.write_text("go")
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a writer failed:\n{err}")
    results = [json.loads(o.read_text()) for o in outs]
    lat = [x for r in results for x in r["lat"]]
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return len(lat) / wall, lat


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run(args: argparse.Namespace, dsn: str, tmp: Path, report: Report) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    blobs = tmp / "blobs"
    names = [f"team{i % 10}/model-{i:04d}" for i in range(args.models)]
    reg = open_registry(dsn, schema, blobs, pool_size=args.threads)
    try:
        small_total, big_total = args.models, args.models * args.per_model
        t0 = time.perf_counter()
        populate(reg, names, 1, 0, args.threads)
        print(f"  populated {small_total:,} versions in {time.perf_counter() - t0:.1f} s", flush=True)
        small = time_ops(reg, names, args.ops, tmp)
        t0 = time.perf_counter()
        populate(reg, names, args.per_model, 1, args.threads)
        print(f"  populated {big_total:,} versions in {time.perf_counter() - t0:.1f} s", flush=True)
        reg.metadata._run_plain("ANALYZE")  # as autovacuum would after a bulk load
        big = time_ops(reg, names, args.ops, tmp)
        for op in ("register", "transition"):
            a, b = statistics.median(small[op]), statistics.median(big[op])
            report.add(
                f"{op}: {big_total:,} vs {small_total:,} versions ({args.models:,} models)",
                b / a,
                target=FLAT_TARGET,
                fmt=fmt_ratio,
                note=f"medians {fmt_time(b)} vs {fmt_time(a)}",
            )

        query = "tags.team = 't7' and metrics.auc >= 0.5"
        found = reg.search(query)
        times = []
        for _ in range(args.searches):
            t0 = time.perf_counter()
            reg.search(query)
            times.append(time.perf_counter() - t0)
        report.add(
            f"search over {big_total:,} versions returning {len(found)} ({query})",
            statistics.median(times),
            target=SEARCH_TARGET,
        )

        spread = names[: args.writers]
        rate, lat = writers(dsn, schema, blobs, spread, args.writers, args.writer_ops, tmp)
        what = f"{args.writers} writers x {args.writer_ops} ops over {len(spread)} models"
        # throughput as wall time per operation (1 / ops/s), so that the target is an upper bound
        report.add(
            f"{what}: wall time per op (1/throughput)",
            1 / rate,
            target=1 / WRITERS_OPS_TARGET,
            note=f"{fmt_rate(rate)} (target >= {WRITERS_OPS_TARGET:.0f} ops/s)",
        )
        report.add(f"{what}: p99 latency", p99(lat), target=WRITERS_P99_TARGET)
        rate, lat = writers(dsn, schema, blobs, names[:1], args.writers, args.writer_ops, tmp)
        what = f"{args.writers} writers x {args.writer_ops} ops on one model"
        report.add(f"{what}: wall time per op (1/throughput)", 1 / rate, note=fmt_rate(rate))
        report.add(f"{what}: p99 latency", p99(lat))
        report.add(f"{what}: median latency", statistics.median(lat))
    finally:
        with contextlib.suppress(Exception):
            reg.metadata._run_plain(f'DROP SCHEMA "{schema}" CASCADE')
        reg.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", help="PostgreSQL to use (default: a throwaway cluster)")
    ap.add_argument("--models", type=int, default=1000, help="models (default 1,000)")
    ap.add_argument("--per-model", type=int, default=100, help="versions per model in the large phase (default 100)")
    ap.add_argument("--ops", type=int, default=200, help="timed registrations and transitions per phase (default 200)")
    ap.add_argument("--searches", type=int, default=30, help="timed searches (default 30)")
    ap.add_argument("--writers", type=int, default=16, help="writer processes (default 16)")
    ap.add_argument("--writer-ops", type=int, default=50, help="operations per writer (default 50)")
    ap.add_argument("--threads", type=int, default=8, help="threads populating (default 8)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--check", action="store_true", help="exit 1 if a measurement misses its target")
    args = ap.parse_args(argv)
    print(machine_summary(), flush=True)
    report = Report("PostgreSQL metadata store")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with server(args.dsn, tmp / "pg") as dsn:
            run(args, dsn, tmp, report)
    return report.finish(markdown=args.markdown, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
