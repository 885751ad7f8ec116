"""Faults the fake Alpaca's REST front can inject, one per request (`FakeAlpaca.fail_next`).

Two families, and the difference is the point of every test that uses them:
- refused before anything happens (`refuse`, `server_error`, `rate_limited`): no order exists;
- the request takes effect, then the answer goes wrong (`after_accept`, `hang`, `drop`): the
  order exists (and its stream events were sent) although the client saw a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from tests.fakes.alpaca_wire import Reply, error_body


class FaultKind(str, Enum):
    """When the fault strikes relative to the request's effect."""

    REFUSE = "refuse"  # answer `reply` instead of processing the request
    AFTER_ACCEPT = "after_accept"  # process the request, then answer `reply` instead
    HANG = "hang"  # process the request, then wait `seconds` before answering it
    DROP = "drop"  # process the request, then close the connection without an answer


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    reply: Reply | None = None
    seconds: float = 0.0


def refuse(status: int, code: int | None, message: str, **extra: Any) -> Fault:
    """Answer with Alpaca's error document before creating anything, e.g.
    `refuse(403, 40310000, "insufficient buying power", buying_power="0")`,
    `refuse(403, 40310100, "trade denied due to pattern day trading protection")`,
    `refuse(401, None, "unauthorized.")` (a body without a code)."""
    return Fault(FaultKind.REFUSE, Reply(status, error_body(code, message, **extra)))


def server_error(status: int = 500) -> Fault:
    """A 5xx before the request takes effect (alpaca-py does not retry 500/502/503)."""
    return Fault(FaultKind.REFUSE, Reply(status, error_body(50010000, "internal server error")))


def rate_limited() -> Fault:
    """429 before anything happens. alpaca-py retries 429 by itself after sleeping 3 s.
    (The body's code is this fake's guess; Alpaca's 429 body is not documented.)"""
    return Fault(FaultKind.REFUSE, Reply(429, error_body(42910000, "rate limit exceeded")))


def after_accept(status: int = 504, body: str = "<html>gateway timeout</html>") -> Fault:
    """The request takes effect (an order is created and its events sent), then a gateway error
    with a non-JSON body comes back. alpaca-py re-POSTs by itself on 504 and 429."""
    return Fault(
        FaultKind.AFTER_ACCEPT,
        Reply(status, raw=body.encode(), content_type="text/html; charset=utf-8"),
    )


def hang(seconds: float) -> Fault:
    """The request takes effect, then the answer is held back `seconds` (longer than the
    client's timeout: it never arrives in time). `FakeAlpaca.close()` cuts the wait short."""
    return Fault(FaultKind.HANG, seconds=seconds)


def drop() -> Fault:
    """The request takes effect, then the connection is closed with no answer
    (requests raises `ConnectionError('Connection aborted.', RemoteDisconnected(...))`)."""
    return Fault(FaultKind.DROP)
