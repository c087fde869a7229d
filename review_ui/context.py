"""What every route of the review app shares, and the FastAPI dependencies that hand it out.

``ReviewContext`` is built once by ``create_app`` (catalog, review store, image cache, cookie
signer, templates, sign-in throttle, settings) and stored on ``app.state.ctx``. Routes ask for it and
for the signed-in reviewer through dependencies:

* ``Ctx``: the context;
* ``Me``: the signed-in reviewer's session (signed cookie + a live row in ``review_sessions``);
* ``Writer``: ``Me`` plus the right CSRF token in ``X-CSRF-Token`` (every JSON action);
* ``json_body(Model)``: the request body, parsed only *after* ``Writer`` passed, so an anonymous
  request never learns how its body would have been validated.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from review_ui.images import ImageCache
from review_ui.security import SESSION_COOKIE, SessionData, SessionSigner, password_fingerprint
from review_ui.throttle import LoginThrottle
from tasks.catalog.catalog import Catalog
from tasks.labels.process import Reprocessor
from tasks.labels.settings import ProcessConfig
from tasks.review.store import QueueFilter, ReviewStore

log = logging.getLogger(__name__)
SORTS = {"oldest": "oldest first", "score_asc": "score, low first", "score_desc": "score, high first"}
MAX_BODY_BYTES = 256 * 1024
MAX_PAGE = 1_000_000
ECHO_CHARS = 80  # user input quoted back in an error message is cut to this


class NotSignedIn(Exception):
    pass


def clip(text: Any, n: int = ECHO_CHARS) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + f"… ({len(text)} characters)"


@dataclass
class ReviewContext:
    catalog: Catalog
    store: ReviewStore
    images: ImageCache
    signer: SessionSigner
    templates: Jinja2Templates
    throttle: LoginThrottle
    data_root: Path
    reasons: list[tuple[str, str]]  # (code, description) in key order 1..9
    process: ProcessConfig  # thresholds for the quality panel; settings and backends for a flip
    session_max_age_s: int
    cookie_secure: bool
    page_size: int
    double_review_share: float
    heartbeat_s: float
    trusted_proxies: frozenset[str] = frozenset()  # peers whose X-Forwarded-For is believed
    bulk_confirm_over: int = 5  # a grid bulk action on more items asks first
    legend: dict = field(default_factory=dict)  # swatch name -> data: URL (drawn by review_ui.images)
    warmer: Any = None  # a one-thread executor that builds the next items' derived images ahead of time
    reprocessor: Reprocessor | None = None  # re-derives the maps after a flip (backends built on first use)

    @property
    def reason_codes(self) -> set[str]:
        return {c for c, _ in self.reasons}

    # ---- rendering ------------------------------------------------------------------------------
    def render(self, request: Request, template: str, session: SessionData | None, status_code: int = 200,
               **ctx: Any):
        ctx.update(me=session.reviewer if session else None,
                   csrf=self.signer.csrf_token(session.nonce) if session else "",
                   path=request.url.path)
        return self.templates.TemplateResponse(request, template, ctx, status_code=status_code)

    def my_counts(self, reviewer: str) -> dict:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        mine = next((r for r in self.store.progress_by_reviewer(since=today) if r["reviewer"] == reviewer), None)
        return dict(today=mine["decided"] if mine else 0)

    def warm_next(self, filt: QueueFilter, current: str) -> None:
        """While a reviewer looks at ``current``, build the derived images of the next queue items,
        so the next page shows its maps without waiting for them to be made."""
        if self.warmer is None:
            return

        def work() -> None:
            try:
                for item in self.store.upcoming(filt, exclude=[current]):
                    for kind in ("depth", "mask", "sky"):
                        self.images.path_for(item, kind)
            except Exception:  # noqa: BLE001 - a cache warm-up never matters enough to fail anything
                log.debug("warming the image cache failed", exc_info=True)

        self.warmer.submit(work)



# ---- dependencies ---------------------------------------------------------------------------------
def get_ctx(request: Request) -> ReviewContext:
    return request.app.state.ctx


Ctx = Annotated[ReviewContext, Depends(get_ctx)]


def signed_in(request: Request, ctx: Ctx) -> SessionData:
    data = ctx.signer.load_session(request.cookies.get(SESSION_COOKIE))
    if data is None:
        raise NotSignedIn()
    reviewer = ctx.store.session_reviewer(data.nonce, data.reviewer)  # None: signed out, expired, deactivated
    if reviewer is None or password_fingerprint(reviewer.password_hash) != data.fingerprint:
        raise NotSignedIn()
    return data


Me = Annotated[SessionData, Depends(signed_in)]


def writer(request: Request, ctx: Ctx, me: Me) -> SessionData:
    """An authenticated session whose request carries the right CSRF token (JSON actions)."""
    if not ctx.signer.check_csrf(me.nonce, request.headers.get("x-csrf-token")):
        raise HTTPException(403, "missing or wrong CSRF token")
    return me


Writer = Annotated[SessionData, Depends(writer)]
M = TypeVar("M", bound=BaseModel)


def json_body(model: type[M]) -> Callable:
    """A dependency parsing the body as ``model`` once the writer is known (400, not 422, on bad input)."""

    async def parse(request: Request, me: Writer) -> M:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            return model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise HTTPException(400, describe_errors(exc.errors())) from None

    return parse


def describe_errors(errors: list[dict]) -> str:
    """Which fields are wrong and why, without quoting the input back."""
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")) or "body"
        parts.append(f"{clip(where, 40)}: {clip(e.get('msg', 'invalid'), 120)}")
    return "bad request: " + "; ".join(parts)


# ---- query strings ----------------------------------------------------------------------------------
def filter_of(request: Request, store: ReviewStore, *, queue: bool) -> QueueFilter:
    q = request.query_params
    states = tuple(s for v in q.getlist("state") for s in v.split(",") if s)

    def num(name: str) -> float | None:
        raw = q.get(name)
        if raw in (None, ""):
            return None
        try:
            value = float(raw)
        except ValueError:
            raise HTTPException(400, f"{name} must be a number") from None
        if not math.isfinite(value):
            raise HTTPException(400, f"{name} must be a finite number")
        return value

    sort = q.get("sort") or "oldest"
    if sort not in SORTS:
        raise HTTPException(400, f"sort must be one of {sorted(SORTS)}")
    if queue:
        states = tuple(s for s in states if s in store.review_states)
    return QueueFilter(states=states, source=(q.get("source") or None), batch=(q.get("batch") or None),
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


def page_number(raw: str | None) -> int:
    """A grid page number: a whole number in 1..MAX_PAGE (``1e20`` or ``-3`` is a 400, not a 500)."""
    if raw in (None, ""):
        return 1
    if not raw.isdigit() or len(raw) > 7 or not 1 <= int(raw) <= MAX_PAGE:
        raise HTTPException(400, f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


