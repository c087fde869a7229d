"""Sign-in throttling: per (account, address), per account and per address, exponential lockout.

Three counters, each with its own number of free failures (the ``review`` settings,
tasks/review/settings.py, read by :meth:`LoginThrottle.from_config`):

* ``(account, address)`` (``login_free_attempts``): one person mistyping locks only themselves;
* ``account`` (``login_free_attempts_account``): guessing one account's password from many addresses;
* ``address`` (``login_free_attempts_address``, higher): spraying many names from one address, set
  high enough that colleagues behind one office NAT are not locked out by one person's typos.

After ``free`` failures for a key within ``window_s`` that key is locked for
``base_s * 2**(failures - free)`` seconds (capped at ``max_s``); an attempt during a lockout is
refused before any password is checked. A success clears the account's and the pair's counts (not
the address's: one valid account must not reset an address that sprays others).
The log never holds a typed name (people type passwords into the name field): a short keyed hash
(:meth:`LoginThrottle.tag`) tells repeated names apart without revealing them.
State is per server process (``redweb review`` runs one); it resets when the server restarts.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from tasks.review.settings import ReviewConfig

log = logging.getLogger(__name__)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    free: int  # per (account, address)
    base_s: float
    max_s: float
    free_account: int | None = None  # None: the same as ``free``
    free_address: int | None = None
    window_s: float = 3600.0  # failures older than this are forgotten (not a setting)
    clock: Callable[[], float] = time.monotonic
    log_key: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    _keys: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: ReviewConfig, *, log_key: bytes | None = None) -> LoginThrottle:
        """The throttle with the sign-in numbers of the ``review`` settings; ``log_key`` keys the
        name hashes in the log (the app's secret, so they stay comparable across restarts)."""
        extra = {"log_key": log_key} if log_key else {}
        return cls(free=config.login_free_attempts, base_s=config.login_lockout_s,
                   max_s=config.login_lockout_max_s, free_account=config.login_free_attempts_account,
                   free_address=config.login_free_attempts_address, **extra)

    def tag(self, name: str) -> str:
        """A short keyed hash of a typed name for the log: the same name gives the same tag, and the
        tag does not give the name (or a password typed into the name field) away."""
        norm = name.strip().lower()[:128].encode()
        return "name#" + hmac.new(self.log_key, norm, hashlib.sha256).hexdigest()[:8]

    def _limits(self, name: str, client: str | None) -> list[tuple[str, int]]:
        """(counter key, free failures) for a sign-in of ``name`` from ``client``."""
        account = name.strip().lower()[:128]
        address = client or "?"
        return [(f"pair:{account}\x00{address}", self.free),
                (f"account:{account}", self.free_account or self.free),
                (f"address:{address}", self.free_address or self.free)]

    def wait_s(self, name: str, client: str | None) -> float:
        """Seconds until a sign-in for ``name`` from ``client`` is allowed again (0: allowed now)."""
        now = self.clock()
        with self._lock:
            waits = [f.locked_until - now for k, _ in self._limits(name, client) if (f := self._keys.get(k))]
        return max([0.0, *waits])

    def _describe(self, key: str) -> str:
        kind, _, rest = key.partition(":")
        if kind == "address":
            return f"address {rest}"
        account, _, address = rest.partition("\x00")
        return f"{self.tag(account)}" + (f" from {address}" if kind == "pair" else " (any address)")

    def failed(self, name: str, client: str | None) -> None:
        now = self.clock()
        with self._lock:
            for key, free in self._limits(name, client):
                f = self._keys.setdefault(key, _Failures())
                if now - f.last > self.window_s:
                    f.count = 0
                f.count, f.last = f.count + 1, now
                if f.count >= free:
                    lock = min(self.base_s * 2 ** (f.count - free), self.max_s)
                    f.locked_until = now + lock
                    log.warning("sign-in: %d failures for %s; locked for %.0f s", f.count, self._describe(key), lock)
            if len(self._keys) > 100_000:  # bound memory under a spray of names: forget the oldest
                for key in sorted(self._keys, key=lambda k: self._keys[k].last)[:50_000]:
                    del self._keys[key]
        log.info("sign-in failed for %s from %s", self.tag(name), client)

    def succeeded(self, name: str, client: str | None = None) -> None:
        """Clear the account's count and, with ``client``, the (account, address) pair's."""
        with self._lock:
            for key, _ in self._limits(name, client)[:2]:
                self._keys.pop(key, None)
