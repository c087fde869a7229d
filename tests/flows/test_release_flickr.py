"""Publishing end to end, through the `redweb` CLI and real Prefect runs, against the fake Flickr:
crawl -> process -> accept -> release v1 -> photos change on the server -> `redweb revalidate` ->
release v2 lists exactly the withdrawn ids with their reasons and no longer contains them, while v1
stays byte-identical; then `redweb withdraw` by id, URL and owner, and release v3."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.release import release_flow, revalidate_flow  # imports Prefect before capsys swaps the streams
from tasks.catalog.catalog import Catalog, item_id_for
from tasks.publish.release import sha256_file
from tests.fakeflickr import Faults, make_photos
from tests.flows.test_ingest_flickr import OVERRIDES, flickr_env  # noqa: F401 - the fixture

REVIEW_STATES = ("pending_review", "auto_accepted", "auto_rejected")


def cli(data_root: Path, capsys, *args: str) -> tuple[int, str]:
    from flows.cli import main

    argv = [*args, "--data-root", str(data_root)]
    for o in OVERRIDES:
        argv += ["--set", o]
    capsys.readouterr()
    rc = main(argv)
    return rc, capsys.readouterr().out


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_crawl_release_revalidate_release(prefect_test_server, data_root, flickr_env, capsys):  # noqa: F811
    photos = make_photos(10, seed=5, licenses=[4, 5, 9, 11, 12])  # all allow derivatives
    fake = flickr_env(photos, Faults())
    assert cli(data_root, capsys, "ingest", "--source", "flickr", "--no-progress")[0] == 0
    assert cli(data_root, capsys, "process", "--no-progress")[0] == 0
    url = f"sqlite:///{data_root / 'catalog.db'}"
    with Catalog(url) as catalog:
        for i in catalog.ids(*REVIEW_STATES):
            catalog.transition(i, "accepted", actor="alice", reviewer="alice")
        accepted = catalog.items(catalog.ids("accepted"))
    assert len(accepted) >= 6, [(i.state, i.reason) for i in accepted]

    rc, out = cli(data_root, capsys, "release", "create", "v1", "--notes", "first cut", "--json")
    assert rc == 0, out
    assert last_json(out)["total"] == len(accepted)
    rel = data_root / "releases"
    v1 = hashes(rel / "v1")

    # the server changes: one deleted, one private, one re-licensed NoDerivs, one re-licensed but still fine
    pids = [it.source_id for it in accepted]
    fake.delete_photo(pids[0])
    fake.make_private(pids[1])
    fake.relicense(pids[2], 16)  # CC BY-NC-ND 4.0
    fake.relicense(pids[3], 1)  # BY-NC-SA: still allows derivatives
    expected = {item_id_for("flickr", pids[0]): "source_deleted", item_id_for("flickr", pids[1]): "source_private",
                item_id_for("flickr", pids[2]): "license_changed"}

    rc, out = cli(data_root, capsys, "revalidate", "--older-than", "0", "--json")
    assert rc == 0, out
    report = last_json(out)
    assert {i: r for r, ids in report["withdrawn"].items() for i in ids} == expected
    assert report["license_updated"] == [item_id_for("flickr", pids[3])]

    rc, out = cli(data_root, capsys, "release", "create", "v2", "--json")
    assert rc == 0, out
    sheet = json.loads((rel / "v2" / "datasheet.json").read_text())
    assert {w["id"]: w["reason"] for w in sheet["changes"]["withdrawn"]} == expected
    assert sheet["changes"]["added"] == [] and sheet["changes"]["removed"] == []
    assert sheet["total"] == len(accepted) - 3 and sheet["supersedes"] == "v1"
    md = (rel / "v2" / "datasheet.md").read_text()
    assert all(i in md for i in expected) and "license_changed" in md
    v2_text = "\n".join(hashes(rel / "v2")) + (rel / "v2" / "manifest.csv").read_text()
    assert not any(i in v2_text for i in expected)
    assert "Attribution-NonCommercial-ShareAlike License" in (rel / "v2" / "manifest.csv").read_text()
    assert hashes(rel / "v1") == v1  # the first release, byte for byte
    assert cli(data_root, capsys, "release", "verify", "v1")[0] == 0

    # takedown by hand: catalog id, Flickr photo page URL, owner NSID
    left = [it for it in accepted if it.id not in expected and it.source_id != pids[3]]
    by_id, by_url, by_owner = left[0], left[1], left[2]
    rc, out = cli(data_root, capsys, "withdraw", by_id.id, f"https://www.flickr.com/photos/{by_url.owner_id}/"
                  f"{by_url.source_id}/", "--reason", "owner e-mail 2026-12-01", "--json")
    assert rc == 0, out
    assert sorted(last_json(out)["withdrawn"]) == sorted([by_id.id, by_url.id])
    rc, out = cli(data_root, capsys, "withdraw", "--owner", by_owner.owner_id, "--reason", "legal request",
                  "--json")
    assert rc == 0 and last_json(out)["withdrawn"] == [by_owner.id]
    rc, out = cli(data_root, capsys, "withdraw", "no-such-thing", "--reason", "x")
    assert rc == 1 and "nothing was withdrawn" in out
    rc, out = cli(data_root, capsys, "release", "create", "v3", "--json")
    sheet3 = json.loads((rel / "v3" / "datasheet.json").read_text())
    assert {w["id"]: w["reason"] for w in sheet3["changes"]["withdrawn"]} == {
        by_id.id: "takedown", by_url.id: "takedown", by_owner.id: "takedown"}
    assert hashes(rel / "v1") == v1

    rc, out = cli(data_root, capsys, "release", "list")
    assert rc == 0 and all(n in out for n in ("v1", "v2", "v3"))
    rc, out = cli(data_root, capsys, "release", "diff", "v1", "v3", "--json")
    diff = last_json(out)
    assert {d["id"] for d in diff["dropped"]} == set(expected) | {by_id.id, by_url.id, by_owner.id}
    assert [c["id"] for c in diff["license_changed"]] == [item_id_for("flickr", pids[3])]
    rc, out = cli(data_root, capsys, "release", "create", "v1")
    assert rc == 2 and "never rewritten" in out
    with Catalog(url) as catalog:
        assert len(catalog.ids(source="flickr")) == len(photos)  # nothing deleted from the catalog


def test_deployment_entry_points_run_without_parameters(prefect_test_server, data_root, monkeypatch):
    """What prefect.yaml's `revalidate-weekly` and `release` run: no parameters, config from the
    environment. An empty catalog asks Flickr nothing and makes an empty, valid release."""
    from tasks.publish.release import verify_release

    monkeypatch.setenv("REDWEB_FLICKR_REST_URL", "http://127.0.0.1:9/services/rest/")  # nothing listens there
    report = revalidate_flow()
    assert report["checked"] == 0 and report["calls"] == 0
    summary = release_flow()
    assert summary["total"] == 0 and summary["name"].startswith("r") and summary["sequence"] == 1
    assert verify_release(data_root, summary["name"]) == []


@pytest.mark.parametrize("command", ["release", "withdraw", "revalidate"])
def test_help(command, capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and "--data-root" in capsys.readouterr().out
