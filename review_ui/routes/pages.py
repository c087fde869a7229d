"""Server-rendered pages: the queue (/next, /prev), one item, the grid, progress; and item images."""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from review_ui.context import SORTS, Ctx, Me, filter_of, filter_qs, link, page_number
from review_ui.images import ITEM_ID, KINDS
from review_ui.quality import quality_rows, view_order_flag, what_to_check
from tasks.catalog.catalog import REASONS, State
from tasks.review.store import QueueFilter, ReviewConflict

router = APIRouter()
_MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _check_item_id(item_id: str) -> None:
    if not ITEM_ID.match(item_id):
        raise HTTPException(404, "no such item")


def undo_offer(ctx, reviewer: str, item_id: str | None = None) -> dict:
    """What U undoes on this page, in words, and why a decision of the reviewer's cannot be undone.

    On an item page: the reviewer's standing decision on that item, else their latest anywhere;
    on the empty page (``item_id`` None): their latest. ``blocked``: the reason their newest decision
    (on this item, or anywhere) is no longer undoable, when someone decided it again after them.
    """
    store = ctx.store
    d = (store.last_action(reviewer, item_id) if item_id else None) or store.last_action(reviewer)
    offer = None
    if d is not None:
        group = (d.data or {}).get("group") if d.kind != "flip" else None
        n = store.group_size(reviewer, group) if group else 1
        what = "flipped the view order of" if d.kind == "flip" else (
            f"{'second review: ' if d.kind == 'second' else ''}{d.decision}"
            + (f" ({d.reason.replace('_', ' ')})" if d.reason else ""))
        offer = dict(decision_id=d.id, item_id=d.item_id, kind=d.kind, text=what, group_size=n,
                     here=(d.item_id == item_id))
    blocked = store.overridden(reviewer, item_id) if item_id else None
    if blocked is None:
        blocked = store.overridden(reviewer)
        if blocked is not None and offer is not None and blocked[0].id < offer["decision_id"]:
            blocked = None  # an older story: the offer is newer
    return dict(offer=offer, blocked=store.why_not_undoable(*blocked) if blocked else None)


def _held_note(ctx, reviewer: str, filt: QueueFilter) -> dict | None:
    """How many queue items others hold and when the first lease ends (None when none is held)."""
    n, first = ctx.store.held_by_others(reviewer, filt)
    if not n:
        return None
    minutes = max(0, round((first - datetime.now(timezone.utc)).total_seconds() / 60)) if first else None
    return dict(count=n, first=first.strftime("%H:%M:%S") if first else None, minutes=minutes)


@router.get("/")
def index(me: Me):
    return RedirectResponse("/next", status_code=303)


@router.get("/next")
def next_page(request: Request, ctx: Ctx, me: Me, current: str | None = None):
    """Forward in this reviewer's history if ``current`` is in it, else lease the next queued item.

    A GET that takes a lease: harmless, because the SameSite=Strict session cookie is never sent
    on cross-site navigations, so another site cannot make a reviewer lease items."""
    store = ctx.store
    filt = filter_of(request, store, queue=True)
    qs = filter_qs(filt)
    if current:
        history = store.history(me.reviewer)
        if current in history and history.index(current) < len(history) - 1:
            return RedirectResponse(link(f"/item/{history[history.index(current) + 1]}", qs), status_code=303)
    item_id = store.next_item(me.reviewer, filt, after=current if current and ITEM_ID.match(current) else None)
    if item_id is None:
        store.release_all(me.reviewer)  # nothing on screen: hold nothing
        undo = undo_offer(ctx, me.reviewer)
        return ctx.render(request, "empty.html", me, filters=filt, qs=qs, sorts=SORTS, states=store.review_states,
                          sources=store.sources(), counts=ctx.my_counts(me.reviewer), undo=undo,
                          held=_held_note(ctx, me.reviewer, filt),
                          page=dict(mode="empty", item_id=None, prev_url=link("/prev", qs), grid_url=link("/grid", qs),
                                    next_url=link("/next", qs), qs=qs,
                                    undo_id=undo["offer"]["decision_id"] if undo["offer"] else None,
                                    undo_blocked=undo["blocked"]))
    return RedirectResponse(link(f"/item/{item_id}", qs), status_code=303)


@router.get("/prev")
def prev_page(request: Request, ctx: Ctx, me: Me, current: str | None = None):
    qs = filter_qs(filter_of(request, ctx.store, queue=True))
    history = ctx.store.history(me.reviewer)
    if not history:
        return RedirectResponse(link("/next", qs), status_code=303)
    target = history[max(history.index(current) - 1, 0)] if current in history else history[-1]
    return RedirectResponse(link(f"/item/{target}", qs), status_code=303)


