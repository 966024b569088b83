"""Cloud artifacts: register and download a large file on each emulator; compare with the SDKs.

For each backend (moto for S3, fake-gcs-server for GCS, Azurite for Azure Blob)
this starts the emulator on 127.0.0.1 and, each in a fresh child process:

- ``modelreg put``: ``FsspecArtifactStore.put_file`` of the file (the upload step
  of ``register``), timed, with the child's peak RSS;
- ``modelreg register`` and ``modelreg download``: the whole ``Registry.register``
  (hash + upload + commit) and ``Registry.download`` (stream, verify, cache),
  each with the child's peak RSS;
- the provider SDK's own upload call against the same emulator: boto3
  ``upload_file``, azure-storage-blob ``upload_blob`` (max_concurrency=4),
  google-cloud-storage ``upload_from_filename``.

It prints MiB/s, peak RSS and the ratio modelreg/SDK (target: >= 0.8x, RSS <= 200 MB).

    python benchmarks/bench_cloud.py                 # 1 GiB, all three
    python benchmarks/bench_cloud.py --size 256M --backends s3 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from tests import emulators as E  # noqa: E402  (emulator lifecycle shared with the tests)

MiB = 1024 * 1024

CHILD_PRELUDE = r"""
import json, os, resource, sys, time
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
args = json.loads(sys.argv[1])
def peak_rss():
    # VmHWM is this process's own peak; ru_maxrss after exec can include the parent's
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def report(seconds, cpu0, **extra):
    print(json.dumps({"seconds": seconds, "cpu": cpu() - cpu0, "rss": peak_rss(), **extra}))
"""

MODELREG_PUT = r"""
from modelreg.stores.artifacts import FsspecArtifactStore
from modelreg.hashing import sha256_file
digest, _ = sha256_file(args["src"])
store = FsspecArtifactStore(args["url"], **args["knobs"], **args["options"])
store.exists("sha256:" + "0" * 64)  # connect first, as the SDK child does by creating its client
c0, t0 = cpu(), time.perf_counter()
store.put_file(digest, args["src"])
report(time.perf_counter() - t0, c0)
"""

MODELREG_REGISTER = r"""
from modelreg import Registry
reg = Registry(metadata="sqlite:///" + args["db"], artifacts=args["url"],
               storage_options={**args["knobs"], **args["options"]})
c0, t0 = cpu(), time.perf_counter()
mv = reg.register("bench", args["src"], capture=None)
report(time.perf_counter() - t0, c0, version=mv.version)
"""

MODELREG_DOWNLOAD = r"""
from modelreg import Registry
reg = Registry(metadata="sqlite:///" + args["db"], artifacts=args["url"],
               storage_options={**args["knobs"], **args["options"]})
c0, t0 = cpu(), time.perf_counter()
path = reg.download("bench/" + str(args["version"]), args["dest"], overwrite=True)
report(time.perf_counter() - t0, c0)
os.unlink(path)
"""

SDK_S3 = r"""
import boto3
client = boto3.client("s3", endpoint_url=args["endpoint"], aws_access_key_id="bench", aws_secret_access_key="bench",
                      region_name="us-east-1")
c0, t0 = cpu(), time.perf_counter()
client.upload_file(args["src"], args["bucket"], "sdk/object")
report(time.perf_counter() - t0, c0)
"""

SDK_GCS = r"""
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": args["endpoint"]})
blob = client.bucket(args["bucket"]).blob("sdk/object")
c0, t0 = cpu(), time.perf_counter()
blob.upload_from_filename(args["src"])
report(time.perf_counter() - t0, c0)
"""

SDK_AZURE = r"""
from azure.storage.blob import BlobServiceClient
client = BlobServiceClient.from_connection_string(args["connection_string"])
blob = client.get_blob_client(args["bucket"], "sdk/object")
c0, t0 = cpu(), time.perf_counter()
with open(args["src"], "rb") as f:
    blob.upload_blob(f, overwrite=True, max_concurrency=4)
