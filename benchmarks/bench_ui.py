"""Web UI: server time to render the pages of a model with 1,000 versions (target: model page <= 300 ms median).

Builds a registry with one model of ``--versions`` versions (three metrics each,
a stage history of ``--transitions`` promotions, some post-hoc metrics), then
times, for each backend:

- through Starlette's TestClient (the app in-process, no network): the models
  list, the model page (default order, and sorted by a metric), a version page,
  the compare page and the audit page of that model;
- through a real ``uvicorn`` server on 127.0.0.1 (HTTP round trip included):
  the model page.

It prints the median and 95th percentile of each and whether the model page
meets the target.

    python benchmarks/bench_ui.py                      # 1,000 versions, sqlite and json
    python benchmarks/bench_ui.py --versions 2000 --repeat 50 --backends sqlite
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TARGET_MS = 300.0


def build(reg, workdir: Path, versions: int, transitions: int) -> None:
    f = workdir / "model.bin"
    for i in range(1, versions + 1):
        f.write_bytes(f"weights {i}".encode())
        reg.register(
            "bench",
            f,
            capture=None,
            actor=("ana", "ben", "chen")[i % 3],
            params={"lr": 0.1 / i, "depth": 3 + i % 5, "features": {"window": 30 + i % 4}},
            metrics={"auc": 0.8 + (i % 97) / 1000, "f1": 0.7 + (i % 53) / 1000, "latency_ms": 10 + i % 7},
            tags={"team": "bench"},
        )
    step = max(1, versions // max(transitions, 1))
    for v in range(step, versions + 1, step)[:transitions]:
        reg.transition("bench", v, "staging", actor="ana")
        reg.transition("bench", v, "production", actor="ben")
    for week in range(1, 5):
        reg.log_metrics(f"bench/{versions}", {"auc": 0.9 - week / 100}, step=week, actor="monitor")
    reg.set_alias("bench", "champion", versions)


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm up (template compilation, caches)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def fmt(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20)[18] if len(samples) >= 2 else samples[0]
    return f"median {statistics.median(samples):7.1f} ms   p95 {q:7.1f} ms"


def bench_backend(name: str, location: str, args: argparse.Namespace, workdir: Path) -> dict[str, list[float]]:
    """Build the registry at ``location``, time every page, print the figures and return the samples."""
    import uvicorn
    from starlette.testclient import TestClient

    from modelreg import Registry
    from modelreg.ui import create_app
    from modelreg.ui.server import bind

    reg = Registry(location)
    t0 = time.perf_counter()
    build(reg, workdir, args.versions, args.transitions)
    events = len(reg.history("bench"))
    print(f"\n[{name}] built {args.versions} versions, {events} audit events in {time.perf_counter() - t0:.1f} s")
    app = create_app(reg)
    mid = args.versions // 2
    results: dict[str, list[float]] = {}
    with TestClient(app) as client:

        def get(url: str):
            def call() -> None:
                r = client.get(url)
                assert r.status_code == 200, (url, r.status_code)

            return call

        pages = {
            "models list": "/",
            "model page": "/model/bench",
            "model page, sorted by auc": "/model/bench?sort=metric:auc&order=desc",
            "version page": f"/version/bench/{args.versions}",
            "compare (3 versions)": f"/compare?v=bench/1&v=bench/{mid}&v=bench/{args.versions}",
            "audit page (model)": "/audit?model=bench",
        }
        for label, url in pages.items():
            results[label] = timed(get(url), args.repeat)
            print(f"  {label:32s} {fmt(results[label])}")

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    def http() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model/bench", timeout=30) as r:
            assert r.status == 200
            r.read()

    try:
        results["model page over HTTP"] = timed(http, args.repeat)
        print(f"  {'model page over HTTP (uvicorn)':32s} {fmt(results['model page over HTTP'])}")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        reg.close()
    med = statistics.median(results["model page"])
    verdict = "meets" if med <= TARGET_MS else "MISSES"
    print(f"  model page with {args.versions} versions: median {med:.1f} ms, {verdict} the {TARGET_MS:.0f} ms target")
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--versions", type=int, default=1000)
    p.add_argument("--transitions", type=int, default=20, help="versions promoted through staging to production")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--backends", default="sqlite,json", help="comma-separated: sqlite (a local folder), json (file://)")
    args = p.parse_args()
    os.environ.setdefault("MODELREG_ACTOR", "bench")
    print(f"modelreg web UI benchmark: {args.versions} versions, {args.repeat} timed requests per page")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="modelreg-bench-ui-") as tmp:
            base = Path(tmp)
            location = str(base / "reg") if backend == "sqlite" else (base / "reg").as_uri()
            bench_backend(backend, location, args, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
