"""Security of the review app over real HTTP: authentication, CSRF, origin, path traversal, redirects."""
from __future__ import annotations

import re

import httpx
import pytest

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewStore
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed


@pytest.fixture
def server(review_env):
    url, root = review_env
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 3)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    (root.parent / "secret.txt").write_text("top secret")
    with serve(create_app(url, root, secret_key=b"k" * 32)) as base:
        yield base, ids, url, root


def states(url, ids):
    with Catalog(url) as cat:
        return [cat.get(i).state for i in ids]


def test_changes_without_authentication_are_refused(server):
    base, ids, url, _ = server
    anon = httpx.Client(base_url=base)
    for path, body in (("/api/decide", {"item_id": ids[0], "decision": "accepted"}), ("/api/skip", {"item_id": ids[0]}),
                       ("/api/undo", {}), ("/api/bulk", {"item_ids": ids, "decision": "accepted"})):
        r = anon.post(path, json=body)
        assert r.status_code == 401, (path, r.status_code, r.text)
    assert anon.get(f"/img/{ids[0]}/image").status_code == 401
    r = anon.get("/grid", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fgrid")
    # a forged session cookie is no session
    anon.cookies.set("redweb_session", "eyJ1IjoiYWxpY2UifQ.forged.sig")
    assert anon.post("/api/undo", json={}).status_code == 401
    assert states(url, ids) == ["pending_review"] * 3


def test_csrf_token_required(server):
    base, _, url, _ = server
    client, csrf = sign_in(base, "alice")
    item = client.get("/next", follow_redirects=True)
    item_id = re.search(r'id="item-id">([^<]+)<', item.text).group(1)
    body = {"item_id": item_id, "decision": "accepted"}
    del client.headers["X-CSRF-Token"]
    assert client.post("/api/decide", json=body).status_code == 403
    assert client.post("/api/decide", json=body, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    # another session's valid token does not work either (tokens are bound to the session)
    _, other_csrf = sign_in(base, "alice")
    assert client.post("/api/decide", json=body, headers={"X-CSRF-Token": other_csrf}).status_code == 403
    # cross-origin write refused even with the right token
    r = client.post("/api/decide", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert r.status_code == 403
    assert states(url, [item_id]) == ["pending_review"]
    r = client.post("/api/decide", json=body, headers={"X-CSRF-Token": csrf, "Origin": base})
    assert r.status_code == 200 and states(url, [item_id]) == ["accepted"]
    # logout is a CSRF-protected form too
    assert client.post("/logout", data={}).status_code == 403


def test_login_form_csrf_and_cookie_flags(server):
    base, *_ = server
    c = httpx.Client(base_url=base)
    assert c.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 403
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"username": "alice", "password": "wrong", "csrf_token": token})
    assert r.status_code == 303 and "error=" in r.headers["location"] and "redweb_session" not in r.cookies
    r = c.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token,
                               "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/next"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "default-src 'self'" in c.get("/login").headers["content-security-policy"]


def test_path_traversal_refused(server):
    base, ids, url, root = server
    client, _ = sign_in(base, "alice")
    with Catalog(url) as cat:
        cat.update(ids[0], image_path="../secret.txt", depth_path="/etc/passwd", preview_path="../../../../etc/passwd")
        (root / "maps" / ids[1] / "link.jpg").symlink_to(root.parent / "secret.txt")
        cat.update(ids[1], image_path=f"maps/{ids[1]}/link.jpg")
    for path in (f"/img/{ids[0]}/image", f"/img/{ids[0]}/depth", f"/img/{ids[1]}/image",
                 "/img/..%2F..%2Fsecret.txt/image", f"/img/{ids[2]}/..%2F..%2F..%2Fsecret.txt",
                 "/img/../../secret.txt/image", "/static/..%2F..%2Fsecret.txt", "/static/../app.py"):
        r = client.get(path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "top secret" not in r.text and "root:" not in r.text
    assert client.get(f"/img/{ids[2]}/image").status_code == 200


def test_item_page_escapes_catalog_text(server):
    base, ids, url, _ = server
    with Catalog(url) as cat:
        cat.update(ids[0], title="<script>alert(1)</script>", page_url="javascript:alert(1)")
    client, _ = sign_in(base, "alice")
    html = client.get(f"/item/{ids[0]}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "javascript:alert" not in html
