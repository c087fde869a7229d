"""The annotators' web app: server-rendered pages (Jinja2), local assets, vanilla JS for the keys.

``create_app(catalog_url, data_root, **settings)`` builds a FastAPI app; nothing is built at import.
It builds one ``ReviewContext`` (review_ui/context.py) and includes three routers:

* ``routes/auth.py``: ``/login``, ``/logout`` (throttled sign-in, server-side sessions);
* ``routes/pages.py``: ``/next`` (lease the next item and show it), ``/item/<id>``, ``/prev``,
  ``/grid``, ``/stats``, and images ``/img/<id>/<kind>`` from the item's own map folders only;
* ``routes/api.py``: JSON actions (POST, authenticated, CSRF token in ``X-CSRF-Token``):
  ``/api/decide``, ``/api/skip``, ``/api/undo``, ``/api/bulk``, ``/api/lease`` (page heartbeat),
  ``/api/flip`` (swap the view order and re-derive the maps).

Item states change only through ``tasks.review.store.ReviewStore`` -> ``Catalog.transition``.
"""
from __future__ import annotations

import base64
import html
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Sequence
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from review_ui.context import NotSignedIn, ReviewContext, clip, describe_errors
from review_ui.images import ImageCache, legend_pngs
from review_ui.security import SessionSigner, load_secret_key, same_origin
from review_ui.throttle import LoginThrottle
from tasks.labels.settings import ProcessConfig

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
DEFAULT_REJECT_REASONS = ("not_stereo", "anaglyph", "misaligned", "sky_leak", "wrong_view_order", "noisy_map",
                          "bad_crop", "other")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_NO_STORE = ("/api/", "/login", "/item", "/next", "/prev", "/grid", "/stats")


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
    process: ProcessConfig | None = None,
    login_free_attempts: int = 5,
    login_lockout_s: float = 1.0,
    login_lockout_max_s: float = 900.0,
) -> FastAPI:
    """Build the review app over the catalog at ``catalog_url`` and files under ``data_root``.

    ``secret_key`` (bytes) signs cookies; default: read/create ``secret_key_file`` (default
    ``<data_root>/review_secret.key``) so sessions survive restarts and are shared by workers.
    ``process``: the ``process`` config section (thresholds shown on the item page; the settings and
    backends a reviewer's view-order flip re-derives the maps with); default: ProcessConfig().
    Sign-in: after ``login_free_attempts`` failures per account or per address, locked for
    ``login_lockout_s`` doubling per further failure, at most ``login_lockout_max_s``.
    """
    from tasks.catalog.catalog import REASONS, Catalog
    from tasks.review.store import ReviewStore

    data_root = Path(data_root).resolve()
    catalog = Catalog(catalog_url)
    store = ReviewStore(catalog, lease_timeout_s=lease_timeout_s, double_review_share=double_review_share,
                        review_states=review_states, skip_cooldown_s=skip_cooldown_s)
    store._dummy_hash()  # the first unknown-name sign-in must not pay for making it (timing)
    if secret_key is None:
        secret_key = load_secret_key(Path(secret_key_file) if secret_key_file else data_root / "review_secret.key")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["label"] = _label
    templates.env.filters["http_url"] = lambda u: u if isinstance(u, str) and u.startswith(("http://", "https://")) else None
    ctx = ReviewContext(
        catalog=catalog, store=store, images=ImageCache(data_root, thumbnail_px=thumbnail_px),
        signer=SessionSigner(secret_key, max_age_s=session_max_age_s), templates=templates,
        throttle=LoginThrottle(free=login_free_attempts, base_s=login_lockout_s, max_s=login_lockout_max_s),
        data_root=data_root,
        reasons=[(code, REASONS.get(code, _label(code)).removeprefix("reviewer: ")) for code in reject_reasons],
        process=process or ProcessConfig(), session_max_age_s=session_max_age_s,
        cookie_secure=cookie_secure, page_size=page_size, double_review_share=double_review_share,
        heartbeat_s=min(max(lease_timeout_s / 3, 1.0), 10.0))
    ctx.legend = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in legend_pngs().items()}

    from concurrent.futures import ThreadPoolExecutor

    ctx.warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="review-warm")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        ctx.warmer.shutdown(wait=True, cancel_futures=True)
        catalog.close()  # the server stopped: give the database connections back

    app = FastAPI(title="redweb review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ctx, app.state.catalog, app.state.store = ctx, catalog, store
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from review_ui.routes import api, auth, pages

    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    _install_guards(app)
    return app


def _install_guards(app: FastAPI) -> None:
    """Security headers, the origin check on writes, and errors as 4xx pages/JSON (never 500 for bad input)."""

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.method in UNSAFE_METHODS and not same_origin(request.headers.get("origin"),
                                                                 request.headers.get("host"), request.url.scheme):
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith(_NO_STORE):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn):
        if request.url.path.startswith(("/api/", "/img/")) or request.method != "GET":
            return JSONResponse({"error": "sign in first"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target[:2000]}), status_code=303)

    def _error(request: Request, status: int, detail: str):
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"error": detail}, status_code=status)
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{status}: {html.escape(detail)}</p>"
                            f"<p><a href='/next'>back to the queue</a></p>", status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, clip(exc.detail, 400))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        return _error(request, 400, describe_errors(exc.errors()))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)
