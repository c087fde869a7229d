"""Fine-tuning for metric depth (NYUv2 .mat) and segmentation (VOC + SBD), from every init, a few steps."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from model.checkpoint import NORMALIZATION, load_checkpoint, load_model, save_checkpoint
from model.finetune import build_init_model
from model.benchmarks import eigen_crop_mask
from model.finetune_depth import (
    augment_nyu,
    finetune_depth,
    nyu_split,
    nyu_train_indices,
)
from model.finetune_segment import finetune_segment
from model.registry import build_model
from model.voc import N_CLASSES, SegmentationSource, read_sbd_label, read_voc_label, train_aug_ids

from .paper_data import SBD_TRAIN, SBD_VAL, VOC_TRAIN, VOC_VAL, make_nyu_mat, make_voc_sbd, one_torch_thread  # noqa: F401

TINY = {"arch_kwargs": {"channels": 16}, "batch_size": 2, "iterations": 2, "num_workers": 0, "device": "cpu",
        "log_every": 1}


@pytest.fixture(autouse=True)
def _no_torch_cache(tmp_path, monkeypatch):
    # No ImageNet weights anywhere: init=imagenet must fall back to random weights, visibly.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    return make_nyu_mat(tmp_path_factory.mktemp("nyu") / "nyu_depth_v2_labeled.mat")


@pytest.fixture(scope="module")
def voc_sbd(tmp_path_factory):
    return make_voc_sbd(tmp_path_factory.mktemp("voc"))


@pytest.fixture(scope="module")
def relative_checkpoint(tmp_path_factory):
    """A relative-depth checkpoint as `redweb train` writes it (resnet18_fusion, 16-channel decoder)."""
    torch.manual_seed(0)
    model = build_model("resnet18_fusion", channels=16)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model=model, meta={"task": "relative_depth", "arch": "resnet18_fusion",
                                             "arch_kwargs": {"channels": 16}, "normalization": NORMALIZATION,
                                             "step": 7})
    return path


def test_official_split_is_795_train_654_test():
    from model.benchmarks import nyu_official_test_indices

    test = nyu_official_test_indices()
    train = nyu_train_indices(1449, test)
    assert len(train) == 795 and len(test) == 654 and not set(train) & set(test)


def test_split_of_a_small_mat_needs_a_split_file(nyu):
    mat, split = nyu
    assert nyu_split(mat, split) == ((1, 3, 4, 6, 7), (2, 5, 8))
    with pytest.raises(ValueError, match="--split-file"):
        nyu_split(mat)  # the official list names indices up to 1449


def test_eigen_crop_is_exact_at_480x640_and_proportional_otherwise():
    m = eigen_crop_mask((480, 640))
    assert m.sum() == (471 - 45) * (601 - 41) and m[45, 41] and not m[44, 41] and not m[45, 601]
    small = eigen_crop_mask((24, 32))
    assert small[2:24, 2:30].all() and not small[0].any()


def test_offline_augmentation_writes_count_samples_and_reuses_them(nyu, tmp_path):
    import h5py

    mat, split = nyu
    train, _ = nyu_split(mat, split)
    out = augment_nyu(mat, tmp_path / "aug.h5", indices=train, count=12, size=(16, 24), seed=3)
    with h5py.File(out, "r") as f:
        images, depths = f["images"][:], f["depths"][:]
    assert images.shape == (12, 16, 24, 3) and depths.shape == (12, 16, 24)
    # the first len(train) are the images themselves; the rest are augmented copies
    assert not np.array_equal(images[0], images[len(train)])
    valid = depths[depths > 0]
    assert valid.min() >= 1.0 / 1.5 - 1e-3 and valid.max() <= 6.0 + 1e-3  # scale aug divides depth by s <= 1.5
    mtime = out.stat().st_mtime_ns
    assert augment_nyu(mat, out, indices=train, count=12, size=(16, 24), seed=3).stat().st_mtime_ns == mtime
    augment_nyu(mat, out, indices=train, count=13, size=(16, 24), seed=3)
    with h5py.File(out, "r") as f:
        assert f["images"].shape[0] == 13  # different settings: rebuilt


@pytest.mark.parametrize("init", ["checkpoint", "imagenet", "scratch"])
def test_finetune_depth_from_each_init(init, nyu, relative_checkpoint, tmp_path, caplog):
    mat, split = nyu
    source = str(relative_checkpoint) if init == "checkpoint" else init
    arch = None if init == "checkpoint" else "resnet18_fusion"
    with caplog.at_level(logging.WARNING):
        result = finetune_depth(data=mat, run_dir=tmp_path / "run", init=source, arch=arch, split_file=str(split),
                                augment_count=8, input_size=(16, 24), **TINY)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("delta1", "delta2", "delta3", "rel", "log10", "rms"):
        assert np.isfinite(doc[key])
    assert doc["n_images"] == 3 and doc["init"] == ("checkpoint" if init == "checkpoint" else init)
    assert 0 <= doc["delta1"] <= doc["delta2"] <= doc["delta3"] <= 1
    model, meta = load_model(result.checkpoint)
    assert meta["task"] == "metric_depth" and meta["head"]["out_channels"] == 1 and meta["head"]["units"] == "metres"
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406] and meta["input_size"] == [16, 24]
    assert meta["dataset"]["n_train"] == 5 and meta["dataset"]["n_test"] == 3
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 24)).shape == (1, 1, 16, 24)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step") and len(rows) == 3
    if init == "imagenet":
        assert meta["backbone_pretrained"] is False
        assert "random weights stand in" in caplog.text
    if init == "checkpoint":
        assert meta["init"]["source"]["step"] == 7 and meta["backbone_pretrained"] is True


def test_checkpoint_init_keeps_backbone_and_decoder_but_not_the_head(relative_checkpoint):
    source = load_checkpoint(relative_checkpoint)["model"]
    model, info = build_init_model(str(relative_checkpoint), arch=None, out_channels=N_CLASSES)
    state = model.state_dict()
    assert torch.equal(state["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])
    assert torch.equal(state["fuse.0.transition.weight"], source["fuse.0.transition.weight"])
    assert state["output.conv2.weight"].shape[0] == N_CLASSES != source["output.conv2.weight"].shape[0]
    assert info["arch_kwargs"] == {"channels": 16, "out_channels": N_CLASSES}
    with pytest.raises(ValueError, match="same architecture"):
        build_init_model(str(relative_checkpoint), arch="resnet50_fusion", out_channels=1)
    with pytest.raises(FileNotFoundError, match="neither"):
        build_init_model("no/such/file.pt", arch="resnet18_fusion", out_channels=1)


def test_imagenet_init_loads_a_local_torchvision_state_dict(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    model, info = build_init_model("imagenet", arch="resnet18_fusion", out_channels=1, arch_kwargs={"channels": 16},
                                   weights_path=path)
    assert info["backbone_pretrained"] is True and model.backbone_pretrained


def test_voc_and_sbd_loaders_read_the_official_layouts(voc_sbd):
    voc, sbd = voc_sbd
    source = SegmentationSource(voc, sbd)
    ids = train_aug_ids(source.voc, source.sbd)
    # VOC train + SBD train + SBD val, minus VOC val (2007_000042 is in SBD train *and* VOC val)
    assert ids == sorted((set(VOC_TRAIN) | set(SBD_TRAIN) | set(SBD_VAL)) - set(VOC_VAL))
    assert "2007_000042" not in ids and len(ids) == 5
    voc_label = read_voc_label(source.voc / "SegmentationClass" / f"{VOC_TRAIN[0]}.png")
    assert set(np.unique(voc_label)) <= {0, 1, 255} and (voc_label == 255).any()
    sbd_label = read_sbd_label(source.sbd / "cls" / "2008_000002.mat")
    assert sbd_label.dtype == np.uint8 and sbd_label.max() > 0 and 255 not in sbd_label
    # an id in both: VOC's finer label (with void borders) wins
    assert (source.label("2007_000039") == 255).any()
    item = source.load("2008_000003")
    assert item["rgb"].shape[:2] == item["label"].shape


@pytest.mark.parametrize("init", ["checkpoint", "imagenet", "scratch"])
def test_finetune_segment_from_each_init(init, voc_sbd, relative_checkpoint, tmp_path):
    voc, sbd = voc_sbd
    source = str(relative_checkpoint) if init == "checkpoint" else init
    arch = None if init == "checkpoint" else "resnet18_fusion"
    result = finetune_segment(voc=voc, sbd=sbd, run_dir=tmp_path / "run", init=source, arch=arch, crop_size=32, **TINY)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= doc["miou"] <= 1.0 and doc["n_images"] == len(VOC_VAL) and doc["settings"]["n_train"] == 5
    assert set(doc["iou"]) >= {"background", "aeroplane"}
    model, meta = load_model(result.checkpoint)
    assert meta["task"] == "segmentation" and meta["head"]["out_channels"] == 21
    assert meta["head"]["classes"][0] == "background" and meta["head"]["ignore_index"] == 255
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 21, 32, 32)
    if init == "scratch":
        from model.predict import load_checkpoint_model

        with pytest.raises(ValueError, match="segmentation checkpoint"):
            load_checkpoint_model(result.checkpoint)


@pytest.mark.slow
def test_finetune_segment_default_arch_is_resnet101(voc_sbd, tmp_path):
    voc, sbd = voc_sbd
    result = finetune_segment(voc=voc, sbd=sbd, run_dir=tmp_path / "run", init="imagenet", crop_size=32,
                              eval_max_images=1, **{**TINY, "iterations": 1})
    assert load_checkpoint(result.checkpoint)["meta"]["arch"] == "resnet101_fusion"


def _interrupt_at(monkeypatch, module, name: str, call: int) -> None:
    """Make ``module.name`` (the task's loss) raise KeyboardInterrupt on its ``call``-th call: a run stopped
    by Ctrl-C (or killed) in the middle of that training step."""
    real, calls = getattr(module, name), []

    def loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, loss)


def _losses(run) -> list[str]:
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return [(r["step"], r["lr"], r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("task", ["depth", "segment"])
def test_an_interrupted_finetune_resumes_at_its_step_and_ends_as_an_uninterrupted_run(task, nyu, voc_sbd, tmp_path,
                                                                                       monkeypatch):
    import model.finetune_depth as depth_module
    import model.finetune_segment as segment_module

    mat, split = nyu
    voc, sbd = voc_sbd
    settings = {**TINY, "iterations": 6, "checkpoint_every": 2, "init": "scratch", "arch": "resnet18_fusion"}

    def run_task(run, **changed):
        kw = {**settings, **changed}
        if task == "depth":
            return finetune_depth(data=mat, split_file=str(split), augment_count=7, input_size=(16, 24), run_dir=run,
                                  **kw)
        return finetune_segment(voc=voc, sbd=sbd, crop_size=32, run_dir=run, **kw)

    module, loss_name = ((depth_module, "tukey_biweight_loss") if task == "depth"
                         else (segment_module, "segmentation_loss"))

    straight = run_task(tmp_path / "straight")
    assert load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["training"]["step"] == 6

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as m:
        _interrupt_at(m, module, loss_name, call=5)  # in step 5: steps 1-4 done, last.pt written at step 4
        with pytest.raises(KeyboardInterrupt):
            run_task(stopped)
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["training"]["step"] == 4
    assert not (stopped / "model.pt").exists()
    assert [r[0] for r in _losses(stopped)] == ["1", "2", "3", "4"]

    with pytest.raises(ValueError, match="iterations differ"):  # another run's settings: refused, nothing lost
        run_task(stopped, resume=True, iterations=8)
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["training"]["step"] == 4
    resumed = run_task(stopped, resume=True)
    assert resumed.metrics["settings"]["resumed_from_step"] == 4
    assert straight.metrics["settings"]["resumed_from_step"] is None
    # the same loss sequence (metrics.csv keeps steps 1-4, the resumed run appends 5-6) ...
    assert _losses(stopped) == _losses(tmp_path / "straight") and len(_losses(stopped)) == 6
    # ... the same weights, bit for bit, and the same scores
    a, b = load_checkpoint(straight.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    key = "rms" if task == "depth" else "miou"
    assert resumed.metrics[key] == straight.metrics[key]
    # a finished run resumed again trains no further step and scores the same network
    again = run_task(stopped, resume=True)
    assert again.metrics["settings"]["resumed_from_step"] == 6 and again.metrics[key] == straight.metrics[key]
