"""benchmarks/bench_gpu.py: the GPU acceptance script runs every row at toy size on CPU, so it never rots
before the rare GPU run; a failing or hanging row costs only itself."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"
ROW_KEYS = {"name", "status", "seconds", "peak_mem_gib", "mem", "figure"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_gpu", None)


@pytest.mark.slow  # the whole toy run: 60-95 s wall on this shared 2-core machine (45-48 s of CPU)
def test_toy_run_every_row_ok(bench, tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--toy", "--json", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    doc = json.loads(proc.stdout)
    assert set(doc) >= {"device", "rows"} and doc["device"].startswith("cpu")
    assert [r["name"] for r in doc["rows"]] == list(bench.ROWS)
    for row in doc["rows"]:
        assert ROW_KEYS <= set(row), row
        assert row["status"] == "ok", (row["name"], row["status"], proc.stderr[-2000:])
        assert row["seconds"] > 0 and row["figure"]
    assert proc.returncode == 0
    assert json.loads(out.read_text())["rows"] == doc["rows"]
    rows = {r["name"]: r for r in doc["rows"]}
    for name in bench.FLOW_ROWS:
        assert set(rows[name]["pairs_per_s"]) == {"fp32", "amp"}
        assert set(rows[name]["pairs_per_s"]["fp32"]) == {"1", "2"}
    train = rows["train"]
    assert train["arch"] == "resnet50_fusion" and train["loss"] == "improved_ranking"
    assert set(train["grids"]) == {"table2", "table3", "fig5"}
    assert train["grids"]["table2"]["runs"] == 4 and train["grids"]["fig5"]["runs"] == 10
    assert all(v > 0 for v in train["arch_steps_per_s"].values()) and len(train["arch_steps_per_s"]) == 4
    assert rows["ddp"]["world_size"] == 2 and rows["ddp"]["backend"] == "gloo"
    assert rows["ddp"]["steps"] >= 2 and rows["ddp"]["max_relative_grad_diff"] <= 1e-6
    assert 0 <= rows["process"]["network_share"] <= 1
    assert rows["evaluate"]["wkdr"] is not None and rows["evaluate"]["whdr"] is not None


def test_grid_hours_sum_every_run_at_its_architectures_speed(bench):
    grids = bench.grid_runs()
    speeds = {"resnet50_fusion": 2.0, "resnet50_dilated": 1.0, "resnet50_direct_upsample": 4.0,
              "resnet50_upproj": 0.5}
    hours = bench.grid_hours(grids, speeds)
    # table2: one run of each architecture, 40,000 iterations each
    assert hours["table2"]["runs"] == 4
    assert hours["table2"]["hours"] == pytest.approx(40000 * (1 / 2 + 1 / 1 + 1 / 4 + 1 / 0.5) / 3600)
    # table3: four losses on resnet50_fusion; fig5: ten settings on resnet50_fusion
    assert hours["table3"]["hours"] == pytest.approx(4 * 40000 / 2.0 / 3600)
    assert hours["fig5"]["hours"] == pytest.approx(10 * 40000 / 2.0 / 3600)


def test_a_hung_row_costs_only_itself(bench):
    """Each row that outlives its limit is recorded as timed out and the next gets a fresh child."""
    scale = dataclasses.replace(bench.TOY, timeouts={"evaluate": 1, "sky": 1})
    rows = bench.run_group(["evaluate", "sky"], scale, True, lambda text: None)
    assert [r["name"] for r in rows] == ["evaluate", "sky"]
    assert all(r["status"].startswith("timed out") for r in rows)


def test_an_unknown_row_is_a_status_not_a_crash(bench):
    row = bench.run_row("nope", bench.TOY, 1)
    assert row["status"].startswith("KeyError") and row["name"] == "nope"


def test_without_cuda_and_without_toy_it_refuses(bench, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main(["--only", "raft"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_unknown_rows_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--toy", "--only", "raft,bogus"])
