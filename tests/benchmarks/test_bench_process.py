"""benchmarks/bench_process.py's label part is the audit: one spec table row per spec, the same
figures run_audit gives (a smoke test on a small motorcycle; the benchmark itself is not a test)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.tasks.gt_layouts import motorcycle, write_generic


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_process.py"
    spec = importlib.util.spec_from_file_location("bench_process", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_overrides(bench):
    assert bench.spec_overrides("sgbm@fb_beta=0.3@ingest.stereo_min_similarity=0.2") == [
        "process.correspondence=sgbm", "process.fb_beta=0.3", "ingest.stereo_min_similarity=0.2"]
    with pytest.raises(SystemExit, match="not FIELD=VALUE"):
        bench.spec_overrides("dis@crf")


@pytest.mark.slow  # two audits: 6 s on a quiet machine, 15 s on a loaded one
def test_bench_labels_table_has_one_row_per_spec(bench, tmp_path, capsys):
    write_generic(tmp_path / "scenes" / "moto", *motorcycle(200))
    rc = bench.main(["--scenes", str(tmp_path / "scenes"), "--backends", "dis,dis@crf=false", "--packings", "mpo",
                     "--pairs", "3000", "--skip", "speed,mpo,sky", "--set", "process.max_side=200"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "1 scene(s) x 1 packing(s)" in out
    rows = [line for line in out.splitlines() if re.match(r"^\s*dis(@crf=false)?\s+\d/1\s", line)]
    assert len(rows) == 2, out
    assert re.search(r"^\s*spec\s+kept\s+ord\.err\s+max\s+coverage", out, re.M)


def test_bench_reports_a_bad_spec(bench, tmp_path, capsys):
    rc = bench.main(["--scenes", str(tmp_path), "--backends", "dis", "--skip", "speed,mpo,sky"])
    assert rc == 2
    assert "neither a scene folder" in capsys.readouterr().err


def test_mpo_part_runs_an_mpo_through_ingest_and_process(bench, tmp_path, capsys):
    """The 10-MP MPO part at toy size: a real two-frame MPO, ingested and processed in a fresh process."""
    bench.bench_mpo(tmp_path, 0.05, spec="dis")
    out = capsys.readouterr().out
    assert "MPO: dis" in out and "peak memory" in out
    assert "pending_review" in out or "auto_accepted" in out or "auto_rejected" in out


def test_speed_part_downscales_as_redweb_process_does(bench, tmp_path, capsys):
    """The speed table times what ``redweb process`` runs: views over ``process.max_side`` are downscaled
    first, so a spec with a smaller max_side processes fewer pixels, and the table and the DIS yardstick
    at that size say so."""
    bench.bench_speed(tmp_path, ["dis", "dis@max_side=120"], megapixels=0.05, repeats=1)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| MP per view processed"))
    full, small = (float(v) for v in row.strip("|").split("|")[1:])
    assert full == pytest.approx(0.05, abs=0.002)  # 272 px wide: under the default max_side, untouched
    assert small == pytest.approx(120 * 81 / 1e6, abs=0.001)
    assert re.search(r"processed at 0\.01 MP \(process\.max_side 120\); DIS \(medium\) both ways at that size: "
                     r"\d+\.\d{3} CPU-s", out), out
    assert "| flow " in out and "| x DIS medium (CPU)" in out
