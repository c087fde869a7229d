"""Flickr source: find stereo photos with flickr.photos.search and record them in the catalog.

Uses the real ``flickrapi`` client (``format='parsed-json'``), pointed at ``rest_url`` so the same
code crawls Flickr or a local fake (tests/fakeflickr.py). What it does, and why:

* **Queries.** One search for the tags (``tag_mode`` any/all) and, if ``text`` is set, one full-text
  search; each is filtered by license and sorted by upload date (ascending, so photos uploaded during
  a crawl land at the end of a window rather than shifting the pages already done).
* **Licenses.** ``licenses=None`` means every license from ``flickr.photos.licenses.getInfo`` whose
  name / URL allows derivatives (not "All Rights Reserved", not a NoDerivs variant); otherwise the
  given names, URLs or ids are resolved against getInfo. No license id is hard-coded.
* **Original size.** ``extras=url_o,...``; a photo without ``url_o`` costs one
  ``flickr.photos.getSizes`` call (the "Original" size, else the largest offered).
* **The 4,000 cap.** Flickr serves at most ~4,000 results per query however many it reports. A
  window [min_upload_date, max_upload_date] (unix seconds, both inclusive as in Flickr) whose
  ``total`` exceeds ``max_results_per_query`` is split in two halves, recursively, until every window
  fits (a one-second window that still does not fit is crawled as far as Flickr lets and logged).
* **Rate limit.** A token bucket of ``max_calls_per_hour`` that can never exceed that many calls in any
  hour: capacity B = max(1, N // 60) (a minute's burst), refill (N - B) / 3600 tokens per second, so any
  3,600 s window sees at most B + (N - B) = N calls. Its state (tokens, time) is saved in the catalog's
  crawl_cursors table (key ``flickr:rate_limit``) after every call, so restarts, kill -9 included, keep
  counting. One crawler per catalog (and per API key) at a time.
* **Retries.** HTTP 429 / 5xx, Flickr error codes 10/105/106 (service unavailable), timeouts,
  connection errors and garbled JSON are retried with exponential backoff + jitter (Retry-After
  honoured up to ``backoff_max_s``); every retry spends a rate-limit token.
* **Resumability.** Each (query, window) has a cursor row (pages done, total, split point); a page's
  photos are written to the catalog before the cursor moves past it, so a crawl killed at any point
  redoes at most one page. Items are keyed by (``flickr``, photo id): a photo seen twice (across pages,
  windows, queries or runs) is recorded once, and already-known photos cost no getSizes call.
  The open end of the date range ("now") is fixed in the query's cursor on the first run; a run after
  the crawl finished crawls only the uploads since then.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Sequence

import requests

from tasks.catalog.catalog import Catalog, Item, State, item_id_for
from tasks.ingest.download import backoff_delay, parse_retry_after

log = logging.getLogger(__name__)

SOURCE = "flickr"
EXTRAS = "url_o,o_dims,owner_name,license,date_upload,original_format,tags"
RETRYABLE_FLICKR_CODES = frozenset({10, 105, 106})  # search unavailable, service unavailable, write failed
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
RATE_KEY = "flickr:rate_limit"
NO_ORIGINAL = "flickr_no_original"  # reason code (tasks.catalog.catalog.REASONS)
PAGE_URL = "https://www.flickr.com/photos/{owner}/{id}"


class FlickrCrawlError(RuntimeError):
    """A Flickr call still failed after every retry (or failed in a way retries cannot fix)."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.code, self.status, self.retryable = code, status, retryable


