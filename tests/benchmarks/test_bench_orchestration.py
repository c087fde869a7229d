"""benchmarks/bench_orchestration.py at toy size: both arms process the same pairs with the same outcome,
the table and the memory curves are printed, and the catalog part explains every query it times.

Run in a subprocess: the benchmark registers its ``trivial`` backend in the correspondence registry of
its own process, which must not leak into the test session's registry (tests parametrize over it)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_orchestration.py"


@pytest.mark.slow  # a temporary Prefect server and two arms of 20 pairs: ~30 s
def test_bench_orchestration_runs_both_arms_and_the_catalog_part(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    env.pop("REDWEB_DATABASE_URL", None)
    env.pop("REDWEB_CONFIG", None)
    proc = subprocess.run([sys.executable, str(BENCH), "--pairs", "20",
                           "--batch-size", "4", "--catalog-sizes", "300,600", "--target", "100"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "[direct]" in out and "20 depth maps written" in out
    rows = re.findall(r"^\| 20 \| (direct|flow) \| [\d.]+ \| [\d.]+ \| [+-][\d.]+ \|", out, re.M)
    assert rows == ["direct", "flow"], out
    assert "same outcome in both arms: True" in out
    assert re.search(r"^\s+flow\s+own:\s+(\d+ ){10}\d+$", out, re.M), out
    assert re.search(r"^\| 600 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), out
    assert "select_items: SELECT items.id FROM items WHERE items.state IN" in out
    assert "USING COVERING INDEX ix_items_state_created" in out
    assert "every query indexed: True" in out


def test_unindexed_tells_a_table_scan_from_an_index_scan(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_orchestration", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # (its dataclasses look their module up)
    spec.loader.exec_module(bench)
    assert bench.unindexed("SCAN items")
    assert bench.unindexed("SEARCH items USING INDEX ix_items_state (state=?)\nSCAN events")
    assert not bench.unindexed("SCAN items USING COVERING INDEX ix_items_state")
    assert not bench.unindexed("SEARCH items USING INDEX sqlite_autoindex_items_1 (id=?)")
