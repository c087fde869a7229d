"""One real Prefect run of the process flow (temporary Prefect API), and the CLI's argument wiring."""
from __future__ import annotations

import argparse

import cv2
import pytest

from tests.tasks.test_process import add_split_item


@pytest.fixture
def pair():
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    s = 160 / left.shape[1]
    return [cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for v in (left, right)]


def test_process_flow_runs_batches_and_records_states(prefect_test_server, tmp_path, data_root, pair):
    from flows.process import process_flow
    from tasks.catalog.catalog import Catalog

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog(url) as catalog:
        ids = [add_split_item(catalog, data_root, f"p{k}", *pair)[0] for k in range(3)]
        counts = process_flow(data_root=str(data_root), overrides={
            "database_url": url, "process.batch_size": 2, "process.max_side": 160, "process.crf": False})
        assert sum(counts.values()) == 3
        states = {catalog.get(i).state for i in ids}
        assert states <= {"pending_review", "auto_rejected"}
        assert all(catalog.get(i).depth_path for i in ids)
        # resumable: a second run finds nothing to do
        assert process_flow(overrides={"database_url": url}) == {}  # data root from $REDWEB_DATA_ROOT


def test_cli_parses_process_options():
    from flows.commands import process as cmd

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    args = parser.parse_args(["--backend", "flownet2", "--sky", "segformer", "--limit", "3", "--reprocess"])
    assert (args.backend, args.sky, args.limit, args.reprocess) == ("flownet2", "segformer", 3, True)
