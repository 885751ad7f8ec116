"""Fail closed when the audit store goes away, and recover when it returns.

While the database cannot be reached nothing may leave the process whose intent
is not in the log, so trading is HALTED (by `system:audit-store`, with the
reason), as the store's own cause (`TradingCause.AUDIT_STORE`). When the store
is healthy again that cause is cleared, and only that one: a halt an operator
ordered, or a breaker's reduction, never clears by itself.
"""

from __future__ import annotations

import logging
import queue
import threading

from audit.records import EventStore
from domain.errors import DomainError
from domain.risk import TradingCause, TradingState
from engines.core import Core

log = logging.getLogger(__name__)

HALTED_BY = "system:audit-store"


class StoreOutageGuard:
    """Listens to the store's health and halts/resumes trading through the core.

    The store calls listeners from its writer thread, which must never wait for
    the sequencer (the sequencer may itself be waiting for the writer in a
    flush), so changes are handed to a thread of our own and applied in order.
    """

    def __init__(self, core: Core, store: EventStore) -> None:
        self._core = core
        self._changes: queue.SimpleQueue[tuple[bool, str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-outage", daemon=True)
        self._thread.start()
        store.add_health_listener(lambda healthy, reason: self._changes.put((healthy, reason)))

    def close(self) -> None:
        self._changes.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while (change := self._changes.get()) is not None:
            healthy, reason = change
            try:
                self._apply(healthy, reason)
            except DomainError:
                log.exception("could not apply audit store health change")

    def _apply(self, healthy: bool, reason: str) -> None:
        # The store's own cause: its recovery clears it and nothing else, so an
        # operator's halt or a breaker's reduction stays.
        if not healthy:
            log.error("audit store unavailable, halting trading: %s", reason)
            state, why = TradingState.HALTED, f"audit store unavailable: {reason}"
        else:
            state, why = TradingState.ACTIVE, "audit store recovered"
        change = self._core.set_trading_state(state, HALTED_BY, why, cause=TradingCause.AUDIT_STORE)
        if healthy and change.changed:
            log.warning("audit store is back; its halt is lifted")
