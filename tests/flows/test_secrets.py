"""Secrets never reach files, logs or flow-run parameters: a Flickr crawl (tests/fakeflickr.py), process
and export through the CLI with sentinel secrets, then every file under the data root, Prefect's home
and Prefect's database, every log record and every flow-run parameter is searched for them.

(The same check with a PostgreSQL catalog whose URL holds a password, run by real workers, is in
tests/flows/test_deployments.py.)
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.fakeflickr import FLICKR_LICENSES, NO_DERIVATIVES, FakeFlickr, make_photos

SENTINELS = {
    "FLICKR_API_KEY": "sntl-key-0b5e7d1c93",
    "FLICKR_API_SECRET": "sntl-secret-4f2a9c6e18",
    "REDWEB_REVIEW_SECRET": "sntl-review-7d3b1e9f5a2c4b6d8e0f1a3c",
}
TOY = ["process.max_side=128", "process.crf=false", "process.auto_accept_score=0.0"]


def _files_with(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n.decode()}" for n in needles if n in data]
    return hits


@pytest.mark.slow
def test_sentinel_secrets_reach_no_file_log_or_parameter(prefect_test_server, data_root, monkeypatch, caplog, capsys):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME

    from flows.cli import main

    derivatives = sorted({i for i, _, _ in FLICKR_LICENSES} - NO_DERIVATIVES)
    fake = FakeFlickr(make_photos(4, seed=9, licenses=derivatives), api_key=SENTINELS["FLICKR_API_KEY"]).start()
    try:
        monkeypatch.setenv("REDWEB_FLICKR_REST_URL", fake.rest_url)
        for var, value in SENTINELS.items():
            monkeypatch.setenv(var, value)
        caplog.set_level(logging.DEBUG)  # -v: debug logging of every library
        common = ["--data-root", str(data_root), "-v"]
        for o in TOY:
            common += ["--set", o]
        assert main(["ingest", "--source", "flickr", "--no-progress", "--json", *common]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["items"] == 4 and summary["outcome"].get("split")  # the crawl used the sentinel key
        assert main(["process", "--no-progress", *common]) == 0
        assert main(["export", "--out", str(data_root / "exports" / "x"), "--states", "auto_accepted,pending_review",
                     *common]) == 0
        assert main(["status", *common]) == 0
        out = capsys.readouterr()
    finally:
        fake.stop()
    assert (data_root / "exports" / "x" / "manifest.csv").is_file()

    needles = [v.encode() for v in SENTINELS.values()]
    assert _files_with(data_root, needles) == []
    assert _files_with(Path(PREFECT_HOME.value()), needles) == []
    database = PREFECT_API_DATABASE_CONNECTION_URL.value() or ""
    if database.startswith("sqlite"):  # the test server's database: parameters, logs, artifacts
        db = Path(database.split("///", 1)[1])
        assert db.is_file()
        assert _files_with(db.parent, needles) == []
    text = caplog.text + out.out + out.err
    assert text and not any(n.decode() in text for n in needles)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        parameters = json.dumps([r.parameters for r in runs], default=str)
    assert runs and not any(n.decode() in parameters for n in needles)
    assert os.environ["FLICKR_API_KEY"] == SENTINELS["FLICKR_API_KEY"]  # (the environment is where they live)
