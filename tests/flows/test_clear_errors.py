"""Missing or empty data: every command that trains or evaluates stops with one line naming the folder and
what it expected (never a DataLoader worker crash or a traceback), and the deployments fail the same way."""
from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from tasks.catalog.catalog import Catalog
from tasks.publish.export import export_dataset


@pytest.fixture
def empty_export(tmp_path) -> Path:
    """What `redweb export` writes when nothing was accepted yet: a manifest with no rows."""
    root = tmp_path / "data"
    root.mkdir()
    out = root / "exports" / "current"
    with Catalog(f"sqlite:///{root / 'catalog.db'}") as catalog:
        export_dataset(catalog, root, out)
    assert (out / "manifest.csv").is_file()
    return out


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def _run(args: list[str], data_root: Path, monkeypatch) -> int:
    monkeypatch.setenv("REDWEB_DATA_ROOT", str(data_root))
    return main(args)


def test_train_on_an_empty_export_and_on_no_folder(empty_export, tmp_path, capsys, monkeypatch):
    assert _run(["train", "--data", str(empty_export)], tmp_path, monkeypatch) == 2
    line = _one_line(capsys)
    assert str(empty_export) in line and "no training items" in line
    assert _run(["train", "--data", str(tmp_path / "nowhere")], tmp_path, monkeypatch) == 2
    line = _one_line(capsys)
    assert "nowhere: no such folder" in line and "manifest.csv" in line


def test_experiment_on_an_empty_export(empty_export, tmp_path, capsys, monkeypatch):
    code = _run(["experiment", "run", "configs/experiments/table2.yaml", "--toy", "--data", str(empty_export)],
                tmp_path, monkeypatch)
    assert code == 2
    assert str(empty_export) in _one_line(capsys)


def test_the_experiment_deployment_fails_before_any_run_starts(empty_export, tmp_path):
    from flows.experiment import experiment_run_flow
    from model.data import MissingDataError

    root = empty_export.parents[1]
    with pytest.raises(MissingDataError, match="no training items"):
        experiment_run_flow.fn(data_root=str(root), toy=True)  # data: the shared (empty) export
    assert not (root / "runs").exists() or not any((root / "runs").rglob("last.pt"))


@pytest.mark.parametrize("task, what", [("depth", "NYUv2 labeled .mat"), ("segment", "VOC 2012 folder")])
def test_finetune_without_its_benchmark_data(task, what, tmp_path, capsys, monkeypatch):
    assert _run(["finetune", task], tmp_path, monkeypatch) == 2
    line = _one_line(capsys)
    assert what in line and str(tmp_path / "benchmarks") in line


def test_evaluate_without_a_checkpoint_or_on_an_empty_export(empty_export, tmp_path, capsys, monkeypatch):
    args = ["evaluate", "--benchmark", "redweb", "--annotations", str(empty_export), "--images", str(empty_export)]
    assert _run([*args, "--checkpoint", str(tmp_path / "model.pt")], tmp_path, monkeypatch) == 2
    assert "model.pt: no such checkpoint file" in _one_line(capsys)
    (tmp_path / "model.pt").write_bytes(b"")
    assert _run([*args, "--checkpoint", str(tmp_path / "model.pt")], tmp_path, monkeypatch) == 2
    line = _one_line(capsys)
    assert str(empty_export) in line and "no val items" in line


def test_the_evaluate_deployment_names_what_is_missing(tmp_path):
    from flows.evaluate import evaluate_flow

    with pytest.raises(FileNotFoundError, match="no checkpoint given and none promoted or trained"):
        evaluate_flow.fn(data_root=str(tmp_path))