@router.get("/item/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, item_id: str, ctx: Ctx, me: Me):
    _check_item_id(item_id)
    store = ctx.store
    item = ctx.catalog.get(item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    filt = filter_of(request, store, queue=True)
    dr = store.double_review(item_id)
    second_for_me = (dr is not None and dr.second_decision_id is None and dr.first_reviewer != me.reviewer
                     and item.state != "withdrawn")  # a withdrawn item is read only
    holder = store.lease_holder(item_id)
    mode = "readonly"
    if item.state in store.review_states or second_for_me:
        if holder is None or holder.reviewer == me.reviewer:
            holder, mode = _take(store, item_id, me.reviewer)
            if mode == "review" and second_for_me and item.state not in store.review_states:
                mode = "second"
        else:
            mode = "locked"
    elif item.state in ("accepted", "rejected"):
        mode = "locked" if (holder and holder.reviewer != me.reviewer) else "decided"
    if mode not in ("review", "second"):
        store.release_all(me.reviewer)  # attention moved to an item one cannot decide: hold nothing
    history = store.decisions(item_id=item_id)
    qs = filter_qs(filt)
    version = int(item.updated_at.timestamp() * 1000) if item.updated_at else 0
    flag = view_order_flag(item, ctx.process)
    undo = undo_offer(ctx, me.reviewer, item.id)
    page = dict(item_id=item.id, mode=mode, next_url=link("/next", qs, current=item.id),
                prev_url=link("/prev", qs, current=item.id), grid_url=link("/grid", qs), qs=qs,
                reasons=[c for c, _ in ctx.reasons], state=item.state if mode != "second" else "second review",
                decided_by=item.reviewer if mode != "second" else None,
                heartbeat_ms=int(ctx.heartbeat_s * 1000), can_flip=(mode == "review" and bool(item.left_path)),
                undo_id=undo["offer"]["decision_id"] if undo["offer"] else None, undo_blocked=undo["blocked"],
                lease_at=holder.acquired_at.isoformat() if mode in ("review", "second") and holder is not None
                and holder.acquired_at else None)
    has = {k: ctx.images.has(item, k) for k in ("image", "depth", "mask", "sky")}
    if mode in ("review", "second"):
        ctx.warm_next(filt, item.id)
    triage = None
    if item.state == State.AUTO_REJECTED.value and item.reason:
        codes = [c for c in (item.reason_detail or item.reason).split(",") if c] or [item.reason]
        triage = [(c, REASONS.get(c, c.replace("_", " "))) for c in codes]
    return ctx.render(
        request, "item.html", me, item=item, page=page, mode=mode, holder=holder, reasons=ctx.reasons,
        history=history, has=has, queue_left=store.queue_size(filt), counts=ctx.my_counts(me.reviewer),
        held=_held_note(ctx, me.reviewer, filt), checks=what_to_check(flag),
        batch=next(iter(store.progress_by_batch(item.batch)), None) if item.batch else None,
        blind=(mode == "second"), qs=qs, filters=filt, sorts=SORTS, states=store.review_states,
        sources=store.sources(), version=version, flag=flag, triage=triage,
        quality=quality_rows(item, ctx.process), legend=ctx.legend, undo=undo)


def _take(store, item_id: str, reviewer: str):
    """(lease, "review") when ``reviewer`` now holds ``item_id`` (and nothing else from item pages),
    (the other holder's lease, "locked") when someone was faster. Two reviewers opening one free item
    at once: one wins, the other sees it read only; never an error page."""
    for _ in range(3):  # "lease race, try again": the row came and went between the two statements
        try:
            return store.lease(item_id, reviewer, only=True), "review"
        except ReviewConflict:
            holder = store.lease_holder(item_id)
            if holder is not None and holder.reviewer != reviewer:
                return holder, "locked"
    raise ReviewConflict(f"{item_id}: could not take the item (others are opening it too); reload the page")


@router.get("/grid", response_class=HTMLResponse)
def grid_page(request: Request, ctx: Ctx, me: Me):
    store = ctx.store
    page = page_number(request.query_params.get("page"))
    filt = filter_of(request, store, queue=False)
    if not filt.states:
        filt = QueueFilter(states=store.review_states, source=filt.source, batch=filt.batch,
                           min_score=filt.min_score, max_score=filt.max_score, sort=filt.sort)
    store.release_all(me.reviewer)  # the grid leases only what is selected on it (grid.js)
    items, total = store.browse(filt, page=page, page_size=ctx.page_size)
    pages = max((total + ctx.page_size - 1) // ctx.page_size, 1)
    return ctx.render(request, "grid.html", me, items=items, total=total, page=page, pages=pages, filters=filt,
                      qs=filter_qs(filt), sorts=SORTS, all_states=[s.value for s in State], sources=store.sources(),
                      leases=store.live_leases(i.id for i in items), reasons=ctx.reasons, filter_action="/grid",
                      legend=ctx.legend, undo=undo_offer(ctx, me.reviewer),
                      page_data=dict(heartbeat_ms=int(ctx.heartbeat_s * 1000),
                                     confirm_over=ctx.bulk_confirm_over))


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, ctx: Ctx, me: Me):
    store = ctx.store
    return ctx.render(request, "stats.html", me, batches=store.progress_by_batch(),
                      reviewers=store.progress_by_reviewer(), agreement=store.agreement(),
                      double_share=ctx.double_review_share, status=ctx.catalog.status())


@router.get("/img/{item_id}/{kind}")
def image(item_id: str, kind: str, ctx: Ctx, me: Me):
    """An item's image by catalog id and kind; the file must lie in that item's own map folders."""
    if kind not in KINDS or not ITEM_ID.match(item_id):
        raise HTTPException(404, "no such image")
    item = ctx.catalog.get(item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    path = ctx.images.path_for(item, kind)
    if path is None:
        raise HTTPException(404, "no such image")
    return FileResponse(path, media_type=_MEDIA.get(path.suffix.lower(), "application/octet-stream"),
                        headers={"Cache-Control": "private, max-age=300"})
