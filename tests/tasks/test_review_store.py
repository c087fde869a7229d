"""ReviewStore on SQLite and PostgreSQL: accounts, leases, decisions, undo, override, double review."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasks.catalog.catalog import State
from tasks.review.store import (
    QueueFilter,
    ReviewConflict,
    ReviewError,
    ReviewStore,
    hash_password,
    id_fraction,
    verify_password,
)
from tests.review_ui.maps import make_processed


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def items(catalog, tmp_path):
    return make_processed(catalog, tmp_path, 4)


def test_password_hash_roundtrip_and_salt():
    h1, h2 = hash_password("s3cret-pw"), hash_password("s3cret-pw")
    assert h1 != h2 and h1.startswith("scrypt$16384$8$1$")  # salted
    assert verify_password("s3cret-pw", h1) and verify_password("s3cret-pw", h2)
    assert not verify_password("s3cret-pX", h1)
    assert not verify_password("s3cret-pw", "garbage")


def test_accounts(catalog):
    store = ReviewStore(catalog)
    store.add_reviewer("alice", "pw-alice-1")
    with pytest.raises(ReviewError):
        store.add_reviewer("alice", "other")
    with pytest.raises(ReviewError):
        store.add_reviewer("bad name", "x")
    assert store.authenticate("alice", "pw-alice-1").name == "alice"
    assert store.authenticate("alice", "wrong") is None
    assert store.authenticate("bob", "pw-alice-1") is None
    store.add_reviewer("alice", "new-password", replace=True)
    assert store.authenticate("alice", "pw-alice-1") is None
    assert store.authenticate("alice", "new-password") is not None
    store.deactivate_reviewer("alice")
    assert store.authenticate("alice", "new-password") is None


def test_lease_is_exclusive_and_expires(catalog, items, clock):
    store = ReviewStore(catalog, lease_timeout_s=60, clock=clock)
    store.lease(items[0], "alice")
    with pytest.raises(ReviewConflict):
        store.lease(items[0], "bob")
    store.lease(items[0], "alice")  # renewal by the holder is fine
    assert store.next_item("bob") == items[1]  # the queue skips alice's live lease
    clock.advance(61)
    assert store.lease_holder(items[0]) is None
    assert store.next_item("carol") == items[0]  # expired lease: back in the queue
    with pytest.raises(KeyError):
        store.lease("nosuchitem", "alice")


def test_next_item_returns_own_lease_first_and_respects_filters(catalog, items, clock):
    store = ReviewStore(catalog, clock=clock)
    first = store.next_item("alice")
    assert store.next_item("alice") == first  # a reload does not lease a second item
    by_score = [i.id for i in sorted(catalog.items(items), key=lambda i: -i.score) if i.id != first]
    assert store.next_item("bob", QueueFilter(sort="score_desc")) == by_score[0]
    assert store.next_item("carol", QueueFilter(source="flickr")) is None
    low = min(catalog.items(items), key=lambda i: i.score)
    assert store.next_item("dave", QueueFilter(max_score=low.score)) in (low.id, None)


def test_decide_needs_lease_and_moves_state_once(catalog, items, clock):
    store = ReviewStore(catalog, clock=clock)
    with pytest.raises(ReviewConflict):
        store.decide(items[0], "alice", "accepted")  # no lease
    store.lease(items[0], "alice")
    with pytest.raises(ReviewError):
        store.decide(items[0], "alice", "rejected")  # reject needs a reason
    row = store.decide(items[0], "alice", "accepted")
    item = catalog.get(items[0])
    assert (row.kind, item.state, item.reviewer) == ("first", "accepted", "alice")
    assert item.decided_at is not None
    assert store.lease_holder(items[0]) is None  # released
    store.lease(items[0], "bob")
    with pytest.raises(ReviewConflict, match="override"):
        store.decide(items[0], "bob", "rejected", reason="sky_leak")
    assert catalog.get(items[0]).state == "accepted"
    # the catalog's own event log records the transition with the reviewer as actor
    assert [(e.actor, e.to_state) for e in catalog.events(items[0])][-1] == ("alice", "accepted")


def test_override_is_explicit_and_logged(catalog, items, clock):
    store = ReviewStore(catalog, clock=clock)
    store.lease(items[0], "alice")
    first = store.decide(items[0], "alice", "accepted")
    row = store.decide(items[0], "bob", "rejected", reason="sky_leak", comment="halo", override=True)
    item = catalog.get(items[0])
    assert (row.kind, row.supersedes_id, row.from_state, row.to_state) == ("override", first.id, "accepted", "rejected")
    assert (item.state, item.reason, item.reason_detail, item.reviewer) == ("rejected", "sky_leak", "halo", "bob")
    with pytest.raises(ReviewConflict):
        store.decide(items[0], "carol", "rejected", reason="other", override=True)  # no change: refused


def test_undo_restores_exactly(catalog, tmp_path, clock):
    ids = make_processed(catalog, tmp_path, 1, state="auto_rejected")
    store = ReviewStore(catalog, clock=clock)
    store.lease(ids[0], "alice")
    store.decide(ids[0], "alice", "accepted")
    assert store.undo("alice") == ids[0]
    item = catalog.get(ids[0])
    assert (item.state, item.reason, item.reviewer, item.decided_at) == ("auto_rejected", "low_score", None, None)
    assert store.lease_holder(ids[0]).reviewer == "alice"  # leased back for a new decision
    assert store.undo("alice") is None  # nothing left to undo
    store.decide(ids[0], "alice", "rejected", reason="noisy_map")
    assert catalog.get(ids[0]).state == "rejected"
    kinds = [(d.kind, d.reviewer) for d in store.decisions(item_id=ids[0])]
    assert kinds == [("first", "alice"), ("undo", "alice"), ("first", "alice")]


def test_undo_refused_after_someone_elses_decision(catalog, items, clock):
    store = ReviewStore(catalog, clock=clock)
    store.lease(items[0], "alice")
    store.decide(items[0], "alice", "accepted")
    store.decide(items[0], "bob", "rejected", reason="misaligned", override=True)
    with pytest.raises(ReviewConflict):
        store.undo("alice")
    assert store.undo("bob") == items[0]
    assert (catalog.get(items[0]).state, catalog.get(items[0]).reviewer) == ("accepted", "alice")


def test_decision_log_is_append_only_in_the_database(catalog, items, clock):
    store = ReviewStore(catalog, clock=clock)
    store.lease(items[0], "alice")
    store.decide(items[0], "alice", "accepted")
    for stmt in ("UPDATE review_decisions SET reviewer = 'mallory'", "DELETE FROM review_decisions"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with catalog.engine.begin() as conn:
                conn.execute(sa.text(stmt))
    assert [d.reviewer for d in store.decisions()] == ["alice"]


def test_double_review_and_agreement(catalog, tmp_path, clock):
    ids = make_processed(catalog, tmp_path, 4)
    store = ReviewStore(catalog, double_review_share=1.0, clock=clock)
    first = {"accepted": ids[:3], "rejected": ids[3:]}
    second = {ids[0]: "accepted", ids[1]: "accepted", ids[2]: "rejected", ids[3]: "rejected"}
    for decision, group in first.items():
        for item_id in group:
            store.lease(item_id, "alice")
            store.decide(item_id, "alice", decision, reason="anaglyph" if decision == "rejected" else None)
    assert store.next_item("alice") is None  # alice never gets her own items as second reviewer
    seen = []
    while (item_id := store.next_item("bob")) is not None:
        seen.append(item_id)
        store.decide(item_id, "bob", second[item_id], reason="other" if second[item_id] == "rejected" else None)
    assert sorted(seen) == sorted(ids)
    assert [catalog.get(i).state for i in ids] == ["accepted", "accepted", "accepted", "rejected"]  # second: no change
    ag = store.agreement()
    # 3 of 4 agree; p_o = .75, alice accepts 3/4, bob 2/4: p_e = .75*.5 + .25*.5 = .5, kappa = .25/.5 = .5
    assert (ag.pairs, ag.agreed, ag.open) == (4, 3, 0)
    assert ag.rate == pytest.approx(0.75) and ag.kappa == pytest.approx(0.5)
    assert [d["item_id"] for d in ag.disagreements] == [ids[2]]


def test_double_review_pick_is_deterministic_share():
    picks = [id_fraction(f"{i:016x}", "double") < 0.2 for i in range(5000)]
    assert 0.18 < sum(picks) / len(picks) < 0.22
    assert picks == [id_fraction(f"{i:016x}", "double") < 0.2 for i in range(5000)]


def test_progress_counters(catalog, tmp_path, clock):
    a = make_processed(catalog, tmp_path, 3, batch="b1")
    make_processed(catalog, tmp_path, 2, batch="b2", start=10)
    store = ReviewStore(catalog, clock=clock)
    for item_id, d in zip(a, ["accepted", "rejected"]):
        store.lease(item_id, "alice")
        store.decide(item_id, "alice", d, reason="bad_crop" if d == "rejected" else None)
    store.lease(a[2], "bob")
    store.skip(a[2], "bob")
    by_batch = {b["batch"]: b for b in store.progress_by_batch()}
    assert (by_batch["b1"]["accepted"], by_batch["b1"]["rejected"], by_batch["b1"]["to_review"]) == (1, 1, 1)
    assert by_batch["b2"]["to_review"] == 2 and by_batch["b1"]["done_fraction"] == pytest.approx(2 / 3)
    by_rev = {r["reviewer"]: r for r in store.progress_by_reviewer()}
    assert (by_rev["alice"]["decided"], by_rev["alice"]["accepted"], by_rev["alice"]["rejected"]) == (2, 1, 1)
    assert (by_rev["bob"]["decided"], by_rev["bob"]["skips"]) == (0, 1)
    assert store.next_item("bob") != a[2]  # a skipped item is not offered to the same reviewer again
    assert store.history("alice") == a[:2]
    assert catalog.status().states[State.PENDING_REVIEW.value] == 3


def test_migration_0002_downgrades_and_upgrades(catalog_url):
    from tasks.catalog.catalog import make_engine, migrate

    engine = make_engine(catalog_url)
    migrate(engine)
    tables = {"reviewers", "review_leases", "review_decisions", "review_double"}
    assert tables <= set(sa.inspect(engine).get_table_names())
    from alembic import command
    from alembic.config import Config

    import tasks.catalog.catalog

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(tasks.catalog.catalog.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not tables & set(sa.inspect(engine).get_table_names())
    migrate(engine)
    assert tables <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
