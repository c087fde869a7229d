"""A checkpoint from `model.train` evaluated end to end on CPU, through the functions and the CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import benchmarks as B
from model import evaluate as E


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(export folder, model.pt): 3 steps of a narrow resnet18 fusion net from scratch on a synthetic export."""
    from model.config import TrainConfig
    from model.data import make_synthetic_export
    from model.train import train

    root = tmp_path_factory.mktemp("trained")
    export = make_synthetic_export(root / "export", n=6, size=64, seed=0)
    config = TrainConfig(arch="resnet18_fusion", arch_kwargs={"channels": 32}, pretrained=False,
                         input_size=64, batch_size=2, iterations=3, val_every=2, log_every=1, num_workers=0,
                         device="cpu", tensorboard=False)
    result = train(data=export, run_dir=root / "run", config=config, progress=False)
    return export, result.checkpoint


@pytest.fixture(scope="module")
def diw_on_export(trained, tmp_path_factory) -> tuple[Path, Path]:
    """A DIW-format CSV over the export's images, copied as .thumb files (JPEGs named .thumb)."""
    export, _ = trained
    images = tmp_path_factory.mktemp("diw_images")
    lines = []
    for k, img in enumerate(sorted((export / "imgs").glob("*.jpg"))):
        shutil.copy(img, images / f"{img.stem}.thumb")
        lines += [f"{img.stem}.thumb", f"{10 + k},{5},{50},{40 + k},{'<' if k % 2 else '>'},64,64"]
    csv_path = images.parent / f"{images.name}.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path, images


def test_checkpoint_on_export_val_split(trained):
    export, ckpt = trained
    # as the pipeline calls it: --images is the export folder itself, device "auto"
    doc = E.evaluate_checkpoint("redweb", export, ckpt, images=export, device="auto", pairs_per_image=300)
    n_val = sum(1 for _ in B.iter_redweb_export(export))
    assert doc["n_images"] == n_val >= 1
    for k in ("wkdr", "wkdr_eq", "wkdr_neq"):
        assert 0.0 <= doc[k] <= 1.0
    assert set(doc["baselines"]) == {"lower_is_closer", "constant"}
    assert doc["model"] == "resnet18_fusion" and doc["settings"]["checkpoint"] == str(ckpt)


def test_checkpoint_on_diw(trained, diw_on_export):
    _, ckpt = trained
    csv_path, images = diw_on_export
    doc = E.evaluate_checkpoint("diw", csv_path, ckpt, images=images)
    assert 0.0 <= doc["whdr"] <= 1.0 and doc["n_pairs"] == 6
    # lower is closer, by hand: every pair has A above B (y_A < y_B) -> predicts '>';
    # relations alternate '>' (k even: right) and '<' (k odd: wrong) -> 3/6
    assert doc["baselines"]["lower_is_closer"]["whdr"] == pytest.approx(0.5)


def test_predicted_files_score_like_the_checkpoint(trained, tmp_path):
    from model.predict import load_checkpoint_model, predict_files

    export, ckpt = trained
    model, spec, _ = load_checkpoint_model(ckpt)
    images = [s.image_path for s in B.iter_redweb_export(export)]
    predict_files(model, images, tmp_path / "pred", spec=spec, save_npy=True, previews=False, progress=False)
    for p in (tmp_path / "pred").glob("*.png"):
        p.unlink()  # score the float .npy files
    from_files = E.evaluate_predictions("redweb", export, tmp_path / "pred", pairs_per_image=300)
    direct = E.evaluate_checkpoint("redweb", export, ckpt, pairs_per_image=300)
    assert from_files["wkdr"] == pytest.approx(direct["wkdr"], abs=0.01)
    assert from_files["baselines"] == direct["baselines"]


def test_cli_evaluate_and_predict(trained, diw_on_export, tmp_path, prefect_test_server):
    from flows.cli import main

    export, ckpt = trained
    out_json = tmp_path / "eval.json"
    run_dir = tmp_path / "eval_run"
    rc = main(["evaluate", "--data-root", str(tmp_path / "data"), "--benchmark", "redweb", "--annotations",
               str(export), "--checkpoint", str(ckpt), "--out", str(out_json), "--run-dir", str(run_dir),
               "--device", "cpu", "--pairs-per-image", "200", "--no-progress"])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert {"wkdr", "wkdr_eq", "wkdr_neq", "baselines"} <= set(doc)
    assert (run_dir / "metrics.json").is_file() and (run_dir / "report.html").is_file()
    assert (run_dir / "config.yaml").is_file()  # the effective config, as every run keeps it
    assert (run_dir / "figures" / "examples.png").is_file()

    pred_dir = tmp_path / "pred"
    rc = main(["predict", str(export / "imgs"), "--checkpoint", str(ckpt), "--out", str(pred_dir),
               "--device", "cpu", "--no-progress"])
    assert rc == 0
    assert len(list(pred_dir.glob("*.png"))) == len(list((export / "imgs").glob("*.jpg")))
    assert len(list((pred_dir / "preview").glob("*.jpg"))) == len(list(pred_dir.glob("*.png")))

    csv_path, images = diw_on_export
    out2 = tmp_path / "diw.json"
    rc = main(["evaluate", "--benchmark", "diw", "--annotations", str(csv_path), "--images", str(images),
               "--predictions", str(pred_dir), "--out", str(out2), "--run-dir", str(tmp_path / "diw_run"),
               "--no-progress"])
    assert rc == 0
    diw = json.loads(out2.read_text())
    assert 0.0 <= diw["whdr"] <= 1.0 and diw["baselines"]["lower_is_closer"]["whdr"] == pytest.approx(0.5)
    assert (tmp_path / "diw_run" / "figures" / "examples.png").is_file()  # images with the labelled points

    # a user error is a message and exit code 2, not a traceback
    rc = main(["evaluate", "--benchmark", "diw", "--annotations", str(csv_path), "--predictions",
               str(tmp_path / "nope"), "--run-dir", str(tmp_path / "x"), "--no-progress"])
    assert rc == 2


def test_console_script_help():
    exe = Path(sys.executable).with_name("redweb")
    if not exe.exists():
        pytest.skip("console script not installed")
    out = subprocess.run([str(exe), "evaluate", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--predictions" in out.stdout and "--inverse" in out.stdout
