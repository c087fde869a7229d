"""Sign in / sign out: login CSRF, throttling per account and per address, server-side sessions."""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from review_ui.context import Ctx, Me
from review_ui.security import LOGIN_COOKIE, SESSION_COOKIE, password_fingerprint, safe_next

log = logging.getLogger(__name__)
router = APIRouter()


def client_of(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.get("/healthz")
def healthz() -> dict:
    return {"ok": True}


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Ctx, next: str = "/next", error: str | None = None, name: str = ""):
    cookie, nonce = ctx.signer.dump_login_nonce()
    response = ctx.render(request, "login.html", None, next=safe_next(next), error=(error or "")[:120] or None,
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
    client = client_of(request)
    wait = ctx.throttle.wait_s(name, client)
    if wait > 0:
        log.warning("sign-in refused for %r from %s: throttled for %.0f s more", name[:128], client, wait)
        back = "/login?" + urlencode({"next": target, "name": name[:128],
                                      "error": f"too many failed sign-ins: try again in {wait:.0f} s"})
        return RedirectResponse(back, status_code=303, headers={"Retry-After": str(int(wait) + 1)})
    reviewer = await run_in_threadpool(ctx.store.authenticate, name, password)
    if reviewer is None:
        ctx.throttle.failed(name, client)
        return RedirectResponse("/login?" + urlencode({"next": target, "name": name[:128],
                                                       "error": "wrong name or password"}), status_code=303)
    ctx.throttle.succeeded(name)
    session_nonce = await run_in_threadpool(ctx.store.open_session, reviewer.name,
                                            max_age_s=ctx.session_max_age_s, client=client)
    cookie, _ = ctx.signer.dump_session(reviewer.name, password_fingerprint(reviewer.password_hash), session_nonce)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=ctx.cookie_secure,
                        max_age=ctx.session_max_age_s, path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Ctx, me: Me):
    form = await request.form()
    if not ctx.signer.check_csrf(me.nonce, str(form.get("csrf_token") or "")):
        return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
    await run_in_threadpool(ctx.store.revoke_session, me.nonce)  # the cookie is dead everywhere, not just here
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
