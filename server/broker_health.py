"""Fail closed when the broker stops answering, and recover when it answers again.

While the broker is unhealthy no new order could be followed, so trading is
HALTED as the broker's own cause (`TradingCause.BROKER`, by `system:broker`);
when it is healthy again that cause is cleared, and only that one: an
operator's halt, the audit store's, or a breaker's reduction stays.

The broker is asked from a thread of our own, never while the sequencer is held
(asking may be network I/O), and the change goes through the core as an input.
"""

from __future__ import annotations

import logging
import threading

from domain.errors import DomainError
from domain.risk import TradingCause, TradingState
from engines.core import Core

log = logging.getLogger(__name__)

CHANGED_BY = "system:broker"


class BrokerHealthGuard:
    def __init__(self, core: Core, interval_s: float = 1.0) -> None:
        self._core = core
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._healthy = True
        self._thread = threading.Thread(target=self._run, name="broker-health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check()
            except DomainError:
                log.exception("could not apply a broker health change")

    def check(self) -> None:
        """Ask the broker once and apply a change of its health."""
        execution = self._core.execution
        try:
            healthy = execution.broker_healthy()
        except Exception:  # an adapter's failure to answer is the answer
            log.exception("broker %s health check failed", execution.broker_name)
            healthy = False
        if healthy is self._healthy:
            return
        self._healthy = healthy
        if healthy:
            log.warning("broker %s answers again; its halt is lifted", execution.broker_name)
            state, reason = TradingState.ACTIVE, "broker answers again"
        else:
            log.error("broker %s is not answering, halting trading", execution.broker_name)
            state, reason = TradingState.HALTED, f"broker {execution.broker_name} is not answering"
        self._core.set_trading_state(state, CHANGED_BY, reason, cause=TradingCause.BROKER)
