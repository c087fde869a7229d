"""Run reports: loss curves from metrics.csv, the metrics table against baselines, example images."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from model import report as R

TRAIN_CSV = """step,epoch,time_s,lr,train_loss,train_ordinal_error,images_per_s,val_loss,val_ordinal_error,val_pairs
1,0.5,0.2,0.01,0.70,0.45,8.0,,,
2,1.0,0.4,0.009,0.65,0.40,8.1,0.66,0.41,5000
3,1.5,0.6,0.008,0.60,0.30,8.2,,,
4,2.0,0.8,0.007,0.50,0.25,8.0,0.55,0.30,5000
"""


def _images_exist(html_path: Path) -> list[str]:
    srcs = re.findall(r'<img src="([^"]+)"', html_path.read_text())
    for src in srcs:
        with Image.open(html_path.parent / src) as im:
            assert im.size[0] > 50 and im.size[1] > 50
    return srcs


def test_read_metrics_csv_keeps_numeric_columns_with_gaps(tmp_path: Path):
    (tmp_path / "metrics.csv").write_text(TRAIN_CSV)
    h = R.read_metrics_csv(tmp_path / "metrics.csv")
    assert h["step"].tolist() == [1, 2, 3, 4]
    assert np.isnan(h["val_loss"][0]) and h["val_loss"][1] == 0.66
    assert R.read_metrics_csv(tmp_path / "missing.csv") == {}


def test_training_run_report(tmp_path: Path):
    (tmp_path / "metrics.csv").write_text(TRAIN_CSV)
    (tmp_path / "train_config.yaml").write_text("arch: resnet18_fusion\nlr: 0.01\n")
    html_path = R.write_report(tmp_path, metrics={"wkdr": 0.3, "wkdr_eq": 0.2, "wkdr_neq": 0.35},
                               baselines={"constant": {"wkdr": 0.6, "wkdr_eq": 0.0, "wkdr_neq": 1.0}})
    md = (tmp_path / "report.md").read_text()
    assert "## Training curves" in md and "figures/curves.png" in md
    assert "| constant | 0.6000 | 0.0000 | 1.0000 |" in md
    assert "arch: resnet18_fusion" in md  # the effective config
    assert "| val_ordinal_error | 0.3 |" in md  # last logged values
    assert set(_images_exist(html_path)) == {"figures/metrics.png", "figures/curves.png"}


def test_evaluation_report_with_examples(tmp_path: Path):
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 5, size=(24, 32))
    examples = [{"key": f"img{k}", "image": rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "gt": gt,
                 "mask": gt > 1.5, "pred": {"model": gt + rng.normal(size=gt.shape), "constant": np.ones_like(gt)}}
                for k in range(2)]
    doc = {"benchmark": "nyu", "model": "resnet50_fusion", "n_images": 654.0, "wkdr": 0.25, "rms": 0.7,
           "delta1": 0.6, "alignments": {"paper": {"rms": 0.7, "rel": 0.2, "log10": 0.08, "delta1": 0.6,
                                                   "delta2": 0.85, "delta3": 0.95}},
           "baselines": {"lower_is_closer": {"wkdr": 0.45, "rms": 1.1, "delta1": 0.4},
                         "constant": {"wkdr": 0.6, "rms": 1.2, "delta1": 0.35}},
           "settings": {"alignment": "paper", "sigma": 0.02}}
    html_path = R.write_report(tmp_path / "eval", metrics=doc, examples=examples, out_dir=tmp_path / "eval")
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "Benchmark **nyu**, 654 images" in md
    assert "| resnet50_fusion | 0.2500 | 0.7000 | 0.6000 |" in md
    assert "| lower_is_closer | 0.4500 | 1.1000 | 0.4000 |" in md
    assert "| paper | 0.7000 |" in md
    assert "## Training curves" not in md  # no metrics.csv in an evaluation run
    assert set(_images_exist(html_path)) == {"figures/metrics.png", "figures/examples.png"}
    html = html_path.read_text()
    assert "<td>lower_is_closer</td>" in html and "<code>paper</code>" in html
