"""prefect.yaml end to end: a real Prefect server, the work pools, `prefect deploy --all`, real process
workers, and every deployment triggered with NO parameters until its flow run is Completed.

The workers' environment names the data root and the catalog (PostgreSQL here), the Flickr
endpoint (tests/fakeflickr.py) and every secret, each a sentinel value; toy sizes come from
``REDWEB__SECTION__FIELD`` variables, as a team would set them. Afterwards no sentinel may appear in
any file under the data root or Prefect's home (its database holds every flow-run parameter and log),
nor in any row of the catalog.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakeflickr import FLICKR_LICENSES, NO_DERIVATIVES, FakeFlickr, make_photos
from tests.secrets import files_containing

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")

SENTINELS = {
    "FLICKR_API_KEY": "sntl-flickr-key-8c41d07e",
    "FLICKR_API_SECRET": "sntl-flickr-secret-5a9be21f",
    "REDWEB_REVIEW_SECRET": "sntl-review-secret-3f0e6c2d9a8b7c6d5e4f",
}
DB_PASSWORD = "sntl-db-password-77e2b9c4"

# toy sizes: what a team would put in the worker's environment for a smoke run
TOY_ENV = {
    "REDWEB__INGEST__SAMPLES_MAX_VIEW_SIDE": "96",
    "REDWEB__PROCESS__MAX_SIDE": "128",
    "REDWEB__PROCESS__CRF": "false",
    "REDWEB__PROCESS__AUTO_ACCEPT_SCORE": "0.0",
    "REDWEB__EXPORT__STATES": "[accepted, auto_accepted]",
    "REDWEB__EXPORT__VAL_FRACTION": "0.5",
    "REDWEB__PIPELINE__EXPORT_STATES": "[accepted, auto_accepted]",
    "REDWEB__PIPELINE__RETRAIN_MIN_NEW_ACCEPTED": "1",
    "REDWEB__TRAIN__ARCH": "resnet18_fusion",
    "REDWEB__TRAIN__ARCH_KWARGS": "{channels: 16}",
    "REDWEB__TRAIN__PRETRAINED": "false",
    "REDWEB__TRAIN__INPUT_SIZE": "32",
    "REDWEB__TRAIN__BATCH_SIZE": "2",
    "REDWEB__TRAIN__ITERATIONS": "3",
    "REDWEB__TRAIN__N_PAIRS": "64",
    "REDWEB__TRAIN__NUM_WORKERS": "0",
    "REDWEB__TRAIN__TENSORBOARD": "false",
    "REDWEB__TRAIN__VAL_EVERY": "3",
    "REDWEB__TRAIN__CHECKPOINT_EVERY": "3",
    "REDWEB__EVALUATE__PAIRS_PER_IMAGE": "200",
    "REDWEB__EVALUATE__DEVICE": "cpu",
    "REDWEB__EVALUATE__MAX_SIDE": "64",
    "REDWEB__EVALUATE__REPORT_EXAMPLES": "0",
}

# the order a day of work goes in: each run uses what the one before left in the catalog / data root
ORDER = ("ingest", "process", "export", "train", "evaluate", "retrain-nightly", "retrain-on-accepted", "release",
         "revalidate-weekly", "pipeline")
# the paper's experiments (issue 12), run by test_paper_deployments_run_with_no_parameters
PAPER_ORDER = ("finetune-depth", "finetune-segment", "experiment")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect(*args: str, env: dict) -> str:
    proc = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _wait_healthy(api: str, server: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.poll() is None, "prefect server exited"
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError("prefect server did not become healthy")


def _catalog_rows_text(url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        text = "\n".join(str(row) for table in meta.sorted_tables for row in conn.execute(sa.select(table)))
    engine.dispose()
    return text


def _worker_env(home: Path, api: str, extra: dict[str, str]) -> dict[str, str]:
    """What the server's and workers' processes see: no inherited Prefect/redweb/Flickr settings, the
    repository on the path, Prefect's home and API, and ``extra`` (toy sizes, data root, sentinels)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REDWEB_", "FLICKR_"))}
    env.update(extra)
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(REPO), "REDWEB_HOME": str(REPO),
        "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # only the runs this test starts
        "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_TASK_RUN_TAG_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
    })
    return env


