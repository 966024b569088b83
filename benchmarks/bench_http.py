"""HTTP API: get-by-alias with 8 concurrent clients (target >= 1,000 req/s, p99 <= 20 ms) and search throughput.

Starts ``modelreg serve`` in a child process on 127.0.0.1 (a local SQLite registry with one model
of ``--versions`` versions, an alias ``champion`` and a reader token, rate limit off), then runs
``--clients`` threads in this process, each with its own keep-alive connection:

- ``GET /api/v1/versions/bench@champion`` ``--requests`` times per client: throughput (all clients
  together) and the latency of each request (median, p99);
- ``GET /api/v1/search?q=metrics.auc > 0.85&order_by=metrics.auc desc&limit=10``: throughput.

The targets are checked for the first: throughput as the wall time per request of all clients
together (target <= 1 ms, that is >= 1,000 req/s) and the p99 latency (target <= 20 ms).

    python benchmarks/bench_http.py                        # 200 versions, 8 clients x 500 requests
    python benchmarks/bench_http.py --requests 2000 --check
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import Report, fmt_time, machine_summary, src_env  # noqa: E402

THROUGHPUT_TARGET = 1000.0  # requests a second
P99_TARGET = 0.020


def populate(where: Path, versions: int) -> str:
    """A registry with one model of ``versions`` versions and an alias; returns a reader token."""
    from modelreg import Registry
    from modelreg.api.tokens import create_token

    work = where.parent / "work"
    work.mkdir()
    with Registry(where, actor="bench") as reg:
        f = work / "model.bin"
        for i in range(1, versions + 1):
            f.write_bytes(f"weights {i}".encode())
            reg.register("bench", f, capture=None, metrics={"auc": 0.8 + (i % 97) / 1000}, tags={"team": "bench"})
        reg.set_alias("bench", "champion", versions)
        return create_token(reg, "bench", "reader")[1]


def start_server(where: Path) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "modelreg", "--registry", str(where), "serve", "--port", "0", "--rate-limit", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=src_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " at http" not in line:
        proc.kill()
        raise SystemExit(f"modelreg serve did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    return proc, line.rsplit(" at ", 1)[1].strip()


def hammer(
    url: str, token: str, path: str, params: dict[str, str] | None, clients: int, requests: int
) -> tuple[float, list[float]]:
    """(wall seconds, every request's latency) of ``clients`` threads sending ``requests`` each."""
    import httpx2 as httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            c.get(path, params=params)  # connect and warm up
            barrier.wait()
            mine = latencies[k]
            for _ in range(requests):
                t0 = time.perf_counter()
                r = c.get(path, params=params)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return wall, [x for lat in latencies for x in lat]


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else samples[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500, help="requests per client")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    print(f"modelreg HTTP API benchmark: {machine_summary()}", flush=True)
    report = Report("HTTP API")
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-http-") as tmp:
        where = Path(tmp) / "registry"
        token = populate(where, args.versions)
        proc, url = start_server(where)
        try:
            n = args.clients * args.requests
            print(
                f"\n[get by alias] {args.clients} clients x {args.requests} requests, {args.versions} versions",
                flush=True,
            )
            wall, lat = hammer(url, token, "/versions/bench@champion", None, args.clients, args.requests)
            report.add(
                f"get-by-alias, {args.clients} clients: wall time per request (>= {THROUGHPUT_TARGET:,.0f} req/s)",
                wall / n,
                target=1 / THROUGHPUT_TARGET,
                note=f"{n / wall:,.0f} req/s",
            )
            report.add("get-by-alias: median latency", statistics.median(lat))
            report.add(f"get-by-alias, {args.clients} clients: p99 latency", p99(lat), target=P99_TARGET)
            print(f"\n[search] {args.clients} clients x {args.requests // 2} requests", flush=True)
            params = {"q": "metrics.auc > 0.85", "order_by": "metrics.auc desc", "limit": "10"}
            half = max(1, args.requests // 2)
            wall, lat = hammer(url, token, "/search", params, args.clients, half)
            report.add(
                f"search, {args.clients} clients: wall time per request",
                wall / (args.clients * half),
                note=f"{args.clients * half / wall:,.0f} req/s",
            )
            report.add("search: median latency", statistics.median(lat), fmt=fmt_time)
        finally:
            proc.terminate()
            proc.communicate(timeout=10)
    return report.finish(markdown=args.markdown, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
