"""Per-principal rate limits (TRADING_RATE_LIMIT_PER_SECOND, TRADING_RATE_LIMIT_BURST):
a token bucket per principal, one token per call (a stream is one call however
long it runs), refused with RESOURCE_EXHAUSTED and, in a google.rpc.RetryInfo,
how long until the next call would be admitted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from domain.errors import ResourceExhausted

RATE_LIMITED = "RATE_LIMITED"
# Principals idle long enough to have a full bucket are forgotten, so the table
# stays as small as the set of recently active principals.
_SWEEP_EVERY = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._calls = 0

    def take(self, principal: str) -> None:
        """Admit one call of `principal`, or raise ResourceExhausted (RATE_LIMITED)."""
        now = self._clock()
        with self._lock:
            self._calls += 1
            if self._calls % _SWEEP_EVERY == 0:
                self._forget_idle(now)
            bucket = self._buckets.get(principal)
            if bucket is None:
                bucket = self._buckets[principal] = _Bucket(float(self.burst), now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / self.per_second
        raise ResourceExhausted(
            f"{principal} is over its rate limit of {self.per_second:g} calls a second "
            f"(bursts of {self.burst}; TRADING_RATE_LIMIT_PER_SECOND, TRADING_RATE_LIMIT_BURST); "
            f"retry in {wait:.3f} s",
            reason=RATE_LIMITED,
            metadata={
                "principal": principal,
                "per_second": f"{self.per_second:g}",
                "burst": str(self.burst),
                "retry_after_ms": str(max(1, round(wait * 1000))),
            },
            retry_after_seconds=wait,
        )

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.per_second
        idle = [p for p, b in self._buckets.items() if now - b.updated >= full_after]
        for principal in idle:
            del self._buckets[principal]

    def tracked(self) -> int:
        """Principals with a bucket now (for tests of the table's bound)."""
        with self._lock:
            return len(self._buckets)
