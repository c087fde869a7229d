"""Keeping a published dataset honest: re-validate sources, and withdraw items by hand.

``revalidate_flickr`` asks Flickr again about every Flickr item that could still be published
(``flickr.photos.getInfo``, through the crawl's own client: the same token-bucket rate limit kept in
the catalog, the same retries with backoff). An item moves to ``withdrawn`` when

* getInfo answers error 1 "Photo not found"  -> ``source_deleted``. Flickr gives the same answer
  for a photo its owner made private when the calling key may not see it, so such a photo is
  recorded as deleted; both withdraw it.
* the photo is still visible to the key but ``visibility.ispublic`` is 0 -> ``source_private``,
* its licence changed to one the crawl would not take (``flickr.licenses`` in the config; by
  default every licence that allows derivatives) -> ``license_changed``.

A licence change to another acceptable licence updates the item's licence (the old one is kept in
``info.flickr.license_history``); it is not a withdrawal. Every checked item gets ``checked_at``,
so ``older_than_days`` skips what was checked recently and an interrupted run resumes. Nothing is
deleted: the row, its files and its events stay; a withdrawn item is never exported or released.

``resolve_refs`` / ``withdraw_items`` are the takedown by hand (``redweb withdraw``): catalog ids,
photo page or image URLs (flickr.com/photos/USER/ID, staticflickr.com/.../ID_secret_o.jpg,
flic.kr/p/SHORT), source ids, or every item of an owner account (Flickr NSID).
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

from tasks.catalog.catalog import WITHDRAW_REASONS, Catalog, Item, State, item_id_for, utcnow

log = logging.getLogger(__name__)

PHOTO_NOT_FOUND = 1  # Flickr's error code for getInfo on a deleted (or not viewable) photo
# states worth asking Flickr about: everything that may still reach a release. failed and
# rejected items are not published, and asking about them would spend the hourly API budget.
SKIP_STATES = (State.WITHDRAWN.value, State.FAILED.value, State.REJECTED.value)


class WithdrawError(ValueError):
    """A reference that matches no item (or several), or a bad reason."""


@dataclass
class RevalidateReport:
    checked: int = 0
    unchanged: int = 0
    withdrawn: dict[str, list[str]] = field(default_factory=dict)  # reason -> item ids
    license_updated: list[str] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    rate_waited_s: float = 0.0

    def as_dict(self) -> dict:
        return dict(checked=self.checked, unchanged=self.unchanged, withdrawn=self.withdrawn,
                    withdrawn_total=sum(len(v) for v in self.withdrawn.values()),
                    license_updated=self.license_updated, calls=self.calls, retries=self.retries,
                    rate_waited_s=round(self.rate_waited_s, 3))


def due_for_check(catalog: Catalog, *, source: str, older_than_days: float | None,
                  states: Sequence[str] | None = None, limit: int | None = None,
                  now: datetime | None = None) -> list[str]:
    """Ids of ``source`` items to re-check, least recently verified first.

    "Verified" is the last revalidation, else the crawl that found the item (a search result is a
    check: the photo was public under that licence). ``states``: default every state but SKIP_STATES.
    """
    before = None if older_than_days is None else (now or utcnow()) - timedelta(days=float(older_than_days))
    return catalog.ids_last_verified_before(source, before, states=states or (),
                                            exclude=(State.WITHDRAWN,) if states else SKIP_STATES, limit=limit)


def revalidate_flickr(
    catalog: Catalog,
    *,
    rest_url: str,
    api_key: str,
    api_secret: str,
    licenses: Sequence[str] | None = None,
    max_calls_per_hour: int = 3600,
    max_retries: int = 6,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 120.0,
    timeout_s: float = 30.0,
    older_than_days: float | None = None,
    states: Sequence[str] | None = None,
    limit: int | None = None,
    actor: str = "revalidate",
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int], None] | None = None,
) -> RevalidateReport:
    """Re-check Flickr items (see module docstring); returns what changed.

    ``licenses``: the crawl's licence selection (None: every licence allowing derivatives).
    Raises ``FlickrCrawlError`` when Flickr fails in a way retries cannot fix (bad key, outage after
    every retry); what was checked until then keeps its ``checked_at`` and withdrawals.
    """
    from tasks.ingest.sources.flickr import FlickrClient, FlickrCrawlError, RateLimiter, resolve_licenses

    limiter = RateLimiter(max_calls_per_hour, catalog=catalog, clock=clock, sleep=sleep)
    client = FlickrClient(rest_url=rest_url, api_key=api_key, api_secret=api_secret, timeout_s=timeout_s,
                          max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                          limiter=limiter, sleep=sleep)
    report = RevalidateReport()
    try:
        ids = due_for_check(catalog, source="flickr", older_than_days=older_than_days, states=states, limit=limit)
        if not ids:
            return report
        available = client.call("flickr.photos.licenses.getInfo")["licenses"]["license"]
        table = {str(lic["id"]): {"name": str(lic.get("name", "")), "url": str(lic.get("url", "") or "")}
                 for lic in available}
        allowed = resolve_licenses(available, licenses)
        for k in range(0, len(ids), 200):
            for item in catalog.items(ids[k:k + 200]):
                now = utcnow()
                try:
                    photo = client.call("flickr.photos.getInfo", photo_id=item.source_id)["photo"]
                except FlickrCrawlError as exc:
                    if exc.code != PHOTO_NOT_FOUND:
                        raise
                    _withdraw(catalog, item, "source_deleted", str(exc), actor, now, report)
                else:
                    _judge(catalog, item, photo, table, allowed, actor, now, report)
                report.checked += 1
                if progress is not None:
                    progress(1)
    finally:
        report.calls, report.retries, report.rate_waited_s = limiter.calls, client.retries, limiter.waited_s
        client.close()
    return report


def _withdraw(catalog: Catalog, item: Item, reason: str, detail: str, actor: str, now: datetime,
              report: RevalidateReport) -> None:
    if catalog.withdraw(item.id, reason, detail, actor=actor, at=now, checked_at=now) is not None:
        report.withdrawn.setdefault(reason, []).append(item.id)
        log.info("withdrawn %s (flickr %s): %s: %s", item.id, item.source_id, reason, detail)


def _judge(catalog: Catalog, item: Item, photo: dict, table: dict[str, dict], allowed: dict[str, dict], actor: str,
           now: datetime, report: RevalidateReport) -> None:
    visibility = photo.get("visibility") or {}
    if str(visibility.get("ispublic", "1")) in ("0", "false", "False"):
        _withdraw(catalog, item, "source_private", "flickr.photos.getInfo: visibility.ispublic = 0", actor, now,
                  report)
        return
    info = dict(item.info or {})
    flickr = dict(info.get("flickr") or {})
    old_id = str(flickr.get("license_id") or "")
    new_id = str(photo.get("license", ""))
    if new_id and new_id != old_id:
        new = table.get(new_id, {"name": f"unknown licence {new_id}", "url": ""})
        change = f"licence {old_id or '?'} ({item.license or 'unknown'}) -> {new_id} ({new['name']})"
        if new_id not in allowed:
            _withdraw(catalog, item, "license_changed", change, actor, now, report)
            return
        history = list(flickr.get("license_history") or [])
        history.append({"license_id": old_id, "license": item.license, "until": now.isoformat()})
        flickr.update(license_id=new_id, license_history=history)
        info["flickr"] = flickr
        catalog.update(item.id, license=new["name"], license_url=new["url"] or None, info=info, checked_at=now)
        report.license_updated.append(item.id)
        log.info("licence of %s (flickr %s) changed, still usable: %s", item.id, item.source_id, change)
        return
    catalog.update(item.id, checked_at=now)
    report.unchanged += 1


# ---- takedown by hand -------------------------------------------------------------------------
_FLICKR_PAGE = re.compile(r"flickr\.com/photos/[^/?#]+/(\d+)")
_FLICKR_STATIC = re.compile(r"staticflickr\.com/(?:[^/]+/)*(\d+)_[0-9a-f]+(?:_[a-z0-9]+)?\.\w+$")
_FLICKR_SHORT = re.compile(r"flic\.kr/p/([1-9a-km-zA-HJ-NP-Z]+)")
_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # Flickr's short-URL alphabet
_ITEM_ID = re.compile(r"[0-9a-f]{16}")


def flickr_photo_id(url: str) -> str | None:
    """The photo id in a Flickr photo page, static image or flic.kr short URL (None if none)."""
    text = url.strip()
    if m := _FLICKR_PAGE.search(text):
        return m.group(1)
    if m := _FLICKR_STATIC.search(text.split("?", 1)[0]):
        return m.group(1)
    if m := _FLICKR_SHORT.search(text):
        n = 0
        for ch in m.group(1):
            n = n * 58 + _BASE58.index(ch)
        return str(n)
    return None


def _resolve_one(catalog: Catalog, ref: str) -> str:
    ref = ref.strip()
    if not ref:
        raise WithdrawError("empty reference")
    if _ITEM_ID.fullmatch(ref) and catalog.get(ref) is not None:
        return ref
    if "://" in ref or ref.startswith(("www.", "flickr.com", "flic.kr")):
        hits = catalog.ids_with_url({ref, ref.rstrip("/"), ref.rstrip("/") + "/"})
        if len(hits) == 1:
            return hits[0]
        pid = flickr_photo_id(ref)
        if pid is not None and catalog.get(item_id_for("flickr", pid)) is not None:
            return item_id_for("flickr", pid)
        raise WithdrawError(f"no item has the URL {ref}" if not hits else f"{ref} matches {len(hits)} items")
    hits = catalog.ids_with_source_id(ref)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise WithdrawError(f"{ref} is the source id of {len(hits)} items ({', '.join(hits)}): give the item id")
    raise WithdrawError(f"no item with id, URL or source id {ref!r}")


def resolve_refs(catalog: Catalog, refs: Iterable[str] = (), *, owner: str | None = None) -> list[str]:
    """Item ids for ``refs`` (ids, URLs, source ids) and every item of ``owner`` (account id, e.g.
    a Flickr NSID; also matched against the stored owner name). All or nothing: raises WithdrawError
    naming every reference that matches nothing."""
    ids: list[str] = []
    problems: list[str] = []
    for ref in refs:
        try:
            ids.append(_resolve_one(catalog, ref))
        except WithdrawError as exc:
            problems.append(str(exc))
    if owner is not None:
        owned = catalog.ids_of_owner(owner)
        if not owned:
            problems.append(f"no item of owner {owner!r}")
        ids.extend(owned)
    if problems:
        raise WithdrawError("; ".join(problems))
    return list(dict.fromkeys(ids))


@dataclass
class WithdrawReport:
    withdrawn: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    reason: str = "takedown"
    detail: str = ""

    def as_dict(self) -> dict:
        return dict(withdrawn=self.withdrawn, already_withdrawn=self.already, reason=self.reason,
                    detail=self.detail)


def withdraw_items(catalog: Catalog, ids: Iterable[str], *, detail: str, reason: str = "takedown",
                   actor: str = "withdraw", dry_run: bool = False) -> WithdrawReport:
    """Withdraw ``ids`` with ``reason`` (a WITHDRAW_REASONS code) and ``detail`` (the request, free
    text, required). Already-withdrawn items keep their first withdrawal and are listed apart."""
    detail = (detail or "").strip()
    if not detail:
        raise WithdrawError("a withdrawal needs a reason text (who asked, why)")
    if reason not in WITHDRAW_REASONS:
        raise WithdrawError(f"reason code must be one of {', '.join(WITHDRAW_REASONS)}")
    report = WithdrawReport(reason=reason, detail=detail)
    now = utcnow()
    for item in catalog.items(list(ids)):
        if item.state == State.WITHDRAWN.value:
            report.already.append(item.id)
        elif dry_run:
            report.withdrawn.append(item.id)
        elif catalog.withdraw(item.id, reason, detail, actor=actor, at=now) is None:
            report.already.append(item.id)
        else:
            report.withdrawn.append(item.id)
    return report
