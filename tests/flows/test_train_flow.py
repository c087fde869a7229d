"""`redweb train`: option merging, refusals, and one real run through the Prefect flow."""
from __future__ import annotations

import argparse

import pytest

from flows.cli import main
from model.config import TrainConfig
from model.data import make_synthetic_export
from model.train_args import add_train_arguments, train_kwargs_from_args

TINY = ["--arch", "resnet18_fusion", "--arch-kwargs", '{"channels": 32}', "--no-pretrained", "--input-size", "32",
        "--batch-size", "2", "--n-pairs", "100", "--num-workers", "0", "--no-progress"]  # fmt: skip


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(argv)


def test_options_override_config_and_iterations_epochs_exclude():
    defaults = TrainConfig(lr=0.5, batch_size=3).model_dump()
    kw = train_kwargs_from_args(_parse(["--data", "d", "--epochs", "2", "--input-size", "48", "64"]), defaults)
    assert kw["epochs"] == 2 and kw["iterations"] is None
    assert kw["input_size"] == (48, 64) and kw["lr"] == 0.5 and kw["batch_size"] == 3
    assert "resume" not in kw
    kw = train_kwargs_from_args(_parse(["--data", "d", "--batch-size", "5", "--resume"]), defaults)
    assert kw["batch_size"] == 5 and kw["resume"] is True and kw["iterations"] == 40000
    kw = train_kwargs_from_args(_parse(["--data", "d", "--resume", "x/last.pt"]), defaults)
    assert kw["resume"] == "x/last.pt"


def test_train_config_rejects_unknown_fields():
    with pytest.raises(ValueError):
        TrainConfig(learning_rate=0.1)


def test_refuses_existing_checkpoint_without_resume(tmp_path, data_root, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["train", "--data", str(tmp_path), "--run-dir", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_redweb_train_runs_the_flow_and_writes_the_run(tmp_path, data_root, prefect_test_server):
    from model.checkpoint import load_model

    data = make_synthetic_export(tmp_path / "export", n=5, size=40)
    code = main(["train", "--data", str(data), "--iterations", "3", "--set", "train.val_every=3", *TINY])
    assert code == 0
    # (No capsys here: Prefect's console handler would keep the captured stream after the test.)
    runs = list((data_root / "runs").glob("train-*"))
    assert len(runs) == 1
    assert (runs[0] / "config.yaml").is_file() and (runs[0] / "metrics.csv").is_file()
    model, meta = load_model(runs[0] / "model.pt")
    assert meta["step"] == 3 and meta["config"]["val_every"] == 3
