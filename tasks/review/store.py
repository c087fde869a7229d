"""The review stage's one entry point: ``ReviewStore``, a facade over one module per concern.

This package and ``tasks/catalog/catalog.py`` are the only code that writes the review tables; item
states still change only through ``Catalog.transition`` (a decision calls it with the reviewer as
actor). Where each concern lives:

* ``tables.py``: the review tables (reviewers, sessions, leases, decisions, double review);
* ``passwords.py`` / ``accounts.py`` / ``sessions.py``: sign-in;
* ``leases.py``: who holds an item, until when; ``queue.py``: what a reviewer gets next, grid pages;
* ``decisions.py``: decide, skip, undo, and the decision log; ``flip.py`` (+ ``map_backup.py``):
  a reviewer's view-order flip; ``stats.py``: progress and double-review agreement.

Every setting comes from one :class:`~tasks.review.settings.ReviewConfig`. ``ReviewStore.<method>``
is the method of the component that owns it (written, typed and documented once, there).
All methods are safe to call from many threads/processes.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Concatenate, Generic, ParamSpec, TypeVar

from core.rules import id_fraction
from tasks.catalog.catalog import Catalog, State, utcnow
from tasks.review.accounts import Accounts
from tasks.review.decisions import Decisions, UndoResult
from tasks.review.errors import ReviewConflict, ReviewError
from tasks.review.flip import Flips
from tasks.review.leases import LeaseInfo, Leases
from tasks.review.passwords import hash_password, verify_password
from tasks.review.queue import Queue, QueueFilter
from tasks.review.sessions import Sessions
from tasks.review.settings import ReviewConfig
from tasks.review.stats import Agreement, Stats
from tasks.review.tables import DECISIONS, Decision, DoubleReview, Lease, Reviewer, ReviewSession

__all__ = [  # what callers import from the review store (each defined in the module named above)
    "DECISIONS", "Agreement", "Decision", "DoubleReview", "Lease", "LeaseInfo", "QueueFilter",
    "ReviewConflict", "ReviewError", "ReviewSession", "ReviewStore", "Reviewer", "UndoResult", "hash_password",
    "id_fraction", "verify_password",
]

P = ParamSpec("P")
R = TypeVar("R")


class _Via(Generic[P, R]):
    """``store.<name>`` answered by ``store.<component>.<method>``, with that method's own signature."""

    def __init__(self, component: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.component, self.method = component, method.__name__
        self.__doc__ = method.__doc__

    def __get__(self, store: Any, owner: type | None = None) -> Callable[P, R]:
        if store is None:
            return self  # type: ignore[return-value]  (the class attribute itself, for help())
        return getattr(getattr(store, self.component), self.method)


class ReviewStore:
    """Review operations over one catalog, with the settings of ``config`` (default ``ReviewConfig()``).

    ``overrides`` are ``ReviewConfig`` fields (``lease_timeout_s=60``), checked like the config file;
    ``clock`` gives "now" (tests move time with it).
    """

    def __init__(self, catalog: Catalog, config: ReviewConfig | None = None, *,
                 clock: Callable[[], datetime] = utcnow, **overrides: Any) -> None:
        cfg = (config or ReviewConfig()).with_overrides(**overrides)
        self.catalog = catalog
        self.config = cfg
        self.clock = clock
        self.review_states = tuple(State(s).value for s in cfg.review_states)
        self.sessions = Sessions(catalog, clock=clock)
        self.accounts = Accounts(catalog, self.sessions)
        self.leases = Leases(catalog, timeout=timedelta(seconds=cfg.lease_timeout_s), clock=clock)
        self.queue = Queue(catalog, self.leases, review_states=self.review_states,
                           skip_cooldown=timedelta(seconds=cfg.skip_cooldown_s), clock=clock)
        self.flips = Flips(catalog, review_states=self.review_states, clock=clock)
        self.decision_log = Decisions(catalog, self.leases, self.flips, review_states=self.review_states,
                                      double_review_share=cfg.double_review_share, clock=clock)
        self.stats = Stats(catalog, review_states=self.review_states)

    # accounts and sessions (accounts.py, sessions.py)
    _dummy_hash = _Via("accounts", Accounts.dummy_hash)
    add_reviewer = _Via("accounts", Accounts.add_reviewer)
    deactivate_reviewer = _Via("accounts", Accounts.deactivate_reviewer)
    authenticate = _Via("accounts", Accounts.authenticate)
    get_reviewer = _Via("accounts", Accounts.get_reviewer)
    reviewer_names = _Via("accounts", Accounts.reviewer_names)
    open_session = _Via("sessions", Sessions.open_session)
    session_valid = _Via("sessions", Sessions.session_valid)
    session_reviewer = _Via("sessions", Sessions.session_reviewer)
    revoke_session = _Via("sessions", Sessions.revoke_session)
    revoke_sessions_of = _Via("sessions", Sessions.revoke_sessions_of)
    # leases and the queue (leases.py, queue.py)
    lease = _Via("leases", Leases.lease)
    lease_holder = _Via("leases", Leases.lease_holder)
    release = _Via("leases", Leases.release)
    release_all = _Via("leases", Leases.release_all)
    live_leases = _Via("leases", Leases.live_leases)
    next_item = _Via("queue", Queue.next_item)
    upcoming = _Via("queue", Queue.upcoming)
    queue_size = _Via("queue", Queue.queue_size)
    held_by_others = _Via("queue", Queue.held_by_others)
    browse = _Via("queue", Queue.browse)
    sources = _Via("queue", Queue.sources)
    # decisions, undo and the log (decisions.py); the view-order flip (flip.py)
    decide = _Via("decision_log", Decisions.decide)
    skip = _Via("decision_log", Decisions.skip)
    last_action = _Via("decision_log", Decisions.last_action)
    undo = _Via("decision_log", Decisions.undo)
    undo_action = _Via("decision_log", Decisions.undo_action)
    overridden = _Via("decision_log", Decisions.overridden)
    group_size = _Via("decision_log", Decisions.group_size)
    why_not_undoable = _Via("decision_log", Decisions.why_not_undoable)
    decisions = _Via("decision_log", Decisions.decisions)
    history = _Via("decision_log", Decisions.history)
    double_review = _Via("decision_log", Decisions.double_review)
    flip_view_order = _Via("flips", Flips.flip_view_order)
    # statistics (stats.py)
    progress_by_batch = _Via("stats", Stats.progress_by_batch)
    progress_by_reviewer = _Via("stats", Stats.progress_by_reviewer)
    agreement = _Via("stats", Stats.agreement)
