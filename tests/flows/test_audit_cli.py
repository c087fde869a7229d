"""`redweb audit` from the command line on the motorcycle in official layouts (no ../shared):
the table, audit.json with the keys the issue fixes, report.html with its pictures, and a clear
error with exit status 2 for a folder it cannot read."""
from __future__ import annotations

import json
import re

import pytest

from tests.tasks.gt_layouts import motorcycle, write_legacy, write_middlebury2014, write_pfm

ROW_KEYS = {"scene", "packing", "state", "kept", "ordinal_error", "coverage", "view_order_ok"}
SUMMARY_KEYS = {"total", "kept", "ordinal_error", "coverage", "view_order_errors"}


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """One CLI run: a Middlebury 2014 folder and a legacy folder, parallel and cross-eyed side by side."""
    from flows.cli import main

    root = tmp_path_factory.mktemp("cli")
    scenes = root / "scenes"
    write_middlebury2014(scenes / "motorcycle", *motorcycle(250))
    write_legacy(scenes / "motorcycle_2005", *motorcycle(240), scale=3)
    out = root / "out"
    capture = pytest.MonkeyPatch()
    capture.setenv("REDWEB_DATA_ROOT", str(root / "data"))
    capture.delenv("REDWEB_DATABASE_URL", raising=False)
    try:
        import contextlib
        import io

        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main(["audit", "--scenes", str(scenes), "--packings", "sbs,cross", "--out", str(out),
                       "--legacy-scale", "3", "--pairs", "20000", "--set", "process.crf=false"])
    finally:
        capture.undo()
    return rc, stdout.getvalue(), stderr.getvalue(), out


def test_audit_cli_prints_the_table_and_writes_json_and_report(audited):
    rc, stdout, stderr, out = audited
    assert rc == 0, stderr
    assert re.search(r"^\s*motorcycle\s+sbs\s+side_by_side", stdout, re.M), stdout
    assert re.search(r"^\s*motorcycle_2005\s+cross\s+side_by_side", stdout, re.M), stdout
    assert "pairs kept:" in stdout and "auto-reject precision:" in stdout
    assert f"audit.json: {out}/audit.json" in stdout
    assert "[audit] 2 scenes x 2 packings" in stderr  # progress goes to stderr

    doc = json.loads((out / "audit.json").read_text())
    assert len(doc["scenes"]) == 4
    for row in doc["scenes"]:
        assert ROW_KEYS <= set(row), row
        assert isinstance(row["kept"], bool)
        for key in ("ordinal_error", "coverage"):  # fractions, or null where there is no map
            assert row[key] is None or 0.0 <= row[key] <= 1.0, row
        if row["view_order_ok"] is not None:
            assert row["ordinal_error"] is not None and row["coverage"] is not None
    assert SUMMARY_KEYS <= set(doc["summary"])
    s = doc["summary"]
    assert s["total"] == 4 and 0 <= s["kept"] <= 4
    assert s["ordinal_error"] is None or 0.0 <= s["ordinal_error"] <= 1.0
    assert isinstance(s["view_order_errors"], int)
    assert doc["config"]["process"]["crf"] is False  # the configuration measured travels with the figures
    # the motorcycle (left eye first) must come through sbs with the right view order and a usable map
    sbs = next(r for r in doc["scenes"] if (r["scene"], r["packing"]) == ("motorcycle", "sbs"))
    assert sbs["view_order_ok"] is True and sbs["ordinal_error"] < 0.2

    html = (out / "report.html").read_text()
    pictures = re.findall(r'<img src="(img/[^"]+)"', html)
    assert len(pictures) == 4 * 4  # image | produced depth | GT depth | where wrong, per mapped pair
    for rel in pictures:
        assert (out / rel).stat().st_size > 500, rel
    assert "motorcycle_2005 · cross" in html


def test_audit_cli_json_mode(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    write_middlebury2014(tmp_path / "s" / "moto", *motorcycle(200))
    monkeypatch.setenv("REDWEB_DATA_ROOT", str(tmp_path / "data"))
    rc = main(["audit", "--scenes", str(tmp_path / "s" / "moto"), "--packings", "mpo,hard", "--json",
               "--no-report", "--out", str(tmp_path / "o"), "--pairs", "5000", "--set", "process.crf=false"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["packing"] for r in doc["scenes"]] == ["mpo", "hard"]
    assert [r["format"] for r in doc["scenes"]] == ["mpo", "side_by_side"]
    blur = [r["degradation"]["blur_px"] for r in doc["scenes"]]
    assert blur[0] == 0.0 and blur[1] > 0
    assert not (tmp_path / "o" / "report.html").exists()
    assert json.loads((tmp_path / "o" / "audit.json").read_text())["summary"] == doc["summary"]


@pytest.mark.parametrize("case, message", [
    ("no_layout", r"holiday: neither a scene folder nor a folder of scene folders .*found \['IMG_0001\.jpg'\]"),
    ("corrupt_pfm", r"disp0GT\.pfm: not a PFM file"),
    ("truncated_pfm", r"disp0GT\.pfm: PFM truncated"),
    ("missing_right", r"with no im1\.png"),
    ("legacy_without_scale", r"--legacy-scale"),
    ("size_mismatch", r"sizes differ"),
])
def test_audit_cli_says_what_is_wrong_and_exits_2(tmp_path, monkeypatch, capsys, case, message):
    from flows.cli import main

    left, right, disp = motorcycle(64)
    folder = tmp_path / ("holiday" if case == "no_layout" else "scene")
    folder.mkdir()
    if case == "no_layout":
        (folder / "IMG_0001.jpg").write_bytes(b"x")
    elif case == "legacy_without_scale":
        write_legacy(folder, left, right, disp)
    else:
        write_middlebury2014(folder, left, right, disp)
        pfm = folder / "disp0GT.pfm"
        if case == "corrupt_pfm":
            pfm.write_bytes(b"garbage\n")
        elif case == "truncated_pfm":
            pfm.write_bytes(pfm.read_bytes()[:100])
        elif case == "missing_right":
            (folder / "im1.png").unlink()
        elif case == "size_mismatch":
            write_pfm(pfm, disp[:-2])
    monkeypatch.setenv("REDWEB_DATA_ROOT", str(tmp_path / "data"))
    rc = main(["audit", "--scenes", str(folder), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("redweb audit: ") and re.search(message, err), err
    assert "Traceback" not in err


@pytest.mark.slow
def test_audit_flow_is_a_real_prefect_run(prefect_test_server, tmp_path, data_root):
    """The flow a deployment would run: scenes, packings and --set-style overrides as parameters."""
    from flows.audit import audit_flow

    write_middlebury2014(tmp_path / "scenes" / "moto", *motorcycle(200))
    result = audit_flow(scenes=[str(tmp_path / "scenes")], packings="mpo", out=str(tmp_path / "out"),
                        pairs=5000, overrides={"process.crf": False}, report=False)
    assert result["out"] == str(tmp_path / "out")
    assert result["summary"]["total"] == 1
    doc = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert doc["scenes"][0]["format"] == "mpo" and doc["config"]["process"]["crf"] is False


def test_audit_cli_refuses_an_unknown_packing(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    monkeypatch.setenv("REDWEB_DATA_ROOT", str(tmp_path / "data"))
    assert main(["audit", "--scenes", str(tmp_path), "--packings", "sbs,anaglyph"]) == 2
    assert "unknown ['anaglyph']; choose from sbs,cross,ou,mpo,hard" in capsys.readouterr().err
