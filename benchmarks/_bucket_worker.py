"""The worker of ``bench_bucket_writers.py``: one registry client in one process, timed from inside.

It imports only one system's library:

- ``modelreg``: ``modelreg.Registry`` on ``s3://<bucket>/<prefix>`` (JSON metadata on the bucket, s3fs),
  run by the benchmark's own interpreter;
- ``modelstore``: ``ModelStore.from_aws_s3(bucket, root_prefix=prefix)`` (boto3), run by the Python of
  the benchmark's virtual environment (modelstore is not a dependency of modelreg). The S3 endpoint
  and the credentials come from the environment (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ...).

Usage (the benchmark starts it)::

    python _bucket_worker.py CONFIG_JSON

``CONFIG_JSON`` is a JSON object: ``system``, ``mode`` (``run`` or ``check``), ``endpoint``,
``bucket``, ``prefix``, ``model``, and for ``run``: ``ops``, ``wid``, ``sync`` (a folder for the start
signal), ``work`` (a folder of its own), ``setup`` (this worker prepares the model first).

``run``: a worker with ``setup`` prepares the target (modelreg: ``create_model``, no version;
modelstore: one seed upload, which creates the domain's "latest" document) and then creates
``<sync>/seeded``; the others wait for that file before they open their client. Every worker then
warms up outside the clock (imports, client, connection: one registration to a model of its own,
and one read of the target model), writes its ``ops`` files of random bytes, creates
``<sync>/ready-<wid>`` and waits for ``<sync>/go``. Then it registers the files one after the other
to the target model and prints one JSON line: the wall time, HTTP requests and HTTP 412 responses
of every registration, and what each registration returned (version number / model id).

``check``: a new client lists the target model back: modelreg gives the version numbers, the register
events of its audit log and ``verify()``; modelstore gives the listed model ids.

Requests are counted at the HTTP layer by botocore's events on the very clients the libraries use:
``before-send.s3`` (every HTTP request, retries included) and ``response-received.s3`` (the status of
every HTTP response). For modelreg they are registered on the s3fs client (``reg.metadata.fs.s3`` and
``reg.artifacts.fs.s3``); for modelstore on boto3's default session before modelstore creates its
client with ``boto3.client("s3")`` (a botocore client copies its session's handlers when it is made),
so nothing in modelstore is patched.

Only the standard library is imported at module level.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

FILE_SIZE = 4096


class Counter:
    """HTTP requests sent and responses by status, from botocore's event hooks (thread-safe)."""

    def __init__(self) -> None:
        self.sent = 0
        self.status: dict[int, int] = {}
        self.lock = threading.Lock()
        self.attached: set[int] = set()

    def attach(self, events: Any) -> None:
        if id(events) in self.attached:
            return
        self.attached.add(id(events))
        events.register("before-send.s3", self._on_send)
        events.register("response-received.s3", self._on_response)

    def _on_send(self, **_: Any) -> None:
        with self.lock:
            self.sent += 1

    def _on_response(self, response_dict: Any = None, **_: Any) -> None:
        code = int((response_dict or {}).get("status_code") or 0)
        with self.lock:
            self.status[code] = self.status.get(code, 0) + 1

    def snapshot(self) -> tuple[int, int, int]:
        """(requests sent, 412 responses, 409 responses) so far."""
        with self.lock:
            return self.sent, self.status.get(412, 0), self.status.get(409, 0)


# -- the two systems ---------------------------------------------------------------------------------------


class Modelreg:
    def __init__(self, cfg: dict[str, Any], counter: Counter) -> None:
        from modelreg import Registry

        self.model = cfg["model"]
        opts = {
            "key": "bench",
            "secret": "bench",
            "endpoint_url": cfg["endpoint"],
            "client_kwargs": {"region_name": "us-east-1"},
        }
        cache = cfg.get("cache") or os.path.join(cfg["work"], "cache")
        self.reg = Registry(f"s3://{cfg['bucket']}/{cfg['prefix']}", storage_options=opts, cache_dir=cache)
        for fs in (self.reg.metadata.fs, self.reg.artifacts.fs):
            counter.attach(fs.s3.meta.events)

    @staticmethod
    def version() -> str:
        import modelreg

        return str(getattr(modelreg, "__version__", "?"))

    def setup(self) -> Any:
        self.reg.create_model(self.model)
        return None

    def warm_up(self, path: Path, wid: int) -> None:
        self.reg.register(f"warmup-{wid}", path, capture=None)
        self.reg.get_model(self.model)

    def register(self, path: Path) -> int:
        return int(self.reg.register(self.model, path, capture=None).version)

    def conflicts(self) -> dict[str, int]:
        return dict(getattr(self.reg.metadata, "conflicts", None) or {})

    def check(self) -> dict[str, Any]:
        versions = [int(v.version) for v in self.reg.list_versions(self.model)]
        registers = sum(1 for e in self.reg.history(self.model) if e.action == "register")
        report = self.reg.verify()
        return {
            "versions": versions,
            "register_events": registers,
            "verify_ok": bool(report.ok),
            "problems": [f"{p.kind}: {p.detail}" for p in report.problems][:10],
            "events_checked": report.events_checked,
            "blobs_checked": report.blobs_checked,
        }


