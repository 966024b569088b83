"""JSON metadata on S3 (moto server): object-store requests per operation, and open + search speed.

    python benchmarks/bench_json.py                       # 100 models x 100 versions
    python benchmarks/bench_json.py --models 20 --versions 50
    python benchmarks/bench_json.py --endpoint http://127.0.0.1:5000   # an already running moto/S3

Starts ``python -m moto.server`` on a free 127.0.0.1 port unless ``--endpoint``
is given. Requests are counted at the HTTP layer (botocore's ``before-send``
event of the s3fs client), split into metadata and blob requests, so the
figures are what the object store sees, not what modelreg thinks it sent.

"cold" = a process with empty in-memory caches and an empty disk cache;
"warm (same process)" = a new ``Registry`` in a process that has searched
before; "warm (new process)" = a new interpreter with the disk cache filled
(interpreter start and imports excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

QUERY = "metrics.auc > 0.9 and tags.team = 'fraud'"
ORDER = "metrics.auc desc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto(endpoint: str | None):
    if endpoint:
        yield endpoint, None
        return
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def options(endpoint: str) -> dict[str, Any]:
    return {"key": "bench", "secret": "bench", "endpoint_url": endpoint, "client_kwargs": {"region_name": "us-east-1"}}


class HttpCounter:
    """Counts requests the s3fs client sends, split by metadata / blobs."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.hooked: set[int] = set()

    def hook(self, fs: Any) -> None:
        client = fs.s3
        if id(client) in self.hooked:
            return
        self.hooked.add(id(client))
        client.meta.events.register("before-send.s3", self._on_send)

    def _on_send(self, request: Any, **_: Any) -> None:
        url = urllib.parse.unquote(str(request.url))
        kind = "blobs" if "/blobs/" in url or ("prefix=" in url and "/blobs" in url) else "metadata"
        with self.lock:
            self.counts[kind] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)


def reset_process_caches() -> None:
    """Forget everything this process cached (as if it were a new process)."""
    import fsspec

    from modelreg.stores import _json_base

    _json_base.SHARED.reset()
    fsspec.AbstractFileSystem.clear_instance_cache()


def open_registry(url: str, opts: dict[str, Any], counter: HttpCounter | None, cache_dir: str) -> Any:
    from modelreg import Registry

    reg = Registry(url, storage_options=opts, cache_dir=cache_dir)
    if counter is not None:
        counter.hook(reg.metadata.fs)
        counter.hook(reg.artifacts.fs)
    return reg


def measure(counter: HttpCounter, fn: Any) -> tuple[Any, Counter[str], float]:
    before = counter.snapshot()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    after = counter.snapshot()
    return out, after - before, dt


def requests_per_operation(url: str, opts: dict[str, Any], tmp: Path) -> None:
    counter = HttpCounter()
    reset_process_caches()
    cache = str(tmp / "cache-ops")
    from modelreg import Registry

    reg = open_registry(url, opts, counter, cache)
    model = tmp / "model.bin"
    model.write_bytes(os.urandom(2048))
    rows = []

    def row(label: str, fn: Any) -> Any:
        out, c, dt = measure(counter, fn)
        rows.append((label, c["metadata"], c["blobs"], dt * 1000))
        return out

    row("open registry", lambda: Registry(url, storage_options=opts, cache_dir=cache))
    row("register, new model (creates the registry)", lambda: reg.register("first", model, capture=None))
    model.write_bytes(os.urandom(2048))
    row("register, new model", lambda: reg.register("ops", model, capture=None))
    model.write_bytes(os.urandom(2048))
    row("register, existing model", lambda: reg.register("ops", model, capture=None))
    model.write_bytes(os.urandom(2048))
    reset_process_caches()
    reg2 = open_registry(url, opts, counter, cache)
    row("register, another process wrote last", lambda: reg2.register("ops", model, capture=None))
    row("transition to production", lambda: reg2.transition("ops", 2, "production"))
    row("set_alias", lambda: reg2.set_alias("ops", "champion", 3))
    row("log_metrics", lambda: reg2.log_metrics("ops/3", {"live_auc": 0.9}))
    row("get_version('ops@production')", lambda: reg2.get_version("ops@production"))
    row("get_version('ops/1')", lambda: reg2.get_version("ops/1"))
    row("list_models", lambda: reg2.list_models())
    row("search", lambda: reg2.search("metrics.auc > 0.5"))
    row("history('ops')", lambda: reg2.history("ops"))
    reset_process_caches()
    reg3 = open_registry(url, opts, counter, str(tmp / "cache-empty"))
    row("history('ops'), cold cache", lambda: reg3.history("ops"))
    print("\nObject-store requests per operation (HTTP requests seen by the S3 client)")
    print(f"{'operation':44} {'metadata':>9} {'blobs':>6} {'ms':>8}")
    for label, meta, blobs, ms in rows:
        print(f"{label:44} {meta:9d} {blobs:6d} {ms:8.1f}")


