"""Sign in / sign out: login CSRF, throttling, server-side sessions.

The sign-in page shows only messages of ``LOGIN_MESSAGES``, chosen by a code in the URL
(``/login?error=failed``): text in the URL is never shown, so a link cannot put words on our page.
A failed sign-in redirects without the typed name in the URL (it would land in access logs and
browser history, and people type passwords into the name field); the name comes back to the form
in a short-lived signed cookie scoped to ``/login``.
"""
from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from review_ui.context import Ctx, Me
from review_ui.security import LOGIN_COOKIE, LOGIN_NAME_COOKIE, SESSION_COOKIE, password_fingerprint, safe_next

log = logging.getLogger(__name__)
router = APIRouter()
#: the only messages the sign-in page shows, by code
LOGIN_MESSAGES = {
    "failed": "wrong name or password",
    "throttled": "too many failed sign-ins: try again in {wait} s",
    "expired": "your session ended: sign in again",
}
_MAX_WAIT_SHOWN = 24 * 3600


def client_of(request: Request, trusted: frozenset[str] = frozenset()) -> str:
    """The client's address: the connection's peer, or, when the peer is one of the ``trusted``
    proxies (``review.trusted_proxies``), the right-most address in ``X-Forwarded-For`` that is not
    a trusted proxy. From any other peer the header is ignored: a client could put any address in
    it and get fresh sign-in attempts with every request."""
    peer = request.client.host if request.client else "?"
    if peer not in trusted:
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed header: trust nothing in it
        if hop not in trusted:
            return hop
    return peer


def login_message(error: str | None, wait: str | None) -> str | None:
    """The message for code ``error`` (None for an unknown code: its text is never shown)."""
    template = LOGIN_MESSAGES.get(error or "")
    if template is None:
        return None
    seconds = int(wait) if wait and wait.isdigit() and len(wait) <= 6 else 0
    return template.format(wait=min(max(seconds, 1), _MAX_WAIT_SHOWN))


def _back_to_form(ctx, target: str, error: str, name: str, **extra: str) -> RedirectResponse:
    response = RedirectResponse("/login?" + urlencode({"next": target, "error": error, **extra}), status_code=303)
    response.set_cookie(LOGIN_NAME_COOKIE, ctx.signer.dump_login_name(name[:128]), httponly=True,
                        samesite="strict", secure=ctx.cookie_secure, max_age=300, path="/login")
    return response


@router.get("/healthz")
def healthz() -> dict:
    return {"ok": True}


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Ctx, next: str = "/next", error: str | None = None, wait: str | None = None):
    cookie, nonce = ctx.signer.dump_login_nonce()
    name = ctx.signer.load_login_name(request.cookies.get(LOGIN_NAME_COOKIE)) or ""
    response = ctx.render(request, "login.html", None, next=safe_next(next), error=login_message(error, wait),
                          name=name[:128], login_csrf=ctx.signer.csrf_token(nonce, "login"))
    response.set_cookie(LOGIN_COOKIE, cookie, httponly=True, samesite="strict", secure=ctx.cookie_secure,
                        max_age=3600, path="/login")
    return response


@router.post("/login")
async def login(request: Request, ctx: Ctx):
    form = await request.form()
    nonce = ctx.signer.load_login_nonce(request.cookies.get(LOGIN_COOKIE))
    target = safe_next(str(form.get("next") or "/next"))
    if nonce is None or not ctx.signer.check_csrf(nonce, str(form.get("csrf_token") or ""), "login"):
        return JSONResponse({"error": "missing or wrong CSRF token: reload the sign-in page"}, status_code=403)
    name, password = str(form.get("username") or "")[:256], str(form.get("password") or "")[:1024]
    client = client_of(request, ctx.trusted_proxies)
    wait = ctx.throttle.wait_s(name, client)
    if wait > 0:
        log.warning("sign-in refused for %s from %s: throttled for %.0f s more", ctx.throttle.tag(name), client, wait)
        response = _back_to_form(ctx, target, "throttled", name, wait=str(int(wait) + 1))
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    reviewer = await run_in_threadpool(ctx.store.authenticate, name, password)
    if reviewer is None:
        ctx.throttle.failed(name, client)
        return _back_to_form(ctx, target, "failed", name)
    ctx.throttle.succeeded(name, client)
    session_nonce = await run_in_threadpool(ctx.store.open_session, reviewer.name,
                                            max_age_s=ctx.session_max_age_s, client=client)
    cookie, _ = ctx.signer.dump_session(reviewer.name, password_fingerprint(reviewer.password_hash), session_nonce)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=ctx.cookie_secure,
                        max_age=ctx.session_max_age_s, path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    response.delete_cookie(LOGIN_NAME_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Ctx, me: Me):
    form = await request.form()
    if not ctx.signer.check_csrf(me.nonce, str(form.get("csrf_token") or "")):
        return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
    await run_in_threadpool(ctx.store.release_all, me.reviewer)  # signing out gives back what one held
    await run_in_threadpool(ctx.store.revoke_session, me.nonce)  # the cookie is dead everywhere, not just here
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