# ---- dates ------------------------------------------------------------------------------------
def to_unix(value: int | float | str | date | datetime | None) -> int | None:
    """Unix seconds (UTC) from seconds, an ISO date/datetime string or a date/datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("a date cannot be a bool")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(dt.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp())
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return to_unix(datetime.fromisoformat(text.replace("Z", "+00:00")))


# ---- licenses ---------------------------------------------------------------------------------
def _norm_url(url: str) -> str:
    url = (url or "").strip().lower()
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    return url.removeprefix("www.").rstrip("/")


def allows_derivatives(name: str, url: str) -> bool:
    """Whether a Flickr license (name + deed URL from licenses.getInfo) permits derivative works.

    Everything with a deed URL does (CC BY, BY-SA, BY-NC, BY-NC-SA, CC0, public domain mark, "No known
    copyright restrictions", US Government work) except the NoDerivs family; "All Rights Reserved"
    has no deed URL and does not.
    """
    n, u = (name or "").lower(), _norm_url(url)
    if not u or "all rights reserved" in n:
        return False
    if "noderiv" in n.replace(" ", "").replace("-", "") or " nd " in f" {n.replace('-', ' ')} ":
        return False
    parts = u.replace("-", "/").split("/")
    return "nd" not in parts


def resolve_licenses(available: Sequence[dict], wanted: Sequence[str] | None) -> dict[str, dict[str, str]]:
    """``{license id: {"name", "url"}}`` to search. ``available`` is getInfo's ``licenses.license``.

    ``wanted=None``: every license that ``allows_derivatives``. Else each entry is matched against a
    license's name (case-insensitive), deed URL (scheme and trailing slash ignored) or id.
    """
    table = {str(lic["id"]): {"name": str(lic.get("name", "")), "url": str(lic.get("url", "") or "")}
             for lic in available}
    if wanted is None:
        chosen = {i: lic for i, lic in table.items() if allows_derivatives(lic["name"], lic["url"])}
    else:
        chosen = {}
        for entry in wanted:
            key = str(entry).strip()
            hits = [i for i, lic in table.items()
                    if key == i or key.lower() == lic["name"].lower() or (lic["url"] and _norm_url(key) == _norm_url(lic["url"]))]
            if not hits:
                raise ValueError(f"unknown Flickr license {entry!r}; getInfo offers: "
                                 + ", ".join(f"{i}={lic['name']}" for i, lic in table.items()))
            chosen.update({i: table[i] for i in hits})
    if not chosen:
        raise ValueError("no Flickr license selected: nothing could be crawled")
    return dict(sorted(chosen.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else kv[0]))


# ---- rate limit -------------------------------------------------------------------------------
class RateLimiter:
    """Token bucket allowing at most ``max_calls_per_hour`` calls in any 3,600 s (see module doc).

    ``clock`` must be wall-clock-like (seconds since the epoch) when the state is persisted, since it
    is compared across processes. ``catalog=None`` keeps the state in this object only.
    """

    def __init__(self, max_calls_per_hour: int, *, catalog: Catalog | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if max_calls_per_hour < 1:
            raise ValueError("max_calls_per_hour must be >= 1")
        self.limit = int(max_calls_per_hour)
        self.capacity = max(1, self.limit // 60)
        # one full bucket plus the refill over an hour is exactly the hourly limit
        self.rate = (self.limit - self.capacity) / 3600.0 if self.limit > self.capacity else 0.0
        self.catalog, self.clock, self.sleep = catalog, clock, sleep
        self.calls = 0
        self.waited_s = 0.0
        now = clock()
        self.tokens, self.t = float(self.capacity), now
        cur = catalog.get_cursor(RATE_KEY) if catalog is not None else None
        if cur is not None and isinstance(cur.data, dict) and "tokens" in cur.data:
            self.tokens = min(float(cur.data["tokens"]), float(self.capacity))
            self.t = min(float(cur.data["t"]), now)  # a clock that went backwards refills nothing

    def _refill(self, now: float) -> None:
        if now > self.t:
            self.tokens = min(float(self.capacity), self.tokens + (now - self.t) * self.rate)
            self.t = now

    def acquire(self) -> None:
        """Take one token, sleeping until one is available."""
        self._refill(self.clock())
        if self.tokens < 1.0 - 1e-9:
            if self.rate <= 0:
                raise RuntimeError("rate limit of 1 call per hour exhausted")  # capacity 1, no refill
            wait = (1.0 - self.tokens) / self.rate
            self.waited_s += wait
            self.sleep(wait)
            # after the wait the bucket holds exactly one token; trusting the arithmetic rather than
            # re-reading a float clock avoids spinning on rounding (1.7e9 s has a 2e-7 s resolution)
            self.tokens, self.t = 1.0, self.t + wait
            self._refill(self.clock())  # a sleep that overshot refills the difference
        self.tokens = max(0.0, self.tokens - 1.0)
        self.calls += 1
        if self.catalog is not None:
            self.catalog.put_cursor(RATE_KEY, {"tokens": self.tokens, "t": self.t, "limit": self.limit})


# ---- API client -------------------------------------------------------------------------------
class _Demoted:
    """A logger stand-in that logs ``error`` at DEBUG (for flickrapi's per-response error logs)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._logger.debug(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class FlickrClient:
    """flickrapi.FlickrAPI plus our retry policy and rate limit. ``call`` returns parsed JSON."""

    def __init__(self, *, rest_url: str, api_key: str, api_secret: str, timeout_s: float, max_retries: int,
                 backoff_base_s: float, backoff_max_s: float, limiter: RateLimiter,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        try:
            import flickrapi
        except ImportError as exc:  # a core dependency, but say what is missing
            raise ImportError("the Flickr source needs the flickrapi package: pip install flickrapi") from exc
        self._flickr_error = flickrapi.FlickrError
        # store_token=False: no OAuth token cache in ~/.flickrapi (search needs no user token)
        self.api = flickrapi.FlickrAPI(api_key or "", api_secret or "", format="parsed-json", store_token=False,
                                       timeout=timeout_s)
        # An instance attribute shadows FlickrAPI.REST_URL for this client only (no global patching).
        self.api.REST_URL = rest_url
        # flickrapi keeps ONE requests.Session on the OAuthFlickrInterface class, shared by every
        # instance; give this client its own, with a hook that remembers the last HTTP response so
        # we can read its status and Retry-After (flickrapi's FlickrError only has the status text).
        self.session = requests.Session()
        self.session.hooks["response"].append(self._remember)
        self.api.flickr_oauth.session = self.session
        # flickrapi logs every non-200 answer at ERROR; we retry those and log the retry ourselves
        self.api.flickr_oauth.log = _Demoted(logging.getLogger(f"{__name__}.http"))
        self._last: requests.Response | None = None
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.limiter, self.sleep, self.rng = limiter, sleep, rng or random.Random()
        self.retries = 0

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last = response

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, **params: Any) -> dict:
        """Call ``method`` (e.g. ``flickr.photos.search``) with retries; raises FlickrCrawlError."""
        for attempt in range(1, self.max_retries + 2):
            self.limiter.acquire()
            self._last = None
            retry_after = None
            try:
                return self.api.do_flickr_call(method, timeout=self.timeout_s, **params)
            except self._flickr_error as exc:
                status = self._last.status_code if self._last is not None else None
                if status is not None and status != 200:
                    retryable = status in RETRY_STATUSES or status >= 500
                    retry_after = parse_retry_after(self._last.headers.get("Retry-After"))
                else:
                    retryable = exc.code in RETRYABLE_FLICKR_CODES
                failure = FlickrCrawlError(f"{method}: {exc}", code=exc.code, status=status, retryable=retryable)
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure = FlickrCrawlError(f"{method}: {type(exc).__name__}: {exc}", retryable=True)
            except ValueError as exc:  # JSON decode error: a garbled or cut-off answer
                failure = FlickrCrawlError(f"{method}: bad JSON: {exc}", retryable=True)
            if not failure.retryable or attempt > self.max_retries:
                if failure.retryable:
                    failure.args = (f"{failure.args[0]} (after {attempt} attempts)",)
                raise failure
            delay = backoff_delay(attempt, base=self.backoff_base_s, maximum=self.backoff_max_s, rng=self.rng)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.backoff_max_s))
            log.info("retrying %s in %.2fs: %s", method, delay, failure)
            self.retries += 1
            self.sleep(delay)
        raise AssertionError("unreachable")


