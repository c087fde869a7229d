"""The catalog: one module owns the schema and every state transition.

An *item* is one web photo (or local file) on its way to becoming a training sample. Items move
through the states of DESIGN.md; every move is checked against ``TRANSITIONS`` and appended to the
``events`` table (who, when, from, to, reason, pipeline version). Nothing is ever deleted.

Paths stored here are relative to the data root, so a catalog and its files can move together.
The default database is a SQLite file in the data root; any SQLAlchemy URL works
(``REDWEB_DATABASE_URL``), PostgreSQL included. The schema is versioned with alembic
(``tasks/catalog/migrations``) and upgraded when a catalog is opened.
"""
from __future__ import annotations

import enum
import hashlib
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

log = logging.getLogger(__name__)

PIPELINE_VERSION = "4"  # bump when a stage changes its outputs; items record the version that made them
# 2: view order from several cues, keypoint pre-alignment, fused DIS + SGBM correspondence (issue 15)


class State(str, enum.Enum):
    """Catalog states (DESIGN.md contract: names may grow, meanings may not change)."""

    DISCOVERED = "discovered"  # known (URL / file), not yet downloaded
    DOWNLOADED = "downloaded"  # raw bytes stored under raw/, decoded and checked
    SPLIT = "split"  # two views stored under pairs/
    PROCESSED = "processed"  # depth map made
    PENDING_REVIEW = "pending_review"
    AUTO_REJECTED = "auto_rejected"
    AUTO_ACCEPTED = "auto_accepted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # always with a reason; reviewer + decided_at when a person decided
    FAILED = "failed"  # a step could not complete; always with a reason
    # the source is gone, no longer public, or its licence no longer allows use, or a takedown
    # request: never deleted, never exported or released again; always with a reason + withdrawn_at
    WITHDRAWN = "withdrawn"

    def __str__(self) -> str:  # so f"{State.SPLIT}" prints "split"
        return self.value


S = State
_AFTER_PROCESSING = {S.PENDING_REVIEW, S.AUTO_REJECTED, S.AUTO_ACCEPTED}
TRANSITIONS: dict[State, frozenset[State]] = {
    S.DISCOVERED: frozenset({S.DOWNLOADED, S.FAILED, S.REJECTED}),
    S.DOWNLOADED: frozenset({S.SPLIT, S.FAILED, S.REJECTED}),
    S.SPLIT: frozenset({S.PROCESSED, S.FAILED, S.REJECTED}),
    # re-processing with a new pipeline version goes back to SPLIT's successor, PROCESSED
    S.PROCESSED: frozenset(_AFTER_PROCESSING | {S.FAILED, S.PROCESSED, S.SPLIT}),
    S.PENDING_REVIEW: frozenset({S.ACCEPTED, S.REJECTED, S.PROCESSED, S.SPLIT, S.FAILED}),
    S.AUTO_REJECTED: frozenset({S.ACCEPTED, S.REJECTED, S.PENDING_REVIEW, S.PROCESSED, S.SPLIT}),
    S.AUTO_ACCEPTED: frozenset({S.ACCEPTED, S.REJECTED, S.PENDING_REVIEW, S.PROCESSED, S.SPLIT}),
    # a person's decision changes only by an explicit second decision (review UI logs it); the
    # moves back to the review states are the reviewer's own logged undo (tasks/review/store.py)
    S.ACCEPTED: frozenset({S.REJECTED, S.SPLIT, S.PENDING_REVIEW, S.AUTO_ACCEPTED, S.AUTO_REJECTED}),
    S.REJECTED: frozenset({S.ACCEPTED, S.PENDING_REVIEW, S.SPLIT, S.DISCOVERED, S.DOWNLOADED,
                           S.AUTO_ACCEPTED, S.AUTO_REJECTED}),
    # retry: a failed item goes back to the state before the step that failed
    S.FAILED: frozenset({S.DISCOVERED, S.DOWNLOADED, S.SPLIT, S.PROCESSED, S.REJECTED}),
    # terminal: a withdrawn photo is never used again (a new crawl of it finds the known row)
    S.WITHDRAWN: frozenset(),
}
# every other state can be withdrawn (revalidation or a takedown request)
TRANSITIONS = {state: (moves | {S.WITHDRAWN} if state is not S.WITHDRAWN else moves)
               for state, moves in TRANSITIONS.items()}
