"""The item page tells the reviewer why and how: triage reason, view-order flag, quality with thresholds,
progress that counts only items needing a person; the colour legend is drawn from the map colours."""
from __future__ import annotations

import base64
import re

import cv2
import numpy as np

from review_ui.app import create_app
from review_ui.images import SKY_RGB, UNRELIABLE_RGB, colorize_depth
from tasks.catalog.catalog import Catalog, State
from tasks.review.store import ReviewStore
from tasks.labels.settings import ProcessConfig
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed


def _rows(html: str) -> dict[str, tuple[str, str, str]]:
    table = re.search(r'<table class="kv quality" id="quality">(.*?)</table>', html, re.S).group(1)
    out = {}
    for cls, key, body in re.findall(r'<tr class="q-(\w+)" data-key="(\w+)">(.*?)</tr>', table, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", body, re.S)]
        out[key] = (cls, cells[1], cells[2])
    return out


def test_item_page_flags_reasons_and_quality(review_env):
    url, root = review_env
    with Catalog(url) as cat:
        (rej,) = make_processed(cat, root, 1, state="auto_rejected")
        (unsure,) = make_processed(cat, root, 1, start=5)
        cat.update(rej, quality={"coverage": 0.31, "misaligned_fraction": 0.02, "disparity_range_px": 1.2,
                                 "view_order": "parallel", "view_order_margin": 0.6, "flow_finite": True,
                                 "score": 0.2, "crop_fraction": 0.9})
        cat.transition(rej, State.PROCESSED)
        cat.transition(rej, State.AUTO_REJECTED, reason="low_coverage", detail="low_coverage,low_disparity_range")
        cat.update(unsure, view_order="undecided", quality={"view_order_uncertain": True, "view_order": "undecided"})
        for n in range(3):  # ingest rejects in the same batch: nobody has to decide them
            item, _ = cat.discover(source="local", source_id=f"dup{n}", batch="batch1")
            cat.transition(item.id, State.REJECTED, reason="duplicate")
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    app = create_app(url, root, secret_key=b"i" * 32, process=ProcessConfig(min_coverage=0.5))
    with serve(app) as base:
        alice, _ = sign_in(base, "alice")
        html = alice.get(f"/item/{rej}").text
        triage = re.search(r'id="triage-reason">(.*?)</p>', html, re.S).group(1)
        assert "low coverage" in triage and "low disparity range" in triage and "too little reliable area" in triage
        rows = _rows(html)
        assert rows["coverage"] == ("bad", "31%", "≥ 50% ✗")  # the configured threshold, not the default 40 %
        assert rows["disparity_range_px"] == ("bad", "1.2 px", "≥ 2.0 px ✗")
        assert rows["misaligned_fraction"] == ("good", "2.0%", "≤ 15% ✓")
        assert list(rows).count("score") == 1 and "reliable area (matched or sky)" in html  # human names, one score
        assert "View order <b>parallel</b>" in html
        # 2 items need a person; the 3 ingest rejects are not "reviewed": 0 / 2, not 3 / 5
        assert re.search(r"batch <code>batch1</code>: 0 / 2 reviewed", html)

        html = alice.get(f"/item/{unsure}").text
        flag = re.search(r'id="view-order-flag">(.*?)</p>', html, re.S).group(1)
        assert "View order uncertain" in flag and "<kbd>F</kbd>" in flag
        assert 'id="triage-reason"' not in html

        # the legend's swatches are the colours the maps use
        pngs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
        decoded = [cv2.imdecode(np.frombuffer(base64.b64decode(p), np.uint8), cv2.IMREAD_COLOR) for p in pngs]
        ramp, sky = decoded[0], decoded[1]
        near_far = colorize_depth(np.array([[1000, 2000]], np.uint16))
        assert np.abs(ramp[7, 0].astype(int) - near_far[0, 0]).max() <= 3  # near end
        assert np.abs(ramp[7, -1].astype(int) - near_far[0, 1]).max() <= 3  # far end
        assert tuple(sky[7, 7][::-1]) == SKY_RGB


def test_colours_are_distinct():
    """near, far, sky and unreliable: far apart from each other (the issue: far ≈ sky, unreliable = near)."""
    d = np.array([[1000, 5000, 65535, 3000]], np.uint16)
    rel = np.array([[True, True, True, False]])
    rgb = colorize_depth(np.repeat(np.repeat(d, 6, 0), 6, 1), np.repeat(np.repeat(rel, 6, 0), 6, 1))[..., ::-1]
    near, far, sky = rgb[0, 0].astype(int), rgb[0, 6].astype(int), rgb[0, 12].astype(int)
    stripes = rgb[:, 18:24].reshape(-1, 3).astype(int)
    unreliable = np.array(UNRELIABLE_RGB)
    assert (stripes == unreliable).all(axis=1).any()  # striped magenta over the depth colour
    colours = [near, far, sky, unreliable]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(colours[i] - colours[j]).sum() > 150, (i, j, colours[i], colours[j])