def pick_original(sizes: dict) -> tuple[str, dict] | None:
    """From getSizes' answer: the "Original" size, else the largest. Returns (url, size entry)."""
    entries = [s for s in (sizes.get("sizes", {}) or {}).get("size", []) or []
               if s.get("source") and s.get("media", "photo") == "photo"]
    if not entries:
        return None
    for s in entries:
        if str(s.get("label", "")).lower() == "original":
            return s["source"], s
    best = max(entries, key=lambda s: int(s.get("width") or 0) * int(s.get("height") or 0))
    return best["source"], best


# ---- crawler ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One search: tags OR text, with a license filter. ``key`` names its cursors."""

    tags: tuple[str, ...] = ()
    text: str = ""
    tag_mode: str = "any"
    license_ids: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"license": ",".join(self.license_ids)}
        if self.tags:
            p.update(tags=",".join(self.tags), tag_mode=self.tag_mode)
        if self.text:
            p["text"] = self.text
        return p

    @property
    def key(self) -> str:
        spec = json.dumps({"tags": sorted(self.tags), "text": self.text, "mode": self.tag_mode,
                           "lic": sorted(self.license_ids)}, sort_keys=True)
        return hashlib.sha1(spec.encode()).hexdigest()[:12]


@dataclass
class CrawlStats:
    calls: int = 0
    retries: int = 0
    pages: int = 0
    photos_seen: int = 0
    new: int = 0
    known: int = 0
    no_original: int = 0
    windows_split: int = 0
    windows_over_cap: int = 0
    getsizes_calls: int = 0
    rate_waited_s: float = 0.0
    licenses: dict[str, dict[str, str]] = field(default_factory=dict)


