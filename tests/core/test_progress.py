"""Progress: a bar on a terminal, a handful of log lines in a log file (never thousands of tqdm frames)."""
from __future__ import annotations

import io
import logging

from core.progress import LineProgress, progress, track


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_one_line_per_tenth_and_no_carriage_returns(caplog):
    stream = io.StringIO()  # what `scripts/demo.sh > log` gives: not a terminal
    with caplog.at_level(logging.INFO, logger="redweb.progress"):
        with progress(1000, desc="process", unit="pair", stream=stream) as bar:
            assert isinstance(bar, LineProgress)
            for _ in range(1000):
                bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert 9 <= len(lines) <= 11, lines
    assert lines[-1].startswith("process: 1000/1000 pair")
    assert stream.getvalue() == "" and not any("\r" in line for line in lines)


def test_a_terminal_gets_a_tqdm_bar():
    stream = _Tty()
    with progress(10, desc="train", stream=stream) as bar:
        bar.update(10)
    assert type(bar).__name__ == "tqdm" and "\r" in stream.getvalue()


def test_track_counts_and_can_be_switched_off(caplog):
    with caplog.at_level(logging.INFO, logger="redweb.progress"):
        assert list(track(range(5), desc="x", enabled=False)) == list(range(5))
    assert not caplog.records
    bar = LineProgress(None, desc="open-ended")
    bar.update(3)
    bar.close()
    bar.close()  # closing twice reports once
