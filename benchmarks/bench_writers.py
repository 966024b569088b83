"""Many writers on one embedded registry: N processes x M mixed operations on one SQLite folder.

Each worker process opens the registry, warms up (imports the modules its calls need, reads the
policy and one version), waits for a common start signal, then runs a fixed mix
on one model (register 30%, transition 20%, set_alias 20%, set_tags 15%, log_metrics 15%),
timing every call. The parent reports throughput (all operations / wall time from the start
signal to the last worker's end) and the median and 99th percentile latency, then checks what
the concurrency tests check: version numbers unique and consecutive, never two versions in
production when the audit chain is replayed, and verify() clean.

    python benchmarks/bench_writers.py                     # 8 processes x 100 operations
    python benchmarks/bench_writers.py --workers 4 --ops 50
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import Report, fmt_time, machine_summary, src_env  # noqa: E402

TARGET_OPS = 400.0
TARGET_P99 = 0.100
MIX = [("register", 30), ("transition", 20), ("set_alias", 20), ("set_tags", 15), ("log_metrics", 15)]


def worker(root: str, sync: str, wid: int, ops: int) -> None:
    from modelreg import InvalidTransitionError, Registry

    rng = random.Random(wid)
    reg = Registry(root)
    work = Path(sync) / f"w{wid}"
    work.mkdir()
    # warm up before the start signal: the first call of each kind imports its modules (the
    # governance engine, the transfer code) and builds validators, a one-off start-up cost that
    # bench_start.py measures; here only contention should show in the tail
    import modelreg.governance.engine
    import modelreg.transfer  # noqa: F401

    reg.get_policy()
    reg.get_version("churn")
    (Path(sync) / f"ready-{wid}").touch()
    while not (Path(sync) / "go").exists():
        time.sleep(0.001)
    kinds = [k for k, w in MIX for _ in range(w)]
    lat: list[float] = []
    kinds_done: list[str] = []
    registered: list[int] = []
    for i in range(ops):
        kind = rng.choice(kinds)
        top = max(1, reg.metadata.resolve("churn") or 1)
        v = rng.randint(1, top)
        t0 = time.perf_counter()
        if kind == "register":
            f = work / f"{i}.bin"
            f.write_bytes(f"{wid}-{i}".encode())
            registered.append(reg.register("churn", f, capture=None, actor=f"w{wid}").version)
        elif kind == "transition":
            try:
                reg.transition("churn", v, rng.choice(["staging", "production", "archived"]), actor=f"w{wid}")
            except InvalidTransitionError:
                pass  # a move the table refuses, or already there: still one round trip
        elif kind == "set_alias":
            reg.set_alias("churn", f"w{wid}", v, actor=f"w{wid}")
        elif kind == "set_tags":
            reg.set_tags(f"churn/{v}", {f"w{wid}": str(i)}, actor=f"w{wid}")
        else:
            reg.log_metrics(f"churn/{v}", {f"w{wid}": i / ops}, actor=f"w{wid}")
        lat.append(time.perf_counter() - t0)
        kinds_done.append(kind)
    print(json.dumps({"lat": lat, "kinds": kinds_done, "registered": registered, "end": time.time()}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--ops", type=int, default=100, help="operations per worker")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if args.worker:
        root, sync, wid, ops = args.worker
        worker(root, sync, int(wid), int(ops))
        return 0

    from modelreg import Registry

    print(machine_summary(), flush=True)
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-writers-") as tmp:
        root, sync = Path(tmp) / "reg", Path(tmp) / "sync"
        sync.mkdir()
        with Registry(root) as reg:  # one version to start from
            seed = Path(tmp) / "seed.bin"
            seed.write_bytes(b"seed")
            reg.register("churn", seed, capture=None, actor="bench")
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(root), str(sync), str(w), str(args.ops)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=src_env(),
            )
            for w in range(args.workers)
        ]
        while not all((sync / f"ready-{w}").exists() for w in range(args.workers)):
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit(next(p.communicate()[1] for p in procs if p.poll() not in (None, 0)))
            time.sleep(0.01)
        start = time.time()
        (sync / "go").touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise SystemExit(f"a worker failed:\n{err}")
            results.append(json.loads(out))
        wall = max(r["end"] for r in results) - start
        lat = sorted(x for r in results for x in r["lat"])
        total = len(lat)
        p99 = lat[min(total - 1, round(0.99 * total) - 1)]

        with Registry(root) as reg:
            versions = [v.version for v in reg.list_versions("churn")]
            numbers = sorted(n for r in results for n in r["registered"])
            assert numbers == list(range(2, 2 + len(numbers))), "version numbers are not unique and consecutive"
            assert versions == list(range(1, 2 + len(numbers))), "a registered version is missing"
            production: set[int] = set()
            for ev in reg.history("churn"):
                if ev.action in ("transition", "rollback") and ev.version is not None:
                    production.discard(ev.version)
                    if (ev.after or {}).get("stage") == "production":
                        production.add(ev.version)
                assert len(production) <= 1, f"two versions in production after event #{ev.seq}"
            assert reg.verify().ok

    report = Report("many writers")
    report.add(
        f"{args.workers} processes x {args.ops} mixed operations: throughput",
        total / wall,
        fmt=lambda x: f"{x:.0f} ops/s",
        note=f"{total} operations in {wall:.2f} s",
    )
    report.add("median latency", statistics.median(lat))
    report.add("99th percentile latency", p99, target=TARGET_P99)
    by_kind: dict[str, list[float]] = {}
    for r in results:
        for kind, x in zip(r["kinds"], r["lat"], strict=True):
            by_kind.setdefault(kind, []).append(x)
    for kind, xs in sorted(by_kind.items()):
        xs.sort()
        report.add(
            f"  {kind}: median / p99",
            statistics.median(xs),
            note=f"p99 {fmt_time(xs[min(len(xs) - 1, round(0.99 * len(xs)) - 1)])}, {len(xs)} calls",
        )
    ok_ops = total / wall >= TARGET_OPS
    print(f"  throughput target >= {TARGET_OPS:.0f} ops/s: {'PASS' if ok_ops else 'FAIL'}")
    print("  checks: unique consecutive numbers, one production holder at every event, verify() clean: PASS")
    print()
    print(report.table())
    return 1 if args.check and (report.failed or not ok_ops) else 0


if __name__ == "__main__":
    raise SystemExit(main())
