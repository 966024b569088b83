"""Cost of one change as a model's history grows: 10 versions against 10,000 (by default).

Every workflow change (set_alias, delete_alias, transition, rollback, set_tags, set_description,
log_metrics, and a governed request -> approve -> complete) is timed through ``Registry`` on two
models of the same registry, a small one and a large one, interleaved call by call, and the
median of the large model's calls is divided by the small model's. Flat means a ratio near 1:
the targets are 1.3x on SQLite and 2x on the JSON store (whose state document still holds every
version's stage, tags and metrics: see docs/performance.md). Populating goes through the
MetadataStore directly (one shared artifact), as bench_core.py does.

    python benchmarks/bench_scale.py                       # SQLite and JSON (local folder), 10 vs 10,000
    python benchmarks/bench_scale.py --big 2000 --calls 30 --stores sqlite
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import Report, fmt_time, machine_summary

TARGETS = {"sqlite": 1.3, "json": 2.0}


def open_registry(kind: str, root: Path):
    from modelreg import Registry

    if kind == "sqlite":
        return Registry(root / "reg")
    return Registry(metadata=f"json+file://{root}/meta", artifacts=str(root / "blobs"))


def populate(reg, name: str, n: int, blob: Path) -> None:
    from modelreg.hashing import sha256_file
    from modelreg.models import Artifact, EventDraft, FileEntry, RegisteredModel, VersionDraft, utcnow

    digest, size = sha256_file(blob)
    reg.artifacts.put_file(digest, blob)
    artifact = Artifact(
        kind="file",
        name="model.bin",
        digest=digest,
        size=size,
        files=[FileEntry(path="model.bin", digest=digest, size=size)],
    )
    now = utcnow()
    store = reg.metadata
    store.create_model(
        RegisteredModel(name=name, owner="bench", created_at=now, updated_at=now),
        EventDraft(action="create_model", actor="bench", after={"owner": "bench"}),
    )
    for v in range(n):
        draft = VersionDraft(
            name=name,
            artifact=artifact,
            created_by="bench",
            metrics={"auc": 0.5 + v % 50 / 100},
            tags={"team": "fraud" if v % 2 else "growth"},
        )
        store.add_version(
            draft,
            EventDraft(
                action="register",
                actor="bench",
                after={"digest": digest, "size": size, "files": 1, "stage": "experimental"},
            ),
        )


def operations(reg, name: str, top: int) -> dict[str, Callable[[], object]]:
    """One call of each change on ``name`` (whose versions are 1..top); each call changes something."""
    counter = {"k": 0}

    def k() -> int:
        counter["k"] += 1
        return counter["k"]

    def transition() -> object:
        # two versions take turns in production: each call promotes one and archives the other
        v = top if reg.get_version(name, top).stage.value != "production" else top - 1
        return reg.transition(name, v, "production", actor="bench")

    def rollback() -> object:
        return reg.rollback(name, "production", actor="bench")

    def governed() -> object:
        # staging needs one approval (set by run()): request, approve, complete, then archive again
        v = top - 2 - (k() % 2)
        req = reg.request_transition(f"{name}/{v}", "staging", actor="dev")
        done = reg.approve(req.id, actor="lead")  # the last approval completes it (auto-complete)
        if done.status != "completed":
            done = reg.complete(req.id, actor="dev")
        reg.transition(name, v, "archived", actor="bench")
        return done

    return {
        "set_alias": lambda: reg.set_alias(name, f"a{k() % 5}", top - k() % 3, actor="bench"),
        "delete_alias": lambda: (
            reg.set_alias(name, "tmp", top, actor="bench"),
            reg.delete_alias(name, "tmp", actor="bench"),
        ),
        "transition": transition,
        "rollback": rollback,
        "set_tags": lambda: reg.set_tags(f"{name}/{top}", {"note": str(k())}, actor="bench"),
        "set_description": lambda: reg.set_description(f"{name}/{top}", f"d{k()}", actor="bench"),
        "log_metrics": lambda: reg.log_metrics(f"{name}/{top}", {"live_auc": k() / 1e6}, actor="bench"),
        "request+approve(+complete)": governed,
    }


def prepare(reg, name: str, top: int) -> None:
    """Give each model two production changes in its history, so rollback has somewhere to go."""
    reg.transition(name, top - 1, "production", actor="bench")
    reg.transition(name, top, "production", actor="bench")


def run(kind: str, small: int, big: int, calls: int, report: Report) -> None:
    from modelreg.governance.policy import Gate, Policy

    with tempfile.TemporaryDirectory(prefix="modelreg-bench-scale-") as tmp:
        root = Path(tmp)
        blob = root / "model.bin"
        blob.write_bytes(b"weights" * 100)
        reg = open_registry(kind, root)
        started = time.perf_counter()
        populate(reg, "small", small, blob)
        populate(reg, "big", big, blob)
        print(f"{kind}: populated {small} + {big} versions in {time.perf_counter() - started:.1f} s", flush=True)
        # staging needs one approval, so request -> approve -> complete does real work
        reg.set_policy(Policy(gates={"staging": Gate(approvals=1)}), actor="bench")
        for name, top in (("small", small), ("big", big)):
            prepare(reg, name, top)
        ops = {"small": operations(reg, "small", small), "big": operations(reg, "big", big)}
        for op in ops["small"]:
            samples: dict[str, list[float]] = {"small": [], "big": []}
            for i in range(calls + 2):
                for name in ("small", "big") if i % 2 else ("big", "small"):  # interleaved, order alternating
                    t0 = time.perf_counter()
                    ops[name][op]()
                    if i >= 2:  # two warm-up rounds
                        samples[name].append(time.perf_counter() - t0)
            a, b = statistics.median(samples["small"]), statistics.median(samples["big"])
            report.add(
                f"{kind} {op}: {big:,} vs {small} versions",
                b / a,
                target=TARGETS[kind],
                fmt=lambda x: f"{x:.2f}x",
                note=f"{fmt_time(b)} vs {fmt_time(a)}",
            )
        assert reg.verify(blobs=False).ok
        reg.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=10, help="versions of the small model (default 10)")
    ap.add_argument("--big", type=int, default=10_000, help="versions of the large model (default 10,000)")
    ap.add_argument("--calls", type=int, default=40, help="timed calls per operation and model (default 40)")
    ap.add_argument("--stores", default="sqlite,json", help="comma-separated: sqlite, json")
    ap.add_argument("--quick", action="store_true", help="1,000 versions, 15 calls")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--check", action="store_true", help="exit 1 if a ratio misses its target")
    args = ap.parse_args(argv)
    if args.quick:
        args.big, args.calls = min(args.big, 1000), min(args.calls, 15)
    print(machine_summary(), flush=True)
    report = Report("cost of one change, large model / small model")
    for kind in [s.strip() for s in args.stores.split(",") if s.strip()]:
        if kind not in TARGETS:
            ap.error(f"unknown store {kind!r}; use sqlite or json")
        run(kind, args.small, args.big, args.calls, report)
    return report.finish(markdown=args.markdown, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
