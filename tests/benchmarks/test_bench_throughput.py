"""benchmarks/bench_throughput.py: the crops it makes, and a toy run of both arms through the real CLI."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_throughput.py"


def _bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)
    spec.loader.exec_module(bench)
    return bench


def test_crops_cut_both_views_at_one_place_at_the_asked_size_and_differ(tmp_path, monkeypatch):
    bench = _bench(monkeypatch)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8), (1600, 1200),
                         interpolation=cv2.INTER_CUBIC)
    sources = [("same", texture, texture.copy())]  # identical views: each crop's halves must match
    paths = bench.make_crops(sources, 4, 0.5, tmp_path)
    assert len(paths) == 4 and len({p.read_bytes() for p in paths}) == 4
    lefts = []
    for p in paths:
        sbs = cv2.imread(str(p))
        h, w2 = sbs.shape[:2]
        left, right = sbs[:, : w2 // 2].astype(float), sbs[:, w2 // 2:].astype(float)
        assert abs(h * (w2 // 2) / 0.5e6 - 1) < 0.01  # 0.5 MP per view
        # the same place in both views: the halves differ by JPEG noise only, far less than by a 3-px shift
        assert np.abs(left - right).mean() < 0.3 * np.abs(left - np.roll(right, 3, axis=1)).mean()
        lefts.append(cv2.resize(left, (64, 48)))
    assert min(np.abs(a - b).mean() for i, a in enumerate(lefts) for b in lefts[i + 1:]) > 5  # not one crop 4 times


@pytest.mark.slow  # two arms, each an ingest and a process run with a temporary Prefect server: ~2 min
def test_both_arms_run_the_cli_and_print_the_table(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: no commit to compare with")
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "motorcycle_sbs.jpg"), np.hstack([left, right])[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    for key in ("REDWEB_DATABASE_URL", "REDWEB_CONFIG", "REDWEB_DATA_ROOT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, str(BENCH), "--photos", str(photos), "--pairs", "3", "--megapixels", "0.2",
                           "--against", "HEAD"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"^\| pairs\s+\|\s+3\.00 \|\s+3\.00 \|\s+1\.00 \|$", out, re.M), out
    assert re.search(r"^\| pairs / hour\s+\|\s+[\d.]+ \|\s+[\d.]+ \|", out, re.M), out
    assert re.search(r"^\| failed\s+\|\s+0\.00 \|\s+0\.00 \|", out, re.M), out
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in worktrees  # the checkout of the other commit is removed again