@contextlib.contextmanager
def _prefect_stack(env: dict[str, str], api: str, port: int, logs: Path, deploy: tuple[str, ...],
                   pools: tuple[str, ...] = ("redweb-cpu", "redweb-gpu")):
    """A real Prefect server, both work pools, ``prefect deploy *deploy`` from prefect.yaml and one process
    worker per pool in ``pools``; yields ``(client, {name: deployment}, processes)``; stops them all."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "wb")
        proc = subprocess.Popen([PREFECT, *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        server = start("server", "server", "start", "--host", "127.0.0.1", "--port", str(port))
        _wait_healthy(api, server)
        _prefect("work-pool", "create", "redweb-cpu", "--type", "process", env=env)
        _prefect("work-pool", "create", "redweb-gpu", "--type", "process", env=env)
        _prefect("work-pool", "set-concurrency-limit", "redweb-gpu", "1", env=env)
        _prefect("concurrency-limit", "create", "gpu", "1", env=env)
        _prefect("deploy", *deploy, env=env)
        for pool in pools:
            start(f"worker-{pool}", "worker", "start", "--pool", pool)
        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            yield client, {d.name: d for d in client.read_deployments()}, procs
    finally:
        for proc in reversed(procs):  # the workers first, then the server they talk to
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _run_to_final(client, deployment, procs: list[subprocess.Popen], logs: Path, declared: dict) -> Any:
    """Start ``deployment`` with NO parameters and wait (10 min at most) until its run is final; it must
    complete."""
    run = client.create_flow_run_from_deployment(deployment.id)  # no parameters
    assert not (run.parameters or {}).keys() - set(declared.get("parameters") or {})
    deadline = time.time() + 600
    while True:
        run = client.read_flow_run(run.id)
        if run.state is not None and run.state.is_final():
            break
        alive = [p for p in procs if p.poll() is None]
        assert len(alive) == len(procs), "the Prefect server or a worker exited"
        assert time.time() < deadline, f"{deployment.name}: still {run.state_name} after 10 min"
        time.sleep(1)
    assert run.state.is_completed(), (
        f"{deployment.name} ended {run.state_name}: {run.state.message}\n"
        + "".join(f.read_text()[-4000:] for f in sorted(logs.glob("worker-*.log"))))
    return run


@pytest.mark.slow
@pytest.mark.postgres
def test_every_deployment_runs_with_no_parameters(tmp_path, postgres_url):
    from tasks.catalog.catalog import Catalog
    from tests.review_ui.maps import make_processed

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert set(ORDER) | set(PAPER_ORDER) == set(names)  # the paper's deployments: the test below

    root = tmp_path / "data"
    root.mkdir()
    home = tmp_path / "prefect-home"
    scheme, rest = postgres_url.split("://", 1)
    user, host_db = rest.split("@", 1)
    catalog_url = f"{scheme}://{user.split(':')[0]}:{DB_PASSWORD}@{host_db}"  # trust auth: any password works

    # a small prepared catalog: 6 maps, 5 accepted by a reviewer (export, training and evaluation have data)
    with Catalog(postgres_url) as catalog:
        prepared = make_processed(catalog, root, 6, width=48, height=32)
        for i in prepared[:5]:
            catalog.transition(i, "accepted", actor="alice", reviewer="alice")

    derivatives = sorted({i for i, _, _ in FLICKR_LICENSES} - NO_DERIVATIVES)
    fake = FakeFlickr(make_photos(4, seed=5, licenses=derivatives), api_key=SENTINELS["FLICKR_API_KEY"]).start()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _worker_env(home, api, {
        **TOY_ENV, **SENTINELS, "REDWEB_DATA_ROOT": str(root), "REDWEB_DATABASE_URL": catalog_url,
        "REDWEB_FLICKR_REST_URL": fake.rest_url})
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        with _prefect_stack(env, api, port, logs, ("--all",)) as (client, deployments, procs):
            assert set(ORDER) | set(PAPER_ORDER) <= set(deployments)
            nightly = deployments["retrain-nightly"]
            assert nightly.work_pool_name == "redweb-gpu"
            assert "0 3 * * *" in [getattr(s.schedule, "cron", None) for s in nightly.schedules]
            assert deployments["retrain-on-accepted"].schedules[0].schedule.interval.total_seconds() == 900
            assert deployments["process"].work_pool_name == "redweb-gpu"
            assert deployments["ingest"].work_pool_name == "redweb-cpu"
            weekly = deployments["revalidate-weekly"]
            assert [getattr(s.schedule, "cron", None) for s in weekly.schedules] == ["0 4 * * 1"]

            finished = {}
            for name in ORDER:
                if name == "retrain-on-accepted":  # a reviewer accepts one more map after the nightly retrain
                    with Catalog(postgres_url) as catalog:
                        catalog.transition(prepared[5], "accepted", actor="bob", reviewer="bob")
                finished[name] = _run_to_final(client, deployments[name], procs, logs, names[name]).state_name
            assert finished == {name: "Completed" for name in ORDER}
            parameters = [client.read_flow_run(r.id).parameters for r in client.read_flow_runs()]
    finally:
        fake.stop()

    # what the runs left: the flickr photos ingested and processed, an export, trained and promoted models
    with Catalog(postgres_url) as catalog:
        flickr_states = catalog.state_counts(catalog.ids(source="flickr"))
        samples = catalog.ids(source="samples")
    assert sum(flickr_states.values()) == 4 and "split" not in flickr_states and "discovered" not in flickr_states
    assert samples  # the pipeline ingested the embedded samples
    assert (root / "exports" / "current" / "manifest.csv").is_file()
    promotions = (root / "models" / "promotions.jsonl").read_text().splitlines()
    assert len(promotions) == 2  # retrain-nightly, then retrain-on-accepted started a retraining
    assert list(root.glob("runs/pipeline-*/report.html"))

    # no secret anywhere: files under the data root and Prefect's home (its database: every flow-run
    # parameter, every log line), the flow-run parameters themselves, and the catalog's rows
    needles = [v.encode() for v in (*SENTINELS.values(), DB_PASSWORD)]
    assert (home / "prefect.db").is_file() or list(home.glob("*.db"))
    assert files_containing(root, needles) == []
    assert files_containing(home, needles) == []
    assert files_containing(logs, needles) == []  # the server's and workers' output, flow-run processes included
    assert not any(n.decode() in str(p) for p in parameters for n in needles)
    rows = _catalog_rows_text(postgres_url)
    assert rows and not any(n.decode() in rows for n in needles)


# toy sizes of the paper's experiments, as a team would set them for a smoke run
PAPER_TOY_ENV = {
    "REDWEB__FINETUNE__INIT": "scratch",
    "REDWEB__FINETUNE__ARCH": "resnet18_fusion",
    "REDWEB__FINETUNE__ARCH_KWARGS": "{channels: 16}",
    "REDWEB__FINETUNE__ITERATIONS": "2",
    "REDWEB__FINETUNE__BATCH_SIZE": "2",
    "REDWEB__FINETUNE__NUM_WORKERS": "0",
    "REDWEB__FINETUNE__DEVICE": "cpu",
    "REDWEB__FINETUNE__INPUT_SIZE": "[16, 24]",
    "REDWEB__FINETUNE__AUGMENT_COUNT": "6",
    "REDWEB__FINETUNE__CROP_SIZE": "32",
    "REDWEB__FINETUNE__LOG_EVERY": "1",
    "REDWEB__FINETUNE__CHECKPOINT_EVERY": "1",
    "REDWEB__EXPERIMENT__FILE": "configs/experiments/table3.yaml",
    "REDWEB__EXPERIMENT__TOY": "true",
}


@pytest.mark.slow
def test_paper_deployments_run_with_no_parameters(tmp_path):
    """finetune-depth, finetune-segment and experiment from prefect.yaml, on a real server and a real
    gpu-pool worker, with NO parameters: the data sits where the config's defaults point (NYUv2 .mat and
    VOC + SBD under <data_root>/benchmarks/, the shared export), toy sizes come from the environment."""
    import json

    import pandas as pd

    from model.data import make_synthetic_export
    from tests.model.paper_data import make_nyu_mat, make_voc_sbd

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert set(PAPER_ORDER) <= set(names)
    assert all(names[n]["work_pool"]["name"] == "redweb-gpu" and "gpu" in names[n]["tags"] for n in PAPER_ORDER)

    root = tmp_path / "data"
    _mat, split = make_nyu_mat(root / "benchmarks" / "nyu_depth_v2_labeled.mat")
    make_voc_sbd(root / "benchmarks")
    make_synthetic_export(root / "exports" / "current", n=7, size=(36, 44), seed=4, val_fraction=0.3)
    home = tmp_path / "prefect-home"
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _worker_env(home, api, {**PAPER_TOY_ENV, **SENTINELS, "REDWEB_DATA_ROOT": str(root),
                                  "REDWEB__FINETUNE__SPLIT_FILE": str(split),  # the toy .mat has 8 images
                                  "TORCH_HOME": str(tmp_path / "torch-home")})
    logs = tmp_path / "logs"
    logs.mkdir()
    deploy = tuple(a for n in PAPER_ORDER for a in ("--name", n))
    with _prefect_stack(env, api, port, logs, deploy, pools=("redweb-gpu",)) as (client, deployments, procs):
        assert set(PAPER_ORDER) <= set(deployments)
        for name in PAPER_ORDER:
            _run_to_final(client, deployments[name], procs, logs, names[name])
        parameters = [client.read_flow_run(r.id).parameters for r in client.read_flow_runs()]

    depth, = root.glob("runs/finetune-depth-*/metrics.json")
    doc = json.loads(depth.read_text())
    assert doc["task"] == "metric_depth" and doc["n_images"] == 3 and doc["settings"]["iterations"] == 2
    assert (depth.parent / "checkpoints" / "last.pt").is_file() and (depth.parent / "config.yaml").is_file()
    segment, = root.glob("runs/finetune-segment-*/metrics.json")
    doc = json.loads(segment.read_text())
    assert doc["task"] == "segmentation" and 0 <= doc["miou"] <= 1 and doc["settings"]["n_train"] == 5  # SBD found
    table = pd.read_csv(root / "runs" / "experiment-table3_losses" / "table.csv")
    assert table["loss"].tolist() == ["l1", "l2", "ranking", "improved_ranking"]

    needles = [v.encode() for v in SENTINELS.values()]
    assert files_containing(root, needles) == [] and files_containing(home, needles) == []
    assert files_containing(logs, needles) == []
    assert not any(n.decode() in str(p) for p in parameters for n in needles)
