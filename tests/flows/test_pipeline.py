"""The end-to-end DAG: `redweb demo` to the report, and the same outputs on a real 2-worker Dask cluster."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flows.cli import main
from flows.pipeline import redweb_pipeline
from tasks.catalog.catalog import Catalog

SMALL_TRAIN = ["train.iterations=6", "train.input_size=64", "train.arch_kwargs={channels: 32}", "train.n_pairs=200",
               "train.val_every=3", "train.checkpoint_every=3", "train.tensorboard=false",
               "evaluate.pairs_per_image=300", "evaluate.max_side=128"]


def _states(root: Path) -> dict[str, tuple[str, str | None]]:
    with Catalog(f"sqlite:///{root / 'catalog.db'}") as catalog:
        return {i.source_id: (i.state, i.reason) for i in catalog.items(catalog.ids())}


@pytest.mark.slow
def test_demo_then_dask_gives_same_states_and_maps(tmp_path, prefect_test_server, capsys):
    demo_root, dask_root = tmp_path / "demo", tmp_path / "dask"
    args = ["demo", "--data-root", str(demo_root)]
    for o in SMALL_TRAIN:
        args += ["--set", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    report = Path(out.split("report:", 1)[1].split()[0])
    assert report.is_file() and (report.parent / "report.md").is_file()
    md = (report.parent / "report.md").read_text()
    # the report shows maps, the trained model's predictions and its metrics next to the baselines
    assert (report.parent / "figures" / "maps.png").is_file() and "## Maps" in md
    assert "lower_is_closer" in md and "constant" in md and "| wkdr" in md.replace("| predictor ", "")
    assert "examples.png" in md and "curves.png" in md
    steps = md.split("## Steps", 1)[1].split("##", 1)[0]  # step summaries as text, not escaped JSON
    assert "&quot;" not in md and "{" not in steps and "items: 31" in steps and "outcome:" in steps
    assert "redweb review --data-root" in out

    states = _states(demo_root)
    assert any(s == "auto_accepted" for s, _ in states.values())
    assert (demo_root / "exports" / "demo" / "manifest.csv").is_file()

    # the same ingest + process on a LocalCluster of 2 worker processes, without training
    result = redweb_pipeline(source="samples", data_root=str(dask_root), train=False, workers=2,
                             overrides=["process.auto_accept_score=0.5"])
    assert Path(result["report"]).is_file()
    assert _states(dask_root) == states
    maps = sorted((demo_root / "maps").glob("*/depth.png"))
    assert maps
    for depth in maps:
        twin = dask_root / depth.relative_to(demo_root)
        for name in ("depth.png", "mask.png", "sky.png"):
            a = cv2.imread(str(depth.parent / name), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(twin.parent / name), cv2.IMREAD_UNCHANGED)
            assert a is not None and np.array_equal(a, b), f"{depth.parent.name}/{name} differs under Dask"
