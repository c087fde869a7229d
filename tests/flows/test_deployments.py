"""prefect.yaml: a local Prefect server accepts every deployment, schedules and pools included."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _prefect(*args: str, env: dict) -> str:
    proc = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_local_server_accepts_all_deployments(prefect_test_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    expected = {d["name"] for d in spec["deployments"]}
    assert {"ingest", "process", "export", "train", "evaluate", "pipeline", "retrain-nightly",
            "retrain-on-accepted", "revalidate-weekly", "release"} <= expected
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "REDWEB_HOME": str(REPO),
           "PREFECT_HOME": str(tmp_path / "prefect-home")}
    _prefect("work-pool", "create", "redweb-cpu", "--type", "process", env=env)
    _prefect("work-pool", "create", "redweb-gpu", "--type", "process", env=env)
    _prefect("concurrency-limit", "create", "gpu", "1", env=env)
    _prefect("deploy", "--all", env=env)

    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        assert expected <= set(deployments)
        nightly = deployments["retrain-nightly"]
        assert nightly.work_pool_name == "redweb-gpu"
        crons = [getattr(s.schedule, "cron", None) for s in nightly.schedules]
        assert "0 3 * * *" in crons
        assert deployments["retrain-on-accepted"].schedules[0].schedule.interval.total_seconds() == 900
        assert deployments["process"].work_pool_name == "redweb-gpu"
        assert deployments["ingest"].work_pool_name == "redweb-cpu"
        weekly = deployments["revalidate-weekly"]
        assert [getattr(s.schedule, "cron", None) for s in weekly.schedules] == ["0 4 * * 1"]
        assert weekly.work_pool_name == "redweb-cpu"
        flows = {client.read_flow(d.flow_id).name for d in deployments.values()}
        assert {"ingest", "process", "redweb-export", "train", "evaluate", "redweb-pipeline", "redweb-retrain",
                "redweb-retrain-trigger", "redweb-revalidate", "redweb-release"} <= flows
