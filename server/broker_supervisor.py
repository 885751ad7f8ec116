"""Keeps the core's view of the broker true, from a thread of its own (never
while the sequencer is held: sweeping is network I/O).

* **Reconciliation.** At start-up, after the broker's event stream reconnects
  (or while it is down), and every TRADING_BROKER_SWEEP_SECONDS, the broker's
  REST state is swept and reconciled as an input (`Core.sweep`): the stream is
  a hint, REST is the truth.
* **Health as a cause of halt.** While the broker does not answer, its stream
  has been down past the grace period, an order stays unresolved after every
  lookup, or the start-up reconciliation has not run yet, trading is HALTED as
  the broker's own cause (`TradingCause.BROKER`, by `system:broker`); when the
  broker answers and has been swept, that cause is cleared, and only that one:
  an operator's halt, the audit store's, or a breaker's reduction stays.
* **Order timeouts.** A working order older than its time in force's timeout
  (TRADING_ORDER_TIMEOUTS) is cancelled, by `system:order-timeout`.
* **The lease.** If the trading lease is lost (its database connection died:
  another instance may hold it now), trading is HALTED by `system:lease` as an
  operator's halt, which only a person lifts once they know which instance trades.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from brokers.base import BrokerConfigError, BrokerUnavailable
from domain.errors import DomainError
from domain.orders import OrderStatus, TimeInForce
from domain.risk import TradingCause, TradingState
from engines.core import Core

if TYPE_CHECKING:  # a backtest builds a core with no lease, and no SQL to import
    from audit.lease import Lease

log = logging.getLogger(__name__)

CHANGED_BY = "system:broker"
TIMEOUT_BY = "system:order-timeout"
LEASE_BY = "system:lease"
DOWN_SWEEP_SECONDS = 5.0
"""While the broker is unhealthy it is swept this often (or as often as the
periodic sweep, if that is sooner), so recovery is noticed quickly."""
WORKING = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})


def parse_order_timeouts(text: str) -> dict[TimeInForce, timedelta]:
    """'DAY=3600,GTC=86400' -> {DAY: 1 h, GTC: 1 day}; 0 or absent: never."""
    timeouts: dict[TimeInForce, timedelta] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, seconds = part.partition("=")
        try:
            tif = TimeInForce(name.strip().upper())
            value = float(seconds)
        except ValueError:
            raise BrokerConfigError(
                f"TRADING_ORDER_TIMEOUTS: {part!r:.40} is not TIF=SECONDS "
                f"(TIF one of {', '.join(t.value for t in TimeInForce)})"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise BrokerConfigError(f"TRADING_ORDER_TIMEOUTS: {part!r:.40} needs seconds >= 0")
        if value:
            timeouts[tif] = timedelta(seconds=value)
    return timeouts


class BrokerSupervisor:
    def __init__(
        self,
        core: Core,
        *,
        sweep_every_s: float = 30.0,
        order_timeouts: dict[TimeInForce, timedelta] | None = None,
        interval_s: float = 1.0,
        lease: Lease | None = None,
    ) -> None:
        self._core = core
        self._lease = lease
        self._lease_lost = False
        self._sweep_every_s = sweep_every_s
        self._timeouts = order_timeouts or {}
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._reconciled = False
        self._sweep_failed = ""
        self._last_sweep = -math.inf
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="broker-supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check()
            except DomainError:
                log.exception("broker supervisor: could not apply a change")

    def check(self) -> None:
        """One round: sweep if one is due, then apply the broker's health, then
        cancel working orders that have timed out."""
        execution = self._core.execution
        reason = self._sweep_reason()
        if reason:
            self._last_sweep = time.monotonic()
            try:
                found = self._core.sweep(reason)
            except BrokerUnavailable as exc:
                self._sweep_failed = str(exc)
                log.error("broker %s: sweep (%s) failed: %s", execution.broker_name, reason, exc)
            else:
                self._reconciled = True
                self._sweep_failed = ""
                log.info("broker %s swept: %s", execution.broker_name, found.summary)
        self._apply_health()
        self._time_out_orders()
        self._watch_lease()

    def _watch_lease(self) -> None:
        if self._lease is None or self._lease_lost or self._lease.still_held():
            return
        self._lease_lost = True
        log.critical("the trading lease %r is lost: halting trading", self._lease.key)
        self._core.set_trading_state(
            TradingState.HALTED,
            LEASE_BY,
            "the trading lease was lost (its database connection died): another instance "
            "may be trading this log; lift this halt once you know which one trades",
        )

    def _sweep_reason(self) -> str:
        if not self._reconciled:
            return "start-up reconciliation"
        gap = self._core.execution.gap_reason
        if gap:
            return gap
        elapsed = time.monotonic() - self._last_sweep
        if self._sweep_failed or not self._core.execution.broker_health().healthy:
            if elapsed >= min(self._sweep_every_s, DOWN_SWEEP_SECONDS):
                return "the broker is unhealthy: sweeping until it recovers"
            return ""
        return "periodic sweep" if elapsed >= self._sweep_every_s else ""

    def _apply_health(self) -> None:
        execution = self._core.execution
        health = execution.broker_health()
        if not self._reconciled:
            problem = f"start-up reconciliation has not run: {self._sweep_failed or 'pending'}"
        elif self._sweep_failed:
            problem = f"the last sweep failed: {self._sweep_failed}"
        elif not health.healthy:
            problem = health.detail or "the broker is not answering"
        else:
            problem = ""
        with self._core.bus.reading():
            in_force = TradingCause.BROKER in self._core.risk.causes
        name = execution.broker_name
        if problem and not in_force:
            log.error("broker %s: %s; halting trading", name, problem)
            self._core.set_trading_state(
                TradingState.HALTED,
                CHANGED_BY,
                f"broker {name}: {problem}"[:300],
                cause=TradingCause.BROKER,
            )
        elif not problem and in_force:
            log.warning("broker %s answers again and is reconciled; its halt is lifted", name)
            self._core.set_trading_state(
                TradingState.ACTIVE,
                CHANGED_BY,
                f"broker {name} answers again and is reconciled",
                cause=TradingCause.BROKER,
            )

    def _time_out_orders(self) -> None:
        if not self._timeouts:
            return
        core = self._core
        with core.bus.reading():
            now = core.bus.clock.now()
            due = [
                o.order_id
                for o in core.execution.orders(open_only=True)
                if o.status in WORKING
                and (limit := self._timeouts.get(o.time_in_force)) is not None
                and now - o.created_at > limit
            ]
        for order_id in due:
            log.warning("order %s has been working too long: cancelling it", order_id)
            try:
                core.cancel_order(order_id, TIMEOUT_BY)
            except DomainError as exc:  # it ended meanwhile
                log.info("order %s not cancelled: %s", order_id, exc)