report(time.perf_counter() - t0, c0)
"""

SERVERS = {"s3": E.MotoServer, "gcs": E.FakeGcsServer, "azure": E.AzuriteServer}
OPTIONS = {"s3": E.s3_storage_options, "gcs": E.gcs_storage_options, "azure": E.azure_storage_options}
SCHEMES = {"s3": ("s3", "s3"), "gcs": ("gcs", "gs"), "azure": ("az", "az")}
SDK = {
    "s3": ("boto3 upload_file", SDK_S3),
    "gcs": ("google-cloud-storage upload_from_filename", SDK_GCS),
    "azure": ("azure-storage-blob upload_blob", SDK_AZURE),
}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 1024, "M": MiB, "G": 1024 * MiB}.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in "KMG" else text) * factor)


def child(code: str, args: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + code, json.dumps(args)], capture_output=True, text=True, env=env
    )
    if out.returncode:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_source(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n


def bench_backend(name: str, src: Path, size: int, work: Path, knobs: dict, repeat: int) -> dict:
    server = SERVERS[name](work / name)
    server.start()
    try:
        protocol, scheme = SCHEMES[name]
        options = OPTIONS[name](server)
        results: dict[str, list[dict]] = {"put": [], "register": [], "download": [], "sdk": []}
        for i in range(repeat):
            bucket = E.Bucket(
                f"bench-{i}-{os.getpid()}",
                f"{scheme}://bench-{i}-{os.getpid()}",
                options,
                server.endpoint,
                server,
                protocol,
            )
            bucket.create()
            common = {
                "src": str(src),
                "options": options,
                "knobs": knobs,
                "endpoint": server.endpoint,
                "bucket": bucket.name,
                "connection_string": getattr(server, "connection_string", ""),
            }
            fs = bucket.fs()
            runs = [
                ("sdk", SDK[name][1], {}, f"{bucket.name}/sdk"),
                ("put", MODELREG_PUT, {"url": f"{bucket.url}/put"}, f"{bucket.name}/put"),
            ]
            for key, code, extra, leftover in runs if i % 2 == 0 else runs[::-1]:  # alternate who goes first
                results[key].append(child(code, {**common, **extra}))
                fs.rm(leftover, recursive=True)  # keep the emulator's memory the same for every run
            db = work / f"{name}-{i}.db"
            reg = child(MODELREG_REGISTER, {**common, "url": f"{bucket.url}/reg", "db": str(db)})
            results["register"].append(reg)
            dest = work / f"dl-{name}-{i}"
            cache = work / f"cache-{name}-{i}"
            os.environ["MODELREG_CACHE_DIR"] = str(cache)
            results["download"].append(
                child(
                    MODELREG_DOWNLOAD,
                    {**common, "url": f"{bucket.url}/reg", "db": str(db), "version": reg["version"], "dest": str(dest)},
                )
            )
            import shutil

            shutil.rmtree(cache, ignore_errors=True)
            bucket.remove()
        return results
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1G", help="artifact size, e.g. 256M or 1G (default 1G)")
    parser.add_argument("--backends", default="s3,gcs,azure", help="comma separated: s3,gcs,azure")
    parser.add_argument("--repeat", type=int, default=1, help="runs per backend; the best of each is shown")
    parser.add_argument("--chunk-size", default=None, help="FsspecArtifactStore chunk_size (default: per backend)")
    parser.add_argument("--concurrency", type=int, default=None, help="FsspecArtifactStore concurrency")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    ns = parser.parse_args(argv)
    size = parse_size(ns.size)
    knobs: dict = {}
    if ns.chunk_size:
        knobs["chunk_size"] = parse_size(ns.chunk_size)
    if ns.concurrency:
        knobs["concurrency"] = ns.concurrency
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-") as tmp:
        work = Path(tmp)
        src = work / "model.bin"
        t0 = time.perf_counter()
        make_source(src, size)
        print(
            f"artifact: {size / MiB:.0f} MiB of random bytes (written in {time.perf_counter() - t0:.1f} s); "
            f"knobs: {knobs or 'per-backend defaults'}"
        )
        all_results = {}
        header = f"{'backend':8} {'step':42} {'MiB/s':>7} {'seconds':>8} {'CPU s':>6} {'peak RSS':>9}"
        print(header)
        print("-" * len(header))
        failed = False
        for name in [b.strip() for b in ns.backends.split(",") if b.strip()]:
            try:
                res = bench_backend(name, src, size, work, knobs, ns.repeat)
            except (E.EmulatorUnavailable, RuntimeError) as exc:
                print(f"{name:8} FAILED: {exc}")
                failed = True
                continue
            all_results[name] = res
            best = {k: min(v, key=lambda r: r["seconds"]) for k, v in res.items()}
            rows = [
                ("modelreg upload (put_file)", best["put"]),
                (SDK[name][0], best["sdk"]),
                ("modelreg register (hash+upload)", best["register"]),
                ("modelreg download (verified)", best["download"]),
            ]
            for label, r in rows:
                print(
                    f"{name:8} {label:42} {size / MiB / r['seconds']:7.1f} {r['seconds']:8.2f} {r['cpu']:6.2f} "
                    f"{r['rss'] / 1e6:6.0f} MB"
                )
            ratio = best["sdk"]["seconds"] / best["put"]["seconds"]
            worst_rss = max(r["rss"] for k in ("put", "register", "download") for r in res[k])
            print(
                f"{name:8} upload throughput modelreg/SDK = {ratio:.2f}x (target >= 0.8x); "
                f"modelreg peak RSS {worst_rss / 1e6:.0f} MB (target <= 200 MB)"
            )
            print()
        if ns.json:
            print(json.dumps(all_results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
