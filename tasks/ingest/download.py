"""HTTP downloads that survive flaky servers and never leave a partial file under the final name.

``fetch_url`` streams a URL to ``<dest dir>/.<name>.<random>.part``, checks the byte count
against ``Content-Length`` and ``max_bytes``, fsyncs, and only then ``os.replace``s the part file
onto ``dest`` (atomic on one filesystem). A process killed with SIGKILL mid-download leaves at most
a ``.part`` file behind (``remove_stale_parts`` sweeps them), never a truncated ``dest``.

Retried (exponential backoff with jitter, ``Retry-After`` honoured up to ``backoff_max``):
HTTP 429 and 5xx, timeouts, connection errors and truncated bodies. Not retried: other 4xx
(``http_error``) and bodies above ``max_bytes`` (``file_too_big``). Reason codes are the keys of
``tasks.catalog.catalog.REASONS``.
"""
from __future__ import annotations

import email.utils
import hashlib
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests
import urllib3

# reason codes (documented in tasks.catalog.catalog.REASONS)
DOWNLOAD_FAILED = "download_failed"  # timeouts / connection errors after every retry
HTTP_ERROR = "http_error"  # the server answered with an error status (4xx at once, 5xx/429 after retries)
TRUNCATED = "truncated"  # fewer bytes than Content-Length after every retry
FILE_TOO_BIG = "file_too_big"  # larger than max_bytes (declared or streamed)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16
USER_AGENT = "redweb/0.1 (+https://github.com/redweb; research crawler)"


@dataclass(frozen=True)
class FetchResult:
    """Outcome of ``fetch_url``. ``path`` is set only when ``ok``; ``bytes`` is the stored size."""

    ok: bool
    path: Path | None
    bytes: int
    status: int | None  # last HTTP status seen (None: no answer at all)
    reason: str | None  # None when ok, else one of the reason codes above
    detail: str
    attempts: int
    sha256: str | None = None  # hex digest of the stored bytes (computed while streaming)
    content_type: str | None = None


def backoff_delay(attempt: int, *, base: float, maximum: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped at
    ``maximum``, times a jitter factor in [0.5, 1.0] so that many clients don't retry in lock-step."""
    rng = rng or random
    return min(maximum, base * (2 ** (attempt - 1))) * rng.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def remove_stale_parts(folder: Path, *, older_than_s: float = 3600.0) -> int:
    """Delete ``.*.part`` files left by killed downloads in ``folder``; returns how many."""
    removed = 0
    cutoff = time.time() - older_than_s
    for part in Path(folder).glob(".*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
        except FileNotFoundError:  # another worker swept it
            continue
    return removed


class _Attempt(Exception):
    """One failed attempt: ``retry`` says whether another try may help."""

    def __init__(self, reason: str, detail: str, *, status: int | None = None, retry: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.status, self.retry, self.retry_after = reason, detail, status, retry, retry_after


def _stream_once(session: requests.Session, url: str, part: Path, *, timeout: float,
                 max_bytes: int | None) -> tuple[int, int, str, str | None]:
    """GET ``url`` into ``part``; returns (status, bytes, sha256, content type) or raises _Attempt."""
    try:
        resp = session.get(url, stream=True, timeout=timeout, headers={"User-Agent": USER_AGENT})
    except requests.Timeout as exc:
        raise _Attempt(DOWNLOAD_FAILED, f"timeout: {exc}", retry=True) from exc
    except requests.RequestException as exc:  # connection refused / reset, DNS, invalid URL...
        retry = not isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                                     requests.exceptions.InvalidSchema))
        raise _Attempt(DOWNLOAD_FAILED, f"{type(exc).__name__}: {exc}", retry=retry) from exc
    with resp:
        status = resp.status_code
        if status != 200:
            retry = status in RETRY_STATUSES or status >= 500
            raise _Attempt(HTTP_ERROR, f"HTTP {status} {resp.reason or ''}".strip(), status=status, retry=retry,
                           retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        declared = resp.headers.get("Content-Length")
        expected = int(declared) if declared and declared.isdigit() else None
        if max_bytes is not None and expected is not None and expected > max_bytes:
            raise _Attempt(FILE_TOO_BIG, f"Content-Length {expected} > max_bytes {max_bytes}", status=status,
                           retry=False)
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        if encoded:  # gzip'ed transfer: Content-Length counts compressed bytes, we store decoded ones
            expected = None
        digest = hashlib.sha256()
        size = 0
        try:
            # unbuffered file + read1: bytes reach the disk as they arrive (a slow body shows progress)
            with open(part, "wb", buffering=0) as fh:
                while chunk := resp.raw.read1(_CHUNK, decode_content=encoded):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise _Attempt(FILE_TOO_BIG, f"body exceeds max_bytes {max_bytes}", status=status,
                                       retry=False)
                    digest.update(chunk)
                    fh.write(chunk)
                os.fsync(fh.fileno())
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise _Attempt(DOWNLOAD_FAILED, f"timeout mid-body after {size} bytes", status=status,
                           retry=True) from exc
        except (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError) as exc:
            # urllib3 enforces Content-Length: a short body raises ProtocolError(IncompleteRead)
            raise _Attempt(TRUNCATED, f"body ended after {size} of {expected} bytes ({type(exc).__name__})",
                           status=status, retry=True) from exc
        if expected is not None and size != expected:
            raise _Attempt(TRUNCATED, f"got {size} bytes, Content-Length {expected}", status=status, retry=True)
        return status, size, digest.hexdigest(), resp.headers.get("Content-Type")


def fetch_url(
    url: str,
    dest: Path,
    *,
    timeout: float,
    retries: int,
    backoff_base: float = 1.0,
    backoff_max: float = 60.0,
    max_bytes: int | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest`` atomically, with up to ``retries`` retries (so ``retries + 1`` tries).

    ``timeout`` (s) applies to connecting and to each read. Never raises for network or HTTP
    problems: the result carries ``ok=False`` and a reason code instead. ``sleep`` and ``rng`` are
    injectable so tests can check the backoff without waiting.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    session = session or requests.Session()
    last: _Attempt | None = None
    attempts = 0
    try:
        for attempt in range(1, retries + 2):
            attempts = attempt
            part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                status, size, sha, ctype = _stream_once(session, url, part, timeout=timeout, max_bytes=max_bytes)
                os.replace(part, dest)
                return FetchResult(True, dest, size, status, None, "", attempts, sha, ctype)
            except _Attempt as failure:
                last = failure
            finally:
                part.unlink(missing_ok=True)
            if not last.retry or attempt > retries:
                break
            delay = backoff_delay(attempt, base=backoff_base, maximum=backoff_max, rng=rng)
            if last.retry_after is not None:  # the server knows best, within our own patience
                delay = max(delay, min(last.retry_after, backoff_max))
            sleep(delay)
    finally:
        if own_session:
            session.close()
    assert last is not None
    detail = last.detail if attempts == 1 else f"{last.detail} (after {attempts} attempts)"
    return FetchResult(False, None, 0, last.status, last.reason, detail, attempts)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
