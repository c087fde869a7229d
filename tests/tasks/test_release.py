"""Releases: immutable export + datasheet, changes between releases, audit lookup, secrets."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tasks.catalog.catalog import PIPELINE_VERSION, Catalog
from tasks.publish.release import (ReleaseError, create_release, diff_releases, find_audit, list_releases, load_datasheet,
                           sha256_file, verify_release)
from tests.review_ui.maps import make_processed

INGEST = {"min_side": 64, "max_pixels": 80_000_000}
PROCESS = {"correspondence": "dis", "sky": "heuristic", "min_coverage": 0.4, "device": "auto", "batch_size": 8}


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path, catalog_url):
    """(catalog, data root, 6 ids): 5 accepted, 1 pending review; SQLite and PostgreSQL."""
    root = tmp_path / "data"
    root.mkdir()
    with Catalog(catalog_url) as catalog:
        ids = make_processed(catalog, root, 6, width=40, height=32)
        for i in ids[:5]:
            catalog.transition(i, "accepted", actor="alice", reviewer="alice")
        yield catalog, root, ids


def make(catalog, root, name, **kw):
    kw.setdefault("config", {"flickr": {"api_key": "KEY123", "api_secret": "SECRET456"},
                             "database_url": "postgresql://u:pw789@db/x", "process": PROCESS})
    kw.setdefault("process_config", PROCESS)
    return create_release(catalog, root, name, **kw)


def test_release_layout_datasheet_and_checksums(setup):
    catalog, root, ids = setup
    sheet = make(catalog, root, "v1", notes="first cut")
    rel = root / "releases" / "v1"
    assert sheet["total"] == 5 and sheet["sequence"] == 1 and sheet["supersedes"] is None
    assert sorted(p.stem for p in (rel / "imgs").iterdir()) == sorted(ids[:5])
    assert not (rel / ".redweb-export.json").exists()
    assert sheet["counts"]["source"] == [{"source": "local", "items": 5}]
    assert sheet["counts"]["license"] == [
        {"license": "CC BY 2.0", "license_url": "https://creativecommons.org/licenses/by/2.0/", "items": 5}]
    assert sheet["counts"]["stereo_format"] == [{"stereo_format": "side_by_side", "items": 5}]
    assert sheet["pipeline"]["pipeline_version"] == PIPELINE_VERSION
    assert sheet["pipeline"]["items_by_pipeline_version"] == [{"pipeline_version": PIPELINE_VERSION, "items": 5}]
    assert sheet["changes"]["added"] == sorted(ids[:5]) and sheet["changes"]["withdrawn"] == []
    assert sheet["audit"] == {"status": "no audit run", "audits_of_other_configs": 0}
    # every data file has its checksum, and SHA256SUMS covers the datasheets too
    data_files = {k: v for k, v in tree_hashes(rel).items()
                  if k not in ("datasheet.json", "datasheet.md", "SHA256SUMS")}
    assert {k: v["sha256"] for k, v in sheet["files"].items()} == data_files
    assert len(data_files) == 3 * 5 + 1
    assert verify_release(root, "v1") == []
    md = (rel / "datasheet.md").read_text()
    assert "first cut" in md and "| CC BY 2.0 " in md and "https://creativecommons.org/licenses/by/2.0/" in md
    assert "no audit run" in md
    assert json.loads((rel / "datasheet.json").read_text()) == sheet
    # secrets never reach a release
    for path in rel.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"KEY123" not in text and b"SECRET456" not in text and b"pw789" not in text, path
    assert sheet["config"]["flickr"] == {"api_key": "***", "api_secret": "***"}
    # read-only files; a taken name is refused and nothing changes
    assert not os.access(rel / "manifest.csv", os.W_OK) or os.geteuid() == 0
    before = tree_hashes(rel)
    with pytest.raises(ReleaseError, match="never rewritten"):
        make(catalog, root, "v1")
    assert tree_hashes(rel) == before
    with pytest.raises(ReleaseError):
        make(catalog, root, "../evil")
    with pytest.raises(ReleaseError, match="never released"):
        make(catalog, root, "v9", states=["withdrawn"])
    assert sorted(p.name for p in (root / "releases").iterdir()) == [".lock", "v1"]


def test_second_release_lists_withdrawn_and_leaves_the_first_alone(setup):
    catalog, root, ids = setup
    make(catalog, root, "v1")
    v1 = tree_hashes(root / "releases" / "v1")
    catalog.withdraw(ids[0], "source_deleted", "flickr.photos.getInfo: Photo not found")
    catalog.withdraw(ids[1], "takedown", "owner asked by mail")
    catalog.transition(ids[2], "rejected", reason="sky_leak", actor="bob", reviewer="bob")
    catalog.transition(ids[5], "accepted", actor="alice", reviewer="alice")
    sheet = make(catalog, root, "v2")
    ch = sheet["changes"]
    assert sheet["supersedes"] == "v1" and sheet["sequence"] == 2 and sheet["total"] == 3
    assert ch["previous"] == "v1" and ch["added"] == [ids[5]]
    assert {(w["id"], w["reason"]) for w in ch["withdrawn"]} == {(ids[0], "source_deleted"), (ids[1], "takedown")}
    assert all(w["withdrawn_at"] and w["detail"] for w in ch["withdrawn"])
    assert [(r["id"], r["state"], r["reason"]) for r in ch["removed"]] == [(ids[2], "rejected", "sky_leak")]
    rel2 = root / "releases" / "v2"
    names = {p.name for p in rel2.rglob("*")}
    for gone in ids[:3]:
        assert not any(gone in n for n in names)
        assert gone not in (rel2 / "manifest.csv").read_text()
    md = (rel2 / "datasheet.md").read_text()
    assert ids[0] in md and "source_deleted" in md and "owner asked by mail" in md
    assert tree_hashes(root / "releases" / "v1") == v1 and verify_release(root, "v1") == []
    rows = list_releases(root)
    assert [(r["name"], r["superseded_by"], r["withdrawn"]) for r in rows] == [("v1", "v2", 0), ("v2", None, 2)]
    diff = diff_releases(root, "v1", "v2", catalog=catalog)
    assert diff["added"] == [ids[5]]
    assert {(d["id"], d["state"]) for d in diff["dropped"]} == {(ids[0], "withdrawn"), (ids[1], "withdrawn"),
                                                               (ids[2], "rejected")}
    with pytest.raises(ReleaseError, match="no release"):
        load_datasheet(root, "v7")
    # tampering is detected
    target = root / "releases" / "v1" / "manifest.csv"
    target.chmod(0o644)
    target.write_text(target.read_text() + "x\n")
    assert verify_release(root, "v1") == ["changed: manifest.csv"]


def test_audit_of_the_same_process_config_is_found(setup, tmp_path):
    catalog, root, _ = setup

    def audit(stamp: str, config: dict, total: int) -> None:
        d = root / "runs" / f"audit-{stamp}"
        d.mkdir(parents=True)
        (d / "audit.json").write_text(json.dumps({"config": config, "scenes": [{"name": "a"}, {"name": "b"}],
                                                  "summary": {"total": total, "kept": 2, "ordinal_error": 0.05,
                                                              "coverage": 0.74, "view_order_errors": 0,
                                                              "lost": {"art/sbs": "auto_rejected:low_coverage"},
                                                              "triage": {"precision": 0.8, "recall": None}}}))

    # flows/audit.py writes {"process": ..., "ingest": ...}; the bare process section is read too
    audit("20261202T080000Z", {"process": PROCESS, "ingest": {"min_side": 32}}, 0)  # other ingest config
    audit("20261201T080000Z", {"process": {**PROCESS, "min_coverage": 0.9}, "ingest": INGEST}, 1)  # other process
    # device does not change the labels
    audit("20261130T080000Z", {"process": {**PROCESS, "device": "cuda"}, "ingest": INGEST}, 2)
    audit("20261129T080000Z", PROCESS, 3)  # the same config, older
    found = find_audit(root, PROCESS, INGEST)
    assert found["status"] == "audited" and found["summary"]["total"] == 2 and found["scenes"] == 2
    assert found["file"] == "runs/audit-20261130T080000Z/audit.json"
    assert find_audit(root, PROCESS)["file"] == "runs/audit-20261202T080000Z/audit.json"  # ingest not compared
    assert find_audit(root, {**PROCESS, "sky": "segformer"}) == {"status": "no audit run",
                                                                 "audits_of_other_configs": 4}
    sheet = make(catalog, root, "v1", ingest_config=INGEST)
    assert sheet["audit"]["summary"]["ordinal_error"] == 0.05
    md = (root / "releases" / "v1" / "datasheet.md").read_text()
    assert re.search(r"\| triage\.precision +\| 0\.8 ", md) and re.search(r"\| ordinal_error +\| 0\.05 ", md)
    assert re.search(r"\| lost \(pairs without a kept map\) +\| 1 ", md)


def _generic_scene(folder: Path) -> None:
    """The Middlebury motorcycle pair (scikit-image), quarter size, in the generic GT layout."""
    import cv2
    import numpy as np
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    size = (left.shape[1] // 4, left.shape[0] // 4)
    folder.mkdir(parents=True)
    for name, view in (("left", left), ("right", right)):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.resize(view, size, interpolation=cv2.INTER_AREA)[..., ::-1])
    d = cv2.resize(np.nan_to_num(disp, nan=0, posinf=0), size, interpolation=cv2.INTER_NEAREST) / 4
    cv2.imwrite(str(folder / "disp.png"), np.clip(d * 256, 0, 65535).astype(np.uint16))
    (folder / "gt.json").write_text(json.dumps({"file": "disp.png", "divide_by": 256, "invalid": 0}))


@pytest.mark.slow
def test_datasheet_reads_what_redweb_audit_writes(tmp_path, capsys):
    """`redweb audit` (the real command) on one GT scene, then releases with the same and with
    another process config: the first carries the audit figures, the second says no audit run."""
    from flows.cli import main
    from flows.config import load_config

    root = tmp_path / "data"
    _generic_scene(tmp_path / "scenes" / "moto")
    assert main(["audit", "--scenes", str(tmp_path / "scenes"), "--packings", "sbs", "--no-report", "--pairs",
                 "2000", "--data-root", str(root)]) == 0
    doc = json.loads(next((root / "runs").glob("audit-*/audit.json")).read_text())
    for name, overrides in (("same", []), ("other", ["process.min_coverage=0.55"])):
        config = load_config(data_root=root, overrides=overrides)
        with Catalog(config.catalog_url) as catalog:
            sheet = create_release(catalog, root, name, process_config=config.process.model_dump(mode="json"),
                                   ingest_config=config.ingest.model_dump(mode="json"))
        md = (root / "releases" / name / "datasheet.md").read_text()
        if name == "same":
            assert sheet["audit"]["status"] == "audited" and sheet["audit"]["summary"] == doc["summary"]
            assert re.search(r"\| kept +\| 1 ", md) or re.search(r"\| kept +\| 0 ", md)
        else:
            assert sheet["audit"] == {"status": "no audit run", "audits_of_other_configs": 1}
            assert "no audit run for this process config (1 audits of other configs exist)" in md
