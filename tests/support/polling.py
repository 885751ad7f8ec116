"""Waiting for what the service does in the background (a stream's ticks taken in,
a guard halting or resuming trading, a slot given back).

The tests poll rather than sleep a fixed time, so they are as fast as the machine
allows; the deadline only stops a broken run from hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from trading_sdk.client import TradingClient

POLL_SECONDS = 0.02


def wait_until(
    condition: Callable[[], object], within: float = 10.0, interval: float = POLL_SECONDS
) -> bool:
    """Poll `condition()` until it holds (True) or `within` seconds have passed (False)."""
    give_up = time.monotonic() + within
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(interval)
    return True


def wait_for(
    condition: Callable[[], object],
    what: str,
    within: float = 20.0,
    interval: float = POLL_SECONDS,
) -> None:
    """Poll until `condition()` holds; fail the test naming `what` if it never does."""
    if not wait_until(condition, within, interval):
        raise AssertionError(f"timed out waiting for {what}")


def wait_for_ticks(client: TradingClient, count: int, within: float = 30.0) -> None:
    """Until the service has taken in `count` ticks (a stream is asynchronous)."""
    wait_for(
        lambda: client.get_status().counters.market_events >= count,
        f"the service to take in {count} ticks",
        within,
    )
