"""A reviewer's view-order flip: swap the item's two views and re-derive its maps, undoably.

The previous map files are kept in ``maps/<id>/.preflip/<token>/`` (tasks/review/map_backup.py) and
the previous catalog fields in the flip's decision row, so ``undo`` (tasks/review/decisions.py)
restores the item exactly through :meth:`Flips.restore_flip`.
"""
from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy.orm import Session

from tasks.catalog.catalog import Catalog, Item, State, TransitionError
from tasks.labels.view_order import order_fields
from tasks.review.errors import ReviewConflict, ReviewError
from tasks.review.leases import live_lease
from tasks.review.map_backup import backup_maps, drop_backup, restore_maps
from tasks.review.tables import Decision

_SNAPSHOT_SKIP = ("id", "created_at", "updated_at")


def _snapshot(item: Item) -> dict:
    """Every column of ``item`` except its id and timestamps (what a flip may change)."""
    return {c.key: copy.deepcopy(getattr(item, c.key))
            for c in Item.__table__.columns if c.key not in _SNAPSHOT_SKIP}


def _jsonable(fields: dict) -> dict:
    return {k: {"__datetime__": v.isoformat()} if isinstance(v, datetime) else v for k, v in fields.items()}


def _unjsonable(fields: dict) -> dict:
    return {k: datetime.fromisoformat(v["__datetime__"])
            if isinstance(v, dict) and set(v) == {"__datetime__"} else v
            for k, v in fields.items()}


def _swapped(prev: dict, reviewer: str) -> dict:
    """The catalog fields of the item with its views swapped (``prev``: its snapshot before): paths,
    ``swapped`` and ``view_order`` by the process stage's rule (``order_fields``), and the source regions
    of the two views in ``info``."""
    views = dict((prev["info"] or {}).get("views") or {})
    if "left" in views or "right" in views:
        views = {**views, "left": views.get("right"), "right": views.get("left")}
    info = {**(prev["info"] or {}), "view_order_source": "reviewer", "view_order_flipped_by": reviewer}
    if views:
        info["views"] = views
    return {**order_fields(swapped=bool(prev["swapped"]), left_path=prev["left_path"],
                           right_path=prev["right_path"], swap=True), "info": info}


class Flips:
    """View-order flips of items in ``review_states`` over one catalog."""

    def __init__(self, catalog: Catalog, *, review_states: Sequence[str],
                 clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.review_states = tuple(review_states)
        self.clock = clock

    def flip_view_order(self, item_id: str, reviewer: str, data_root: str | Path,
                        rederive: Callable[[Catalog, str, Path], str]) -> Decision:
        """Swap the item's two views (a reviewer saw depth inverted) and re-derive its maps.

        The previous map files are kept in ``maps/<id>/.preflip/<token>/`` and the previous catalog
        fields in the flip's decision row, so ``undo`` restores the item exactly.
        ``rederive(catalog, item_id, data_root)`` runs the process stage on the item (in ``processed``,
        views as given) and returns its new state: a ``tasks.labels.process.Reprocessor``. The flip is logged as a ``flip`` decision and in the events (actor = reviewer).
        """
        data_root = Path(data_root)
        prev = self._flippable(item_id, reviewer)
        backup = backup_maps(data_root, item_id)
        try:
            self.catalog.transition(item_id, State.PROCESSED, actor=reviewer, expect=[prev["state"]],
                                    detail=None, **_swapped(prev, reviewer))
        except TransitionError as exc:
            drop_backup(data_root, backup)
            raise ReviewConflict(str(exc)) from exc
        try:
            new_state = rederive(self.catalog, item_id, data_root)
            if new_state not in self.review_states:
                raise ReviewError(f"the process stage left it {new_state}")
        except Exception as exc:  # noqa: BLE001 - whatever failed, the item goes back exactly as it was
            with self.catalog.session() as s:
                self._restore(s, item_id, prev, backup, data_root, reviewer, expect=None)
            drop_backup(data_root, backup)
            raise ReviewError(f"{item_id}: re-deriving with the views swapped failed: {exc}") from exc
        with self.catalog.session() as s:
            row = Decision(at=self.clock(), item_id=item_id, reviewer=reviewer, kind="flip", decision=None,
                           comment="view order flipped", from_state=prev["state"], to_state=new_state,
                           pipeline_version=prev["pipeline_version"], via="ui",
                           data={"prev": _jsonable(prev), "backup": backup})
            s.add(row)
            s.flush()
        return row

    def _flippable(self, item_id: str, reviewer: str) -> dict:
        """The item's snapshot, once it is known that ``reviewer`` may flip it now."""
        with self.catalog.session() as s:
            holder = live_lease(s, item_id, self.clock())
            if holder is None or holder.reviewer != reviewer:
                raise ReviewConflict(f"{item_id}: take the item's lease first (reload it)")
            item = s.get(Item, item_id)
            if item is None:
                raise KeyError(item_id)
            if item.state not in self.review_states:
                raise ReviewConflict(f"{item_id} is {item.state}: only items awaiting review can be flipped")
            if not item.left_path or not item.right_path:
                raise ReviewError(f"{item_id} has no stored views to swap")
            return _snapshot(item)

    def restore_flip(self, s: Session, target: Decision, reviewer: str, data_root: Path) -> None:
        """Put the item of flip ``target`` back as it was before it (in session ``s``; for ``undo``)."""
        data = target.data or {}
        if not data.get("prev") or not data.get("backup"):
            raise ReviewError(f"{target.item_id}: the flip's log row has no saved state")
        self._restore(s, target.item_id, _unjsonable(data["prev"]), data["backup"], data_root, reviewer,
                      expect=[target.to_state])

    def _restore(self, s: Session, item_id: str, prev: dict, backup: str, data_root: Path, reviewer: str,
                 expect: list[str] | None) -> None:
        """Map files from ``backup`` and every field in ``prev`` back onto the item (in session ``s``)."""
        item = s.get(Item, item_id, with_for_update=True)
        if item is None:
            raise KeyError(item_id)
        if expect is not None and item.state not in expect:
            raise TransitionError(f"{item_id} is {item.state}, expected one of {expect}")
        fields = {k: v for k, v in prev.items() if k not in ("state", "reason", "reason_detail")}
        if item.state != State.PROCESSED.value:
            self.catalog.transition(item_id, State.PROCESSED, actor=reviewer, session=s)
        self.catalog.transition(item_id, prev["state"], reason=prev["reason"], detail=prev["reason_detail"],
                                actor=reviewer, session=s, **fields)
        restore_maps(data_root, item_id, backup)  # last: the catalog side has been checked and flushed
