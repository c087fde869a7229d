"""`redweb experiment run` on the shipped Table 2 / Table 3 / Fig. 5 configs at toy size, and
`redweb finetune depth|segment` through their Prefect flows (real flows, CPU, seconds per run)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from model.data import make_synthetic_export
from tests.model.paper_data import make_nyu_mat, make_voc_sbd, one_torch_thread  # noqa: F401  (autouse)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "experiments"


@pytest.fixture(scope="module")
def toy_export(tmp_path_factory) -> Path:
    return make_synthetic_export(tmp_path_factory.mktemp("exp") / "export", n=7, size=(36, 44), seed=4,
                                 val_fraction=0.3)


def test_experiment_plan_lists_the_settings(capsys, data_root):
    assert main(["experiment", "plan", str(CONFIGS / "fig5.yaml")]) == 0
    out = capsys.readouterr().out
    assert "n_images-360__n_pairs-3000__seed-0" in out and "(10 settings)" in out


def test_experiment_refuses_missing_data(capsys, data_root):
    assert main(["experiment", "run", str(CONFIGS / "table3.yaml"), "--toy"]) == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name,rows", [("table2", 4), ("table3", 4), ("fig5", 10)])
def test_shipped_config_runs_end_to_end_at_toy_size(name, rows, toy_export, tmp_path, data_root, prefect_test_server):
    out = tmp_path / name
    code = main(["experiment", "run", str(CONFIGS / f"{name}.yaml"), "--toy", "--data", str(toy_export),
                 "--out", str(out)])
    assert code == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == rows and runs["wkdr"].between(0, 1).all() and (runs["steps"] == 2).all()
    assert runs["wkdr_chen2016"].between(0, 1).all() and (runs["wkdr_chen2016_tau"] >= 0).all()
    table = pd.read_csv(out / "table.csv")
    assert len(table) == rows
    assert (out / "table.md").read_text().startswith("# ")
    if name == "fig5":
        assert (out / "sweep.png").stat().st_size > 1000
        assert sorted(table["n_pairs"].unique().tolist()) == [1, 100, 1000, 3000, 6000]
    if name == "table2":
        assert table["arch"].tolist() == ["resnet50_direct_upsample", "resnet50_dilated", "resnet50_upproj",
                                          "resnet50_fusion"]
    # keep: none at toy size: no checkpoints left behind
    assert not list(out.glob("runs/*/model.pt")) and not list(out.glob("runs/*/checkpoints/*.pt"))
    assert len(list(out.glob("runs/*/result.json"))) == rows


@pytest.mark.slow
def test_finetune_commands_run_through_their_flows(tmp_path, data_root, prefect_test_server, monkeypatch,
                                                   capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    mat, split = make_nyu_mat(tmp_path / "nyu" / "nyu_depth_v2_labeled.mat")
    tiny = ["--arch", "resnet18_fusion", "--arch-kwargs", '{"channels": 16}', "--iterations", "2", "--batch-size", "2",
            "--num-workers", "0", "--device", "cpu", "--no-progress"]
    assert main(["finetune", "depth", "--data", str(mat), "--split-file", str(split), "--init", "scratch",
                 "--augment-count", "6", "--input-size", "16", "24", "--run-dir", str(tmp_path / "d"), *tiny]) == 0
    doc = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert doc["task"] == "metric_depth" and doc["n_images"] == 3 and doc["settings"]["resumed_from_step"] is None
    assert (tmp_path / "d" / "checkpoints" / "last.pt").is_file()
    again = ["finetune", "depth", "--data", str(mat), "--split-file", str(split), "--init", "scratch",
             "--augment-count", "6", "--input-size", "16", "24", "--run-dir", str(tmp_path / "d"), *tiny]
    assert main(again) == 2  # the run folder holds a run: not overwritten without --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main([*again, "--resume"]) == 0  # finished: resumes at step 2, trains nothing, scores again
    assert json.loads((tmp_path / "d" / "metrics.json").read_text())["settings"]["resumed_from_step"] == 2
    voc, sbd = make_voc_sbd(tmp_path / "seg")
    assert main(["finetune", "segment", "--voc", str(voc), "--sbd", str(sbd), "--init", "imagenet",
                 "--crop-size", "32", "--run-dir", str(tmp_path / "s"), *tiny]) == 0
    doc = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert doc["task"] == "segmentation" and 0 <= doc["miou"] <= 1


def test_finetune_refuses_bad_inputs(tmp_path, capsys, data_root):
    assert main(["finetune", "depth", "--data", str(tmp_path / "missing.mat")]) == 2
    assert "NYUv2 labeled .mat" in capsys.readouterr().err
    assert main(["finetune", "segment", "--voc", str(tmp_path)] + ["--init", "nothing.pt"]) == 2
    assert "neither imagenet" in capsys.readouterr().err
    assert main(["finetune", "segment", "--voc", str(tmp_path), "--resume"]) == 2
    assert "--resume needs the --run-dir" in capsys.readouterr().err
