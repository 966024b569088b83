"""Writers on one bucket: modelreg's bucket registry against modelstore 0.0.82's S3 backend, on one moto server.

Both systems keep everything in the bucket, with no server of their own. modelreg's registry
(``Registry("s3://bucket/prefix", storage_options=...)``, JSON metadata on the bucket) gives each
model consecutive version numbers, taken with conditional writes (create-if-absent and
compare-and-swap) that can be refused (HTTP 412) when writers collide, and then retried. modelstore
(``ModelStore.from_aws_s3(bucket, root_prefix=prefix)``, ``upload(domain, model=<file>)``) gives each
upload a random id and never contends: it only overwrites the domain's "latest" document.

The script starts one ``python -m moto.server`` on a free 127.0.0.1 port and one bucket on it, and
registers files of 4 KiB of random bytes (a new file for every registration, so nothing is
deduplicated):

- **alone**: one process registers ``--ops`` versions of one model;
- **contention**: ``--writers`` processes register ``--ops`` versions each of the same model at the same
  time;

then, after the contention run, checks what the project's concurrency tests check: modelreg's
versions of that model are exactly 1..writers x ops (the union of the numbers the writers were
given is that range, with no duplicate; the registry lists exactly those; its audit log has as many
register events), and ``verify()`` is clean; for modelstore, every id an upload returned is listed back
(all writers x ops of them, plus the seed upload that created the domain).

Every registration runs in a child process (``_bucket_worker.py``): modelreg's with this interpreter,
modelstore's with the Python of a virtual environment the script makes (``<cache>/modelreg-bench/
bench-modelstore-venv``: ``python -m venv`` + ``pip install modelstore==0.0.82 boto3``; modelstore needs
nothing else to upload a plain file), since modelstore is not a dependency of modelreg. Before the
clock starts each worker imports its library, opens its client, registers one file to a model of its
own and reads the target model once (warm-up, not counted); the writers of the contention run then
wait for a common start signal. The target model exists before (modelreg: ``create_model`` with no
version; modelstore: one seed upload), made by the first worker before the others open their client.
Each registration is timed inside its process (wall time of the one call). Requests are counted at
the HTTP layer on the clients the libraries use, with botocore's events (``before-send.s3``: every
request sent, retries included; ``response-received.s3``: the status of every response): for
modelreg on the s3fs client of ``reg.metadata.fs`` / ``reg.artifacts.fs``, for modelstore on boto3's
default session before modelstore makes its client from it. "Refused writes" are HTTP 412 responses
(a create-if-absent or compare-and-swap that lost); modelreg's own count of lost swaps and taken
version numbers (``reg.metadata.conflicts``) is printed beside them.

The two systems alternate: modelreg first in even rounds, modelstore first in odd ones; each round
uses fresh prefixes and model names in the bucket. Per round: the median, mean and 90th percentile
(nearest rank) of all timed registrations of the scenario, and requests and 412 responses divided by
the registrations; the table shows the medians of these over the rounds. The mean is what a writer
waits per registration over its whole run: a few registrations that retry for long raise it while
the median stays low.

Goals (modelreg): alone <= 6 requests per registration; with 4 writers, the per-registration median
and mean <= 1.5x modelstore's and <= 10 requests per registration including retries; version numbers
consecutive and nothing lost. The script prints PASS/FAIL against them and exits 0 (``--check``: 1 if a
goal or a check fails); it exits 2 if the modelstore environment cannot be made. Note that moto
checks S3 preconditions but not atomically under truly simultaneous requests (see
``tests/test_races.py``), so a failed check here is worth re-running before it is blamed on modelreg.

    python benchmarks/bench_bucket_writers.py                     # 4 writers x 25, 3 rounds
    python benchmarks/bench_bucket_writers.py --quick --keep      # 10 registrations, 1 round; keep the venv
    python benchmarks/bench_bucket_writers.py --only modelreg     # modelreg alone, no venv, no ratios
    python benchmarks/bench_bucket_writers.py --writers 8 --ops 50 --rounds 5 --markdown
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _util import OtherLibrary, SetupError, bench_venv, ensure_venv, machine_summary, src_env  # noqa: E402
from bench_json import moto  # noqa: E402
from bench_vs_mlflow import git_commit  # noqa: E402

WORKER = HERE / "_bucket_worker.py"
SYSTEMS = ("modelreg", "modelstore")
SCENARIOS = ("alone", "contention")
MODELSTORE_SPEC = ("modelstore==0.0.82", "boto3")
MODELSTORE_VERSION = "0.0.82"
GOAL_ALONE_REQUESTS = 6.0
GOAL_RATIO = 1.5
GOAL_CONTENTION_REQUESTS = 10.0
TIMEOUT = 900.0


class WorkerError(RuntimeError):
    """A worker failed or did not answer."""


# -- the modelstore environment (made by _util.ensure_venv, as the MLflow one) -------------------------------


def default_venv() -> Path:
    return bench_venv("bench-modelstore-venv")


def modelstore_env(endpoint: str | None = None) -> dict[str, str]:
    """The environment of the modelstore children: no modelreg on the path, boto3 pointed at moto with
    the benchmark's credentials and nothing from the user's AWS configuration."""
    drop = ("PYTHONPATH", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    if endpoint:
        env["AWS_ENDPOINT_URL_S3"] = endpoint  # boto3 >= 1.28 reads it
    return env


MODELSTORE = OtherLibrary(
    label="modelstore",
    packages=MODELSTORE_SPEC,
    probe="import boto3, modelstore; from importlib.metadata import version; print(version('modelstore'))",
    env=modelstore_env,
    version=MODELSTORE_VERSION,
)


# -- workers ------------------------------------------------------------------------------------------------


def child_env(system: str, endpoint: str) -> dict[str, str]:
    return modelstore_env(endpoint) if system == "modelstore" else src_env()


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def config(system: str, mode: str, endpoint: str, bucket: str, prefix: str, model: str, **extra: Any) -> str:
    return json.dumps(
        {
            "system": system,
            "mode": mode,
            "endpoint": endpoint,
            "bucket": bucket,
            "prefix": prefix,
            "model": model,
            **extra,
        }
    )


def run_writers(
    system: str, python: str, endpoint: str, bucket: str, prefix: str, model: str, writers: int, ops: int, folder: Path
) -> dict[str, Any]:
    """``writers`` processes register ``ops`` files each to ``model``, started together; returns their reports."""
    sync = folder / "sync"
    sync.mkdir(parents=True)
    env = child_env(system, endpoint)
    procs: list[tuple[subprocess.Popen[str], Path, Any]] = []
    try:
        for w in range(writers):
            cfg = config(
                system,
                "run",
                endpoint,
                bucket,
                prefix,
                model,
                ops=ops,
                wid=w,
                sync=str(sync),
                work=str(folder / f"w{w}"),
                setup=w == 0,
            )
            log_path = folder / f"w{w}.log"
            log = open(log_path, "wb")  # noqa: SIM115 (closed below)
            procs.append(
                (
                    subprocess.Popen(
                        [python, str(WORKER), cfg],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        env=env,
                        cwd=folder,
                        text=True,
                    ),
                    log_path,
                    log,
                )
            )
        deadline = time.monotonic() + TIMEOUT
        while not all((sync / f"ready-{w}").exists() for w in range(writers)):
            for w, (p, log_path, _) in enumerate(procs):
                if p.poll() is not None:
                    raise WorkerError(
                        f"{system} writer {w} exited ({p.returncode}) before the start:\n{tail(log_path)}"
                    )
            if time.monotonic() > deadline:
                raise WorkerError(f"the {system} writers were not ready after {TIMEOUT:.0f} s")
            time.sleep(0.01)
        go = time.time()
        (sync / "go").touch()
        reports = []
        for w, (p, log_path, _) in enumerate(procs):
            try:
                out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise WorkerError(f"{system} writer {w} did not finish in time:\n{tail(log_path)}") from None
            lines = out.strip().splitlines()
            if p.returncode != 0 or not lines:
                raise WorkerError(f"{system} writer {w} failed (exit {p.returncode}):\n{tail(log_path)}")
            reports.append(json.loads(lines[-1]))
    finally:
        for p, _, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    return {"go": go, "reports": reports}


def check_model(
    system: str, python: str, endpoint: str, bucket: str, prefix: str, model: str, folder: Path
) -> dict[str, Any]:
    """A new process lists the model back (and, for modelreg, runs verify())."""
    cfg = config(system, "check", endpoint, bucket, prefix, model, work=str(folder / "check"))
    proc = subprocess.run(
        [python, str(WORKER), cfg],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(system, endpoint),
        cwd=folder,
        timeout=TIMEOUT,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise WorkerError(f"the {system} check failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# -- one scenario, its figures and its checks ------------------------------------------------------------------


def nearest_rank(samples: Sequence[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def figures(run: dict[str, Any]) -> dict[str, Any]:
    reps = run["reports"]
    lat = [x for r in reps for x in r["lat"]]
    n = len(lat)
    conflicts: dict[str, int] = {}
    for r in reps:
        for k, v in r["conflicts"].items():
            conflicts[k] = conflicts.get(k, 0) + int(v)
    wall = max(r["end"] for r in reps) - run["go"]
    return {
        "n": n,
        "median": statistics.median(lat),
        "mean": statistics.fmean(lat),
        "p90": nearest_rank(lat, 0.9),
        "max": max(lat),
        "req": sum(sum(r["req"]) for r in reps) / n,
        "refused": sum(sum(r["s412"]) for r in reps) / n,
        "s409": sum(sum(r["s409"]) for r in reps),
        "conflicts": conflicts,
        "wall": wall,
        "throughput": n / wall,
        "version": reps[0]["version"],
        "python": reps[0]["python"],
    }


def check_modelreg(run: dict[str, Any], listed: dict[str, Any], expected: int) -> list[str]:
    """What is wrong with a modelreg run (an empty list: nothing)."""
    problems = []
    got = [int(v) for r in run["reports"] for v in r["got"]]
    if len(got) != expected:
        problems.append(f"{len(got)} registrations reported, expected {expected}")
    dup = sorted({v for v in got if got.count(v) > 1})
    if dup:
        problems.append(f"version numbers given twice: {dup[:10]}")
    if sorted(got) != list(range(1, expected + 1)):
        missing = sorted(set(range(1, expected + 1)) - set(got))
        extra = sorted(set(got) - set(range(1, expected + 1)))
        problems.append(f"the numbers given are not 1..{expected}: missing {missing[:10]}, outside {extra[:10]}")
    if listed["versions"] != list(range(1, expected + 1)):
        problems.append(
            f"the registry lists {len(listed['versions'])} versions, not 1..{expected} "
            f"(first {listed['versions'][:5]}, last {listed['versions'][-5:]})"
        )
    if listed["register_events"] != expected:
        problems.append(f"the audit log has {listed['register_events']} register events, expected {expected}")
    if not listed["verify_ok"]:
        problems.append("verify() found problems: " + "; ".join(listed["problems"]))
    return problems


def check_modelstore(run: dict[str, Any], listed: dict[str, Any], expected: int) -> list[str]:
    problems = []
    got = [str(i) for r in run["reports"] for i in r["got"]]
    seeds = {str(r["seed"]) for r in run["reports"] if r.get("seed")}
    if len(got) != expected or len(set(got)) != len(got):
        problems.append(f"{len(got)} uploads reported ({len(set(got))} distinct ids), expected {expected}")
    ids = listed["ids"]
    if len(set(ids)) != len(ids):
        problems.append("an id is listed twice")
    lost = (set(got) | seeds) - set(ids)
    if lost:
        problems.append(f"{len(lost)} uploaded ids are not listed back")
    unknown = set(ids) - set(got) - seeds
    if unknown:
        problems.append(f"{len(unknown)} listed ids were never uploaded")
    return problems


# -- the report -------------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    v = seconds * 1e3
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def med(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def table(rows: list[list[str]], head: list[str], markdown: bool) -> str:
    if markdown:
        rule = "|".join("---" if i < 2 else "---:" for i in range(len(head)))
        out = ["| " + " | ".join(head) + " |", "|" + rule + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    lines = [head, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        cells = (c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths, strict=False)))
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# -- main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", type=int, default=4, help="processes of the contention run (default 4)")
    ap.add_argument("--ops", type=int, default=None, help="registrations per process (default 25, 10 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds, systems alternating (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="10 registrations per process, 1 round")
    ap.add_argument(
        "--only",
        choices=SYSTEMS,
        default=None,
        help="run one system alone (no ratios; --only modelreg needs no modelstore environment)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="reuse the modelstore virtual environment if it works, and keep it afterwards "
        "(without it, the environment is made anew and removed at the end)",
    )
    ap.add_argument(
        "--venv", type=Path, default=None, help=f"where the modelstore environment goes (default {default_venv()})"
    )
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--tmpdir", default=None, help="where the workers' files go")
    ap.add_argument("--check", action="store_true", help="exit 1 if a goal or a check fails")
    args = ap.parse_args(argv)
    args.ops = args.ops or (10 if args.quick else 25)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.writers < 1 or args.ops < 1 or args.rounds < 1:
        ap.error("--writers, --ops and --rounds must be at least 1")
    systems = (args.only,) if args.only else SYSTEMS

    print(
        f"modelreg's bucket registry vs modelstore {MODELSTORE_VERSION} (S3), {_dt.date.today().isoformat()}, "
        f"commit {git_commit()}: {machine_summary()}",
        flush=True,
    )
    venv = args.venv or default_venv()
    made_venv = False
    pythons = {"modelreg": sys.executable}
    if "modelstore" in systems:
        try:
            python, _ = ensure_venv(venv, MODELSTORE, args.keep)
        except (SetupError, OSError, subprocess.SubprocessError) as exc:
            print(f"error: cannot make the modelstore environment: {exc}", file=sys.stderr)
            return 2
        pythons["modelstore"] = str(python)
        made_venv = not args.keep

    import moto as _moto

    workdir = Path(tempfile.mkdtemp(prefix="modelreg-bench-bucket-", dir=args.tmpdir))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {sc: {s: [] for s in systems} for sc in SCENARIOS}
    problems: dict[str, list[str]] = {s: [] for s in systems}
    expected = args.writers * args.ops
    try:
        with moto(None) as (endpoint, _):
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).close()
            print(
                f"moto {_moto.__version__} at {endpoint}, bucket {bucket}; alone: 1 x {args.ops}, contention: "
                f"{args.writers} x {args.ops} registrations of a 4 KiB file; {args.rounds} round(s)",
                flush=True,
            )
            for r in range(args.rounds):
                order = list(systems) if r % 2 == 0 else list(reversed(systems))
                tag = f"r{r}-{uuid.uuid4().hex[:6]}"
                for scenario in SCENARIOS:
                    writers = 1 if scenario == "alone" else args.writers
                    for s in order:
                        folder = workdir / tag / f"{scenario}-{s}"
                        prefix, model = f"{tag}/{scenario}-{s}", f"{scenario}-model"
                        run = run_writers(s, pythons[s], endpoint, bucket, prefix, model, writers, args.ops, folder)
                        fig = figures(run)
                        note = ""
                        if scenario == "contention":
                            listed = check_model(s, pythons[s], endpoint, bucket, prefix, model, folder)
                            found = (check_modelreg if s == "modelreg" else check_modelstore)(run, listed, expected)
                            problems[s] += [f"round {r + 1}: {p}" for p in found]
                            note = "; checks " + ("PASS" if not found else "FAIL: " + "; ".join(found))
                        results[scenario][s].append(fig)
                        extra = f", conflicts {fig['conflicts']}" if fig["conflicts"] else ""
                        print(
                            f"  round {r + 1}/{args.rounds} {scenario:10} {s:10} median {ms(fig['median'])} ms, "
                            f"mean {ms(fig['mean'])} ms, p90 {ms(fig['p90'])} ms, max {ms(fig['max'])} ms, "
                            f"{fig['req']:.2f} requests/op, {fig['refused']:.2f} refused/op"
                            f"{extra}, {fig['throughput']:.1f} ops/s{note}",
                            flush=True,
                        )
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if made_venv:
            shutil.rmtree(venv, ignore_errors=True)

    # the table: medians over the rounds
    head = [
        "scenario",
        "system",
        "per-op median ms",
        "mean ms",
        "p90 ms",
        "requests/op",
        "refused writes/op",
        "modelreg/modelstore (median / mean)",
    ]
    rows = []
    for scenario in SCENARIOS:
        label = f"alone (1 x {args.ops})" if scenario == "alone" else f"contention ({args.writers} x {args.ops})"
        for s in systems:
            rs = results[scenario][s]
            ratio = "-"
            if s == "modelreg" and "modelstore" in systems:
                other = results[scenario]["modelstore"]
                ratio = f"{med(rs, 'median') / med(other, 'median'):.2f}x / {med(rs, 'mean') / med(other, 'mean'):.2f}x"
            rows.append(
                [
                    label,
                    s,
                    ms(med(rs, "median")),
                    ms(med(rs, "mean")),
                    ms(med(rs, "p90")),
                    f"{med(rs, 'req'):.2f}",
                    f"{med(rs, 'refused'):.2f}",
                    ratio,
                ]
            )
    versions = ", ".join(
        f"{s} {results['alone'][s][0]['version']} (Python {results['alone'][s][0]['python']})" for s in systems
    )
    print(
        f"\n{versions}; medians over {args.rounds} round(s); requests = HTTP requests sent (retries included), "
        "refused writes = HTTP 412 responses"
    )
    print(table(rows, head, markdown=False))
    if args.markdown:
        print()
        print(table(rows, head, markdown=True))
    if "modelreg" in systems:
        cont = results["contention"]["modelreg"]
        state = sum(f["conflicts"].get("state", 0) for f in cont) / sum(f["n"] for f in cont)
        taken = sum(f["conflicts"].get("version", 0) for f in cont) / sum(f["n"] for f in cont)
        print(
            f"modelreg under contention, per registration (all rounds): {state:.2f} lost compare-and-swaps of the "
            f"state, {taken:.2f} version numbers taken by another writer (reg.metadata.conflicts); "
            f"{sum(f['s409'] for f in cont)} HTTP 409 in all"
        )
    for s in systems:
        per_round = ", ".join(f"{f['throughput']:.1f}" for f in results["contention"][s])
        print(f"{s} throughput under contention: {per_round} registrations/s (per round)")

    # goals and checks
    verdicts: list[tuple[str, bool | None]] = []
    if "modelreg" in systems:
        alone_req = med(results["alone"]["modelreg"], "req")
        cont = results["contention"]["modelreg"]
        verdicts.append(
            (
                f"modelreg alone: {alone_req:.2f} requests per registration (goal <= {GOAL_ALONE_REQUESTS:g})",
                alone_req <= GOAL_ALONE_REQUESTS,
            )
        )
        if "modelstore" in systems:
            other = results["contention"]["modelstore"]
            ratio = med(cont, "median") / med(other, "median")
            verdicts.append(
                (
                    f"modelreg with {args.writers} writers: per-op median {ratio:.2f}x modelstore's "
                    f"(goal <= {GOAL_RATIO:g}x)",
                    ratio <= GOAL_RATIO,
                )
            )
            # the mean is each writer's wall time per registration: a tail of long retries shows there
            ratio = med(cont, "mean") / med(other, "mean")
            verdicts.append(
                (
                    f"modelreg with {args.writers} writers: per-op mean {ratio:.2f}x modelstore's "
                    f"(goal <= {GOAL_RATIO:g}x)",
                    ratio <= GOAL_RATIO,
                )
            )
        else:
            verdicts.append((f"modelreg with {args.writers} writers vs modelstore: not measured (--only)", None))
        creq = med(cont, "req")
        verdicts.append(
            (
                f"modelreg with {args.writers} writers: {creq:.2f} requests per registration, retries "
                f"included (goal <= {GOAL_CONTENTION_REQUESTS:g})",
                creq <= GOAL_CONTENTION_REQUESTS,
            )
        )
        verdicts.append(
            (
                f"modelreg: numbers 1..{expected} consecutive, none duplicated or lost, audit log complete, "
                "verify() clean, in every round",
                not problems["modelreg"],
            )
        )
    if "modelstore" in systems:
        verdicts.append(
            (f"modelstore: all {expected} uploaded ids listed back, in every round", not problems["modelstore"])
        )
    print()
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL' if ok is False else '----'}  {text}")
    for s in systems:
        for p in problems[s]:
            print(f"  {s}: {p}")
    failed = [text for text, ok in verdicts if ok is False]
    if any(problems.values()):
        print(
            "(moto checks S3 preconditions but not atomically under truly simultaneous requests: re-run a "
            "failed check before blaming it on the registry)"
        )
    print(f"goals: {'PASS' if not failed else 'FAIL'}" + (" (only those one system can show)" if args.only else ""))
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
