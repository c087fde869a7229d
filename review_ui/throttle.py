"""Sign-in throttling: per account name and per client address, exponential lockout, logged.

After ``free`` failed sign-ins for a key (an account name, or a client address) within ``window_s``,
that key is locked for ``base_s * 2**(failures - free)`` seconds (capped at ``max_s``); a sign-in
attempt during a lockout is refused before any password is checked. A success clears the account's
count (not the address's: one valid account must not reset an address that sprays others).
State is per server process (``redweb review`` runs one); it resets when the server restarts.
The numbers come from the ``review`` settings (``login_free_attempts``, ``login_lockout_s``,
``login_lockout_max_s``: tasks/review/settings.py), read by :meth:`LoginThrottle.from_config`.
"""
from __future__ import annotations

import logging
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
    free: int
    base_s: float
    max_s: float
    window_s: float = 3600.0  # failures older than this are forgotten (not a setting)
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, _Failures] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: ReviewConfig) -> LoginThrottle:
        """The throttle with the sign-in numbers of the ``review`` settings."""
        return cls(free=config.login_free_attempts, base_s=config.login_lockout_s,
                   max_s=config.login_lockout_max_s)

    @staticmethod
    def keys(name: str, client: str | None) -> list[str]:
        return [f"account:{name.strip().lower()[:128]}", f"address:{client or '?'}"]

    def wait_s(self, name: str, client: str | None) -> float:
        """Seconds until a sign-in for ``name`` from ``client`` is allowed again (0: allowed now)."""
        now = self.clock()
        with self._lock:
            waits = [f.locked_until - now for k in self.keys(name, client) if (f := self._keys.get(k))]
        return max([0.0, *waits])

    def failed(self, name: str, client: str | None) -> None:
        now = self.clock()
        with self._lock:
            for key in self.keys(name, client):
                f = self._keys.setdefault(key, _Failures())
                if now - f.last > self.window_s:
                    f.count = 0
                f.count, f.last = f.count + 1, now
                if f.count >= self.free:
                    lock = min(self.base_s * 2 ** (f.count - self.free), self.max_s)
                    f.locked_until = now + lock
                    log.warning("sign-in: %d failures for %s; locked for %.0f s", f.count, key, lock)
            if len(self._keys) > 100_000:  # bound memory under a spray of names: forget the oldest
                for key in sorted(self._keys, key=lambda k: self._keys[k].last)[:50_000]:
                    del self._keys[key]
        log.info("sign-in failed for %r from %s", name[:128], client)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._keys.pop(self.keys(name, None)[0], None)
