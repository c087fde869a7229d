"""A local fake of Flickr's REST API and image hosts, for tests and manual tries.

Answers the JSON that ``flickrapi`` asks for (``format=json&nojsoncallback=1``, GET or POST, OAuth
header or ``api_key`` parameter) for the methods the crawler uses:

* ``flickr.photos.licenses.getInfo``: Flickr's license table (ids can be shifted with
  ``license_id_offset`` to prove the client reads them instead of hard-coding them),
* ``flickr.photos.search``: tags (any/all), text, license, min/max_upload_date (inclusive), sort by
  upload date, per_page (<= 500), page, extras (url_o, o_dims, owner_name, license, date_upload, ...);
  like Flickr it reports the true ``total`` but serves only the first ``cap`` (4,000) results:
  pages past the cap repeat the last page within it,
* ``flickr.photos.getSizes``: Square + Original (``getsizes_fail`` photos answer "Photo not found"),
* ``flickr.photos.getInfo``: owner, title, licence, visibility, dates, photo page URL; error 1
  "Photo not found" for an unknown or deleted photo (and, like Flickr for a caller who cannot see it,
  for a private photo made with ``visible_to_caller=False``),

The server's photos can change between runs, as real ones do: ``delete_photo(id)``,
``make_private(id)``, ``relicense(id, flickr_license_id)`` and ``restore(id)``. Deleted and private
photos leave search results, getSizes answers error 1 for them, and a deleted photo's image is 404;
a re-licensed photo is searched and described with its new licence.

and serves ``/img/<id>_o.jpg`` (a real, small side-by-side stereo JPEG made from scikit-image's
Middlebury motorcycle pair, different for every photo so deduplication keeps them apart).

Faults: ``rest_schedule`` ({n: kind} for the n-th REST call, 1-based) and ``rest_every``
({kind: k}: every k-th call) with kinds ``500``, ``503``, ``429`` (Retry-After: ``retry_after_s``),
``slow`` (answers after ``slow_s``), ``garbled`` (cut-off JSON), ``105`` (Flickr "service
unavailable"); ``image_faults`` ({photo id: [kind, ...]} consumed one per download, then normal) and
``image_permanent`` ({photo id: kind}) with kinds ``500``, ``429``, ``404``, ``truncate``, ``slow``,
``empty``, ``trickle`` (half the body, a pause of ``slow_s``, the rest); ``duplicate_across_pages``
repeats the previous page's last photo at the top of each page.

Run standalone: ``python -m tests.fakeflickr --port 8089 [--photos 1200] [--faults]``.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlparse

# Flickr's license table as licenses.getInfo answers it (ids 0..10 and the CC 4.0 family)
FLICKR_LICENSES: tuple[tuple[int, str, str], ...] = (
    (0, "All Rights Reserved", ""),
    (1, "Attribution-NonCommercial-ShareAlike License", "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    (2, "Attribution-NonCommercial License", "https://creativecommons.org/licenses/by-nc/2.0/"),
    (3, "Attribution-NonCommercial-NoDerivs License", "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    (4, "Attribution License", "https://creativecommons.org/licenses/by/2.0/"),
    (5, "Attribution-ShareAlike License", "https://creativecommons.org/licenses/by-sa/2.0/"),
    (6, "Attribution-NoDerivs License", "https://creativecommons.org/licenses/by-nd/2.0/"),
    (7, "No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    (8, "United States Government Work", "http://www.usa.gov/copyright.shtml"),
    (9, "Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    (10, "Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    (11, "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    (12, "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    (13, "CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/"),
    (14, "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    (15, "CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    (16, "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
)
NO_DERIVATIVES = frozenset({0, 3, 6, 13, 16})  # Flickr's own ids of licenses that forbid derivatives
CAP = 4000


@dataclass(frozen=True)
class FakePhoto:
    id: str
    owner: str  # NSID
    ownername: str
    title: str
    license: int  # Flickr's own id (before license_id_offset)
    dateupload: int  # unix seconds
    tags: tuple[str, ...]
    has_url_o: bool = True


def make_photos(n: int, *, seed: int = 0, start: int = 1_300_000_000, span_s: int = 200 * 86400,
                tags: tuple[str, ...] = ("stereoscopic", "stereo", "3d", "sidebyside", "crossview"),
                licenses: Iterable[int] = range(17), no_url_o_every: int = 0, first_id: int = 50_000_000,
                same_second: int = 0) -> list[FakePhoto]:
    """``n`` photos with upload dates spread uniformly over ``span_s`` seconds from ``start``.

    Each photo has 1-2 of ``tags`` (plus an unrelated tag), a license cycled from ``licenses`` and,
    if ``no_url_o_every`` > 0, every k-th photo has no url_o (the client must call getSizes).
    ``same_second`` photos at the end all share one upload second (to test a window that cannot split).
    """
    rng = random.Random(seed)
    lic = list(licenses)
    photos = []
    for i in range(n):
        chosen = tuple(rng.sample(tags, k=min(len(tags), 1 + (i % 2)))) + (rng.choice(["holiday", "city", "macro"]),)
        date = start + 1_000_000 if i >= n - same_second else start + rng.randrange(span_s)
        photos.append(FakePhoto(
            id=str(first_id + i), owner=f"{10000 + i % 37}@N0{i % 9}", ownername=f"user{i % 37}",
            title=f"stereo photo {i}", license=lic[i % len(lic)], dateupload=date, tags=chosen,
            has_url_o=not (no_url_o_every and i % no_url_o_every == no_url_o_every - 1)))
    return photos


# ---- images ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _motorcycle_small():
    """The Middlebury motorcycle pair (shipped with scikit-image), downscaled 4x: two (125, 185, 3) uint8."""
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    left, right, _ = data.stereo_motorcycle()
    small = [(resize(v, (125, 185), anti_aliasing=True) * 255).astype(np.uint8) for v in (left, right)]
    return small[0], small[1]


def stereo_jpeg(seed: int, *, view_hw: tuple[int, int] = (80, 112), quality: int = 90) -> bytes:
    """A side-by-side stereo JPEG, different for every ``seed``: a crop of the motorcycle pair blended
    with a seeded low-frequency pattern that has its own 3 px disparity. Size: h x 2w."""
    import numpy as np
    from PIL import Image

    left, right = _motorcycle_small()
    h, w = view_hw
    rng = np.random.default_rng(seed)
    y0 = int(rng.integers(0, left.shape[0] - h + 1))
    x0 = int(rng.integers(3, left.shape[1] - w + 1))
    grid = rng.integers(0, 256, size=(4, 6, 3)).astype(np.uint8)
    pattern = np.asarray(Image.fromarray(grid).resize((w + 3, h), Image.BILINEAR), dtype=np.float32)
    lv = 0.45 * left[y0:y0 + h, x0:x0 + w] + 0.55 * pattern[:, 3:]
    rv = 0.45 * right[y0:y0 + h, x0:x0 + w] + 0.55 * pattern[:, :w]
    sbs = np.concatenate([lv, rv], axis=1).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(sbs).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# ---- server ---------------------------------------------------------------------------------------
@dataclass
class Faults:
    rest_schedule: dict[int, str] = field(default_factory=dict)
    rest_every: dict[str, int] = field(default_factory=dict)
    image_faults: dict[str, list[str]] = field(default_factory=dict)
    image_permanent: dict[str, str] = field(default_factory=dict)
    getsizes_fail: set[str] = field(default_factory=set)
    duplicate_across_pages: bool = False
    retry_after_s: float = 1.0
    slow_s: float = 1.5


class FakeFlickr:
    """The fake. ``start()`` binds 127.0.0.1 (port 0 = any free one); ``rest_url`` is the endpoint."""

    def __init__(self, photos: Iterable[FakePhoto], *, api_key: str = "fake-key", faults: Faults | None = None,
                 cap: int = CAP, license_id_offset: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.photos = sorted(photos, key=lambda p: (p.dateupload, int(p.id)))
        self.by_id = {p.id: p for p in self.photos}
        self.api_key, self.faults, self.cap = api_key, faults or Faults(), cap
        self.license_id_offset, self.clock = license_id_offset, clock
        self.lock = threading.Lock()
        self.calls: list[tuple[float, str, dict]] = []  # (clock(), method, params) of every REST call
        self.downloads: Counter[str] = Counter()  # photo id -> image requests (faulty ones included)
        self.served: Counter[str] = Counter()  # photo id -> complete image bodies sent
        self._pending_image_faults = {k: list(v) for k, v in self.faults.image_faults.items()}
        self.deleted: set[str] = set()
        self.private: dict[str, bool] = {}  # photo id -> still visible to the calling key (getInfo ispublic=0)
        self.license_override: dict[str, int] = {}  # photo id -> Flickr's own licence id
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, port: int = 0) -> "FakeFlickr":
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeFlickr":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/services/rest/"

    # -- changes on the server between runs ---------------------------------------------------------
    def delete_photo(self, photo_id: str) -> None:
        """The owner deletes the photo: getInfo/getSizes answer error 1, search drops it, image 404."""
        with self.lock:
            self.deleted.add(self._known(photo_id))

    def make_private(self, photo_id: str, *, visible_to_caller: bool = True) -> None:
        """The owner makes the photo private. ``visible_to_caller``: getInfo still answers, with
        ``visibility.ispublic = 0`` (the key's account is a contact); False: error 1, as Flickr
        answers a caller who may not see it."""
        with self.lock:
            self.private[self._known(photo_id)] = visible_to_caller

    def relicense(self, photo_id: str, flickr_license_id: int) -> None:
        """The owner changes the licence (Flickr's own id, before ``license_id_offset``)."""
        if flickr_license_id not in {i for i, _, _ in FLICKR_LICENSES}:
            raise ValueError(f"no Flickr licence {flickr_license_id}")
        with self.lock:
            self.license_override[self._known(photo_id)] = flickr_license_id

    def restore(self, photo_id: str) -> None:
        with self.lock:
            self.deleted.discard(photo_id)
            self.private.pop(photo_id, None)
            self.license_override.pop(photo_id, None)

    def _known(self, photo_id: str) -> str:
        photo_id = str(photo_id)
        if photo_id not in self.by_id:
            raise KeyError(f"the fake has no photo {photo_id}")
        return photo_id

    def license_of(self, photo_id: str) -> int:
        """The photo's licence now (Flickr's own id)."""
        return self.license_override.get(photo_id, self.by_id[photo_id].license)

    def is_listed(self, photo_id: str) -> bool:
        """Whether search shows the photo (not deleted, not private)."""
        return photo_id not in self.deleted and photo_id not in self.private

    # -- ground truth ------------------------------------------------------------------------------
    def license_id(self, flickr_id: int) -> int:
        return flickr_id + self.license_id_offset

    def matching(self, *, tags: Iterable[str] = (), tag_mode: str = "any", text: str = "",
                 licenses: Iterable[int] | None = None, min_date: int | None = None,
                 max_date: int | None = None) -> list[FakePhoto]:
        """Every photo a search matches (licenses are Flickr's own ids), oldest upload first."""
        tags = [t.strip().lower() for t in tags if t.strip()]
        lic = None if licenses is None else set(licenses)
        out = []
        for p in self.photos:
            if not self.is_listed(p.id):
                continue
            if tags:
                have = [t in p.tags for t in tags]
                if not (all(have) if tag_mode == "all" else any(have)):
                    continue
            if text and not all(w in (p.title + " " + " ".join(p.tags)).lower() for w in text.lower().split()):
                continue
            if lic is not None and self.license_of(p.id) not in lic:
                continue
            if min_date is not None and p.dateupload < min_date:
                continue
            if max_date is not None and p.dateupload > max_date:
                continue
            out.append(p)
        return out

    def rest_calls(self, method: str | None = None) -> list[tuple[float, str, dict]]:
        with self.lock:
            return [c for c in self.calls if method is None or c[1] == method]

    def image_url(self, photo_id: str) -> str:
        return f"{self.base_url}/img/{photo_id}_o.jpg"

    # -- REST ---------------------------------------------------------------------------------------
    def rest_fault(self, n: int) -> str | None:
        if n in self.faults.rest_schedule:
            return self.faults.rest_schedule[n]
        for kind, every in self.faults.rest_every.items():
            if every and n % every == 0:
                return kind
        return None

    def answer(self, method: str, params: dict[str, str]) -> dict:
        if method == "flickr.photos.licenses.getInfo":
            return {"licenses": {"license": [{"id": self.license_id(i), "name": name, "url": url}
                                             for i, name, url in FLICKR_LICENSES]}, "stat": "ok"}
        if method == "flickr.photos.search":
            return self._search(params)
        if method == "flickr.photos.getSizes":
            pid = params.get("photo_id", "")
            if pid not in self.by_id or pid in self.faults.getsizes_fail or not self.is_listed(pid):
                return {"stat": "fail", "code": 1, "message": "Photo not found"}
            return {"sizes": {"canblog": 0, "canprint": 0, "candownload": 1, "size": [
                {"label": "Square", "width": 75, "height": 75, "source": f"{self.base_url}/img/{pid}_s.jpg",
                 "url": f"https://www.flickr.com/photos/x/{pid}/sizes/sq/", "media": "photo"},
                {"label": "Original", "width": 224, "height": 80, "source": self.image_url(pid),
                 "url": f"https://www.flickr.com/photos/x/{pid}/sizes/o/", "media": "photo"}]}, "stat": "ok"}
        if method == "flickr.photos.getInfo":
            return self._get_info(params.get("photo_id", ""))
        return {"stat": "fail", "code": 112, "message": f"Method \"{method}\" not found"}

    def _get_info(self, pid: str) -> dict:
        p = self.by_id.get(pid)
        if p is None or pid in self.deleted or self.private.get(pid) is False:
            return {"stat": "fail", "code": 1, "message": "Photo not found"}
        public = 0 if pid in self.private else 1
        return {"photo": {
            "id": p.id, "secret": "abc123", "server": "65535", "farm": 66, "dateuploaded": str(p.dateupload),
            "isfavorite": 0, "license": str(self.license_id(self.license_of(pid))), "safety_level": "0",
            "rotation": 0, "originalsecret": "def456", "originalformat": "jpg",
            "owner": {"nsid": p.owner, "username": p.ownername, "realname": "", "location": "", "iconserver": "0",
                      "iconfarm": 0, "path_alias": None},
            "title": {"_content": p.title}, "description": {"_content": ""},
            "visibility": {"ispublic": public, "isfriend": 0, "isfamily": 0},
            "dates": {"posted": str(p.dateupload), "taken": "2011-01-01 00:00:00", "takengranularity": 0,
                      "takenunknown": "0", "lastupdate": str(p.dateupload)},
            "views": "1", "usage": {"candownload": 1, "canblog": 0, "canprint": 0, "canshare": 1},
            "comments": {"_content": "0"}, "notes": {"note": []}, "people": {"haspeople": 0},
            "tags": {"tag": [{"id": f"{p.id}-{t}", "author": p.owner, "raw": t, "_content": t, "machine_tag": 0}
                             for t in p.tags]},
            "urls": {"url": [{"type": "photopage",
                              "_content": f"https://www.flickr.com/photos/{p.owner}/{p.id}/"}]},
            "media": "photo"}, "stat": "ok"}

    def _search(self, q: dict[str, str]) -> dict:
        inverse = {self.license_id(i): i for i, _, _ in FLICKR_LICENSES}
        lic = None
        if q.get("license"):
            lic = {inverse.get(int(x), -1) for x in q["license"].split(",") if x.strip().lstrip("-").isdigit()}

        def num(key: str) -> int | None:
            return int(float(q[key])) if q.get(key) not in (None, "") else None

        hits = self.matching(tags=(q.get("tags") or "").split(","), tag_mode=q.get("tag_mode", "any"),
                             text=q.get("text", ""), licenses=lic, min_date=num("min_upload_date"),
                             max_date=num("max_upload_date"))
        if q.get("sort", "date-posted-desc") == "date-posted-desc":  # Flickr's default for searches
            hits = hits[::-1]
        per_page = max(1, min(500, num("per_page") or 100))
        page = max(1, num("page") or 1)
        total = len(hits)
        pages = math.ceil(total / per_page) if total else 0
        served = hits[: self.cap]
        last_page = max(1, math.ceil(len(served) / per_page))
        shown = min(page, last_page)  # past the cap Flickr keeps answering with the last page it serves
        chunk = served[(shown - 1) * per_page: shown * per_page]
        if self.faults.duplicate_across_pages and shown > 1:
            chunk = [served[(shown - 1) * per_page - 1]] + chunk
        extras = set((q.get("extras") or "").replace(" ", "").split(","))
        return {"photos": {"page": page, "pages": pages, "perpage": per_page, "total": total,
                           "photo": [self._photo_json(p, extras) for p in chunk]}, "stat": "ok"}

    def _photo_json(self, p: FakePhoto, extras: set[str]) -> dict:
        d: dict = {"id": p.id, "owner": p.owner, "secret": "abc123", "server": "65535", "farm": 66, "title": p.title,
                   "ispublic": 1, "isfriend": 0, "isfamily": 0}
        if "license" in extras:
            d["license"] = str(self.license_id(self.license_of(p.id)))
        if "date_upload" in extras:
            d["dateupload"] = str(p.dateupload)
        if "owner_name" in extras:
            d["ownername"] = p.ownername
        if "original_format" in extras:
            d["originalformat"] = "jpg"
        if "o_dims" in extras:
            d["o_width"], d["o_height"] = "224", "80"
        if "tags" in extras:
            d["tags"] = " ".join(p.tags)
        if "url_o" in extras and p.has_url_o:
            d.update(url_o=self.image_url(p.id), width_o=224, height_o=80)
        return d


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeFlickr
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str, *, headers: dict | None = None,
              send_bytes: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if send_bytes is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(body if send_bytes is None else body[:send_bytes])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def _params(self) -> dict[str, str]:
        parsed = urlparse(self.path)
        params = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
        return params

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        path = urlparse(self.path).path
        if path.rstrip("/") == "/services/rest":
            self._rest()
        elif path.startswith("/img/"):
            self._image(path)
        else:
            self._send(404, b"not found", "text/plain")

    def _rest(self) -> None:
        fake = self.server_fake
        params = self._params()
        method = params.get("method", "")
        with fake.lock:
            fake.calls.append((fake.clock(), method, params))
            n = len(fake.calls)
        fault = fake.rest_fault(n)
        if fault == "slow":
            time.sleep(fake.faults.slow_s)
        elif fault in ("500", "503"):
            self._send(int(fault), b"<html>Service Unavailable</html>", "text/html")
            return
        elif fault == "429":
            self._send(429, b"Too Many Requests", "text/plain",
                       headers={"Retry-After": f"{fake.faults.retry_after_s:g}"})
            return
        auth = self.headers.get("Authorization", "")
        key = params.get("api_key") or (re.search(r'oauth_consumer_key="([^"]*)"', auth) or [None, None])[1]
        if key != fake.api_key:
            answer = {"stat": "fail", "code": 100, "message": "Invalid API Key (Key has invalid format)"}
        elif fault == "105":
            answer = {"stat": "fail", "code": 105, "message": "Service currently unavailable"}
        else:
            answer = fake.answer(method, params)
        body = json.dumps(answer).encode()
        if params.get("nojsoncallback") != "1" and params.get("format") == "json":
            body = b"jsonFlickrApi(" + body + b")"
        if fault == "garbled":
            body = body[: max(1, len(body) // 2)]
        self._send(200, body, "application/json")

    def _image(self, path: str) -> None:
        fake = self.server_fake
        m = re.fullmatch(r"/img/(\w+?)_(o|s)\.jpg", path)
        if not m or m.group(1) not in fake.by_id or m.group(1) in fake.deleted:
            self._send(404, b"not found", "text/plain")
            return
        pid = m.group(1)
        with fake.lock:
            fake.downloads[pid] += 1
            pending = fake._pending_image_faults.get(pid)
            fault = pending.pop(0) if pending else fake.faults.image_permanent.get(pid)
        if fault == "slow":
            time.sleep(fake.faults.slow_s)
        if fault in ("500", "404"):
            self._send(int(fault), b"error", "text/plain")
            return
        if fault == "429":
            self._send(429, b"slow down", "text/plain", headers={"Retry-After": f"{fake.faults.retry_after_s:g}"})
            return
        body = b"" if fault == "empty" else stereo_jpeg(int(pid))
        if fault == "truncate":
            self._send(200, body, "image/jpeg", send_bytes=len(body) // 2)
            return
        if fault == "trickle":  # half the body, a pause of slow_s, then the rest
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(fake.faults.slow_s)
                self.wfile.write(body[len(body) // 2:])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
        self._send(200, body, "image/jpeg")
        with fake.lock:
            fake.served[pid] += 1


def default_faults(photos: list[FakePhoto]) -> Faults:
    """A mix of every fault, for manual tries (``--faults``)."""
    ids = [p.id for p in photos]
    return Faults(rest_every={"500": 7, "429": 11, "garbled": 13, "105": 17}, duplicate_across_pages=True,
                  getsizes_fail=set(ids[5:6]), image_faults={i: ["truncate"] for i in ids[10:13]},
                  image_permanent={ids[20]: "404", ids[21]: "truncate"}, retry_after_s=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fake Flickr REST API + image host on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--photos", type=int, default=1200)
    parser.add_argument("--api-key", default="fake-key")
    parser.add_argument("--faults", action="store_true", help="inject 500/429/garbled answers and bad images")
    args = parser.parse_args(argv)
    photos = make_photos(args.photos, no_url_o_every=10)
    fake = FakeFlickr(photos, api_key=args.api_key, faults=default_faults(photos) if args.faults else None)
    fake.start(args.port)
    print(f"fake Flickr with {len(photos)} photos at {fake.rest_url}\n"
          f"  export REDWEB_FLICKR_REST_URL={fake.rest_url} FLICKR_API_KEY={args.api_key} FLICKR_API_SECRET=x\n"
          "  Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
