from __future__ import annotations

import pytest
import sqlalchemy as sa

from tasks.catalog.catalog import (
    NEEDS_REASON,
    TRANSITIONS,
    Catalog,
    State,
    TransitionError,
    item_id_for,
    make_engine,
    migrate,
)


def test_discover_is_idempotent(catalog):
    item, created = catalog.discover(source="local", source_id="a/b.jpg", url="file:///x/a/b.jpg")
    again, created_again = catalog.discover(source="local", source_id="a/b.jpg")
    assert created and not created_again
    assert item.id == again.id == item_id_for("local", "a/b.jpg")
    assert catalog.status().as_dict() == {"total": 1, "states": {"discovered": 1}, "reasons": {}}


def test_transitions_are_checked_and_logged(catalog):
    item, _ = catalog.discover(source="local", source_id="x.png")
    catalog.transition(item.id, State.DOWNLOADED, raw_path="raw/x.png")
    with pytest.raises(TransitionError):
        catalog.transition(item.id, State.ACCEPTED)  # cannot skip processing
    with pytest.raises(TransitionError):
        catalog.transition(item.id, State.FAILED)  # needs a reason
    catalog.fail(item.id, "corrupt", "bad huffman table")
    got = catalog.get(item.id)
    assert (got.state, got.reason, got.raw_path) == ("failed", "corrupt", "raw/x.png")
    # retry clears the reason
    catalog.transition(item.id, State.DOWNLOADED)
    assert catalog.get(item.id).reason is None
    events = catalog.events(item.id)
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [
        (None, "discovered", None), ("discovered", "downloaded", None),
        ("downloaded", "failed", "corrupt"), ("failed", "downloaded", None),
    ]


def test_expect_guards_against_concurrent_moves(catalog):
    item, _ = catalog.discover(source="local", source_id="y.png")
    catalog.transition(item.id, "downloaded")
    with pytest.raises(TransitionError):
        catalog.transition(item.id, "downloaded", expect=["discovered"])
    assert catalog.get(item.id).state == "downloaded"


def test_status_counts_states_and_reasons(catalog):
    for i in range(3):
        item, _ = catalog.discover(source="local", source_id=f"{i}.jpg")
        if i:
            catalog.fail(item.id, "empty_file")
    assert catalog.status().as_dict() == {
        "total": 3, "states": {"discovered": 1, "failed": 2}, "reasons": {"empty_file": 2}}


def test_every_state_has_transitions_and_reasoned_states_exist():
    assert set(TRANSITIONS) == set(State)
    assert NEEDS_REASON <= set(State)


def test_old_catalog_opens_in_new_version(catalog_url):
    """A catalog created at the first schema revision is upgraded, rows intact."""
    engine = make_engine(catalog_url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO items (id, source, source_id, state, created_at, updated_at) "
            "VALUES ('old1', 'local', 'old.jpg', 'split', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    engine.dispose()
    with Catalog(catalog_url) as cat:
        assert cat.get("old1").state == "split"
        heads = sa.inspect(cat.engine).get_table_names()
        assert "alembic_version" in heads
        with cat.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    from alembic.script import ScriptDirectory
    from alembic.config import Config
    from pathlib import Path
    import tasks.catalog.catalog as mod

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(mod.__file__).with_name("migrations")))
    assert version == ScriptDirectory.from_config(cfg).get_current_head()


def test_parallel_writers_wait_instead_of_failing(catalog):
    """Batches run as parallel tasks: read-then-write transactions from many threads must all land
    (SQLite used to answer 'database is locked' when a deferred transaction upgraded its lock)."""
    from concurrent.futures import ThreadPoolExecutor

    ids = [catalog.discover(source="local", source_id=f"p{i}.jpg")[0].id for i in range(64)]

    def walk(chunk):
        for item_id in chunk:
            catalog.transition(item_id, State.DOWNLOADED, expect=[State.DISCOVERED], raw_path=f"raw/{item_id}")
            catalog.update(item_id, file_bytes=1)
            catalog.transition(item_id, State.SPLIT, expect=[State.DOWNLOADED])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(walk, [ids[i::8] for i in range(8)]))
    assert catalog.status().states == {"split": 64}
    assert all(len(catalog.events(i)) == 3 for i in ids)


def test_update_and_transition_refuse_a_column_the_catalog_does_not_have(tmp_path):
    from tasks.catalog.catalog import Catalog

    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        item, _ = catalog.discover(source="local", source_id="a.jpg")
        with pytest.raises(ValueError, match=r"'view_ordr' \(did you mean 'view_order'\?\)"):
            catalog.update(item.id, view_ordr="parallel")
        with pytest.raises(ValueError, match="not a catalog column"):
            catalog.transition(item.id, "failed", reason="corrupt", no_such_column=1)
        assert catalog.get(item.id).state == "discovered"  # nothing was written
        catalog.update(item.id, view_order="parallel")
        assert catalog.get(item.id).view_order == "parallel"
