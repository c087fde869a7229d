"""The annotators' web app: server-rendered pages (Jinja2), local assets, vanilla JS for the keys.

``create_app(catalog_url, data_root, **settings)`` builds a FastAPI app; nothing is built at import.
Pages: ``/login``, ``/next`` (lease the next item and show it), ``/item/<id>``, ``/prev``, ``/grid``,
``/stats``. JSON actions (POST, authenticated, CSRF token in ``X-CSRF-Token``): ``/api/decide``,
``/api/skip``, ``/api/undo``, ``/api/bulk``. Images: ``/img/<id>/<kind>`` from the data root only.
Item states change only through ``tasks.review_store.ReviewStore`` -> ``Catalog.transition``.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from review_ui.images import ITEM_ID, KINDS, MEDIA, ImageCache
from review_ui.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SessionData,
    SessionSigner,
    load_secret_key,
    password_fingerprint,
    safe_next,
    same_origin,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
DEFAULT_REJECT_REASONS = ("not_stereo", "anaglyph", "misaligned", "sky_leak", "wrong_view_order", "noisy_map",
                          "bad_crop", "other")
SORTS = {"oldest": "oldest first", "score_asc": "score, low first", "score_desc": "score, high first"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class DecideBody(BaseModel):
    item_id: str = Field(pattern=ITEM_ID.pattern)
    decision: str = Field(pattern="^(accepted|rejected)$")
    reason: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)
    override: bool = False


class ItemBody(BaseModel):
    item_id: str = Field(pattern=ITEM_ID.pattern)


class BulkBody(BaseModel):
    item_ids: list[str] = Field(min_length=1, max_length=500)
    decision: str = Field(pattern="^(accepted|rejected)$")
    reason: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)


class NotSignedIn(Exception):
    pass


def _label(code: str) -> str:
    return code.replace("_", " ")


def create_app(
    catalog_url: str,
    data_root: str | Path,
    *,
    reject_reasons: Sequence[str] = DEFAULT_REJECT_REASONS,
    review_states: Sequence[str] = ("pending_review", "auto_accepted", "auto_rejected"),
    lease_timeout_s: float = 900.0,
    double_review_share: float = 0.0,
    skip_cooldown_s: float = 3600.0,
    secret_key: bytes | None = None,
    secret_key_file: str | Path | None = None,
    session_max_age_s: int = 12 * 3600,
    cookie_secure: bool = False,
    page_size: int = 60,
    thumbnail_px: int = 160,
) -> FastAPI:
    """Build the review app over the catalog at ``catalog_url`` and files under ``data_root``.

    ``secret_key`` (bytes) signs cookies; default: read/create ``secret_key_file`` (default
    ``<data_root>/review_secret.key``) so sessions survive restarts and are shared by workers.
    """
    from tasks.catalog import REASONS, Catalog
    from tasks.review_store import QueueFilter, ReviewConflict, ReviewError, ReviewStore

    data_root = Path(data_root).resolve()
    catalog = Catalog(catalog_url)
    store = ReviewStore(catalog, lease_timeout_s=lease_timeout_s, double_review_share=double_review_share,
                        review_states=review_states, skip_cooldown_s=skip_cooldown_s)
    images = ImageCache(data_root, thumbnail_px=thumbnail_px)
    if secret_key is None:
        secret_key = load_secret_key(Path(secret_key_file) if secret_key_file else data_root / "review_secret.key")
    signer = SessionSigner(secret_key, max_age_s=session_max_age_s)
    reasons = [(code, REASONS.get(code, _label(code)).removeprefix("reviewer: ")) for code in reject_reasons]
    reason_codes = set(reject_reasons)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["label"] = _label
    templates.env.filters["http_url"] = lambda u: u if isinstance(u, str) and u.startswith(("http://", "https://")) else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        catalog.close()  # the server stopped: give the database connections back

    app = FastAPI(title="redweb review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.catalog, app.state.store = catalog, store
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # ---- middleware: security headers, origin check on writes --------------------------------
    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.method in UNSAFE_METHODS and not same_origin(request.headers.get("origin"),
                                                                 request.headers.get("host")):
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith(("/api/", "/login", "/item", "/next", "/prev", "/grid", "/stats")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn):
        if request.url.path.startswith(("/api/", "/img/")) or request.method != "GET":
            return JSONResponse({"error": "sign in first"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    # ---- helpers ------------------------------------------------------------------------------
    def session_of(request: Request) -> SessionData:
        data = signer.load_session(request.cookies.get(SESSION_COOKIE))
        if data is None:
            raise NotSignedIn()
        reviewer = store.get_reviewer(data.reviewer)
        if reviewer is None or password_fingerprint(reviewer.password_hash) != data.fingerprint:
            raise NotSignedIn()
        return data

    def writer_of(request: Request) -> SessionData:
        """An authenticated session whose request carries the right CSRF token (JSON actions)."""
        data = session_of(request)
        if not signer.check_csrf(data.nonce, request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong CSRF token")
        return data

    def filter_of(request: Request, *, queue: bool) -> QueueFilter:
        q = request.query_params
        states = tuple(s for v in q.getlist("state") for s in v.split(",") if s)

        def num(name: str) -> float | None:
            try:
                return float(q[name]) if q.get(name) not in (None, "") else None
            except ValueError:
                raise HTTPException(400, f"{name} must be a number")

        sort = q.get("sort") or "oldest"
        if sort not in SORTS:
            raise HTTPException(400, f"sort must be one of {sorted(SORTS)}")
        if queue:
            states = tuple(s for s in states if s in store.review_states)
        return QueueFilter(states=states, source=q.get("source") or None, batch=q.get("batch") or None,
                           min_score=num("min_score"), max_score=num("max_score"), sort=sort)

    def filter_qs(f: QueueFilter) -> str:
        pairs = [("state", s) for s in f.states] + [
            (k, v) for k, v in (("source", f.source), ("batch", f.batch), ("min_score", f.min_score),
                                ("max_score", f.max_score), ("sort", None if f.sort == "oldest" else f.sort))
            if v not in (None, "")]
        return urlencode(pairs)

    def link(path: str, qs: str, **extra: str) -> str:
        query = "&".join(x for x in (qs, urlencode(extra) if extra else "") if x)
        return f"{path}?{query}" if query else path

    def render(request: Request, name: str, session: SessionData | None, status_code: int = 200, **ctx: Any):
        ctx.update(me=session.reviewer if session else None,
                   csrf=signer.csrf_token(session.nonce) if session else "",
                   path=request.url.path)
        return templates.TemplateResponse(request, name, ctx, status_code=status_code)

    def my_counts(reviewer: str) -> dict:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        mine_today = next((r for r in store.progress_by_reviewer(since=today) if r["reviewer"] == reviewer), None)
        return dict(today=mine_today["decided"] if mine_today else 0)

    def check_item_id(item_id: str) -> None:
        if not ITEM_ID.match(item_id):
            raise HTTPException(404, "no such item")

    def conflict(exc: Exception) -> JSONResponse:
        code = 409 if isinstance(exc, ReviewConflict) else 404 if isinstance(exc, KeyError) else 400
        return JSONResponse({"error": str(exc).strip("'")}, status_code=code)

    def check_reason(decision: str, reason: str | None, comment: str | None) -> None:
        if decision == "rejected":
            if reason not in reason_codes:
                raise HTTPException(400, f"reason must be one of {sorted(reason_codes)}")
            if reason == "other" and not (comment or "").strip():
                raise HTTPException(400, "reason 'other' needs a comment")

    # ---- sign in / out ------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/next", error: str | None = None):
        cookie, nonce = signer.dump_login_nonce()
        response = render(request, "login.html", None, next=safe_next(next), error=error,
                          login_csrf=signer.csrf_token(nonce, "login"))
        response.set_cookie(LOGIN_COOKIE, cookie, httponly=True, samesite="strict", secure=cookie_secure,
                            max_age=3600, path="/login")
        return response

    @app.post("/login")
    async def login(request: Request):
        form = await request.form()
        nonce = signer.load_login_nonce(request.cookies.get(LOGIN_COOKIE))
        target = safe_next(str(form.get("next") or "/next"))
        if nonce is None or not signer.check_csrf(nonce, str(form.get("csrf_token") or ""), "login"):
            return JSONResponse({"error": "missing or wrong CSRF token: reload the sign-in page"}, status_code=403)
        reviewer = store.authenticate(str(form.get("username") or ""), str(form.get("password") or ""))
        if reviewer is None:
            return RedirectResponse("/login?" + urlencode({"next": target, "error": "wrong name or password"}),
                                    status_code=303)
        cookie, _ = signer.dump_session(reviewer.name, password_fingerprint(reviewer.password_hash))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=cookie_secure,
                            max_age=session_max_age_s, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request):
        data = session_of(request)
        form = await request.form()
        if not signer.check_csrf(data.nonce, str(form.get("csrf_token") or "")):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---- pages --------------------------------------------------------------------------------
    @app.get("/")
    def index(request: Request):
        session_of(request)
        return RedirectResponse("/next", status_code=303)

    @app.get("/next")
    def next_page(request: Request, current: str | None = None):
        """Forward in this reviewer's history if ``current`` is in it, else lease the next queued item.

        A GET that takes a lease: harmless, because the SameSite=Strict session cookie is never sent
        on cross-site navigations, so another site cannot make a reviewer lease items."""
        me = session_of(request)
        filt = filter_of(request, queue=True)
        qs = filter_qs(filt)
        if current:
            history = store.history(me.reviewer)
            if current in history and history.index(current) < len(history) - 1:
                return RedirectResponse(link(f"/item/{history[history.index(current) + 1]}", qs), status_code=303)
        item_id = store.next_item(me.reviewer, filt, exclude=[current] if current else [])
        if item_id is None:
            return render(request, "empty.html", me, filters=filt, qs=qs, sorts=SORTS, states=store.review_states,
                          sources=store.sources(), counts=my_counts(me.reviewer))
        return RedirectResponse(link(f"/item/{item_id}", qs), status_code=303)

    @app.get("/prev")
    def prev_page(request: Request, current: str | None = None):
        me = session_of(request)
        qs = filter_qs(filter_of(request, queue=True))
        history = store.history(me.reviewer)
        if not history:
            return RedirectResponse(link("/next", qs), status_code=303)
        if current in history:
            target = history[max(history.index(current) - 1, 0)]
        else:
            target = history[-1]
        return RedirectResponse(link(f"/item/{target}", qs), status_code=303)

    @app.get("/item/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str):
        me = session_of(request)
        check_item_id(item_id)
        item = catalog.get(item_id)
        if item is None:
            raise HTTPException(404, "no such item")
        filt = filter_of(request, queue=True)
        dr = store.double_review(item_id)
        second_for_me = (dr is not None and dr.second_decision_id is None and dr.first_reviewer != me.reviewer
                         and item.state != "withdrawn")  # a withdrawn item is read only
        holder = store.lease_holder(item_id)
        mode = "readonly"
        if item.state in store.review_states or second_for_me:
            if holder is None or holder.reviewer == me.reviewer:
                holder = store.lease(item_id, me.reviewer)
                mode = "second" if (second_for_me and item.state not in store.review_states) else "review"
            else:
                mode = "locked"
        elif item.state in ("accepted", "rejected"):
            mode = "locked" if (holder and holder.reviewer != me.reviewer) else "decided"
        history = store.decisions(item_id=item_id)
        qs = filter_qs(filt)
        page = dict(item_id=item.id, mode=mode, next_url=link("/next", qs, current=item.id),
                    prev_url=link("/prev", qs, current=item.id), grid_url=link("/grid", qs),
                    reasons=[c for c, _ in reasons], state=item.state if mode != "second" else "second review",
                    decided_by=item.reviewer if mode != "second" else None)
        has = {k: images.path_for(item, k) is not None for k in ("image", "depth", "mask", "sky")}
        return render(request, "item.html", me, item=item, page=page, mode=mode, holder=holder, reasons=reasons,
                      history=history, has=has, queue_left=store.queue_size(filt), counts=my_counts(me.reviewer),
                      batch=next(iter(store.progress_by_batch(item.batch)), None) if item.batch else None,
                      blind=(mode == "second"), qs=qs, filters=filt, sorts=SORTS, states=store.review_states,
                      sources=store.sources())

    @app.get("/grid", response_class=HTMLResponse)
    def grid_page(request: Request, page: int = 1):
        me = session_of(request)
        filt = filter_of(request, queue=False)
        if not filt.states:
            filt = QueueFilter(states=store.review_states, source=filt.source, batch=filt.batch,
                               min_score=filt.min_score, max_score=filt.max_score, sort=filt.sort)
        page = max(page, 1)
        items, total = store.browse(filt, page=page, page_size=page_size)
        pages = max((total + page_size - 1) // page_size, 1)
        from tasks.catalog import State

        return render(request, "grid.html", me, items=items, total=total, page=page, pages=pages, filters=filt,
                      qs=filter_qs(filt), sorts=SORTS, all_states=[s.value for s in State], sources=store.sources(),
                      leases=store.live_leases(i.id for i in items), reasons=reasons, filter_action="/grid")

    @app.get("/stats", response_class=HTMLResponse)
    def stats_page(request: Request):
        me = session_of(request)
        return render(request, "stats.html", me, batches=store.progress_by_batch(),
                      reviewers=store.progress_by_reviewer(), agreement=store.agreement(),
                      double_share=double_review_share, status=catalog.status())

    # ---- images -------------------------------------------------------------------------------
    @app.get("/img/{item_id}/{kind}")
    def image(request: Request, item_id: str, kind: str):
        session_of(request)
        if kind not in KINDS or not ITEM_ID.match(item_id):
            raise HTTPException(404, "no such image")
        item = catalog.get(item_id)
        if item is None:
            raise HTTPException(404, "no such item")
        path = images.path_for(item, kind)
        if path is None:
            raise HTTPException(404, "no such image")
        media = MEDIA[kind] if not (kind == "image" and path.suffix.lower() == ".png") else "image/png"
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=300"})

    # ---- actions ------------------------------------------------------------------------------
    @app.post("/api/decide")
    def api_decide(request: Request, body: DecideBody):
        me = writer_of(request)
        check_reason(body.decision, body.reason, body.comment)
        try:
            row = store.decide(body.item_id, me.reviewer, body.decision, reason=body.reason, comment=body.comment,
                               override=body.override, via="ui")
        except (ReviewError, KeyError) as exc:
            return conflict(exc)
        return {"ok": True, "decision_id": row.id, "kind": row.kind, "state": row.to_state}

    @app.post("/api/skip")
    def api_skip(request: Request, body: ItemBody):
        me = writer_of(request)
        try:
            store.skip(body.item_id, me.reviewer)
        except KeyError as exc:
            return conflict(exc)
        return {"ok": True}

    @app.post("/api/undo")
    def api_undo(request: Request):
        me = writer_of(request)
        try:
            item_id = store.undo(me.reviewer)
        except (ReviewError, KeyError) as exc:
            return conflict(exc)
        if item_id is None:
            return JSONResponse({"error": "nothing to undo"}, status_code=409)
        return {"ok": True, "item_id": item_id}

    @app.post("/api/bulk")
    def api_bulk(request: Request, body: BulkBody):
        """Decide many items from the grid: each is leased, decided and released on its own, so one
        item held by another reviewer or already decided does not stop the rest."""
        me = writer_of(request)
        check_reason(body.decision, body.reason, body.comment)
        done, failed = [], {}
        for item_id in dict.fromkeys(body.item_ids):
            if not ITEM_ID.match(item_id):
                failed[item_id] = "bad id"
                continue
            try:
                store.lease(item_id, me.reviewer)
                store.decide(item_id, me.reviewer, body.decision, reason=body.reason, comment=body.comment,
                             via="grid")
                done.append(item_id)
            except (ReviewError, KeyError) as exc:
                store.release(item_id, me.reviewer)
                failed[item_id] = str(exc).strip("'")
        return {"ok": not failed, "done": done, "failed": failed}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return HTMLResponse(f"<!doctype html><title>{exc.status_code}</title><p>{exc.status_code}: "
                            f"{_escape(str(exc.detail))}</p><p><a href='/next'>back to the queue</a></p>",
                            status_code=exc.status_code)

    return app


def _escape(text: str) -> str:
    import html

    return html.escape(text)
