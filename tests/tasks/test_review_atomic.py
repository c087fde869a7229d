"""A review decision is one transaction (SQLite and PostgreSQL); sessions; flips; honest progress counts."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import tasks.review.decisions as decisions_module
import tasks.review.store as rs
from tasks.catalog.catalog import State
from tasks.review.store import ReviewConflict, ReviewError, ReviewStore
from tests.review_ui.maps import make_processed


class Boom(RuntimeError):
    pass


def snapshot(catalog, store, item_id):
    item = catalog.get(item_id)
    return dict(state=item.state, reviewer=item.reviewer, reason=item.reason,
                decisions=[(d.kind, d.decision) for d in store.decisions(item_id=item_id)],
                double=store.double_review(item_id) is not None,
                lease=(store.lease_holder(item_id) or rs.LeaseInfo("", "", None)).reviewer,
                events=len(catalog.events(item_id)))


def _fail_after_transition(monkeypatch, store):
    real = store.catalog.transition

    def transition(*a, **k):
        real(*a, **k)
        raise Boom("after the state change")

    monkeypatch.setattr(store.catalog, "transition", transition)


def _fail_on_double_row(monkeypatch, store):
    from sqlalchemy.orm import Session

    real = Session.add

    def add(self, obj, *a, **k):
        if isinstance(obj, rs.DoubleReview):
            raise Boom("at the double-review row")
        return real(self, obj, *a, **k)

    monkeypatch.setattr(Session, "add", add)


def _fail_on_lease_release(monkeypatch, store):
    real = decisions_module.delete  # the decision's lease release is written in tasks/review/decisions.py

    def delete(table):
        if table is rs.Lease:
            raise Boom("at the lease release")
        return real(table)

    monkeypatch.setattr(decisions_module, "delete", delete)


@pytest.mark.parametrize("inject", [_fail_after_transition, _fail_on_double_row, _fail_on_lease_release])
def test_decision_is_all_or_nothing(catalog, tmp_path, monkeypatch, inject):
    store = ReviewStore(catalog, double_review_share=1.0)  # every first decision also writes a double-review row
    (item_id,) = make_processed(catalog, tmp_path, 1)
    store.lease(item_id, "alice")
    before = snapshot(catalog, store, item_id)
    assert before["lease"] == "alice" and before["decisions"] == []
    with monkeypatch.context() as m:
        inject(m, store)
        with pytest.raises(Boom):
            store.decide(item_id, "alice", "rejected", reason="sky_leak", comment="leaks")
    assert snapshot(catalog, store, item_id) == before  # nothing of it happened
    # and with the failure gone, the same decision goes through whole
    store.decide(item_id, "alice", "rejected", reason="sky_leak", comment="leaks")
    after = snapshot(catalog, store, item_id)
    assert (after["state"], after["reason"], after["decisions"], after["double"], after["lease"]) == \
        ("rejected", "sky_leak", [("first", "rejected")], True, "")
    assert after["events"] == before["events"] + 1


def test_undo_is_all_or_nothing(catalog, tmp_path, monkeypatch):
    store = ReviewStore(catalog)
    (item_id,) = make_processed(catalog, tmp_path, 1)
    store.lease(item_id, "alice")
    store.decide(item_id, "alice", "accepted")
    before = snapshot(catalog, store, item_id)
    with monkeypatch.context() as m:
        _fail_after_transition(m, store)
        with pytest.raises(Boom):
            store.undo("alice")
    assert snapshot(catalog, store, item_id) == before
    assert store.undo("alice") == item_id
    assert catalog.get(item_id).state == "pending_review" and store.lease_holder(item_id).reviewer == "alice"


def test_sessions_are_revocable(catalog):
    store = ReviewStore(catalog)
    store.add_reviewer("alice", "correct horse")
    a, b = store.open_session("alice", max_age_s=60), store.open_session("alice", max_age_s=60)
    assert store.session_valid(a, "alice") and store.session_valid(b, "alice")
    assert not store.session_valid(a, "bob")  # a nonce is bound to its reviewer
    store.revoke_session(a)
    assert not store.session_valid(a, "alice") and store.session_valid(b, "alice")
    store.add_reviewer("alice", "new password", replace=True)  # a new password ends every session
    assert not store.session_valid(b, "alice")
    assert not store.session_valid("made-up", "alice")


def test_unknown_name_costs_one_scrypt_check_like_a_known_one(catalog, monkeypatch):
    store = ReviewStore(catalog)
    store.add_reviewer("alice", "correct horse")
    store._dummy_hash()
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert store.authenticate("alice", "wrong") is None
    known = len(calls)
    assert store.authenticate("nobody", "wrong") is None
    assert store.authenticate("alice", "correct horse") is not None
    assert (known, len(calls)) == (1, 3)


def test_skip_needs_the_lease(catalog, tmp_path):
    store = ReviewStore(catalog)
    a, b = make_processed(catalog, tmp_path, 2)
    store.lease(a, "alice")
    with pytest.raises(ReviewConflict):
        store.skip(a, "bob")  # alice holds it
    with pytest.raises(ReviewConflict):
        store.skip(b, "bob")  # nobody holds it
    assert [d.kind for d in store.decisions()] == []
    store.skip(a, "alice")
    assert [d.kind for d in store.decisions()] == ["skip"]


def test_progress_counts_only_items_that_need_a_person(catalog, tmp_path):
    store = ReviewStore(catalog)
    ids = make_processed(catalog, tmp_path, 3, batch="b")
    for n in range(4):  # ingest rejects: duplicates, mono ... never reviewed by anybody
        item, _ = catalog.discover(source="local", source_id=f"dup{n}", batch="b")
        catalog.transition(item.id, State.REJECTED, reason="duplicate")
    store.lease(ids[0], "alice")
    store.decide(ids[0], "alice", "accepted")
    (row,) = store.progress_by_batch("b")
    assert (row["total"], row["to_review"], row["accepted"], row["rejected"], row["other"]) == (7, 2, 1, 0, 4)
    assert row["done_fraction"] == pytest.approx(1 / 3) and row["needs_review"] == 3


def _digest(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


def _fields(item) -> dict:
    return {c.key: getattr(item, c.key) for c in item.__table__.columns if c.key != "updated_at"}


def test_flip_then_undo_restores_files_and_fields_exactly(catalog, tmp_path):
    store = ReviewStore(catalog)
    (item_id,) = make_processed(catalog, tmp_path, 1)
    folder = tmp_path / "maps" / item_id
    before_files, before = _digest(folder), _fields(catalog.get(item_id))
    store.lease(item_id, "alice")
    seen = {}

    def rederive(_catalog, i: str, _root) -> str:  # stands in for the process stage: new maps, new fields, triage
        item = catalog.get(i)
        seen.update(left=item.left_path, swapped=item.swapped, order=item.view_order, info=item.info)
        (folder / "depth.png").write_bytes((folder / "mask.png").read_bytes())
        (folder / "extra.png").write_bytes(b"\x89PNG\r\n\x1a\nnew")
        catalog.transition(i, State.PROCESSED, quality={"coverage": 0.5}, score=0.1, actor="process")
        return catalog.transition(i, State.AUTO_REJECTED, reason="low_coverage", actor="process").state

    row = store.flip_view_order(item_id, "alice", tmp_path, rederive)
    assert (row.kind, row.from_state, row.to_state) == ("flip", "pending_review", "auto_rejected")
    assert seen["left"] == before["right_path"] and seen["swapped"] is (not before["swapped"])
    assert seen["order"] == ("cross_eyed" if seen["swapped"] else "parallel")
    assert seen["info"]["view_order_source"] == "reviewer"
    assert seen["info"]["views"]["left"] == before["info"]["views"]["right"]
    assert _digest(folder) != before_files and catalog.get(item_id).state == "auto_rejected"
    events = catalog.events(item_id)
    assert any(e.actor == "alice" and e.to_state == "processed" for e in events)  # logged in the events too
    assert store.last_action("alice").kind == "flip"

    assert store.undo("alice", data_root=tmp_path) == item_id
    assert _digest(folder) == before_files  # byte for byte, the extra file gone
    assert _fields(catalog.get(item_id)) == before
    assert not any((folder / ".preflip").iterdir())  # the backup is dropped once used
    assert [d.kind for d in store.decisions(item_id=item_id)] == ["flip", "undo"]
    assert store.lease_holder(item_id).reviewer == "alice"


def test_failed_rederive_leaves_the_item_as_it_was(catalog, tmp_path):
    store = ReviewStore(catalog)
    (item_id,) = make_processed(catalog, tmp_path, 1)
    folder = tmp_path / "maps" / item_id
    before_files, before = _digest(folder), _fields(catalog.get(item_id))
    store.lease(item_id, "alice")

    def rederive(_catalog, i: str, _root) -> str:
        (folder / "depth.png").write_bytes(b"half-written")
        raise Boom("backend crashed")

    with pytest.raises(ReviewError, match="backend crashed"):
        store.flip_view_order(item_id, "alice", tmp_path, rederive)
    assert _digest(folder) == before_files and _fields(catalog.get(item_id)) == before
    assert store.decisions(item_id=item_id) == []
    with pytest.raises(ReviewConflict):
        store.flip_view_order(item_id, "bob", tmp_path, rederive)  # only the lease holder flips


def test_flip_accept_undo_undo_goes_back_through_both(catalog, tmp_path):
    store = ReviewStore(catalog)
    (item_id,) = make_processed(catalog, tmp_path, 1)
    folder = tmp_path / "maps" / item_id
    before_files, before = _digest(folder), _fields(catalog.get(item_id))
    store.lease(item_id, "alice")

    def rederive(_catalog, i: str, _root) -> str:
        (folder / "depth.png").write_bytes((folder / "sky.png").read_bytes())
        catalog.transition(i, State.PROCESSED, actor="process")
        return catalog.transition(i, State.PENDING_REVIEW, actor="process").state

    store.flip_view_order(item_id, "alice", tmp_path, rederive)
    store.decide(item_id, "alice", "accepted")
    assert store.undo("alice", data_root=tmp_path) == item_id  # the accept
    assert catalog.get(item_id).state == "pending_review" and catalog.get(item_id).swapped is (not before["swapped"])
    assert store.undo("alice", data_root=tmp_path) == item_id  # then the flip
    assert _digest(folder) == before_files and _fields(catalog.get(item_id)) == before
    assert store.undo("alice", data_root=tmp_path) is None