class _LimitReached(Exception):
    pass


class FlickrCrawler:
    """Resumable crawl of one or more queries into a catalog. ``run()`` returns new items found."""

    def __init__(self, catalog: Catalog, client: FlickrClient, *, tags: Sequence[str], text: str, tag_mode: str,
                 licenses: Sequence[str] | None, per_page: int, max_results_per_query: int,
                 min_upload_date: int, max_upload_date: int | None, limit: int | None = None,
                 batch: str | None = None, progress: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.catalog, self.client = catalog, client
        self.tags = tuple(t.strip() for t in tags if t and t.strip())
        self.text, self.tag_mode = (text or "").strip(), tag_mode
        self.wanted_licenses = None if licenses is None else tuple(licenses)
        self.per_page = max(1, min(500, int(per_page)))
        self.cap = int(max_results_per_query)
        self.min_date, self.max_date = int(min_upload_date), max_upload_date
        self.limit, self.batch, self.progress, self.clock = limit, batch, progress, clock
        self.stats = CrawlStats()
        self.licenses: dict[str, dict[str, str]] = {}

    # -- public ------------------------------------------------------------------------------
    def run(self) -> int:
        if not self.tags and not self.text:
            raise ValueError("Flickr crawl needs tags or text")
        try:
            info = self.client.call("flickr.photos.licenses.getInfo")
            self.licenses = resolve_licenses(info["licenses"]["license"], self.wanted_licenses)
            self.stats.licenses = self.licenses
            lic = tuple(self.licenses)
            queries = []
            if self.tags:
                queries.append(Query(tags=self.tags, tag_mode=self.tag_mode, license_ids=lic))
            if self.text:
                queries.append(Query(text=self.text, license_ids=lic))
            for query in queries:
                self._crawl_query(query)
        except _LimitReached:
            pass
        finally:
            self.stats.calls = self.client.limiter.calls
            self.stats.retries = self.client.retries
            self.stats.rate_waited_s = self.client.limiter.waited_s
        return self.stats.new

    # -- queries and windows --------------------------------------------------------------------
    def _crawl_query(self, query: Query) -> None:
        root = f"flickr:{query.key}"
        cur = self.catalog.get_cursor(root)
        data = dict(cur.data) if cur is not None else {}
        covered = data.get("covered")  # uploads up to here are fully crawled
        target = data.get("target")  # the end of the range being crawled now (fixed on first run)
        if target is None:
            target = self.max_date if self.max_date is not None else int(self.clock())
            if covered is not None and target <= covered:
                return  # nothing new since the last complete crawl
            data = {"covered": covered, "target": target, "query": {"tags": list(query.tags), "text": query.text,
                                                                   "tag_mode": query.tag_mode}}
            self.catalog.put_cursor(root, data)
        start = self.min_date if covered is None else covered + 1
        if start <= target:
            self._crawl_window(query, start, int(target))
        self.catalog.put_cursor(root, {**data, "covered": int(target), "target": None}, done=True)

    def _window_key(self, query: Query, lo: int, hi: int) -> str:
        return f"flickr:{query.key}:{lo}:{hi}"

    def _crawl_window(self, query: Query, lo: int, hi: int) -> None:
        key = self._window_key(query, lo, hi)
        cur = self.catalog.get_cursor(key)
        if cur is not None and cur.done:
            return
        data = dict(cur.data) if cur is not None else {}
        if "split_at" in data:
            self._crawl_halves(query, lo, hi, int(data["split_at"]), key, data)
            return
        max_pages = max(1, math.ceil(self.cap / self.per_page))  # pages Flickr will actually serve
        page = int(data.get("pages_done", 0)) + 1
        while True:
            if self.limit is not None and self.stats.new >= self.limit:
                raise _LimitReached
            rsp = self.client.call("flickr.photos.search", **query.params(), min_upload_date=lo, max_upload_date=hi,
                                   sort="date-posted-asc", extras=EXTRAS, per_page=self.per_page, page=page)
            block = rsp["photos"]
            total, pages = int(block.get("total", 0)), int(block.get("pages", 0))
            self.stats.pages += 1
            if total > self.cap and hi > lo:
                mid = lo + (hi - lo) // 2
                data.update(split_at=mid, total=total)
                self.catalog.put_cursor(key, data)
                self.stats.windows_split += 1
                log.info("window %s..%s has %d results > %d: split at %d", lo, hi, total, self.cap, mid)
                self._crawl_halves(query, lo, hi, mid, key, data)
                return
            photos = block.get("photo", []) or []
            new_before = self.stats.new
            # one query for the whole page: known photos cost neither a write nor a getSizes call
            known = {it.source_id: it for it in self.catalog.items(item_id_for(SOURCE, str(p["id"])) for p in photos)}
            for photo in photos:
                self._record(photo, query, known.get(str(photo["id"])))
            if self.progress is not None:
                self.progress(self.stats.new - new_before)
            last = min(pages, max_pages)
            finished = page >= last or not photos
            data.update(pages_done=page, pages=pages, total=total)
            self.catalog.put_cursor(key, data, done=finished)
            if finished:
                if total > self.cap:
                    self.stats.windows_over_cap += 1
                    log.warning("one-second window %s has %d results; Flickr serves only %d", lo, total, self.cap)
                return
            page += 1

    def _crawl_halves(self, query: Query, lo: int, hi: int, mid: int, key: str, data: dict) -> None:
        self._crawl_window(query, lo, mid)
        self._crawl_window(query, mid + 1, hi)
        self.catalog.put_cursor(key, data, done=True)

    # -- photos ---------------------------------------------------------------------------------
    def _record(self, photo: dict, query: Query, existing: Item | None) -> None:
        self.stats.photos_seen += 1
        pid = str(photo["id"])
        if existing is not None and not (existing.state == State.DISCOVERED.value and not existing.url):
            self.stats.known += 1
            return
        if self.limit is not None and self.stats.new >= self.limit:
            raise _LimitReached
        url, size, problem = photo.get("url_o"), None, None
        if not url:
            self.stats.getsizes_calls += 1
            try:
                picked = pick_original(self.client.call("flickr.photos.getSizes", photo_id=pid))
            except FlickrCrawlError as exc:
                picked, problem = None, str(exc)
            if picked is None:
                problem = problem or "getSizes offered no downloadable size"
            else:
                url, size = picked
        nsid = str(photo.get("owner", ""))
        lic = self.licenses.get(str(photo.get("license", "")), {})
        info = {"flickr": {
            "owner_nsid": nsid, "ownername": photo.get("ownername"), "license_id": str(photo.get("license", "")),
            "dateupload": photo.get("dateupload"), "width_o": photo.get("width_o"), "height_o": photo.get("height_o"),
            "originalformat": photo.get("originalformat"), "tags": photo.get("tags"), "query": query.key,
            "size_label": (size or {}).get("label", "Original") if url else None,
        }}
        fields = dict(url=url, page_url=PAGE_URL.format(owner=nsid, id=pid), owner=photo.get("ownername") or nsid,
                      owner_id=nsid or None,
                      license=lic.get("name"), license_url=lic.get("url") or None, title=photo.get("title") or "",
                      fetched_at=datetime.now(timezone.utc), batch=self.batch, info=info)
        if existing is None:
            item, created = self.catalog.discover(source=SOURCE, source_id=pid, actor="flickr", **fields)
        else:  # a photo recorded without a URL by a crawl that was killed before failing it
            item, created = self.catalog.update(existing.id, **{k: v for k, v in fields.items() if k != "batch"}), False
        if created:
            self.stats.new += 1
        else:  # the same photo twice on one page
            self.stats.known += 1
        if problem is not None:
            self.stats.no_original += 1
            self.catalog.fail(item.id, NO_ORIGINAL, problem, actor="flickr")


def discover(
    catalog: Catalog,
    *,
    rest_url: str,
    api_key: str,
    api_secret: str,
    tags: Sequence[str],
    text: str = "",
    tag_mode: str = "any",
    licenses: Sequence[str] | None = None,
    per_page: int = 500,
    max_results_per_query: int = 4000,
    max_calls_per_hour: int = 3600,
    min_upload_date: int | str | date | datetime = "2004-01-01",
    max_upload_date: int | str | date | datetime | None = None,
    max_retries: int = 6,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 120.0,
    timeout_s: float = 30.0,
    limit: int | None = None,
    batch: str | None = None,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    stats: CrawlStats | None = None,
) -> int:
    """Crawl Flickr into ``catalog`` (items in ``discovered``; ``failed``/flickr_no_original when no size
    can be downloaded). Returns the number of NEW items (``limit`` caps it). Resumes from the cursors
    of an earlier, interrupted crawl with the same query. Dates: unix seconds or ISO strings (UTC).
    ``progress(n)`` is called after every page with the number of new items it added. ``clock`` /
    ``sleep`` drive the rate limit and the backoff (injectable for tests); ``stats`` (optional) is
    filled with call and page counts. Raises FlickrCrawlError when a search page fails after retries
    (the cursors keep the progress made so far).
    """
    limiter = RateLimiter(max_calls_per_hour, catalog=catalog, clock=clock, sleep=sleep)
    client = FlickrClient(rest_url=rest_url, api_key=api_key, api_secret=api_secret, timeout_s=timeout_s,
                          max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                          limiter=limiter, sleep=sleep)
    lo = to_unix(min_upload_date)
    crawler = FlickrCrawler(catalog, client, tags=tags, text=text, tag_mode=tag_mode, licenses=licenses,
                            per_page=per_page, max_results_per_query=max_results_per_query,
                            min_upload_date=0 if lo is None else lo, max_upload_date=to_unix(max_upload_date),
                            limit=limit, batch=batch, progress=progress, clock=clock)
    try:
        return crawler.run()
    finally:
        client.close()
        if stats is not None:
            for name in CrawlStats.__dataclass_fields__:
                setattr(stats, name, getattr(crawler.stats, name))
