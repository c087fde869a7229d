"""Sessions and CSRF for the review app.

* The session is a signed, timestamped cookie (itsdangerous) holding the reviewer's name, a random
  session nonce and a fingerprint of their password hash (a password change ends old sessions).
  The nonce names a row in ``review_sessions``; signing out revokes it, so the cookie stops working
  at once on the server side (not only in the browser that signed out).
  Cookie flags: HttpOnly, SameSite=Strict (no cross-site request carries it, not even top-level
  navigations), Secure when configured (HTTPS).
* CSRF: every state-changing request must carry ``X-CSRF-Token`` (fetch) or a ``csrf_token`` form
  field equal to HMAC(secret, nonce); a request with an ``Origin`` header from another host is refused
  as well. The sign-in form has its own token bound to a pre-session cookie (login CSRF).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "redweb_session"
LOGIN_COOKIE = "redweb_login"
LOGIN_NAME_COOKIE = "redweb_login_name"  # the name typed at a failed sign-in, back into the form


def load_secret_key(path: Path) -> bytes:
    """Read the cookie-signing key, creating a random one (mode 0600) on first use."""
    path = Path(path)
    if path.is_file():
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise ValueError(f"{path}: secret key shorter than 32 bytes")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionData:
    reviewer: str
    nonce: str
    fingerprint: str


class SessionSigner:
    def __init__(self, secret: bytes, *, max_age_s: int) -> None:
        self.secret = secret
        self.max_age_s = max_age_s
        self._session = URLSafeTimedSerializer(secret, salt="redweb-review-session")
        self._login = URLSafeTimedSerializer(secret, salt="redweb-review-login")
        self._login_name = URLSafeTimedSerializer(secret, salt="redweb-review-login-name")

    def dump_session(self, reviewer: str, fingerprint: str, nonce: str | None = None) -> tuple[str, SessionData]:
        """The signed cookie for a session; ``nonce`` names its server-side row (review_sessions)."""
        data = SessionData(reviewer, nonce or secrets.token_urlsafe(16), fingerprint)
        return self._session.dumps([data.reviewer, data.nonce, data.fingerprint]), data

    def load_session(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            reviewer, nonce, fp = self._session.loads(cookie, max_age=self.max_age_s)
        except (BadSignature, ValueError, TypeError):
            return None
        return SessionData(str(reviewer), str(nonce), str(fp))

    def csrf_token(self, nonce: str, purpose: str = "session") -> str:
        return hmac.new(self.secret, f"csrf:{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, nonce: str, token: str | None, purpose: str = "session") -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(nonce, purpose), token)

    def dump_login_name(self, name: str) -> str:
        """The signed cookie carrying a typed name back to the sign-in form (never in the URL)."""
        return self._login_name.dumps(name)

    def load_login_name(self, cookie: str | None) -> str | None:
        return _load_signed(self._login_name, cookie, max_age=300)

    def dump_login_nonce(self) -> tuple[str, str]:
        nonce = secrets.token_urlsafe(16)
        return self._login.dumps(nonce), nonce

    def load_login_nonce(self, cookie: str | None) -> str | None:
        return _load_signed(self._login, cookie, max_age=3600)


def _load_signed(serializer, cookie: str | None, *, max_age: int) -> str | None:
    """The string a signed cookie carries, or None when it is missing, forged, malformed or older than
    ``max_age`` seconds."""
    if not cookie:
        return None
    try:
        return str(serializer.loads(cookie, max_age=max_age))
    except (BadSignature, ValueError, TypeError):
        return None


def same_origin(origin: str | None, host: str | None, scheme: str | None = None) -> bool:
    """True when there is no Origin header (same-origin GET/old browsers) or it names our host
    (and, when ``scheme`` is given, our scheme: ``https://host`` is another origin than ``http://host``)."""
    if not origin:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.netloc == (host or "") and (scheme is None or parts.scheme == scheme)


def safe_next(target: str | None) -> str:
    """Only local paths after sign-in (no open redirect to //evil or http://evil)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/next"
    return target
