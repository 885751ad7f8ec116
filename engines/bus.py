"""The sequencer and event bus: the one ordered stream every input goes through.

Every input (a market-data batch, an operator command, a broker report) runs
inside `Sequencer.process`, one at a time, under a single lock: that lock *is*
the sequencer, and it is why engines can be plain synchronous code. Each event
published is appended to the audit log first (which gives it its seq), then
dispatched depth-first to its subscribers, so a signal is fully decided and
executed before the next tick is looked at.

Market data is journaled per batch, and small batches are *staged* and
journaled together as one `MarketDataReceived`: as soon as a staged tick causes
a signal, when a thousand ticks are staged, before any other input is
sequenced, and before any flush. So a feed that sends one tick per message does
not pay a journal row per tick, the journal still precedes every effect, and a
replay of the journal stages and journals exactly the same records.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from audit.codec import to_new_record
from audit.records import EventStore
from domain.events import DomainEvent, Envelope, MarketDataReceived
from domain.market import MarketBatch
from engines.clock import Clock

Handler = Callable[[Envelope], None]
T = TypeVar("T")

_RECENT = 4096
JOURNAL_TICKS = 1000


class Sequencer:
    """Orders inputs, stamps events (seq, clock time, cause), journals then dispatches."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self.clock = clock
        self._lock = threading.RLock()
        self._handlers: defaultdict[type[Any], list[Handler]] = defaultdict(list)
        # Envelopes recently published, so execution can prove that a decision
        # it is handed really came through the journal (identity, not equality).
        self._recent: OrderedDict[int, Envelope] = OrderedDict()
        self._collectors: list[list[Envelope]] = []
        self._staged: list[MarketBatch] = []
        self._staged_ticks = 0
        self._staged_source = ""

    def subscribe(self, event_type: type[Any], handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def process(
        self, work: Callable[[], T], *, market_data: bool = False
    ) -> tuple[T, list[Envelope]]:
        """Run one input to completion; return its result and every event it caused.

        Any input other than market data first journals the staged market data,
        so the journal keeps the order in which inputs were really processed."""
        with self._lock:
            if not market_data:
                self.journal_market_data()
            collected: list[Envelope] = []
            self._collectors.append(collected)
            try:
                return work(), collected
            finally:
                self._collectors.pop()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the sequencer while reading engine state, so a reader never sees half an input."""
        with self._lock:
            yield

    def publish(self, event: DomainEvent, caused_by: int = 0) -> Envelope:
        """Journal the event, then hand it to its subscribers (depth first)."""
        at = self.clock.now()
        record = self._store.append(to_new_record(at, caused_by, event))
        envelope = Envelope(seq=record.seq, at=at, caused_by=caused_by, event=event)
        self._recent[record.seq] = envelope
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        for collected in self._collectors:
            collected.append(envelope)
        for handler in self._handlers.get(type(event), ()):
            handler(envelope)
        return envelope

    def next_seq(self) -> int:
        """The seq the next published event will get. Only meaningful inside
        `process`, where nothing else can publish first: it lets an event carry
        an id derived from its own seq (an analysis is `a<seq>`)."""
        return self._store.last_seq() + 1

    def is_journaled(self, envelope: Envelope) -> bool:
        """True only for an envelope this sequencer published (and so journaled)."""
        return self._recent.get(envelope.seq) is envelope

    def flush(self) -> None:
        """Make every published event durable before an effect leaves the process."""
        with self._lock:
            self.journal_market_data()
        self._store.flush()

    # --- market-data journal -------------------------------------------------------

    def stage_market_data(self, batch: MarketBatch, source: str) -> int:
        """Stage a batch for the journal; return the index its first tick will have
        in the journaled record."""
        if self._staged and source != self._staged_source:
            self.journal_market_data()
        offset = self._staged_ticks
        self._staged.append(batch)
        self._staged_ticks += len(batch)
        self._staged_source = source
        return offset

    @property
    def staged_ticks(self) -> int:
        return self._staged_ticks

    def journal_market_data(self) -> Envelope | None:
        """Journal the staged market data as one record (None when nothing is staged)."""
        if not self._staged:
            return None
        staged, self._staged, self._staged_ticks = self._staged, [], 0
        if len(staged) == 1:
            batch = staged[0]
        else:
            batch = MarketBatch(
                [s for b in staged for s in b.symbols],
                [p for b in staged for p in b.prices],
                [v for b in staged for v in b.volumes],
                [t for b in staged for t in b.timestamps_ns],
            )
        return self.publish(MarketDataReceived(batch, self._staged_source))
