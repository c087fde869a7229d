"""Secrets never reach files, logs or flow-run parameters: a Flickr crawl (tests/fakeflickr.py), process
and export through the CLI with sentinel secrets, then every file under the data root, Prefect's home
and Prefect's database, every log record and every flow-run parameter is searched for them.

(The same check with a PostgreSQL catalog whose URL holds a password, run by real workers, is in
tests/flows/test_deployments.py.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakeflickr import FLICKR_LICENSES, NO_DERIVATIVES, FakeFlickr, make_photos
from tests.secrets import files_containing

SENTINELS = {
    "FLICKR_API_KEY": "sntl-key-0b5e7d1c93",
    "FLICKR_API_SECRET": "sntl-secret-4f2a9c6e18",
    "REDWEB_REVIEW_SECRET": "sntl-review-7d3b1e9f5a2c4b6d8e0f1a3c",
}
REPO = Path(__file__).resolve().parents[2]
TOY = ["process.max_side=128", "process.crf=false", "process.auto_accept_score=0.0"]


def _redweb(args: list[str], env: dict) -> str:
    """Run the real CLI in a fresh process (as a user would); returns everything it printed."""
    cmd = [str(REPO / ".venv" / "bin" / "redweb")]
    if not Path(cmd[0]).exists():
        cmd = [sys.executable, "-m", "flows.cli"]
    proc = subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"redweb {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_sentinel_secrets_reach_no_file_log_or_parameter(prefect_test_server, data_root):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL, PREFECT_HOME

    from tasks.catalog.catalog import Catalog

    derivatives = sorted({i for i, _, _ in FLICKR_LICENSES} - NO_DERIVATIVES)
    fake = FakeFlickr(make_photos(4, seed=9, licenses=derivatives), api_key=SENTINELS["FLICKR_API_KEY"]).start()
    env = {**os.environ, **SENTINELS, "PYTHONPATH": str(REPO), "REDWEB_FLICKR_REST_URL": fake.rest_url,
           "REDWEB_DATA_ROOT": str(data_root)}
    if PREFECT_API_URL.value():  # the session's Prefect API: its database is searched below
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    common = ["-v"]  # debug logging of every library
    for o in TOY:
        common += ["--set", o]
    try:
        printed = _redweb(["ingest", "--source", "flickr", "--no-progress", *common], env)
        printed += _redweb(["process", "--no-progress", *common], env)
        printed += _redweb(["export", "--out", str(data_root / "exports" / "x"),
                            "--states", "auto_accepted,pending_review,auto_rejected", *common], env)
        printed += _redweb(["status", *common], env)
    finally:
        fake.stop()
    with Catalog(f"sqlite:///{data_root / 'catalog.db'}") as catalog:
        items = catalog.items(catalog.ids(source="flickr"))
    assert len(items) == 4 and all(i.depth_path for i in items)  # crawled with the sentinel key, processed
    assert (data_root / "exports" / "x" / "manifest.csv").is_file()
    assert "DEBUG" in printed

    needles = [v.encode() for v in SENTINELS.values()]
    assert files_containing(data_root, needles) == []
    assert files_containing(Path(PREFECT_HOME.value()), needles) == []
    database = PREFECT_API_DATABASE_CONNECTION_URL.value() or ""
    if database.startswith("sqlite"):  # the test server's database: parameters, logs, artifacts
        db = Path(database.split("///", 1)[1])
        assert db.is_file()
        assert files_containing(db.parent, needles) == []
    assert [line for line in printed.splitlines() if any(n.decode() in line for n in needles)] == []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        parameters = json.dumps([r.parameters for r in runs], default=str)
        flows = {client.read_flow(r.flow_id).name for r in runs}
    assert {"ingest", "process", "redweb-export"} <= flows
    assert not any(n.decode() in parameters for n in needles)
