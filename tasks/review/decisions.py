"""Decisions: accept/reject (first, second, override), skip and undo, and reading the decision log.

Item states change only through ``Catalog.transition``, called here with the reviewer as actor. A
decision is one transaction: the state change (and its event), the decision row, the double-review
row and the lease release commit together or not at all; so is an undo (the flip's map files are
put back last, after the catalog side has been checked).

* **Double review**: an item whose id hash falls below ``double_review_share`` gets a
  ``review_double`` row at its first decision; the queue then offers it to a different reviewer
  (tasks/review/queue.py), whose ``second`` decision records the other opinion without a state change.
* **Undo**: a reviewer retracts a decision (or flip) of theirs that still stands: the one on screen
  (``decision_id`` / ``item_id``) or their latest; the item goes back exactly to where it was and is
  leased back to them. A bulk action (decisions sharing a ``group``) is undone as one unit, all or
  nothing. A decision someone decided again after (an override) is not offered and is refused, with
  who and what, so the page can say why.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import Select, delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from core.rules import id_fraction
from tasks.catalog.catalog import PIPELINE_VERSION, Catalog, Item, State, TransitionError
from tasks.review.errors import ReviewConflict, ReviewError
from tasks.review.flip import Flips
from tasks.review.leases import Leases, live_lease
from tasks.review.map_backup import drop_backup
from tasks.review.tables import (
    DECIDING_KINDS,
    DECISIONS,
    UNDOABLE_KINDS,
    Decision,
    DoubleReview,
    Lease,
    undone_ids,
)

_COMMENT_CHARS = 2000  # a reviewer's comment is cut to this


@dataclass(frozen=True)
class UndoResult:
    """What an undo took back: the items (one, or a bulk action's), the kind and decision undone."""

    item_ids: tuple[str, ...]
    kind: str
    decision: str | None
    group: str | None = None

    @property
    def item_id(self) -> str:
        return self.item_ids[0]

    def describe(self) -> str:
        """Plain words for the page: "your accept of #abc", "your bulk accept of 7 items"."""
        what = {"flip": "view-order flip", "accepted": "accept", "rejected": "reject"}.get(
            self.kind if self.kind == "flip" else (self.decision or self.kind), self.kind)
        if self.group is not None and len(self.item_ids) > 1:
            return f"your bulk {what} of {len(self.item_ids)} items"
        return f"your {'second-review ' if self.kind == 'second' else ''}{what} of #{self.item_id}"


class Decisions:
    """Write and read the append-only ``review_decisions`` log over one catalog."""

    def __init__(self, catalog: Catalog, leases: Leases, flips: Flips, *, review_states: Sequence[str],
                 double_review_share: float, clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.leases = leases
        self.flips = flips
        self.review_states = tuple(review_states)
        self.double_review_share = double_review_share
        self.clock = clock

    def decide(
        self,
        item_id: str,
        reviewer: str,
        decision: str,
        *,
        reason: str | None = None,
        comment: str | None = None,
        override: bool = False,
        via: str = "ui",
        require_lease: bool = True,
        group: str | None = None,
    ) -> Decision:
        """Record ``reviewer``'s ``decision`` ("accepted" | "rejected") on ``item_id``.

        The reviewer must hold the item's lease (``require_lease``; the grid's bulk action leases
        each item itself). A person-decided item changes only with ``override=True``; the override
        is logged with the decision it supersedes. ``group``: the id of the bulk action this decision
        belongs to (undone together).

        One transaction: the state change (and its event), the decision row, the double-review row
        and the lease release commit together or not at all.
        """
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {DECISIONS}")
        if decision == "rejected" and not reason:
            raise ReviewError("a reject needs a reason code")
        if decision == "accepted":
            reason = None
        comment = (comment or "").strip()[:_COMMENT_CHARS] or None
        now = self.clock()
        with self.catalog.session() as s:
            if s.get(Item, item_id) is None:  # an unknown id is a 404, before any lease talk
                raise KeyError(item_id)
            self._check_holder(s, item_id, reviewer, now, required=require_lease and not override)
            item = s.get(Item, item_id, with_for_update=True)
            if item is None:
                raise KeyError(item_id)
            if item.state == State.WITHDRAWN.value:  # gone at the source or taken down: read only for good
                raise ReviewConflict(f"{item_id} is withdrawn ({item.reason}): read only")
            kind, expect, to_state = self._kind_of(s, item, reviewer, decision, override)
            row = Decision(at=now, item_id=item_id, reviewer=reviewer, kind=kind, decision=decision,
                           reason=reason, comment=comment, from_state=item.state, to_state=to_state,
                           pipeline_version=item.pipeline_version or PIPELINE_VERSION, via=via,
                           supersedes_id=self._superseded(s, item_id) if kind == "override" else None,
                           prev_reason=item.reason, prev_detail=item.reason_detail,
                           prev_reviewer=item.reviewer, prev_decided_at=item.decided_at,
                           data={"group": group} if group else None)
            if expect is not None:
                try:
                    self.catalog.transition(item_id, decision, reason=reason, detail=comment,
                                            actor=reviewer, expect=expect, reviewer=reviewer, decided_at=now,
                                            session=s)
                except TransitionError as exc:
                    raise ReviewConflict(str(exc)) from exc
            s.add(row)
            s.flush()
            self._record_double(s, row)
            s.execute(delete(Lease).where(Lease.item_id == item_id, Lease.reviewer == reviewer))
        return row

    @staticmethod
    def _check_holder(s: Session, item_id: str, reviewer: str, now: datetime, *, required: bool) -> None:
        """Refuse when someone else holds the item, or (``required``) when ``reviewer`` holds no lease."""
        holder = live_lease(s, item_id, now)
        if holder is not None and holder.reviewer != reviewer:
            raise ReviewConflict(f"{item_id} is being reviewed by {holder.reviewer}")
        if required and holder is None:
            raise ReviewConflict(f"{item_id}: your lease expired or was never taken; reload the item")

    def _kind_of(self, s: Session, item: Item, reviewer: str, decision: str,
                 override: bool) -> tuple[str, Sequence[str] | None, str]:
        """(kind, states the transition expects or None for no state change, the state after)."""
        if item.state in self.review_states:
            return "first", self.review_states, decision
        dr = s.get(DoubleReview, item.id)
        open_second = dr is not None and dr.second_decision_id is None and dr.first_reviewer != reviewer
        if open_second and not override:
            return "second", None, item.state  # an opinion, not a state change
        if item.state in DECISIONS:
            if not override:
                who = item.reviewer or "the pipeline"
                raise ReviewConflict(f"{item.id} was already {item.state} by {who}; override explicitly")
            if item.state == decision:
                raise ReviewConflict(f"{item.id} is already {decision}")
            return "override", [item.state], decision
        raise ReviewConflict(f"{item.id} is {item.state}: not reviewable")

    @staticmethod
    def _superseded(s: Session, item_id: str) -> int | None:
        """The id of the item's latest decision (or undo): what an override replaces."""
        return s.scalars(select(Decision.id).where(Decision.item_id == item_id,
                                                   Decision.kind.in_(DECIDING_KINDS + ("undo",)))
                         .order_by(Decision.id.desc()).limit(1)).first()

    def _record_double(self, s: Session, row: Decision) -> None:
        """A first decision on a double-review item opens its ``review_double`` row; a second closes it."""
        if row.kind == "first" and self.double_review_share > 0 and \
                id_fraction(row.item_id, "double") < self.double_review_share:
            s.add(DoubleReview(item_id=row.item_id, first_reviewer=row.reviewer,
                               first_decision=row.decision, first_decision_id=row.id, created_at=row.at))
            s.flush()
        elif row.kind == "second":
            done = s.execute(
                update(DoubleReview)
                .where(DoubleReview.item_id == row.item_id, DoubleReview.second_decision_id.is_(None))
                .values(second_reviewer=row.reviewer, second_decision=row.decision, second_decision_id=row.id)
                .execution_options(synchronize_session=False)).rowcount
            if done != 1:
                raise ReviewConflict(f"{row.item_id}: second review already recorded")

    def skip(self, item_id: str, reviewer: str) -> None:
        """Give the item back to the queue; this reviewer is not offered it again for a while.
        Only the lease holder skips (a skip is logged, so it must be about an item one holds)."""
        now = self.clock()
        with self.catalog.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise KeyError(item_id)
            holder = live_lease(s, item_id, now)
            if holder is None or holder.reviewer != reviewer:
                raise ReviewConflict(f"{item_id}: you do not hold this item's lease; nothing to skip")
            s.add(Decision(at=now, item_id=item_id, reviewer=reviewer, kind="skip", from_state=item.state,
                           to_state=item.state, pipeline_version=item.pipeline_version))
            s.execute(delete(Lease).where(Lease.item_id == item_id, Lease.reviewer == reviewer))

    # ---- undo -----------------------------------------------------------------------------------
    @staticmethod
    def _mine(reviewer: str, item_id: str | None) -> Select:
        """``reviewer``'s undoable decisions that no undo took back (of ``item_id`` when given)."""
        q = select(Decision).where(Decision.reviewer == reviewer, Decision.kind.in_(UNDOABLE_KINDS),
                                   Decision.id.not_in(undone_ids()))
        return q.where(Decision.item_id == item_id) if item_id else q

    @staticmethod
    def _not_superseded(q: Select) -> Select:
        """``q`` without decisions that a later standing decision on the same item replaced."""
        later = aliased(Decision)
        return q.where(~exists().where(later.item_id == Decision.item_id, later.id > Decision.id,
                                       later.kind.in_(UNDOABLE_KINDS), later.id.not_in(undone_ids())))

    def last_action(self, reviewer: str, item_id: str | None = None) -> Decision | None:
        """``reviewer``'s latest decision or flip (on ``item_id`` when given) that can still be undone:
        not undone, and nobody decided the item after it (for the "U to undo" line)."""
        with self.catalog.session() as s:
            return s.scalars(self._not_superseded(self._mine(reviewer, item_id))
                             .order_by(Decision.id.desc()).limit(1)).first()

    def overridden(self, reviewer: str, item_id: str | None = None) -> tuple[Decision, Decision] | None:
        """(``reviewer``'s latest standing decision, the later one that replaced it) when someone
        decided that item after them, so it can no longer be undone; None when it still stands."""
        with self.catalog.session() as s:
            return self._overridden(s, reviewer, item_id)

    def _overridden(self, s: Session, reviewer: str, item_id: str | None) -> tuple[Decision, Decision] | None:
        mine = s.scalars(self._mine(reviewer, item_id).order_by(Decision.id.desc()).limit(1)).first()
        if mine is None:
            return None
        later = self._later(s, mine)
        return None if later is None else (mine, later)

    @staticmethod
    def _later(s: Session, target: Decision) -> Decision | None:
        """The latest standing decision on ``target``'s item made after it, if any."""
        return s.scalars(select(Decision).where(Decision.item_id == target.item_id, Decision.id > target.id,
                                                Decision.kind.in_(UNDOABLE_KINDS),
                                                Decision.id.not_in(undone_ids()))
                         .order_by(Decision.id.desc()).limit(1)).first()

    def group_size(self, reviewer: str, group: str) -> int:
        """How many of ``reviewer``'s decisions of bulk action ``group`` still stand (not undone)."""
        with self.catalog.session() as s:
            return int(s.scalar(select(func.count()).select_from(
                self._mine(reviewer, None).where(Decision.data["group"].as_string() == group).subquery())) or 0)

    @staticmethod
    def why_not_undoable(mine: Decision, later: Decision) -> str:
        """Plain words for a decision that was decided again after (the page and the 409 say this)."""
        did = "flipped its view order" if later.kind == "flip" else f"{later.decision or later.kind} it"
        who = "you" if later.reviewer == mine.reviewer else later.reviewer
        noun = {"flip": "flip", "accepted": "accept", "rejected": "reject"}.get(
            "flip" if mine.kind == "flip" else mine.decision or "", mine.kind)
        return (f"#{mine.item_id}: {who} {did} after your {noun}, so your {noun} no longer stands "
                f"and cannot be undone")

    def undo(self, reviewer: str, *, data_root: str | Path | None = None) -> str | None:
        """Retract ``reviewer``'s latest decision (or flip) that can still be undone (see
        :meth:`undo_action`); returns the (first) item id, or None if there is nothing to undo."""
        done = self.undo_action(reviewer, data_root=data_root)
        return done.item_id if done is not None else None

    def undo_action(self, reviewer: str, *, decision_id: int | None = None, item_id: str | None = None,
                    data_root: str | Path | None = None) -> UndoResult | None:
        """Retract one decision (or flip) of ``reviewer``: ``decision_id`` (the one the page showed),
        else their latest standing one on ``item_id``, else their latest standing one anywhere. The
        item returns to its state before it (reason, reviewer, decided_at restored; a flip also
        restores the map files and every catalog field, which needs ``data_root``) and is leased
        back to them. A decision of a bulk action takes the whole action back (no lease then).

        None: nothing to undo. ReviewConflict, saying who and what, if someone decided the item
        after them (or holds it now). One transaction for the catalog side."""
        target = self._target(reviewer, decision_id, item_id)
        if target is None:
            return None
        group = (target.data or {}).get("group") if target.kind in ("first", "second", "override") else None
        now = self.clock()
        if target.kind == "flip" and data_root is None:
            raise ReviewError("undoing a flip needs the data root")
        with self.catalog.session() as s:
            members = [target] if group is None else list(s.scalars(
                self._mine(reviewer, None).where(Decision.data["group"].as_string() == group).order_by(Decision.id)))
            for d in members:
                self._check_undoable(s, d, reviewer, now)
            for d in members:
                try:
                    self._revert(s, d, reviewer, data_root)
                except TransitionError as exc:
                    raise ReviewConflict(str(exc)) from exc
                s.add(Decision(at=now, item_id=d.item_id, reviewer=reviewer, kind="undo", decision=None,
                               from_state=d.to_state, to_state=d.from_state,
                               pipeline_version=d.pipeline_version, supersedes_id=d.id))
                self._forget_double(s, d)
            if group is None:
                # the lease row was none, the reviewer's own, or someone's expired one
                self.leases.grant(s, target.item_id, reviewer, now)
        if target.kind == "flip":
            drop_backup(Path(data_root), (target.data or {}).get("backup"))
        return UndoResult(tuple(d.item_id for d in members), target.kind, target.decision,
                          group if len(members) > 1 else None)

    def _target(self, reviewer: str, decision_id: int | None, item_id: str | None) -> Decision | None:
        """The decision an undo takes back (see :meth:`undo_action`); ReviewConflict when the one
        asked for is not the reviewer's or no longer stands."""
        with self.catalog.session() as s:
            if decision_id is not None:
                target = s.scalars(self._mine(reviewer, None).where(Decision.id == decision_id)).first()
                if target is None:
                    raise ReviewConflict("that decision is not yours, or was already undone")
            else:
                target = s.scalars(self._not_superseded(self._mine(reviewer, item_id))
                                   .order_by(Decision.id.desc()).limit(1)).first()
                if target is None:
                    blocked = self._overridden(s, reviewer, item_id)
                    if blocked is not None:
                        raise ReviewConflict(self.why_not_undoable(*blocked))
                    return None
            later = self._later(s, target)
            if later is not None:
                raise ReviewConflict(self.why_not_undoable(target, later))
            return target

    def _check_undoable(self, s: Session, target: Decision, reviewer: str, now: datetime) -> None:
        """Refuse when a later decision on the item still stands, or someone else holds it now."""
        later = self._later(s, target)
        if later is not None:
            raise ReviewConflict(self.why_not_undoable(target, later))
        self._check_holder(s, target.item_id, reviewer, now, required=False)

    def _revert(self, s: Session, target: Decision, reviewer: str,
                data_root: str | Path | None) -> None:
        """Put the item back to its state before ``target`` (a second opinion changed no state)."""
        if target.kind in ("first", "override"):
            self.catalog.transition(
                target.item_id, target.from_state, reason=target.prev_reason, detail=target.prev_detail,
                actor=reviewer, expect=[target.to_state], reviewer=target.prev_reviewer,
                decided_at=target.prev_decided_at, session=s)
        elif target.kind == "flip":
            self.flips.restore_flip(s, target, reviewer, Path(data_root))

    @staticmethod
    def _forget_double(s: Session, target: Decision) -> None:
        """Undoing a first decision drops its double-review row; undoing a second reopens it."""
        if target.kind == "first":
            s.execute(delete(DoubleReview).where(DoubleReview.item_id == target.item_id,
                                                 DoubleReview.first_decision_id == target.id))
        elif target.kind == "second":
            s.execute(update(DoubleReview).where(DoubleReview.item_id == target.item_id,
                                                 DoubleReview.second_decision_id == target.id)
                      .values(second_reviewer=None, second_decision=None, second_decision_id=None)
                      .execution_options(synchronize_session=False))

    # ---- reading --------------------------------------------------------------------------------
    def decisions(self, *, item_id: str | None = None, reviewer: str | None = None,
                  limit: int | None = None) -> list[Decision]:
        """Log rows, oldest first, for one item and/or one reviewer."""
        q = select(Decision).order_by(Decision.id)
        if item_id:
            q = q.where(Decision.item_id == item_id)
        if reviewer:
            q = q.where(Decision.reviewer == reviewer)
        if limit:
            q = q.limit(limit)
        with self.catalog.session() as s:
            return list(s.scalars(q))

    def history(self, reviewer: str, *, limit: int = 500) -> list[str]:
        """Items this reviewer decided or skipped, oldest first, each once (at its latest position)."""
        with self.catalog.session() as s:
            rows = list(s.execute(select(Decision.item_id, func.max(Decision.id)).where(
                Decision.reviewer == reviewer, Decision.kind.in_(DECIDING_KINDS + ("skip",)))
                .group_by(Decision.item_id).order_by(func.max(Decision.id).desc()).limit(limit)))
        return [r[0] for r in reversed(rows)]

    def double_review(self, item_id: str) -> DoubleReview | None:
        with self.catalog.session() as s:
            return s.get(DoubleReview, item_id)
