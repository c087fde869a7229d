"""Fixtures for the review app: a real uvicorn server in a thread, reviewer accounts, HTTP clients."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app):
    """Run ``app`` with uvicorn on 127.0.0.1:<random port> in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    from review_ui.app import server_options

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           **server_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def sign_in(base_url: str, name: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """An httpx client signed in as ``name`` and its CSRF token (read from the page like the JS does)."""
    import re

    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"username": name, "password": password, "csrf_token": token, "next": "/stats"})
    assert r.status_code == 303 and r.headers["location"] == "/stats", r.text
    stats = client.get("/stats")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', stats.text).group(1)
    client.headers["X-CSRF-Token"] = csrf
    return client, csrf


@pytest.fixture
def review_env(tmp_path: Path):
    """(catalog_url, data_root) on SQLite in tmp_path."""
    root = tmp_path / "data"
    root.mkdir()
    return f"sqlite:///{root / 'catalog.db'}", root
