"""A real Prefect run of the ingest flow on the samples, and `redweb ingest` + `redweb status --json`."""
from __future__ import annotations

import json

import pytest

from tasks.ingest.samples import expected_status

SIDE = 128


@pytest.fixture
def prebuilt(tmp_path_factory, data_root):
    """The samples at SIDE px, built once per session and copied in (the flow would build them too)."""
    import shutil

    from tasks.ingest.samples import build_samples

    shared = build_samples(tmp_path_factory.getbasetemp() / "samples-128" / "samples", max_view_side=SIDE)
    shutil.copytree(shared, data_root / "samples")
    return data_root


@pytest.mark.slow
def test_ingest_flow_on_samples(prefect_test_server, prebuilt, data_root):
    from flows.ingest import ingest_flow

    summary = ingest_flow(overrides=[f"ingest.samples_max_view_side={SIDE}", "ingest.batch_size=4"], source="samples")
    expected = expected_status(data_root / "samples")
    assert summary["status"] == expected and summary["outcome"] == expected["states"]
    run_dir = data_root / "runs" / summary["run_dir"].rsplit("/", 1)[1]
    assert (run_dir / "config.yaml").is_file() and json.loads((run_dir / "summary.json").read_text())["items"] == 31
    assert f"samples_max_view_side: {SIDE}" in (run_dir / "config.yaml").read_text()



@pytest.mark.slow
def test_cli_ingest_then_status_json(prefect_test_server, prebuilt, data_root, capsys):
    from flows.cli import main

    args = ["--data-root", str(data_root), "--set", f"ingest.samples_max_view_side={SIDE}"]
    assert main(["ingest", *args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "near_duplicate" in out and "split" in out
    assert main(["status", "--json", "--data-root", str(data_root)]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == expected_status(data_root / "samples")

    assert main(["ingest", *args, "--no-progress", "--json"]) == 0  # re-run: no new rows, nothing redone
    rerun = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rerun["steps"]["decide"] == {} and set(rerun["steps"]["fetch"]) <= {"split", "rejected", "failed"}
    assert main(["status", "--json", "--data-root", str(data_root)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == status
    assert main(["ingest", *args, "--source", "ftp:nope"]) == 2
    assert main(["ingest", *args, "--source", f"local:{data_root / 'nowhere'}"]) == 2
    assert main(["ingest", *args, "--source", f"urls:{data_root / 'nothing.txt'}"]) == 2