NEEDS_REASON = frozenset({S.FAILED, S.REJECTED, S.AUTO_REJECTED, S.WITHDRAWN})

# Reason codes (grow freely; meanings fixed). Stages may use codes not listed here, but listing
# them documents them for `redweb status` and the review UI.
REASONS: dict[str, str] = {
    # ingest: bad files
    "empty_file": "zero-byte file",
    "not_image": "content is not a decodable image",
    "corrupt": "image data is corrupt",
    "truncated": "image file is truncated",
    "too_large": "pixel count above the decompression-bomb cap",
    "file_too_big": "file size above the configured cap",
    "too_small": "image (or one of its views) smaller than the minimum side",
    "unsupported_mode": "pixel format that cannot be converted to RGB",
    "download_failed": "download failed after retries",
    "flickr_no_original": "Flickr offered no downloadable size (getSizes failed or was empty)",
    "http_error": "server answered with an error status",
    "source_missing": "local file vanished or unreadable",
    # ingest: not usable stereo
    "anaglyph": "red/cyan anaglyph, not two views",
    "mono": "single view, not a stereo image",
    "duplicate": "same bytes as another item",
    "near_duplicate": "perceptually the same image as another item",
    "unknown_format": "stereo layout could not be determined",
    "internal_error": "ingest: unexpected error while handling this item (detail has the traceback)",
    # process: triage (auto_rejected; "misaligned" below is shared with review) and failures
    "flow_failed": "process: the correspondence found (almost) nothing consistent, or non-finite flow",
    "low_disparity_range": "process: too little disparity range between near and far reliable pixels",
    "low_coverage": "process: too little reliable area after cropping",
    "view_order_undecidable": "process: parallel vs cross-eyed could not be decided from the data",
    "process_error": "process: the stage raised an error (see detail)",
    # review: a person's reject reasons (config.review.reject_reasons picks the offered ones)
    "not_stereo": "reviewer: not a stereo photo",
    "misaligned": "reviewer or process: the two views are misaligned (vertical offset, different shots)",
    "sky_leak": "reviewer: sky mask leaks into foreground or misses sky",
    "wrong_view_order": "reviewer: left and right views are swapped (depth inverted)",
    "noisy_map": "reviewer: depth map too noisy to be useful",
    "bad_crop": "reviewer: crop cuts the content or keeps borders",
    "other": "reviewer: other (see comment)",
    # withdrawn (tasks/publish/revalidate.py, `redweb withdraw`)
    "source_deleted": "withdrawn: the source no longer has the photo (Flickr: getInfo says 'Photo not found')",
    "source_private": "withdrawn: the photo is no longer public",
    "license_changed": "withdrawn: the owner changed the licence to one that does not allow this use",
    "takedown": "withdrawn by hand on request (owner, legal); detail has the request",
}
WITHDRAW_REASONS = ("source_deleted", "source_private", "license_changed", "takedown")


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_items_source"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), index=True)  # flickr | local | urls | samples
    source_id: Mapped[str] = mapped_column(Text)  # flickr photo id, path relative to the folder, URL
    url: Mapped[str | None] = mapped_column(Text)  # where the bytes came from (original size)
    page_url: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    license: Mapped[str | None] = mapped_column(Text)  # license name (Flickr: from licenses.getInfo)
    license_url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner_id: Mapped[str | None] = mapped_column(String(128), index=True)  # source account id (Flickr NSID)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last revalidation at the source
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    batch: Mapped[str | None] = mapped_column(String(64), index=True)  # ingest run that found it

    state: Mapped[str] = mapped_column(String(24), index=True)
    reason: Mapped[str | None] = mapped_column(String(64), index=True)
    reason_detail: Mapped[str | None] = mapped_column(Text)

    raw_path: Mapped[str | None] = mapped_column(Text)
    file_bytes: Mapped[int | None] = mapped_column(BigInteger)
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    phash: Mapped[str | None] = mapped_column(String(16), index=True)  # 64-bit hex of the left view
    duplicate_of: Mapped[str | None] = mapped_column(String(32))
    raw_width: Mapped[int | None] = mapped_column(Integer)
    raw_height: Mapped[int | None] = mapped_column(Integer)

    stereo_format: Mapped[str | None] = mapped_column(String(32))  # side_by_side, over_under, mpo, jps, triptych
    swapped: Mapped[bool | None] = mapped_column(Boolean)  # True: the file stores the left-eye view second
    view_order: Mapped[str | None] = mapped_column(String(24))  # undecided | parallel | cross_eyed | ...
    left_path: Mapped[str | None] = mapped_column(Text)
    right_path: Mapped[str | None] = mapped_column(Text)
    view_width: Mapped[int | None] = mapped_column(Integer)
    view_height: Mapped[int | None] = mapped_column(Integer)

    image_path: Mapped[str | None] = mapped_column(Text)  # cropped left view
    depth_path: Mapped[str | None] = mapped_column(Text)
    mask_path: Mapped[str | None] = mapped_column(Text)
    sky_path: Mapped[str | None] = mapped_column(Text)
    preview_path: Mapped[str | None] = mapped_column(Text)
    crop_x0: Mapped[int | None] = mapped_column(Integer)
    crop_y0: Mapped[int | None] = mapped_column(Integer)
    crop_x1: Mapped[int | None] = mapped_column(Integer)
    crop_y1: Mapped[int | None] = mapped_column(Integer)
    quality: Mapped[dict | None] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float, index=True)
    pipeline_version: Mapped[str | None] = mapped_column(String(32))

    reviewer: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    info: Mapped[dict | None] = mapped_column(JSON)  # stage diagnostics (format scores, ...)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Event(Base):
    """Append-only audit log of state changes and decisions."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    pipeline_version: Mapped[str | None] = mapped_column(String(32))


class CrawlCursor(Base):
    """Resumable crawl position, one row per (query, date window)."""

    __tablename__ = "crawl_cursors"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[dict] = mapped_column(JSON)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class TransitionError(ValueError):
    """A state change that TRANSITIONS does not allow, or a missing reason."""


def item_id_for(source: str, source_id: str) -> str:
    """Stable id from where an item came from, so re-discovery never makes a second row."""
    return hashlib.sha1(f"{source}\x00{source_id}".encode()).hexdigest()[:16]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer (review UI + pipeline)
    # with WAL, NORMAL stays consistent and durable across process crashes (kill -9); only a power
    # loss can drop the last commits. Halves the cost of each small catalog transaction.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin_immediate(conn) -> None:
    # Take the write lock when a transaction starts. With pysqlite's default deferred BEGIN, a
    # transaction that reads and then writes must upgrade its lock, and SQLite answers "database is
    # locked" at once (no busy wait) when another connection committed in between: exactly what
    # parallel batch tasks do. IMMEDIATE makes such transactions wait their turn (busy_timeout).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_connect(dbapi_conn, record) -> None:
    dbapi_conn.isolation_level = None  # let _sqlite_begin_immediate issue BEGIN, not pysqlite
    _sqlite_pragmas(dbapi_conn, record)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True)


# alembic's command API keeps module-global proxies: two threads upgrading at once corrupt them
_MIGRATE_LOCK = threading.Lock()


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's INFO lines (plugin set-up on import, context, every revision step) only with debug
    logging (``redweb -v``): a new data root would otherwise print them before a command's output."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    if not alembic_log.isEnabledFor(logging.DEBUG):
        alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return cfg


@lru_cache(maxsize=1)
def schema_head() -> str:
    """The newest schema revision this code knows."""
    with _quiet_alembic():
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    """The revision a database is at (None: not a catalog yet)."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with alembic (old catalogs open in new versions).

    Cheap when the catalog is already current: one query, no alembic machinery. Alembic's own INFO
    lines are shown only with debug logging (``_quiet_alembic``); upgrading an existing catalog is
    logged once, as one line.
    """
    with _MIGRATE_LOCK:
        before = schema_revision(engine)
        if revision == "head" and before == schema_head():
            return
        with _quiet_alembic():
            from alembic import command

            cfg = _alembic_config()
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        if before is None:
            log.debug("catalog created at schema %s", revision)
        else:
            log.info("catalog schema upgraded from %s to %s", before, revision)


@dataclass(frozen=True)
class StatusCounts:
    total: int
    states: dict[str, int]
    reasons: dict[str, int]

    def as_dict(self) -> dict:
        return {"total": self.total, "states": self.states, "reasons": self.reasons}


def _check_columns(fields: dict[str, Any]) -> None:
    """Refuse names that are not columns of ``items`` (a misspelt ``view_ordr=`` would otherwise be set
    as a plain attribute and silently never stored), naming the closest column."""
    from core.settings import closest_key

    columns = set(Item.__table__.columns.keys())
    unknown = [k for k in fields if k not in columns]
    if unknown:
        hints = [f"{k!r}" + (f" (did you mean {closest_key(k, columns)!r}?)" if closest_key(k, columns) else "")
                 for k in unknown]
        raise ValueError(f"not a catalog column: {', '.join(hints)}")


def _set_columns(item: "Item", fields: dict[str, Any]) -> None:
    _check_columns(fields)
    for key, value in fields.items():
        setattr(item, key, value)


class Catalog:
    """Handle on one catalog database. Cheap to create; holds an engine and a session factory."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if upgrade:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _joined(self, session: Session | None) -> Iterator[Session]:
        """``session`` itself when the caller has one open (its transaction, its commit), else a new one."""
        if session is None:
            with self.session() as s:
                yield s
        else:
            yield session
            session.flush()

    # ---- items -------------------------------------------------------------------------------
    def discover(
        self, *, source: str, source_id: str, actor: str = "ingest", **fields: Any
    ) -> tuple[Item, bool]:
        """Record an item in ``discovered`` unless (source, source_id) is already known.

        Returns ``(item, created)``. Safe against a concurrent discoverer of the same item.
        """
        from sqlalchemy.exc import IntegrityError

        item_id = item_id_for(source, source_id)
        with self.session() as s:
            existing = s.get(Item, item_id)
            if existing is not None:
                return existing, False
        try:
            with self.session() as s:
                item = Item(id=item_id, source=source, source_id=source_id, state=S.DISCOVERED.value, **fields)
                s.add(item)
                s.flush()
                s.add(Event(item_id=item_id, actor=actor, from_state=None, to_state=S.DISCOVERED.value,
                            pipeline_version=PIPELINE_VERSION))
            return item, True
        except IntegrityError:
            with self.session() as s:
                return s.get(Item, item_id), False

    def get(self, item_id: str) -> Item | None:
        with self.session() as s:
            return s.get(Item, item_id)

    def update(self, item_id: str, **fields: Any) -> Item:
        """Change non-state fields (paths, hashes, provenance). States go through ``transition``.
        A name that is not a column raises ``ValueError`` before anything is written."""
        if "state" in fields:
            raise TransitionError("use Catalog.transition to change state")
        _check_columns(fields)
        with self.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise KeyError(item_id)
            _set_columns(item, fields)
            return item

    def transition(
        self,
        item_id: str,
        to: State | str,
        *,
        reason: str | None = None,
        detail: str | None = None,
        actor: str = "pipeline",
        expect: Iterable[State | str] | None = None,
        session: Session | None = None,
        **fields: Any,
    ) -> Item:
        """Move an item to ``to`` (checked against TRANSITIONS), set ``fields``, log an event.

        ``expect``: the states the caller believes the item is in; if it is elsewhere (another
        worker moved it), TransitionError is raised and nothing changes. Moving to a state that does
        not need a reason clears ``reason``/``reason_detail``.
        ``session``: run inside the caller's transaction (from ``Catalog.session()``) instead of a
        new one, so a state change and the caller's own rows commit or roll back together
        (a review decision: state, decision row, double-review row, lease release).
        """
        to = State(to)
        if to in NEEDS_REASON and not reason:
            raise TransitionError(f"moving to {to} needs a reason code")
        with self._joined(session) as s:
            item = s.get(Item, item_id, with_for_update=True)
            if item is None:
                raise KeyError(item_id)
            current = State(item.state)
            if expect is not None and current not in {State(e) for e in expect}:
                raise TransitionError(f"{item_id} is {current}, expected one of {sorted(map(str, expect))}")
            if to not in TRANSITIONS[current]:
                raise TransitionError(f"{item_id}: {current} -> {to} is not allowed")
            _set_columns(item, fields)
            item.state = to.value
            item.reason = reason if (reason or to in NEEDS_REASON) else None
            item.reason_detail = detail if reason else None
            s.add(Event(item_id=item_id, actor=actor, from_state=current.value, to_state=to.value,
                        reason=reason, detail=detail, pipeline_version=PIPELINE_VERSION))
            return item

    def withdraw(self, item_id: str, reason: str, detail: str | None = None, *, actor: str = "withdraw",
                 at: datetime | None = None, **fields: Any) -> Item | None:
        """Move an item to ``withdrawn`` (from any state) with a reason code and the time.

        ``reason``: one of WITHDRAW_REASONS; ``fields``: more columns to set (revalidation sets
        ``checked_at``). Returns the item, or None when it was already withdrawn (the first
        withdrawal's reason and time stay). Nothing is deleted: rows, files and events stay.
        """
        if reason not in WITHDRAW_REASONS:
            raise TransitionError(f"withdraw reason must be one of {WITHDRAW_REASONS}, got {reason!r}")
        at = at or utcnow()
        for _ in range(3):  # another writer may move the item between our read and our write
            item = self.get(item_id)
            if item is None:
                raise KeyError(item_id)
            if item.state == S.WITHDRAWN.value:
                return None
            try:
                return self.transition(item_id, S.WITHDRAWN, reason=reason, detail=detail, actor=actor,
                                       expect=[item.state], withdrawn_at=at, **fields)
            except TransitionError:
                continue
        raise TransitionError(f"{item_id}: could not withdraw (state keeps changing)")

    def fail(self, item_id: str, reason: str, detail: str | None = None, *, actor: str = "pipeline", **fields) -> Item:
        return self.transition(item_id, S.FAILED, reason=reason, detail=detail, actor=actor, **fields)

    def ids(self, *states: State | str, source: str | None = None, batch: str | None = None,
            limit: int | None = None) -> list[str]:
        """Ids of items in any of ``states`` (all items if none given), oldest first."""
        q = select(Item.id)
        if states:
            q = q.where(Item.state.in_([State(x).value for x in states]))
        if source:
            q = q.where(Item.source == source)
        if batch:
            q = q.where(Item.batch == batch)
        q = q.order_by(Item.created_at, Item.id)
        if limit:
            q = q.limit(limit)
        with self.session() as s:
            return list(s.scalars(q))

    def items(self, ids: Iterable[str]) -> list[Item]:
        ids = list(ids)
        with self.session() as s:
            found = {i.id: i for i in s.scalars(select(Item).where(Item.id.in_(ids)))}
        return [found[i] for i in ids if i in found]

    def events(self, item_id: str) -> list[Event]:
        with self.session() as s:
            return list(s.scalars(select(Event).where(Event.item_id == item_id).order_by(Event.id)))

    # ---- lookups for revalidation and takedown (tasks/publish/revalidate.py) ------------------------------
    def ids_last_verified_before(self, source: str, before: datetime | None, *, states: Iterable[State | str] = (),
                                 exclude: Iterable[State | str] = (), limit: int | None = None) -> list[str]:
        """Ids of ``source`` items last verified at the source before ``before`` (all when None),
        least recently verified first. "Verified": the last revalidation (``checked_at``), else the
        crawl that found the item (``fetched_at``), else when it was recorded."""
        last = func.coalesce(Item.checked_at, Item.fetched_at, Item.created_at)
        q = select(Item.id).where(Item.source == source)
        if states:
            q = q.where(Item.state.in_([State(x).value for x in states]))
        if exclude:
            q = q.where(Item.state.not_in([State(x).value for x in exclude]))
        if before is not None:
            q = q.where(last < before)
        q = q.order_by(last, Item.id)
        if limit:
            q = q.limit(limit)
        with self.session() as s:
            return list(s.scalars(q))

    def ids_with_url(self, urls: Iterable[str]) -> list[str]:
        """Items whose download URL or page URL is one of ``urls``."""
        urls = list(urls)
        with self.session() as s:
            return list(s.scalars(select(Item.id).where(Item.url.in_(urls) | Item.page_url.in_(urls))
                                  .order_by(Item.created_at, Item.id)))

    def ids_with_source_id(self, source_id: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Item.id).where(Item.source_id == source_id)
                                  .order_by(Item.created_at, Item.id)))

    def ids_of_owner(self, owner: str) -> list[str]:
        """Items of an owner account: ``owner_id`` (Flickr NSID) or, failing that, the owner name."""
        with self.session() as s:
            return list(s.scalars(select(Item.id).where((Item.owner_id == owner) | (Item.owner == owner))
                                  .order_by(Item.created_at, Item.id)))

    def find_by_sha256(self, sha256: str, *, exclude: str | None = None) -> Item | None:
        """The earliest usable item with these bytes (failed and duplicate items don't count)."""
        q = (select(Item).where(Item.content_sha256 == sha256, Item.state != S.FAILED.value,
                                Item.duplicate_of.is_(None))
             .order_by(Item.created_at, Item.id))
        if exclude:
            q = q.where(Item.id != exclude)
        with self.session() as s:
            return s.scalars(q.limit(1)).first()

    def phashes(self) -> dict[str, int]:
        """Perceptual hashes of every item that is not itself a duplicate (for near-dup search)."""
        q = select(Item.id, Item.phash).where(Item.phash.is_not(None), Item.duplicate_of.is_(None),
                                             Item.state != S.FAILED.value)
        with self.session() as s:
            return {i: int(h, 16) for i, h in s.execute(q)}

    def status(self) -> StatusCounts:
        with self.session() as s:
            states = dict(s.execute(select(Item.state, func.count()).group_by(Item.state)).all())
            reasons = dict(s.execute(select(Item.reason, func.count()).where(Item.reason.is_not(None))
                                     .group_by(Item.reason)).all())
        return StatusCounts(total=sum(states.values()), states={k: int(v) for k, v in sorted(states.items())},
                            reasons={k: int(v) for k, v in sorted(reasons.items())})

    # ---- queries for flows and reports (no SQL on catalog tables outside this module) -----------
    def state_counts(self, ids: Iterable[str]) -> dict[str, int]:
        """{state: number of ``ids`` in it}."""
        counts: dict[str, int] = {}
        for item in self.items(ids):
            counts[item.state] = counts.get(item.state, 0) + 1
        return counts

    def scores(self) -> list[float]:
        """Every triage score recorded (items without one left out)."""
        with self.session() as s:
            return [float(v) for v in s.scalars(select(Item.score).where(Item.score.is_not(None)))]

    def best_scored(self, states: Iterable[State | str], *, limit: int) -> list[Item]:
        """Up to ``limit`` items in ``states`` that have a depth map, highest score first (ties: by id)."""
        q = (select(Item).where(Item.state.in_([State(x).value for x in states]), Item.depth_path.is_not(None))
             .order_by(Item.score.desc().nulls_last(), Item.id).limit(limit))
        with self.session() as s:
            return list(s.scalars(q))

    def count_entered(self, state: State | str, *, since: datetime | None = None) -> int:
        """Distinct items that entered ``state`` after ``since`` (ever, when None), from the event log."""
        q = select(func.count(func.distinct(Event.item_id))).where(Event.to_state == State(state).value)
        if since is not None:
            q = q.where(Event.at > since)
        with self.session() as s:
            return int(s.scalar(q) or 0)

    # ---- crawl cursors -----------------------------------------------------------------------
    def get_cursor(self, key: str) -> CrawlCursor | None:
        with self.session() as s:
            return s.get(CrawlCursor, key)

    def put_cursor(self, key: str, data: dict, *, done: bool = False) -> None:
        with self.session() as s:
            cur = s.get(CrawlCursor, key)
            if cur is None:
                s.add(CrawlCursor(key=key, data=data, done=done))
            else:
                cur.data = data
                cur.done = done


def open_catalog(url: str) -> Catalog:
    """Open (and migrate) the catalog at a SQLAlchemy URL."""
    return Catalog(url)
