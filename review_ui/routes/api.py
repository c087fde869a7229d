"""JSON actions (POST, signed in, CSRF token in ``X-CSRF-Token``; bodies parsed after both checks)."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from review_ui.context import Ctx, Writer, clip, json_body
from review_ui.images import ITEM_ID
from tasks.review.store import ReviewConflict, ReviewError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api")


class DecideBody(BaseModel):
    item_id: str = Field(pattern=ITEM_ID.pattern)
    decision: str = Field(pattern="^(accepted|rejected)$")
    reason: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)
    override: bool = False


class ItemBody(BaseModel):
    item_id: str = Field(pattern=ITEM_ID.pattern)


class UndoBody(BaseModel):
    """Which decision U takes back: the one the page showed (``decision_id``), else the reviewer's
    own on ``item_id``, else (neither: the empty page, the grid) their latest."""

    decision_id: int | None = Field(None, ge=1)
    item_id: str | None = Field(None, pattern=ITEM_ID.pattern)


class ItemsBody(BaseModel):
    item_ids: list[str] = Field(max_length=500)
    renewed_by: datetime | None = None  # release: only leases not renewed after this (the page's last)


class BulkBody(BaseModel):
    item_ids: list[str] = Field(min_length=1, max_length=500)
    decision: str = Field(pattern="^(accepted|rejected)$")
    reason: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)


def conflict(exc: Exception) -> JSONResponse:
    """A refused action as JSON: 409 (someone else got there first), 404 (no such item), 400."""
    if isinstance(exc, KeyError):
        return JSONResponse({"error": f"no such item: {clip(str(exc).strip(chr(39)), 40)}"}, status_code=404)
    code = 409 if isinstance(exc, ReviewConflict) else 400
    return JSONResponse({"error": clip(str(exc).strip("'"), 300)}, status_code=code)


def check_reason(ctx, decision: str, reason: str | None, comment: str | None) -> None:
    if decision == "rejected":
        if reason not in ctx.reason_codes:
            raise HTTPException(400, f"reason must be one of {sorted(ctx.reason_codes)}")
        if reason == "other" and not (comment or "").strip():
            raise HTTPException(400, "reason 'other' needs a comment")


@router.post("/decide")
def api_decide(body: Annotated[DecideBody, Depends(json_body(DecideBody))], me: Writer, ctx: Ctx):
    check_reason(ctx, body.decision, body.reason, body.comment)
    try:
        row = ctx.store.decide(body.item_id, me.reviewer, body.decision, reason=body.reason, comment=body.comment,
                               override=body.override, via="ui")
    except (ReviewError, KeyError) as exc:
        return conflict(exc)
    return {"ok": True, "decision_id": row.id, "kind": row.kind, "state": row.to_state}


@router.post("/skip")
def api_skip(body: Annotated[ItemBody, Depends(json_body(ItemBody))], me: Writer, ctx: Ctx):
    try:
        ctx.store.skip(body.item_id, me.reviewer)
    except (ReviewError, KeyError) as exc:
        return conflict(exc)
    return {"ok": True}


@router.post("/lease")
def api_lease(body: Annotated[ItemBody, Depends(json_body(ItemBody))], me: Writer, ctx: Ctx):
    """Heartbeat of an open item page: renew the reviewer's lease; 409 when someone else has the
    item or it left the queue, so the page turns read-only."""
    store = ctx.store
    item = ctx.catalog.get(body.item_id)
    if item is None:
        return conflict(KeyError(body.item_id))
    dr = store.double_review(item.id)
    second = dr is not None and dr.second_decision_id is None and dr.first_reviewer != me.reviewer
    if item.state not in store.review_states and not second:
        return JSONResponse({"error": f"{item.id} is now {item.state}", "state": item.state}, status_code=409)
    try:
        lease = store.lease(item.id, me.reviewer)
    except (ReviewError, KeyError) as exc:
        holder = store.lease_holder(item.id)
        return JSONResponse({"error": clip(str(exc).strip("'"), 300),
                             "holder": holder.reviewer if holder else None}, status_code=409)
    return {"ok": True, "expires_at": lease.expires_at.isoformat(),
            "acquired_at": lease.acquired_at.isoformat() if lease.acquired_at else None}


@router.post("/undo")
def api_undo(body: Annotated[UndoBody, Depends(json_body(UndoBody))], me: Writer, ctx: Ctx):
    """Take back the decision the page showed (or the reviewer's latest) and say which, in words."""
    try:
        done = ctx.store.undo_action(me.reviewer, decision_id=body.decision_id, item_id=body.item_id,
                                     data_root=ctx.data_root)
    except (ReviewError, KeyError) as exc:
        return conflict(exc)
    if done is None:
        where = f" on #{body.item_id}" if body.item_id else ""
        return JSONResponse({"error": f"nothing of yours to undo{where}"}, status_code=409)
    if done.kind == "flip":
        ctx.images.invalidate(done.item_id)
    return {"ok": True, "item_id": done.item_id, "item_ids": list(done.item_ids), "undone": done.kind,
            "bulk": done.group is not None, "text": "Undid " + done.describe()}


@router.post("/flip")
def api_flip(body: Annotated[ItemBody, Depends(json_body(ItemBody))], me: Writer, ctx: Ctx):
    """Swap the item's views (depth shown inverted) and re-derive its maps; undo restores it exactly."""
    try:
        row = ctx.store.flip_view_order(body.item_id, me.reviewer, ctx.data_root, ctx.reprocessor)
    except (ReviewError, KeyError) as exc:
        return conflict(exc)
    ctx.images.invalidate(body.item_id)
    log.info("%s flipped the view order of %s (now %s)", me.reviewer, body.item_id, row.to_state)
    return {"ok": True, "decision_id": row.id, "state": row.to_state}


@router.post("/bulk")
def api_bulk(body: Annotated[BulkBody, Depends(json_body(BulkBody))], me: Writer, ctx: Ctx):
    """Decide many items from the grid: each is leased, decided and released on its own, so one
    item held by another reviewer or already decided does not stop the rest. The decisions share a
    group id, so one U takes the whole action back."""
    check_reason(ctx, body.decision, body.reason, body.comment)
    store = ctx.store
    group = uuid.uuid4().hex
    done, failed = [], {}
    for item_id in dict.fromkeys(body.item_ids):
        if not ITEM_ID.match(item_id):
            failed[clip(item_id, 40)] = "bad id"
            continue
        try:
            store.lease(item_id, me.reviewer)
            store.decide(item_id, me.reviewer, body.decision, reason=body.reason, comment=body.comment, via="grid",
                         group=group)
            done.append(item_id)
        except (ReviewError, KeyError) as exc:
            store.release(item_id, me.reviewer)
            failed[item_id] = clip(str(exc).strip("'"), 300)
    return {"ok": not failed, "done": done, "failed": failed}


@router.post("/hold")
def api_hold(body: Annotated[ItemsBody, Depends(json_body(ItemsBody))], me: Writer, ctx: Ctx):
    """The grid's selection: lease each selected item while it stays selected (the page renews
    them); ``refused``: item -> who holds it, so the page can unselect it and say so."""
    held, refused = [], {}
    for item_id in dict.fromkeys(body.item_ids):
        if not ITEM_ID.match(item_id):
            refused[clip(item_id, 40)] = "bad id"
            continue
        try:
            ctx.store.lease(item_id, me.reviewer)
            held.append(item_id)
        except KeyError:
            refused[item_id] = "no such item"
        except ReviewConflict:
            holder = ctx.store.lease_holder(item_id)
            refused[item_id] = holder.reviewer if holder else "someone else"
    return {"ok": not refused, "held": held, "refused": refused}


@router.post("/release")
def api_release(body: Annotated[ItemsBody, Depends(json_body(ItemsBody))], me: Writer, ctx: Ctx):
    """Give back the reviewer's leases on ``item_ids`` (unselected in the grid, or a page closed)."""
    for item_id in dict.fromkeys(body.item_ids):
        if ITEM_ID.match(item_id):
            ctx.store.release(item_id, me.reviewer, renewed_by=body.renewed_by)
    return {"ok": True}
