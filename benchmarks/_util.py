"""Shared helpers for the benchmark scripts: timing, child processes, peak RSS, reporting.

Nothing here imports modelreg, so a script can time ``import modelreg`` itself.

- :func:`time_calls` / :func:`time_call`: run a callable N times, return :class:`Stats`
  (median, min, max, the raw samples).
- :func:`run_child`: run a command in a child process and return its wall time, exit
  code, output and ``ru_maxrss`` (of that one child, read with ``os.wait4``; see
  :class:`ChildResult` for its limits).
- :class:`Report`: rows of (what, measured, target, baseline) printed as a table with
  PASS/FAIL, and a :meth:`Report.markdown` rendering for ``benchmarks/README.md``.
- :class:`OtherLibrary` and :func:`ensure_venv`: a library modelreg is compared with (MLflow,
  modelstore), installed in a virtual environment of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FIND_HEAVY",
    "HEAVY_MODULES",
    "ChildResult",
    "OtherLibrary",
    "Report",
    "Row",
    "SetupError",
    "Stats",
    "bench_venv",
    "ensure_venv",
    "fmt_bytes",
    "fmt_mb",
    "fmt_time",
    "machine_summary",
    "make_random_file",
    "run_child",
    "sha256_pass",
    "src_env",
    "time_call",
    "time_calls",
    "venv_python",
]

ROOT = Path(__file__).resolve().parents[1]

HEAVY_MODULES = (
    "asyncio",
    "fsspec",
    "fsspec.asyn",
    "modelreg.stores._cloud",
    "s3fs",
    "gcsfs",
    "adlfs",
    "boto3",
    "botocore",
    "aiobotocore",
    "azure",
    "google",
    "aiohttp",
    "starlette",
    "jinja2",
    "pandas",
    "numpy",
    "sqlite_utils",
)
"""Modules a local registry should not import (asyncio came through fsspec and the cloud module);
``tests/test_import_hygiene.py`` asserts the same list."""

FIND_HEAVY = f"""
def heavy(modules):
    names = set(modules)
    return sorted(h for h in {HEAVY_MODULES!r} if h in names or any(m.startswith(h + ".") for m in names))
"""
"""Source of ``heavy(sys.modules)`` for a child process: the heavy modules it has imported."""


# -- statistics -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stats:
    """Samples in seconds (or any unit) with their median, minimum and maximum."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        return cls(tuple(samples))

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def n(self) -> int:
        return len(self.samples)

    def p(self, q: float) -> float:
        """The q-quantile (0..1), nearest rank."""
        s = sorted(self.samples)
        return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def time_calls(fns: Sequence[Callable[[], Any]]) -> Stats:
    """Time each callable once (a sequence of distinct calls, e.g. one per version); return the stats."""
    out = []
    for fn in fns:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Stats.of(out)


def time_call(fn: Callable[[], Any], n: int, *, warmup: int = 1) -> Stats:
    """Call ``fn`` ``warmup`` times untimed, then ``n`` times timed."""
    for _ in range(warmup):
        fn()
    return time_calls([fn] * n)


# -- child processes ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChildResult:
    wall: float
    """Seconds from spawn to exit, as seen by the parent."""
    returncode: int
    stdout: str
    stderr: str
    max_rss: int
    """``ru_maxrss`` of that child alone, in bytes. On Linux a child started with vfork (as
    ``subprocess`` does) inherits its parent's peak at exec, so this is only an upper bound when the
    parent is big; a child that reports its own ``VmHWM`` from ``/proc/self/status`` is exact."""


def src_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ``src/`` first on ``PYTHONPATH`` (works without an install)."""
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    timeout: float = 600.0,
) -> ChildResult:
    """Run ``argv`` and wait for it with ``os.wait4``, which gives that child's own resource usage.

    (``resource.getrusage(RUSAGE_CHILDREN)`` reports the maximum over all children ever
    waited for, so one big child would mask the others; ``wait4`` does not.)
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, stdin=subprocess.DEVNULL
    )
    # Drain both pipes in threads, then reap with wait4 (communicate() would reap with waitpid).
    chunks: dict[str, bytes] = {}

    def drain(key: str, stream: Any) -> None:
        chunks[key] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(k, s), daemon=True)
        for k, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for r in readers:
        r.start()
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.0005)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join(timeout=10)
    out_b, err_b = chunks.get("out", b""), chunks.get("err", b"")
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    res = ChildResult(wall, proc.returncode, out_b.decode(errors="replace"), err_b.decode(errors="replace"), rss)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)[:200]} exited with {res.returncode}:\n{res.stderr[-4000:]}")
    return res


# -- files --------------------------------------------------------------------------------------------

CHUNK = 8 * 1024 * 1024


def make_random_file(path: Path, size: int) -> None:
    """Write ``size`` random bytes (incompressible, no dedup) in 8 MiB chunks."""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n


