"""Sky backends behind one interface, and the dense CRF."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tasks.labels.sky import SKY, build_sky, detect_sky, refine_with_crf
from tests.tasks.stereo_scenes import make_scene


def _precision_recall(pred, truth):
    tp = (pred & truth).sum()
    return tp / max(pred.sum(), 1), tp / max(truth.sum(), 1)


def test_registry_names():
    assert {"heuristic", "segformer", "mmseg"} <= set(SKY.names())
    with pytest.raises(KeyError, match="known"):
        build_sky("nope")


@pytest.mark.parametrize("crf", [False, True])
def test_heuristic_finds_synthetic_sky(crf):
    s = make_scene(96, 128, sky_rows=30)
    prob, sky = detect_sky(build_sky("heuristic"), s.left, crf=crf)
    assert prob.shape == sky.shape == (96, 128)
    p, r = _precision_recall(sky, s.sky)
    assert p > 0.9 and r > 0.9


def test_crf_snaps_a_blurry_probability_to_the_colour_edge():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:24] = (120, 170, 240)
    img[24:] = (90, 70, 40)
    truth = np.zeros((64, 64), bool)
    truth[:24] = True
    prob = np.clip(1.0 - np.arange(64) / 48.0, 0, 1)[:, None].repeat(64, 1).astype(np.float32)  # edge at row 24 blurred
    prob = np.clip(prob + np.random.default_rng(0).normal(0, 0.15, prob.shape), 0, 1).astype(np.float32)
    raw_err = ((prob > 0.5) != truth).mean()
    refined = refine_with_crf(img, prob)
    assert refined.shape == (64, 64)
    assert ((refined > 0.5) != truth).mean() < raw_err


def test_segformer_tiny_random_config_from_a_local_directory(tmp_path):
    pytest.importorskip("transformers")
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(num_labels=150, depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32],
                             num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
                             id2label={i: ("sky" if i == 2 else f"c{i}") for i in range(150)},
                             label2id={("sky" if i == 2 else f"c{i}"): i for i in range(150)})
    SegformerForSemanticSegmentation(config).save_pretrained(tmp_path / "segformer")
    backend = build_sky("segformer", checkpoint=str(tmp_path / "segformer"), device="cpu", input_side=96)
    assert backend.sky_class == 2
    s = make_scene(70, 90, sky_rows=20)
    prob, sky = detect_sky(backend, s.left, crf=True)
    assert prob.shape == sky.shape == (70, 90)
    assert np.isfinite(prob).all() and 0 <= prob.min() and prob.max() <= 1


def test_segformer_needs_a_checkpoint():
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="checkpoint"):
        build_sky("segformer", checkpoint=None)


@pytest.mark.mmseg
def test_mmseg_backend(tmp_path):
    if importlib.util.find_spec("mmcv") is None or importlib.util.find_spec("mmcv.ops") is None:
        pytest.skip("mmcv with compiled ops is not installed (pip install 'redweb[mmseg]')")
    pytest.importorskip("mmseg")
    from mmengine import Config
    from mmengine.runner import save_checkpoint
    from mmseg.apis import init_model

    # a tiny random FCN on ADE20K's 150 classes, saved as config + checkpoint files
    cfg = Config(dict(model=dict(
        type="EncoderDecoder", data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                                                      std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type="ResNetV1c", depth=18, num_stages=4, out_indices=(3,), strides=(1, 2, 2, 2)),
        decode_head=dict(type="FCNHead", in_channels=512, channels=16, num_convs=1, num_classes=150,
                         in_index=0, norm_cfg=None),
        test_cfg=dict(mode="whole")),
        # what inference_model runs on an array (its first step becomes LoadImageFromNDArray)
        test_pipeline=[dict(type="LoadImageFromFile"), dict(type="PackSegInputs")]))
    cfg_path = tmp_path / "fcn.py"
    cfg.dump(str(cfg_path))
    model = init_model(str(cfg_path), None, device="cpu")
    # the layout of a released mmseg checkpoint: weights + meta (init_model reads checkpoint["meta"])
    save_checkpoint({"meta": {"dataset_meta": {"classes": [f"c{i}" for i in range(150)]}},
                     "state_dict": model.state_dict()}, str(tmp_path / "fcn.pth"))
    backend = build_sky("mmseg", checkpoint=str(tmp_path / "fcn.pth"), mmseg_config=str(cfg_path), device="cpu")
    prob, sky = detect_sky(backend, make_scene(64, 64, sky_rows=16).left)
    assert prob.shape == (64, 64)
