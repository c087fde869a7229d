"""The shared rules (core/rules.py), worked out by hand, and that every package uses the same ones."""
from __future__ import annotations

import numpy as np
import pytest

from core import rules as C


def test_ordinal_labels_numpy_and_torch_agree_with_the_ratio_rule():
    torch = pytest.importorskip("torch")
    g_i = np.array([1.03, 1.01, 1.00, 0.0, 2.0])
    g_j = np.array([1.00, 1.00, 1.03, 0.0, 0.0])
    expected = [1, 0, -1, 0, 1]  # 3 % farther, 1 % (equal), 3 % closer, both zero, zero never divides
    assert C.ordinal_labels(g_i, g_j).tolist() == expected
    assert C.ordinal_labels(g_i, g_j).dtype == np.int8
    assert C.ordinal_labels(torch.tensor(g_i), torch.tensor(g_j)).tolist() == expected
    assert C.ordinal_labels(g_i[:2], g_j[:2], sigma=0.05).tolist() == [0, 0]


def test_every_package_uses_the_shared_rules():
    import model.data
    import model.evaluate
    import model.metrics
    import model.networks
    import model.predict
    import model.report
    import review_ui.images
    import tasks.labels.correspondence
    import tasks.labels.depth
    import tasks.publish.export
    import tasks.review.store

    assert tasks.labels.depth.SKY_VALUE == model.data.SKY_VALUE == review_ui.images.SKY_VALUE == C.SKY_VALUE == 65535
    assert tasks.labels.depth.ordinal_labels is C.ordinal_labels
    assert tasks.publish.export.split_for is C.split_for and tasks.review.store.id_fraction is C.id_fraction
    assert tasks.labels.correspondence.resolve_device is C.resolve_device is model.predict.resolve_device
    assert model.networks.IMAGENET_MEAN is model.predict.IMAGENET_MEAN is C.IMAGENET_MEAN
    assert model.evaluate.METRIC_ORDER is model.report.TABLE_METRICS is C.METRIC_NAMES
    assert model.metrics.DEPTH_ERROR_NAMES == ("rms", "rel", "log10", "delta1", "delta2", "delta3")


def test_split_is_stable_and_follows_the_fraction():
    ids = [f"{i:016x}" for i in range(2000)]
    splits = [C.split_for(i, 0.2) for i in ids]
    assert splits == [C.split_for(i, 0.2) for i in ids]
    assert 0.17 < splits.count("val") / len(ids) < 0.23
    assert {C.split_for(i, 0.0) for i in ids} == {"train"} and {C.split_for(i, 1.0) for i in ids} == {"val"}
    assert C.id_fraction("abc", "split") != C.id_fraction("abc", "double")  # salts give independent picks


def test_resolve_device():
    assert C.resolve_device("cpu") == "cpu" and C.resolve_device("cuda:1", local_rank=0) == "cuda:1"
    assert C.resolve_device("cuda", local_rank=2) == "cuda:2"
    assert C.resolve_device("auto") in ("cpu", "cuda")


def test_colouriser_orders_near_and_far_and_marks_sky():
    depth = np.array([[1000, 30000], [60000, C.SKY_VALUE]], np.uint16)
    warm = C.colorize_depth(depth, percentiles=(0, 100))  # turbo: near red, far blue
    assert warm.shape == (2, 2, 3) and warm.dtype == np.uint8
    assert warm[0, 0, 0] > warm[0, 0, 2] and warm[1, 0, 2] > warm[1, 0, 0]  # near reddish, far bluish
    assert tuple(warm[1, 1]) == (10, 20, 60)  # sky
    dark = C.colorize_depth(depth.astype(np.float64), colormap="magma", near="dark", percentiles=(0, 100),
                            sky=np.zeros((2, 2), bool))
    assert dark[0, 0].sum() < dark[0, 1].sum() < dark[1, 0].sum()  # ReDWeb: darker = closer
    valid = np.array([[True, False], [True, True]])
    grey = C.colorize_depth(depth, valid=valid, invalid_rgb=(128, 128, 128))
    assert tuple(grey[0, 1]) == (128, 128, 128)


def test_pipeline_report_step_summaries_are_text():
    from tasks.publish.pipeline_report import _steps_table, summary_text

    assert summary_text({"items": 31, "outcome": {"split": 20, "rejected": 11}, "wkdr": 0.41234}) == \
        "items: 31; outcome: split 20, rejected 11; wkdr: 0.4123"
    table = _steps_table({"ingest": {"seconds": 1.25, "items": 3, "outcome": {"split": 3}}})
    assert "| ingest" in table and "1.2" in table and "outcome: split 3" in table
    assert "&quot;" not in table and "{" not in table
