"""Progress on long work: a tqdm bar on a terminal, one log line per step of the work elsewhere.

tqdm redraws its bar with carriage returns; written to a file (``scripts/demo.sh > log``, a Prefect
worker's log, CI) every redraw becomes a frame of its own, thousands per run. When the stream is not a
terminal :func:`progress` reports instead one plain line each time another ``every`` share of the total
is done (and at the end), through ``logging``, so a log file gets a handful of readable lines.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable, Iterator, TextIO

log = logging.getLogger("redweb.progress")


class LineProgress:
    """The part of tqdm's interface the project uses, as a few log lines: ``update``, ``set_postfix``,
    ``write``, ``close`` (and use as a context manager). A line each ``every`` of ``total`` (10 % by default) and one
    at the end, with the rate and the time left."""

    def __init__(self, total: int | None, *, desc: str = "", unit: str = "it", initial: int = 0,
                 every: float = 0.1) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.step = max(1, int((total or 0) * every)) if total else None
        self.next_report = initial + (self.step or 0)
        self.postfix = ""
        self.t0, self.start_n, self.closed = time.monotonic(), initial, False

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, message: str) -> None:
        log.info("%s", message)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.step is not None and self.n >= self.next_report and (self.total is None or self.n < self.total):
            self._report()
            while self.next_report <= self.n:
                self.next_report += self.step

    def _report(self) -> None:
        elapsed = time.monotonic() - self.t0
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        left = ""
        if self.total and rate > 0 and self.n < self.total:
            left = f", {(self.total - self.n) / rate:.0f} s left"
        extra = f", {self.postfix}" if self.postfix else ""
        log.info("%s: %s %s (%.2f %s/s%s%s)", self.desc or "progress", done, self.unit, rate, self.unit, left, extra)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n > self.start_n:
                self._report()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Off:
    """No progress at all (``enabled=False``)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def write(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Off":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress(total: int | None, *, desc: str = "", unit: str = "it", initial: int = 0, enabled: bool = True,
             stream: TextIO | None = None) -> Any:
    """A bar for ``total`` items: tqdm when ``stream`` (default stderr) is a terminal, else :class:`LineProgress`."""
    if not enabled:
        return _Off()
    stream = stream or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=stream)
    return LineProgress(total, desc=desc, unit=unit, initial=initial)


def track(items: Iterable[Any], *, total: int | None = None, desc: str = "", unit: str = "it",
          enabled: bool = True) -> Iterator[Any]:
    """Iterate ``items`` with :func:`progress` (``total`` defaults to ``len(items)`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(total, desc=desc, unit=unit, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.update(1)
