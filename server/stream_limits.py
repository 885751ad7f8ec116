"""Capacity limits, so that no client can starve another (DESIGN.md invariant 8).

grpcio's sync server runs each call on a worker thread for as long as the
servicer's behaviour runs, so an idle long-lived call holds a thread for as
long as it stays open: with a fixed pool, a handful of idle SubscribeEvents
left nothing for the health check. Three things keep capacity for everyone:

* `StreamLimiter`, a step of the interceptor chain, counts every streaming call (client-, server- or
  bidi-streaming: StreamMarketData, SubscribeEvents, QueryAudit, and the
  standard health Watch and reflection streams, which hold a thread just the
  same) per principal and in total, and refuses one over a cap at once with
  RESOURCE_EXHAUSTED, reason STREAM_LIMIT.
* `Capacity` sizes the worker pool to one thread per stream allowed plus a
  reserve that only unary calls can use (see its docstring).
* `ConnectionLimits` caps HTTP/2 connections and closes dead, idle and
  never-handshaken ones (see its docstring for the grpc core arguments).

A slot is taken when the call's behaviour starts on its worker thread and
given back when the call ends, however it ends: the behaviour returns or
raises, its response iterator is exhausted or closed, or gRPC reports the call
over (cancelled, deadline, client or connection gone), whichever comes first;
giving it back twice is harmless.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from domain.errors import ResourceExhausted

STREAM_LIMIT = "STREAM_LIMIT"
# The bucket of streams opened without a valid token, which only the open
# services (health, reflection) accept: they share one principal's allowance,
# so anonymous callers can crowd out each other but never a named principal.
ANONYMOUS = "(anonymous)"
# Unary calls that may wait for a thread, per reserved thread, before the
# server answers RESOURCE_EXHAUSTED at once instead of queueing them.
QUEUED_PER_UNARY_WORKER = 4


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many threads the server has and how many calls it admits.

    The pool has one thread per stream the total cap allows plus
    `unary_workers` more. Streams can never take more than `max_streams`
    threads (a stream over the cap is refused as soon as it starts, which takes
    a reserved thread for a moment only), so at least `unary_workers` threads
    are always there for health checks, GetStatus and the other unary calls,
    whatever the streams do. (A stream's slot can come back a moment before its
    thread does, e.g. SubscribeEvents notices a cancel within 0.25 s; the
    reserve absorbs that.)

    grpc's `maximum_concurrent_rpcs` alone could not do this: it counts unary
    calls and streams alike, so streams could fill it and the health check
    would be refused. It is set here, above the pool size, for another reason:
    it bounds how many calls may wait for a thread (memory), and past it a
    call is refused at once with RESOURCE_EXHAUSTED rather than queued until
    its deadline expires.
    """

    max_streams: int
    max_streams_per_principal: int
    unary_workers: int

    @property
    def worker_threads(self) -> int:
        return self.max_streams + self.unary_workers

    @property
    def max_concurrent_rpcs(self) -> int:
        return self.worker_threads + QUEUED_PER_UNARY_WORKER * self.unary_workers


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The grpc core server arguments that bound connections, each checked by
    experiment on grpcio 1.85 (tests/edge/test_resource_limits.py):

    * `grpc.max_allowed_incoming_connections`: a connection over the cap is
      accepted and closed at once. Connections still in the handshake count,
      hence a short `grpc.server_handshake_timeout_ms`: a socket that never
      speaks HTTP/2 is closed after it instead of holding a place.
    * `grpc.keepalive_time_ms`, with `grpc.keepalive_permit_without_calls`: the
      server pings every connection that has been quiet that long, with or
      without calls; `grpc.http2.max_pings_without_data` 0 keeps it pinging a
      stream that sends nothing for hours. A live client answers the ping (the
      HTTP/2 stack does it), so a quiet but alive stream stays open.
    * The ping's deadline: in grpcio 1.85 an unanswered keepalive ping closes
      the connection after `grpc.http2.ping_timeout_ms` (default 60 s);
      `grpc.keepalive_timeout_ms` alone did not close it. Both are set to
      `keepalive_timeout_s`. Closing the connection cancels its calls, which
      gives their stream slots back: this is how a client that vanished
      without closing its socket (host down, network cut) stops holding one.
    * `grpc.max_connection_idle_ms`: a connection with no call for that long
      is sent GOAWAY; a client channel reconnects by itself on its next call.
    * `grpc.max_receive_message_length`: grpc's own default (4 MiB), spelled
      out so that the bound on a request's memory is visible and configurable.
    """

    max_connections: int
    keepalive_time_s: float
    keepalive_timeout_s: float
    idle_s: float
    handshake_timeout_s: float
    max_message_bytes: int

    def grpc_options(self) -> list[tuple[str, int]]:
        timeout_ms = _ms(self.keepalive_timeout_s)
        return [
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            ("grpc.server_handshake_timeout_ms", _ms(self.handshake_timeout_s)),
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time_s)),
            ("grpc.keepalive_timeout_ms", timeout_ms),
            ("grpc.http2.ping_timeout_ms", timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_connection_idle_ms", _ms(self.idle_s)),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class StreamSlot:
    """One open stream's place under the caps; `release` is idempotent."""

    __slots__ = ("_limiter", "_released", "principal")

    def __init__(self, limiter: StreamLimiter, principal: str) -> None:
        self._limiter = limiter
        self._released = False
        self.principal = principal

    def release(self) -> None:
        self._limiter._release(self)


