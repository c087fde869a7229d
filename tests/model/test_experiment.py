"""Experiment grids (model.experiment): expansion, validation, a real toy run, resume, the table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from model.data import make_synthetic_export
from model.experiment import expand_grid, load_experiment, run_experiment, setting_key

from .paper_data import one_torch_thread  # noqa: F401  (autouse)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "experiments"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_shipped_configs_validate_at_full_and_toy_size():
    sizes = {}
    for name in ("table2", "table3", "fig5"):
        full = load_experiment(CONFIGS / f"{name}.yaml")
        toy = load_experiment(CONFIGS / f"{name}.yaml", toy=True)
        sizes[name] = (len(expand_grid(full)), len(expand_grid(toy)))
        assert full.base.get("input_size") == 384 and toy.base["input_size"] <= 64 and toy.base["iterations"] == 2
    assert sizes == {"table2": (4, 4), "table3": (4, 4), "fig5": (10, 10)}
    arches = [s["arch"] for s in expand_grid(load_experiment(CONFIGS / "table2.yaml"))]
    # Fig. 5(b) of the paper: subsets of 360, 900, 1800, 2700 and 3600 training images, 3K pairs each
    fig5 = expand_grid(load_experiment(CONFIGS / "fig5.yaml"))
    assert sorted(s["n_images"] for s in fig5 if s.get("n_images")) == [360, 900, 1800, 2700, 3600]
    assert arches == ["resnet50_direct_upsample", "resnet50_dilated", "resnet50_upproj", "resnet50_fusion"]


def test_grid_union_drops_duplicates_and_keys_are_order_free(tmp_path):
    cfg = load_experiment(_write(tmp_path, """
name: t
grid:
  - {n_pairs: [10, 20], seed: [0]}
  - {n_pairs: [20], seed: [0, 1]}
"""))
    assert [setting_key(s) for s in expand_grid(cfg)] == ["n_pairs-10__seed-0", "n_pairs-20__seed-0", "n_pairs-20__seed-1"]
    assert setting_key({"seed": 0, "n_pairs": 10}) == setting_key({"n_pairs": 10, "seed": 0})


def test_bad_options_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="unknown grid option"):
        load_experiment(_write(tmp_path, "name: t\ngrid: {learning_rate: [1]}\n"))
    with pytest.raises(ValueError):
        load_experiment(_write(tmp_path, "name: t\ngrid: {loss: [hinge]}\n"))
    with pytest.raises(ValueError, match="plot x"):
        load_experiment(_write(tmp_path, "name: t\ngrid: {seed: [0]}\nplot: {x: n_pairs}\n"))


TOY = """
name: toy_sweep
data: {data}
benchmark: {{name: redweb, pairs_per_image: 100, max_side: 64, chen_val_images: 2}}
metric: wkdr
keep: model
base: {{arch: resnet18_fusion, arch_kwargs: {{channels: 16}}, input_size: 32, batch_size: 2, iterations: 2,
        pretrained: false, num_workers: 0, val_every: 2, tensorboard: false, device: cpu}}
grid:
  - {{n_pairs: [10, 100], seed: [0, 1]}}
  - {{n_pairs: [100], n_images: [2], seed: [0]}}
plot: {{x: n_pairs, log_x: true}}
"""


@pytest.mark.slow
def test_toy_grid_runs_writes_one_table_and_resumes(tmp_path):
    data = make_synthetic_export(tmp_path / "export", n=6, size=(36, 44), seed=1)
    cfg = load_experiment(_write(tmp_path, TOY.format(data=data)))
    out = tmp_path / "out"
    paths = run_experiment(cfg, out)
    runs = pd.read_csv(paths["runs"])
    assert len(runs) == 5 and runs["wkdr"].between(0, 1).all() and runs["wkdr_chen2016"].between(0, 1).all()
    assert (runs["steps"] == 2).all()
    table = pd.read_csv(paths["table_csv"])
    # grouped over seeds: (10, all), (100, all), (100, 2)
    assert len(table) == 3 and table["n_runs"].tolist() == [2, 2, 1]
    assert table.loc[0, "wkdr"] == pytest.approx(runs[runs["n_pairs"] == 10]["wkdr"].mean())
    md = paths["table_md"].read_text()
    assert md.startswith("# toy_sweep") and "n_pairs" in md.splitlines()[4] and "±" in md
    assert paths["plot"].stat().st_size > 1000
    # n_images=2 trained on 2 items
    meta_dir = out / "runs" / "n_images-2__n_pairs-100__seed-0"
    assert json.loads((meta_dir / "result.json").read_text())["setting"]["n_images"] == 2
    assert not (meta_dir / "checkpoints").exists() and (meta_dir / "model.pt").is_file()  # keep: model
    from model.checkpoint import load_checkpoint

    assert load_checkpoint(meta_dir / "model.pt")["meta"]["dataset"]["n_train"] == 2
    # Resume: finished settings are not trained again.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.pt")}
    paths2 = run_experiment(cfg, out)
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.pt")} == stamps
    assert pd.read_csv(paths2["runs"]).equals(runs)