def sha256_pass(path: Path) -> str:
    """One plain hashlib.sha256 pass over a file with an 8 MiB buffer (the baseline's hash)."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


# -- formatting and reporting ---------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_mb(n: float) -> str:
    """Bytes as decimal megabytes (the unit of the RSS targets)."""
    return f"{n / 1e6:.1f} MB"


def machine_summary() -> str:
    cpus = os.cpu_count()
    load = ""
    if hasattr(os, "getloadavg"):
        one, five, _ = os.getloadavg()
        load = f", load average {one:.1f} (1 min) / {five:.1f} (5 min) at start"
    return f"{platform.system()} {platform.machine()}, {cpus} cores, Python {platform.python_version()}{load}"


@dataclasses.dataclass
class Row:
    what: str
    measured: float
    fmt: Callable[[float], str] = fmt_time
    target: float | None = None
    """Upper bound on ``measured``; None for an informational row."""
    baseline: str = ""
    ratio: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.measured <= self.target

    @property
    def verdict(self) -> str:
        return {None: "", True: "PASS", False: "FAIL"}[self.ok]


@dataclasses.dataclass
class Report:
    """Rows of results; prints them as a table and renders Markdown."""

    title: str
    rows: list[Row] = dataclasses.field(default_factory=list)

    def add(
        self,
        what: str,
        measured: float,
        *,
        target: float | None = None,
        fmt: Callable[[float], str] = fmt_time,
        baseline: str = "",
        ratio: float | None = None,
        note: str = "",
    ) -> Row:
        row = Row(what, measured, fmt, target, baseline, ratio, note)
        self.rows.append(row)
        mark = f"  [{row.verdict}]" if row.verdict else ""
        tgt = f" (target <= {row.fmt(target)})" if target is not None else ""
        print(f"  {what}: {row.fmt(measured)}{tgt}{mark}" + (f"  {note}" if note else ""), flush=True)
        return row

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.ok is False]

    def table(self) -> str:
        head = ("measurement", "median", "target", "baseline", "ratio", "result")
        lines = [head]
        for r in self.rows:
            lines.append(
                (
                    r.what,
                    r.fmt(r.measured),
                    "" if r.target is None else f"<= {r.fmt(r.target)}",
                    r.baseline,
                    "" if r.ratio is None else f"{r.ratio:.2f}x",
                    r.verdict,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = []
        for i, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def finish(self, *, markdown: bool = False, check: bool = False) -> int:
        """Print the table (and Markdown), say which targets failed; the exit code for ``--check``."""
        print("\n" + self.table())
        if markdown:
            print("\n" + self.markdown())
        failed = self.failed
        print(
            f"\n{len(failed)} of {sum(r.target is not None for r in self.rows)} targets failed"
            + (": " + "; ".join(r.what for r in failed) if failed else "")
        )
        return 1 if (check and failed) else 0

    def markdown(self) -> str:
        out = ["| measurement | median | target | baseline | ratio | result |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            out.append(
                "| "
                + " | ".join(
                    (
                        r.what,
                        r.fmt(r.measured),
                        "" if r.target is None else f"<= {r.fmt(r.target)}",
                        r.baseline,
                        "" if r.ratio is None else f"{r.ratio:.2f}x",
                        r.verdict,
                    )
                )
                + " |"
            )
        return "\n".join(out)


# -- a library compared with modelreg, in its own virtual environment -----------------------------------


class SetupError(Exception):
    """The virtual environment of a library modelreg is compared with could not be made."""


@dataclasses.dataclass(frozen=True)
class OtherLibrary:
    """A library a benchmark compares modelreg with, installed apart (it is not a dependency).

    ``probe`` is Python code that prints the library's version, and fails if it (or what the
    benchmark needs with it) does not import; it runs with ``env()``. ``version``, if given, is
    the exact version the benchmark needs; ``hint`` is added to the message of a failed install.
    """

    label: str
    packages: tuple[str, ...]
    probe: str
    env: Callable[[], dict[str, str]]
    version: str | None = None
    hint: str = ""


def bench_venv(name: str) -> Path:
    """``~/.cache/modelreg-bench/<name>`` (or under ``$XDG_CACHE_HOME``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "modelreg-bench" / name


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def probe_version(python: Path, lib: OtherLibrary) -> str | None:
    """The library's version in that interpreter, or None when it does not import."""
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", lib.probe], check=False, capture_output=True, text=True, env=lib.env(), timeout=300
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_venv(venv: Path, lib: OtherLibrary, keep: bool) -> tuple[Path, str]:
    """Make (or with ``keep``, reuse) the virtual environment with ``lib``; return its Python and the
    library's version. Raises SetupError with what went wrong; never removes a folder that is not a
    virtual environment, and never leaves a half-made one behind."""
    python = venv_python(venv)
    if keep:
        found = probe_version(python, lib)
        if found and (lib.version is None or found == lib.version):
            print(f"reusing {venv} ({lib.label} {found})", flush=True)
            return python, found
    if venv.exists():
        if not (venv / "pyvenv.cfg").is_file():
            raise SetupError(f"{venv} exists and is not a virtual environment; not touching it (pick another --venv)")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"creating {venv} and installing {' '.join(lib.packages)} into it ...", flush=True)
    try:
        found = _make_venv(venv, python, lib)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    return python, found


def _make_venv(venv: Path, python: Path, lib: OtherLibrary) -> str:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False, capture_output=True, text=True)
    if proc.returncode != 0 or not python.exists():
        raise SetupError(
            f"`{sys.executable} -m venv {venv}` failed (exit {proc.returncode}); on Debian the "
            f"python3-venv package provides it:\n{(proc.stderr or proc.stdout)[-3000:]}"
        )
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *lib.packages],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SetupError(
            f"`pip install {' '.join(lib.packages)}` into {venv} failed (exit {proc.returncode}){lib.hint}:\n"
            f"{(proc.stderr or proc.stdout)[-3000:]}"
        )
    found = probe_version(python, lib)
    if not found or (lib.version is not None and found != lib.version):
        proc = subprocess.run(
            [str(python), "-c", lib.probe], check=False, capture_output=True, text=True, env=lib.env()
        )
        what = f"is {found}, not {lib.version}" if found else "does not import"
        raise SetupError(f"{lib.label} was installed into {venv} but {what}:\n{proc.stderr[-3000:]}")
    print(f"  {lib.label} {found} installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return found