class StreamLimiter:
    """Counts open streams per principal and in total, under one lock."""

    def __init__(self, capacity: Capacity) -> None:
        self._max_total = capacity.max_streams
        self._max_per_principal = capacity.max_streams_per_principal
        self._lock = threading.Lock()
        self._total = 0
        self._per_principal: dict[str, int] = {}

    def acquire(self, principal: str, method: str) -> StreamSlot:
        """A slot for a new stream, or ResourceExhausted (reason STREAM_LIMIT)
        saying which cap was hit and how many streams are open."""
        with self._lock:
            mine = self._per_principal.get(principal, 0)
            if mine >= self._max_per_principal:
                raise _refusal(
                    f"{principal} already has {mine} long-lived calls open, the most one "
                    f"principal may (TRADING_MAX_STREAMS_PER_PRINCIPAL={self._max_per_principal})"
                    f"; end one (cancel a SubscribeEvents, QueryAudit or StreamMarketData "
                    f"call) before opening {method}, or give each program its own principal "
                    "in TRADING_TOKENS_FILE",
                    "per_principal",
                    principal,
                    method,
                    mine,
                    self._max_per_principal,
                )
            if self._total >= self._max_total:
                raise _refusal(
                    f"the service already has {self._total} long-lived calls open, the most it "
                    f"allows (TRADING_MAX_STREAMS={self._max_total}); {principal} has {mine} of "
                    f"them. Retry {method} later, once some end",
                    "total",
                    principal,
                    method,
                    self._total,
                    self._max_total,
                )
            self._total += 1
            self._per_principal[principal] = mine + 1
        return StreamSlot(self, principal)

    def _release(self, slot: StreamSlot) -> None:
        with self._lock:
            if slot._released:
                return
            slot._released = True
            self._total -= 1
            left = self._per_principal[slot.principal] - 1
            if left:
                self._per_principal[slot.principal] = left
            else:
                del self._per_principal[slot.principal]  # principals come and go: no growth

    def open_streams(self, principal: str | None = None) -> int:
        """Streams open now, of one principal or in total."""
        with self._lock:
            if principal is None:
                return self._total
            return self._per_principal.get(principal, 0)


def _refusal(
    message: str, limit: str, principal: str, method: str, open_now: int, cap: int
) -> ResourceExhausted:
    return ResourceExhausted(
        message,
        reason=STREAM_LIMIT,
        metadata={
            "limit": limit,
            "principal": principal,
            "method": method,
            "open_streams": str(open_now),
            "max_streams": str(cap),
        },
    )
