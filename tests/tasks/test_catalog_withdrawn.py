"""The `withdrawn` state (DESIGN.md: names may grow, meanings may not change), on SQLite and
PostgreSQL (``catalog`` / ``catalog_url`` fixtures; PostgreSQL via scripts/test.sh), and the
0003_withdrawn migration from the schema before it."""
from __future__ import annotations

import json
from datetime import timezone

import pytest
import sqlalchemy as sa

from tasks.catalog.catalog import (NEEDS_REASON, REASONS, TRANSITIONS, WITHDRAW_REASONS, Catalog, State, TransitionError,
                           make_engine, migrate, schema_head, utcnow)

# DESIGN.md's states before `withdrawn`, with their moves: growing the machine must not change them
OLD_STATES = {"discovered", "downloaded", "split", "processed", "pending_review", "auto_rejected", "auto_accepted",
              "accepted", "rejected", "failed"}


def test_withdrawn_is_reachable_from_every_state_and_terminal():
    assert State("withdrawn") is State.WITHDRAWN
    assert {s.value for s in State} == OLD_STATES | {"withdrawn"}
    for state in State:
        if state is not State.WITHDRAWN:
            assert State.WITHDRAWN in TRANSITIONS[state], state
    assert TRANSITIONS[State.WITHDRAWN] == frozenset()
    assert State.WITHDRAWN in NEEDS_REASON
    assert set(WITHDRAW_REASONS) <= set(REASONS)
    # the old moves are all still there, and none leads anywhere new but `withdrawn`
    assert {s.value for s in TRANSITIONS[State.SPLIT]} == {"processed", "failed", "rejected", "withdrawn"}
    assert {s.value for s in TRANSITIONS[State.ACCEPTED]} == {
        "rejected", "split", "pending_review", "auto_accepted", "auto_rejected", "withdrawn"}


@pytest.mark.parametrize("path", [["downloaded"], ["downloaded", "split"], ["failed"], ["rejected"]])
def test_withdraw_from_any_state_keeps_row_and_logs(catalog, path):
    item, _ = catalog.discover(source="flickr", source_id="123", owner_id="1@N01")
    for state in path:
        catalog.transition(item.id, state, reason="empty_file" if state in ("failed", "rejected") else None)
    t = utcnow()
    done = catalog.withdraw(item.id, "source_deleted", "getInfo: Photo not found", actor="revalidate", at=t,
                            checked_at=t)
    assert done.state == "withdrawn" and done.reason == "source_deleted"
    got = catalog.get(item.id)
    at = got.withdrawn_at if got.withdrawn_at.tzinfo else got.withdrawn_at.replace(tzinfo=timezone.utc)
    assert abs((at - t).total_seconds()) < 1
    assert got.reason_detail == "getInfo: Photo not found" and got.checked_at is not None
    last = catalog.events(item.id)[-1]
    assert (last.from_state, last.to_state, last.reason, last.actor) == (path[-1], "withdrawn", "source_deleted",
                                                                          "revalidate")
    # a second withdrawal changes nothing: the first reason and time stay
    assert catalog.withdraw(item.id, "takedown", "owner mail") is None
    assert catalog.get(item.id).reason == "source_deleted"
    assert catalog.status().as_dict()["states"] == {"withdrawn": 1}
    assert catalog.status().as_dict()["reasons"] == {"source_deleted": 1}
    # terminal: nothing moves it on (not even a retry or a reviewer)
    for to in ("discovered", "accepted", "split"):
        with pytest.raises(TransitionError):
            catalog.transition(item.id, to)


def test_withdraw_needs_a_withdraw_reason(catalog):
    item, _ = catalog.discover(source="local", source_id="a.jpg")
    with pytest.raises(TransitionError):
        catalog.transition(item.id, "withdrawn")
    with pytest.raises(TransitionError):
        catalog.withdraw(item.id, "not_stereo")
    assert catalog.get(item.id).state == "discovered"


def test_export_refuses_withdrawn(catalog, tmp_path):
    from tasks.publish.export import export_dataset

    with pytest.raises(ValueError, match="withdrawn"):
        export_dataset(catalog, tmp_path / "data", tmp_path / "out", states=["accepted", "withdrawn"])


def test_migration_from_the_previous_schema_backfills_owner_ids(catalog_url):
    """A catalog at the schema before this change (0003_review) upgrades: rows intact, Flickr owner
    NSIDs copied into owner_id, new columns empty, and its items can be withdrawn."""
    engine = make_engine(catalog_url)
    migrate(engine, "0003_review")
    info = json.dumps({"flickr": {"owner_nsid": "777@N01", "license_id": "4"}})
    with engine.begin() as conn:
        for i, (source, inf) in enumerate((("flickr", info), ("local", None), ("flickr", json.dumps({})))):
            conn.execute(sa.text(
                "INSERT INTO items (id, source, source_id, state, info, created_at, updated_at) "
                "VALUES (:id, :source, :sid, 'accepted', :info, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                dict(id=f"old{i}", source=source, sid=str(i), info=inf))
    engine.dispose()
    with Catalog(catalog_url) as cat:
        with cat.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == schema_head()
            cols = {c["name"] for c in sa.inspect(conn).get_columns("items")}
        assert {"owner_id", "checked_at", "withdrawn_at"} <= cols
        assert schema_head() == "0003_withdrawn"
        assert [cat.get(f"old{i}").owner_id for i in range(3)] == ["777@N01", None, None]
        assert cat.get("old0").state == "accepted" and cat.get("old0").info["flickr"]["license_id"] == "4"
        assert cat.get("old1").withdrawn_at is None and cat.get("old1").checked_at is None
        cat.withdraw("old0", "takedown", "owner asked")
        assert cat.get("old0").state == "withdrawn"
