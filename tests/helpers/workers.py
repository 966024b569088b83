"""Worker processes for tests/test_concurrency.py. Each worker opens the registry, reports ready,
waits for the common start signal (a file), does its work, and prints a JSON result on stdout.

usage: workers.py TASK REGISTRY_FOLDER SYNC_DIR WORKER_ID COUNT [ARGS...]

TASK:
  register   COUNT registrations of model "churn" with distinct content; prints the version numbers
  promote    COUNT promotions of random versions of "churn" (ARGS: the version numbers) to production;
             prints how many succeeded and how many were refused as already in production
  annotate   COUNT times: set alias w<ID>-<i> and log metric w<ID>_m<i> on "churn/1"; prints "ok"
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from modelreg import InvalidTransitionError, Registry


def wait_for_start(sync: Path, worker: str) -> None:
    (sync / f"ready-{worker}").touch()
    deadline = time.monotonic() + 120
    while not (sync / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal within 120 s")
        time.sleep(0.002)


def main() -> int:
    task, root, sync_dir, worker, count, *rest = sys.argv[1:]
    sync, n = Path(sync_dir), int(count)
    reg = Registry(root)
    work = sync / f"files-{worker}"
    work.mkdir(exist_ok=True)
    if task == "register":
        files = []
        for i in range(n):
            f = work / f"model-{i}.bin"
            f.write_bytes(f"worker {worker} model {i}".encode())
            files.append(f)
        wait_for_start(sync, worker)
        versions = [reg.register("churn", f, capture=None, actor=f"worker-{worker}").version for f in files]
        print(json.dumps(versions))
    elif task == "promote":
        candidates = [int(v) for v in rest]
        rng = random.Random(int(worker))
        wait_for_start(sync, worker)
        done = refused = 0
        for _ in range(n):
            try:
                reg.transition("churn", rng.choice(candidates), "production", actor=f"worker-{worker}", strict=True)
                done += 1
            except InvalidTransitionError as exc:
                if "already in production" not in str(exc):
                    raise
                refused += 1
        print(json.dumps({"done": done, "refused": refused}))
    elif task == "annotate":
        wait_for_start(sync, worker)
        for i in range(n):
            reg.set_alias("churn", f"w{worker}-{i}", 1 + i % 2, actor=f"worker-{worker}")
            reg.log_metrics("churn/1", {f"w{worker}_m{i}": float(i)}, actor=f"worker-{worker}")
        print(json.dumps("ok"))
    else:
        print(f"unknown task {task!r}", file=sys.stderr)
        return 2
    reg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
