"""Training loop: outputs, checkpoints, exact resume after SIGKILL, torchrun/gloo with 2 processes."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, load_model
from model.data import make_synthetic_export
from model.config import TrainConfig
from model.engine import epoch_batches, make_optimizer, steps_per_epoch
from model.registry import build_model
from model.train import train

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "arch": "resnet18_fusion",
    "arch_kwargs": {"channels": 32},
    "pretrained": False,
    "input_size": 32,
    "batch_size": 2,
    "n_pairs": 100,
    "num_workers": 0,
}


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    return make_synthetic_export(tmp_path_factory.mktemp("data") / "export", n=6, size=(36, 44), seed=1)


def test_train_writes_model_checkpoint_metrics_and_config(tiny_export, tmp_path):
    result = train(data=tiny_export, run_dir=tmp_path / "run", progress=False,
                   config=TrainConfig(iterations=4, val_every=2, log_every=1, checkpoint_every=2, **TINY))
    run = tmp_path / "run"
    assert result.step == 4 and result.checkpoint == run / "model.pt"
    assert set(result.metrics) == {"val_ordinal_error", "val_loss", "val_pairs"}
    # metrics.csv: one row per step, validation at steps 2 and 4.
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert rows[1]["val_ordinal_error"] != "" and rows[0]["val_ordinal_error"] == ""
    assert 0.0 <= float(rows[3]["val_ordinal_error"]) <= 1.0
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert "arch: resnet18_fusion" in (run / "train_config.yaml").read_text()
    # The final checkpoint carries what it needs, and rebuilds the net alone.
    model, meta = load_model(run / "model.pt")
    assert meta["arch"] == "resnet18_fusion" and meta["arch_kwargs"] == {"channels": 32}
    assert meta["input_size"] == [32, 32] and meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert len(meta["dataset"]["manifest_sha256"]) == 64 and meta["dataset"]["n_train"] > 0
    assert meta["code_version"] and meta["config"]["iterations"] == 4 and meta["step"] == 4
    assert not model.training
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 40)).shape == (1, 1, 32, 40)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert {"optimizer", "scheduler", "scaler", "rng", "step"} <= set(last["training"])
    assert "training" not in load_checkpoint(run / "model.pt")
    for k, v in last["model"].items():
        assert torch.equal(v, model.state_dict()[k])


def test_iterations_xor_epochs(tiny_export, tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        train(data=tiny_export, run_dir=tmp_path, config=TrainConfig(iterations=2, epochs=1, **TINY))


def test_epochs_count_steps(tiny_export, tmp_path):
    n_train = 4  # 6 items, val_fraction 0.25 in make_synthetic_export -> 2 val
    result = train(data=tiny_export, run_dir=tmp_path / "e", progress=False,
                   config=TrainConfig(epochs=2, val_every=100, tensorboard=False, **TINY))
    assert result.step == 2 * steps_per_epoch(n_train, 2)


def test_epoch_batches_shard_and_repeat():
    one = epoch_batches(7, epoch=3, seed=5, batch_size=2, rank=0, world_size=1)
    assert one == epoch_batches(7, epoch=3, seed=5, batch_size=2, rank=0, world_size=1)
    items = [i for b in one for i, _ in b]
    assert set(items) == set(range(7)) and len(set(items[:7])) == 7
    assert [len(b) for b in one] == [2, 2, 2, 2]  # the last batch is filled by wrapping
    other_epoch = epoch_batches(7, epoch=4, seed=5, batch_size=2, rank=0, world_size=1)
    assert [i for b in one for i, _ in b] != [i for b in other_epoch for i, _ in b]
    r0 = epoch_batches(7, epoch=3, seed=5, batch_size=2, rank=0, world_size=2)
    r1 = epoch_batches(7, epoch=3, seed=5, batch_size=2, rank=1, world_size=2)
    assert len(r0) == len(r1) == steps_per_epoch(7, 2, 2)  # equal step counts on every rank
    assert {i for b in r0 + r1 for i, _ in b} == set(range(7))


def test_backbone_lr_is_ten_times_smaller_only_when_pretrained(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    pretrained = build_model("resnet18_fusion", weights_path=str(path), channels=16)
    opt = make_optimizer(pretrained, name="sgd", lr=0.01, backbone_lr_mult=0.1, momentum=0.9, weight_decay=0)
    assert {g["name"]: g["lr"] for g in opt.param_groups} == {"backbone": pytest.approx(0.001), "head": 0.01}
    scratch = build_model("resnet18_fusion", channels=16)
    opt = make_optimizer(scratch, name="adam", lr=0.01, backbone_lr_mult=0.1, momentum=0.9, weight_decay=0)
    assert [g["lr"] for g in opt.param_groups] == [0.01] and isinstance(opt, torch.optim.Adam)


def _cli(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "model.train", "--data", str(data), "--run-dir", str(run_dir),
        "--arch", "resnet18_fusion", "--arch-kwargs", '{"channels": 32}', "--no-pretrained",
        "--input-size", "32", "--batch-size", "2", "--n-pairs", "100", "--num-workers", "0",
        "--val-every", "100", "--log-every", "1", "--no-progress", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    # One thread in every run: the compared runs must do identical float arithmetic.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_weights(tiny_export, tmp_path):
    iterations = "24"
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(tiny_export, full, "--iterations", iterations, "--checkpoint-every", "100"),
                   check=True, env=_env(), cwd=REPO, capture_output=True)  # fmt: skip

    proc = subprocess.Popen(_cli(tiny_export, killed, "--iterations", iterations, "--checkpoint-every", "4"),
                            env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(last)["training"]["step"]
    assert not (killed / "model.pt").exists() and 0 < killed_at < int(iterations), "kill did not land mid-run"

    subprocess.run(_cli(tiny_export, killed, "--iterations", iterations, "--checkpoint-every", "4", "--resume"),
                   check=True, env=_env(), cwd=REPO, capture_output=True)  # fmt: skip
    a, b = _state(full / "model.pt"), _state(killed / "model.pt")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different[:5]}"
    # The resumed run's metrics.csv has each step once.
    steps = [int(r["step"]) for r in csv.DictReader(open(killed / "metrics.csv"))]
    assert steps == list(range(1, int(iterations) + 1))
    # And training did move the weights (the comparison is not trivially true).
    init = build_model("resnet18_fusion", channels=32).state_dict()
    assert not torch.equal(init["output.conv2.weight"], a["output.conv2.weight"])


@pytest.mark.slow
def test_torchrun_two_cpu_processes_gloo(tiny_export, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *_cli(tiny_export, run, "--iterations", "3", "--checkpoint-every", "2")[1:]]  # fmt: skip
    out = subprocess.run(cmd, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(run / "model.pt") in out.stdout  # printed once, by rank 0
    model, meta = load_model(run / "model.pt")
    assert meta["config"]["world_size"] == 2 and meta["step"] == 3
    assert all(not k.startswith("module.") for k in load_checkpoint(run / "model.pt")["model"])