class Modelstore:
    def __init__(self, cfg: dict[str, Any], counter: Counter) -> None:
        import boto3

        boto3.setup_default_session(region_name="us-east-1")
        counter.attach(boto3.DEFAULT_SESSION.events)  # before modelstore makes its client from it
        from modelstore import ModelStore

        self.domain = cfg["model"]
        self.work = Path(cfg["work"])
        self.ms = ModelStore.from_aws_s3(cfg["bucket"], region="us-east-1", root_prefix=cfg["prefix"])
        if counter.snapshot()[0] == 0:  # opening sent a HEAD of the bucket through modelstore's client
            raise RuntimeError("modelstore's S3 client does not report its requests to the counter")

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return version("modelstore")

    def setup(self) -> Any:
        seed = self.work / "seed.bin"
        seed.write_bytes(os.urandom(FILE_SIZE))
        return self.ms.upload(self.domain, model=str(seed))["model"]["model_id"]

    def warm_up(self, path: Path, wid: int) -> None:
        self.ms.upload(f"warmup-{wid}", model=str(path))
        self.ms.get_domain(self.domain)

    def register(self, path: Path) -> str:
        return str(self.ms.upload(self.domain, model=str(path))["model"]["model_id"])

    def conflicts(self) -> dict[str, int]:
        return {}

    def check(self) -> dict[str, Any]:
        return {"ids": [str(i) for i in self.ms.list_models(self.domain)]}


SYSTEMS = {"modelreg": Modelreg, "modelstore": Modelstore}


# -- the modes ---------------------------------------------------------------------------------------------


def wait_for(path: Path, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} after {timeout:.0f} s")
        time.sleep(0.001)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    sync, work, wid, ops = Path(cfg["sync"]), Path(cfg["work"]), int(cfg["wid"]), int(cfg["ops"])
    work.mkdir(parents=True, exist_ok=True)
    counter = Counter()
    seed = None
    if cfg.get("setup"):
        side = SYSTEMS[cfg["system"]](cfg, counter)
        seed = side.setup()
        (sync / "seeded").touch()
    else:
        wait_for(sync / "seeded")
        side = SYSTEMS[cfg["system"]](cfg, counter)
    warm = work / "warmup.bin"
    warm.write_bytes(os.urandom(FILE_SIZE))
    side.warm_up(warm, wid)
    files = []
    for i in range(ops):
        f = work / f"model-{i}.bin"  # a new random file each time: nothing can be deduplicated
        f.write_bytes(os.urandom(FILE_SIZE))
        files.append(f)
    if counter.snapshot()[0] == 0:
        raise RuntimeError("no HTTP request was counted during the warm-up: the counter is not attached")
    conflicts_before = side.conflicts()
    (sync / f"ready-{wid}").touch()
    wait_for(sync / "go")
    start = time.time()
    lat: list[float] = []
    req: list[int] = []
    s412: list[int] = []
    s409: list[int] = []
    got: list[Any] = []
    clock = time.perf_counter
    for f in files:
        n0, a0, b0 = counter.snapshot()
        t0 = clock()
        got.append(side.register(f))
        dt = clock() - t0
        n1, a1, b1 = counter.snapshot()
        lat.append(dt)
        req.append(n1 - n0)
        s412.append(a1 - a0)
        s409.append(b1 - b0)
    end = time.time()
    after = side.conflicts()
    conflicts = {k: after.get(k, 0) - conflicts_before.get(k, 0) for k in after}
    return {
        "lat": lat,
        "req": req,
        "s412": s412,
        "s409": s409,
        "got": got,
        "start": start,
        "end": end,
        "conflicts": conflicts,
        "seed": seed,
        "version": side.version(),
        "python": sys.version.split()[0],
    }


def check(cfg: dict[str, Any]) -> dict[str, Any]:
    work = Path(cfg["work"])
    work.mkdir(parents=True, exist_ok=True)
    side = SYSTEMS[cfg["system"]](cfg, Counter())
    return side.check()


def main() -> int:
    cfg = json.loads(sys.argv[1])
    out = run(cfg) if cfg["mode"] == "run" else check(cfg)
    sys.stdout.write(json.dumps({"ok": True, **out}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
