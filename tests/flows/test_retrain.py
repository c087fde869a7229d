"""Retraining: export → train → evaluate → promote only a better checkpoint (real Prefect runs)."""
from __future__ import annotations

import json

import pytest
import torch

from flows.retrain import count_new_accepted, retrain_flow, retrain_when_enough_accepted
from model.checkpoint import load_model
from model.promotion import current_model
from tasks.catalog.catalog import Catalog
from tests.review_ui.maps import make_processed

TINY = ["train.arch=resnet18_fusion", "train.arch_kwargs={channels: 16}", "train.pretrained=false",
        "train.input_size=32", "train.batch_size=2", "train.iterations=4", "train.n_pairs=64",
        "train.num_workers=0", "train.tensorboard=false", "train.val_every=4", "train.checkpoint_every=4",
        "evaluate.pairs_per_image=200", "evaluate.device=cpu", "evaluate.max_side=64", "evaluate.report_examples=0",
        "export.val_fraction=0.5"]


def _accept_all(catalog, ids, who="alice"):
    for i in ids:
        catalog.transition(i, "accepted", actor=who, reviewer=who)


@pytest.mark.slow
def test_retrain_promotes_only_a_better_checkpoint(tmp_path, prefect_test_server):
    root = tmp_path / "data"
    url = f"sqlite:///{root / 'catalog.db'}"
    root.mkdir()
    with Catalog(url) as catalog:
        _accept_all(catalog, make_processed(catalog, root, 8, width=48, height=32))

    first = retrain_flow(data_root=str(root), overrides=TINY)
    assert first["promoted"] and first["current"] is None  # nothing to beat yet
    assert current_model(root / "models")["checkpoint"] == first["candidate"]

    # an improvement nobody can make: the candidate is scored, but the current model stays
    second = retrain_flow(data_root=str(root), overrides=[*TINY, "pipeline.promote_min_improvement=1.0"])
    assert not second["promoted"] and second["current"] == first["candidate"]
    assert second["current_score"] == pytest.approx(first["candidate_score"])  # same split, same model
    assert current_model(root / "models")["checkpoint"] == first["candidate"]

    # make the promoted model useless (constant output: every unequal pair wrong) -> the next candidate wins
    ckpt = torch.load(first["candidate"], map_location="cpu", weights_only=False)
    ckpt["model"] = {k: torch.zeros_like(v) for k, v in ckpt["model"].items()}
    torch.save(ckpt, first["candidate"])
    load_model(first["candidate"], "cpu")  # still a loadable checkpoint
    third = retrain_flow(data_root=str(root), overrides=TINY)
    assert third["current_score"] > third["candidate_score"] and third["promoted"]
    assert current_model(root / "models")["checkpoint"] == third["candidate"]

    log = [json.loads(line) for line in (root / "models" / "promotions.jsonl").read_text().splitlines()]
    assert [d["promoted"] for d in log] == [True, False, True]
    assert all(d["candidate_score"] is not None for d in log) and log[1]["current_score"] is not None


def test_trigger_counts_only_new_acceptances(tmp_path, prefect_test_server):
    root = tmp_path / "data"
    root.mkdir()
    url = f"sqlite:///{root / 'catalog.db'}"
    with Catalog(url) as catalog:
        ids = make_processed(catalog, root, 3, width=48, height=32)
        _accept_all(catalog, ids[:2])
    assert count_new_accepted(url, None) == 2
    result = retrain_when_enough_accepted(data_root=str(root), overrides=TINY, min_new_accepted=3)
    assert result == {"started": False, "new_accepted": 2, "threshold": 3}
    assert not (root / "models" / "promotions.jsonl").exists()


def _manifest_ids(export_dir) -> set[str]:
    import csv

    with open(export_dir / "manifest.csv", newline="") as fh:
        return {row["id"] for row in csv.DictReader(fh)}


@pytest.mark.slow
def test_retraining_export_drops_withdrawn_items(tmp_path, prefect_test_server):
    """An item withdrawn after it was trained on leaves the retraining export (files and manifest),
    and the next candidate is trained without it."""
    root = tmp_path / "data"
    root.mkdir()
    url = f"sqlite:///{root / 'catalog.db'}"
    with Catalog(url) as catalog:
        ids = make_processed(catalog, root, 6, width=48, height=32)
        _accept_all(catalog, ids)
    export_dir = root / "exports" / "current"
    retrain_flow(data_root=str(root), overrides=TINY)
    assert _manifest_ids(export_dir) == set(ids)
    with Catalog(url) as catalog:
        catalog.withdraw(ids[0], "source_deleted", "flickr.photos.getInfo: Photo not found")
        catalog.withdraw(ids[1], "takedown", "owner asked")
    second = retrain_flow(data_root=str(root), overrides=TINY)
    assert _manifest_ids(export_dir) == set(ids[2:])
    for sub, ext in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")):
        assert not any((export_dir / sub / f"{i}{ext}").exists() for i in ids[:2])
    assert second["candidate_score"] is not None


def test_retrain_on_nothing_accepted_says_so_and_trains_nothing(tmp_path, prefect_test_server):
    """A scheduled retrain on a data root with nothing accepted ends cleanly with the reason, no crash."""
    root = tmp_path / "data"
    root.mkdir()
    result = retrain_flow(data_root=str(root), overrides=TINY)
    assert result["promoted"] is False and result["reason"] == "empty export"
    assert not list(root.rglob("last.pt"))
