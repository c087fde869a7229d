"""The annotators' web app: server-rendered pages (Jinja2), local assets, vanilla JS for the keys.

``create_app(catalog_url, data_root, config)`` builds a FastAPI app; nothing is built at import.
Every setting comes from ``config`` (a ``ReviewConfig``, tasks/review/settings.py, the one home of
the review defaults); keyword overrides name its fields.
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
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.layout import DataRoot
from review_ui.context import NotSignedIn, ReviewContext, clip, describe_errors
from review_ui.images import ImageCache, legend_pngs
from review_ui.security import SessionSigner, load_secret_key, same_origin
from review_ui.throttle import LoginThrottle
from tasks.labels.process import Reprocessor
from tasks.labels.settings import ProcessConfig
from tasks.review.errors import ReviewConflict, ReviewError
from tasks.review.settings import ReviewConfig

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_NO_STORE = ("/api/", "/login", "/item", "/next", "/prev", "/grid", "/stats")


def _label(code: str) -> str:
    return code.replace("_", " ")


def _http_url(url: object) -> str | None:
    """A source page link only when it is http(s) (never ``javascript:`` from a crawled record)."""
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def _reasons(codes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(code, description) for the offered reject reasons; descriptions from the catalog's REASONS."""
    from tasks.catalog.catalog import REASONS

    return [(code, REASONS.get(code, _label(code)).removeprefix("reviewer: ")) for code in codes]


def server_options() -> dict[str, Any]:
    """uvicorn options the app needs: uvicorn's own proxy-header handling off, because by default it
    believes ``X-Forwarded-For`` from any local client; the app reads the header itself, and only
    from the proxies named in ``review.trusted_proxies`` (review_ui/routes/auth.py ``client_of``)."""
    return {"proxy_headers": False, "server_header": False}


def create_app(
    catalog_url: str,
    data_root: str | Path,
    config: ReviewConfig | None = None,
    *,
    secret_key: bytes | None = None,
    process: ProcessConfig | None = None,
    **overrides: Any,
) -> FastAPI:
    """Build the review app over the catalog at ``catalog_url`` and files under ``data_root``.

    ``config``: the ``review`` section (default ``ReviewConfig()``); ``overrides`` are its fields
    (``page_size=3``), checked like the config file.
    Cookies are signed with ``secret_key`` (bytes), else ``config.secret_key``, else the key in
    ``config.secret_key_file`` (default ``<data_root>/review_secret.key``, created on first use) so
    sessions survive restarts and are shared by workers.
    ``process``: the ``process`` config section (thresholds shown on the item page; the settings and
    backends a reviewer's view-order flip re-derives the maps with); default: ProcessConfig().
    """
    from tasks.catalog.catalog import Catalog
    from tasks.review.store import ReviewStore

    cfg = (config or ReviewConfig()).with_overrides(**overrides)
    process = process or ProcessConfig()
    data_root = Path(data_root).resolve()
    catalog = Catalog(catalog_url)
    store = ReviewStore(catalog, cfg)
    store._dummy_hash()  # the first unknown-name sign-in must not pay for making it (timing)
    if secret_key is None and cfg.secret_key is not None:
        secret_key = cfg.secret_key.get_secret_value().encode()
    if secret_key is None:
        secret_key = load_secret_key(cfg.secret_key_file or DataRoot(data_root).review_secret_key)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["label"] = _label
    templates.env.filters["http_url"] = _http_url
    ctx = ReviewContext(
        catalog=catalog, store=store, images=ImageCache(data_root, thumbnail_px=cfg.thumbnail_px),
        signer=SessionSigner(secret_key, max_age_s=cfg.session_max_age_s), templates=templates,
        throttle=LoginThrottle.from_config(cfg, log_key=secret_key), data_root=data_root,
        reasons=_reasons(cfg.reject_reasons), trusted_proxies=frozenset(cfg.trusted_proxies),
        bulk_confirm_over=cfg.bulk_confirm_over,
        process=process, reprocessor=Reprocessor(process), session_max_age_s=cfg.session_max_age_s,
        cookie_secure=cfg.cookie_secure, page_size=cfg.page_size, double_review_share=cfg.double_review_share,
        # the page renews its lease a few times per lease period, at most every 10 s
        heartbeat_s=min(max(cfg.lease_timeout_s / 3, 1.0), 10.0))
    ctx.legend = {k: "data:image/png;base64," + base64.b64encode(v).decode()
                  for k, v in legend_pngs().items()}

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
    """Security headers, the origin check on writes, and errors as 4xx pages/JSON (never 500 for
    bad input)."""

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        origin, host = request.headers.get("origin"), request.headers.get("host")
        if request.method in UNSAFE_METHODS and not same_origin(origin, host, request.url.scheme):
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

    @app.exception_handler(ReviewConflict)
    async def _conflict(request: Request, exc: ReviewConflict):
        # a race lost anywhere (a lease, a decision, an undo) is a 409 with its reason, never a 500
        return _error(request, 409, clip(str(exc), 400))

    @app.exception_handler(ReviewError)
    async def _review_error(request: Request, exc: ReviewError):
        return _error(request, 400, clip(str(exc), 400))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, clip(exc.detail, 400))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        return _error(request, 400, describe_errors(exc.errors()))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)
