"""A small, dependency-free progress bar for long transfers, drawn on stderr.

A :class:`ProgressBar` is a ``progress(phase, done, total)`` callable, the
signature :meth:`Registry.register`, :meth:`Registry.download` and
:meth:`Registry.verify` accept::

    with ProgressBar() as bar:
        reg.download("churn@production", "out/", progress=bar)

It draws one line per phase (``hash``, ``upload``, ``download``, ``verify``)
with the percentage, bytes done and total, and the throughput::

    upload    42.0% [##########..............] 21.0 MiB/50.0 MiB  310.2 MiB/s

By default it draws only when the stream is a terminal, and only for phases
that last longer than ``delay`` seconds (so small files stay quiet);
``force=True`` draws on any stream from the first call. Redraws are
throttled to at most one per ``min_interval`` seconds; the last state of a
phase is drawn when the phase ends or the bar is closed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from .formatting import human_size

__all__ = ["ProgressBar", "human_size"]


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


class ProgressBar:
    """Render ``progress(phase, done, total)`` calls as a one-line bar per phase.

    ``stream``: where to draw (default ``sys.stderr`` at the time of the call).
    ``force``: True draws on any stream, False never draws, None (default) draws
    only on a terminal. ``min_interval``: seconds between redraws (0.1, i.e. at
    most 10 redraws per second). ``delay``: a phase is drawn only once it has
    lasted this long (default 0.5 s on a terminal, 0 when forced). ``clock`` is
    injectable for tests.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        force: bool | None = None,
        min_interval: float = 0.1,
        delay: float | None = None,
        width: int = 24,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if force is None else bool(force)
        self.min_interval = min_interval
        self.delay = (0.0 if force else 0.5) if delay is None else delay
        self.width = width
        self.clock = clock
        self.redraws = 0
        self._phase: str | None = None
        self._phase_start = 0.0
        self._base = 0  # bytes of earlier files in this phase (folders report per file)
        self._last_done = 0
        self._last_draw: float | None = None
        self._pending: tuple[int, int, float] | None = None
        self._line_len = 0
        self._line_open = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if phase != self._phase:
            self._end_phase()
            self._phase, self._phase_start = phase, now
            self._base = self._last_done = 0
            self._last_draw = None
        elif done <= self._last_done:  # a folder reports per file: the next file started
            self._base += self._last_done
        self._last_done = done
        self._pending = (done, total, now)
        if now - self._phase_start < self.delay:
            return
        if self._last_draw is not None and now - self._last_draw < self.min_interval:
            return
        self._draw()

    # -- rendering ------------------------------------------------------------------
    def _render(self, done: int, total: int, now: float) -> str:
        phase = self._phase or ""
        elapsed = now - self._phase_start
        moved = self._base + done
        rate = f"  {human_size(moved / elapsed)}/s" if elapsed > 0.05 and moved else ""
        if total > 0:
            frac = min(max(done / total, 0.0), 1.0)
            filled = round(frac * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            return f"{phase:<9} {frac * 100:5.1f}% [{bar}] {human_size(done)}/{human_size(total)}{rate}"
        return f"{phase:<9} {human_size(done)}{rate}"

    def _draw(self) -> None:
        if self._pending is None:
            return
        done, total, now = self._pending
        line = self._render(done, total, now)
        pad = " " * max(0, self._line_len - len(line))
        try:
            self.stream.write("\r" + line + pad)
            self.stream.flush()
        except (ValueError, OSError):  # stderr closed: progress is best effort
            self.enabled = False
            return
        self._line_len = len(line)
        self._line_open = True
        self._last_draw = now
        self._pending = None
        self.redraws += 1

    def _end_phase(self) -> None:
        if self._line_open:
            self._draw()  # the final state of the phase, if a redraw was throttled
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (ValueError, OSError):
                self.enabled = False
        self._line_open = False
        self._line_len = 0
        self._pending = None

    def close(self) -> None:
        """Finish the current line (call before printing anything else)."""
        if self.enabled:
            self._end_phase()
        self._phase = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