def populate(url: str, opts: dict[str, Any], n_models: int, n_versions: int, tmp: Path) -> float:
    from modelreg import Registry
    from modelreg.lineage import capture_environment
    from modelreg.models import (
        Artifact,
        EventDraft,
        FileEntry,
        Lineage,
        RegisteredModel,
        VersionDraft,
        utcnow,
    )

    reg = Registry(url, storage_options=opts, cache_dir=str(tmp / "cache-populate"))
    store = reg.metadata
    env = capture_environment()
    t0 = time.perf_counter()

    def one_model(i: int) -> None:
        name = f"team{i % 10}/model-{i:03d}"
        now = utcnow()
        store.create_model(
            RegisteredModel(name=name, owner="bench", created_at=now, updated_at=now),
            EventDraft(action="create_model", actor="bench"),
        )
        for v in range(n_versions):
            digest = "sha256:" + uuid.uuid4().hex * 2
            art = Artifact(
                kind="file",
                name="model.bin",
                digest=digest,
                size=1000 + v,
                files=[FileEntry(path="model.bin", digest=digest, size=1000 + v)],
                format="onnx",
            )
            draft = VersionDraft(
                name=name,
                artifact=art,
                params={"lr": 0.001 * (v + 1), "layers": [64, 32], "opt": "adam"},
                metrics={"auc": 0.5 + (v * 7 % 50) / 100, "f1": 0.3 + (v % 10) / 20},
                tags={"team": "fraud" if i % 3 == 0 else "growth", "run": f"r{v}"},
                lineage=Lineage(
                    run_id=f"run-{i}-{v}",
                    environment=env,
                    datasets=[{"uri": f"s3://data/train-{v}.parquet", "digest": digest}],
                ),
                created_by="bench",
            )
            store.add_version(
                draft, EventDraft(action="register", actor="bench", after={"digest": digest, "size": art.size})
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one_model, range(n_models)))
    return time.perf_counter() - t0


def search_timings(url: str, opts: dict[str, Any], tmp: Path, expected: int, rounds: int) -> None:
    import statistics

    from modelreg import Registry

    counter = HttpCounter()
    caches = iter(range(10_000))

    def open_and_search(cache: str, limit: int | None = 10) -> list[Any]:
        reg = Registry(url, storage_options=opts, cache_dir=cache)
        counter.hook(reg.metadata.fs)
        return reg.search(QUERY, order_by=ORDER, limit=limit)

    # creating the first S3 client is not a registry cost: do it outside the clock
    import fsspec

    fsspec.filesystem("s3", **opts).ls("/")
    cold, warm, warm_all = [], [], []
    for _ in range(rounds):
        reset_process_caches()
        fsspec.filesystem("s3", **opts).ls("/")
        cache = str(tmp / f"cache-search-{next(caches)}")
        res, c_cold, t = measure(counter, lambda: open_and_search(cache))  # noqa: B023
        cold.append(t)
        for _ in range(3):
            res_w, c_warm, t = measure(counter, lambda: open_and_search(cache))  # noqa: B023
            warm.append(t)
        all_w, c_all, t = measure(counter, lambda: open_and_search(cache, None))  # noqa: B023
        warm_all.append(t)
        assert [v.ref for v in res] == [v.ref for v in res_w]
    reg = Registry(url, storage_options=opts, cache_dir=cache)
    total = len(list(reg.metadata.iter_all_versions()))
    script = (
        "import sys, time, json\n"
        "t0 = time.perf_counter()\n"
        "from modelreg import Registry\n"
        "Registry('memory://bench-warmup').search('metrics.auc > 0')  # modules imported on first use\n"
        "import fsspec\n"
        "fsspec.filesystem('s3', **json.loads(sys.argv[1])).ls('/')\n"
        "t1 = time.perf_counter()\n"
        f"reg = Registry({url!r}, storage_options=json.loads(sys.argv[1]), cache_dir={cache!r})\n"
        f"res = reg.search({QUERY!r}, order_by={ORDER!r}, limit=10)\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'startup': t1 - t0, 'open_search': t2 - t1, 'n': len(res)}))\n"
    )
    newproc = []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", script, json.dumps(opts)], capture_output=True, text=True, check=True
        )
        newproc.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = statistics.median
    print(f"\nOpen + search over {total} versions ({expected} registered), query: {QUERY!r}, limit 10")
    print(
        f"median of {rounds} rounds (warm: of {3 * rounds}); load average now {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    print(f"{'case':36} {'median s':>9} {'min s':>7} {'max s':>7} {'requests':>9}")
    rows = [
        ("cold (empty caches)", cold, sum(c_cold.values())),
        ("warm (same process, new Registry)", warm, sum(c_warm.values())),
        (f"warm, all {len(all_w)} matches (no limit)", warm_all, sum(c_all.values())),
        ("warm (new process, disk cache)", [r["open_search"] for r in newproc], None),
    ]
    for label, times, n in rows:
        print(f"{label:36} {med(times):9.3f} {min(times):7.3f} {max(times):7.3f} {'-' if n is None else n:>9}")
    print(
        f"(a new process first spends {med([r['startup'] for r in newproc]):.2f} s importing modelreg and "
        "starting the S3 client)"
    )
    print("targets: cold <= 5 s, warm <= 0.2 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--endpoint", help="use this S3 endpoint instead of starting moto")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (medians are printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="modelreg-bench-json-"))
    try:
        with moto(args.endpoint) as (endpoint, _):
            opts = options(endpoint)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).close()
            ops_url = f"s3://{bucket}/ops-registry"
            requests_per_operation(ops_url, opts, tmp)
            url = f"s3://{bucket}/registry"
            took = populate(url, opts, args.models, args.versions, tmp)
            n = args.models * args.versions
            print(
                f"\nPopulated {args.models} models x {args.versions} versions in {took:.1f} s "
                f"(8 threads, {n / took:.0f} registrations/s through the store API)"
            )
            search_timings(url, opts, tmp, n, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
