"""The sequencer and event bus: the one ordered stream every input goes through.

Every input (a market-data message, an operator command, a broker report) runs
inside the sequencer, one at a time, under a single lock: that lock *is* the
sequencer, and it is why engines can be plain synchronous code. Each event
published is appended to the audit log first (which gives it its seq), then
dispatched depth-first to its subscribers, so a signal is fully decided and
executed before the next tick is looked at.

Five promises live here and nowhere else:

* **Time is part of the input.** The clock is read once when an input begins
  (`Clock.begin_input`); under the wall clock every event of the input carries
  that stamp, and the stamp is journaled with the input, so a replay stamps it
  the same. Under the event clock the input's ticks move time, as journaled.
* **The journal precedes every effect.** Market data is journaled by the
  sequencer, never by an engine. A message of more than `STAGE_TICKS` ticks is
  journaled before any engine sees it, in records of at most `CHUNK_TICKS`
  ticks. Smaller messages of one stream are *staged* and journaled together as
  one record, with the boundaries and stamps of the messages in it: before any
  event the staged ticks cause is published, when `STAGE_TICKS` are staged,
  before any other input, and before any flush. So a feed that sends one tick
  per message does not pay a journal row per tick, and a replay feeds the same
  messages, with the same stamps, through the same code.
* **An input runs whole or is refused before it changes anything.** A message
  larger than the contract's `MAX_TICKS_PER_MESSAGE`, or one that arrives while
  the audit store's backlog is full, is refused before any engine sees it. An
  admitted input is never cut short by the store: the backlog cap is enforced
  at admission only (`EventStore.room`), so what an input publishes always fits.
  The caller may add its own admission check (`admit`, run under the lock before
  anything is staged or journaled): under the event clock the core refuses a
  tick older than the last one accepted for its symbol.
* **No input waits on the world.** What an input wants done outside the core
  (a request to a real broker) is an *effect* (`after_input`): it runs once the
  input is over and the sequencer is released, and whatever the world answers
  comes back as an input of its own, journaled before it is applied.
* **A feed's message is processed once.** A feed that names itself (`feed_id`)
  numbers its messages; the sequencer keeps the last number accepted per feed id
  and drops a message whose number is not above it (`DuplicateMessage`) before
  anything is staged, journaled or applied. The numbers are journaled with the
  ticks (`MarketDataReceived.feed_id`, `message_sequences`), so a restart
  (`restore_feed`) and a replay know them too.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from audit.codec import to_new_record
from audit.records import EventStore
from domain.errors import InvalidInput, Unavailable
from domain.events import DomainEvent, Envelope, MarketDataReceived
from domain.market import MarketBatch
from engines.clock import Clock

log = logging.getLogger(__name__)
Handler = Callable[[Envelope], None]
T = TypeVar("T")

STAGE_TICKS = 1000
"""Messages up to this size are staged; a record of staged ticks holds at most this many."""
CHUNK_TICKS = 10_000
"""A large message is journaled in records of at most this many ticks (well under
the audit store's payload limit whatever the symbols)."""
MAX_TICKS_PER_MESSAGE = 100_000
"""The contract's limit on one market-data message (about what fits in gRPC's
default 4 MiB message); larger messages are refused whole."""


def message_too_large(ticks: int) -> InvalidInput:
    """The refusal of a market-data message of more than MAX_TICKS_PER_MESSAGE
    ticks (the edge asks before it reads one, the sequencer again)."""
    return InvalidInput(
        f"the message has {ticks} events; at most {MAX_TICKS_PER_MESSAGE} are "
        "accepted per message: split it",
        reason="MESSAGE_TOO_LARGE",
        metadata={"events": str(ticks), "limit": str(MAX_TICKS_PER_MESSAGE)},
    )


# Where a tick of the current message was journaled: (record seq, index in the record).
TickLocator = Callable[[int], tuple[int, int]]


class DuplicateMessage(Exception):
    """A feed's message whose sequence is not above the last one accepted for that
    feed: dropped before anything changed (not journaled, not applied)."""

    def __init__(self, feed_id: str, sequence: int, last_sequence: int) -> None:
        super().__init__(
            f"feed {feed_id!r}: message {sequence} was already accepted "
            f"(the last accepted is {last_sequence}); dropped"
        )
        self.feed_id = feed_id
        self.sequence = sequence
        self.last_sequence = last_sequence


class _Staged:
    """Market data of one stream (and feed) waiting to be journaled as one record."""

    __slots__ = ("batches", "feed_id", "key", "sequences", "source", "stamps", "starts", "ticks")

    def __init__(self, key: object, source: str, feed_id: str) -> None:
        self.key = key
        self.source = source
        self.feed_id = feed_id
        self.batches: list[MarketBatch] = []
        self.starts: list[int] = []
        self.stamps: list[int] = []
        self.sequences: list[int] = []
        self.ticks = 0


class Sequencer:
    """Orders inputs, stamps events (seq, clock time, cause), journals then dispatches."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self.clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        self._handlers: defaultdict[type[Any], list[Handler]] = defaultdict(list)
        self._collectors: list[list[Envelope]] = []
        self._staged: _Staged | None = None
        self._last_market_seq = 0
        self._feeds: dict[str, int] = {}  # feed id -> last message sequence accepted
        self._effects: deque[Callable[[], None]] = deque()
        self._draining = threading.Lock()

    def subscribe(self, event_type: type[Any], handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    # --- inputs --------------------------------------------------------------------

    def process(
        self, work: Callable[[], T], *, at_ns: int | None = None
    ) -> tuple[T, list[Envelope]]:
        """Run one input (not market data) to completion; return its result and every
        event it caused. Staged market data is journaled first, so the journal keeps
        the order in which inputs were really processed. `at_ns` stamps the input
        with a recorded time (a replay); otherwise the clock stamps it now."""
        with self._input(at_ns):
            self._journal_staged()
            return self._collect(work)

    def ingest(
        self,
        batch: MarketBatch,
        source: str,
        apply: Callable[[TickLocator], None],
        *,
        stream: object | None = None,
        journal_now: bool = False,
        at_ns: int | None = None,
        admit: Callable[[], None] | None = None,
        feed_id: str = "",
        sequence: int = 0,
    ) -> list[Envelope]:
        """Admit one market-data message, journal (or stage) it, then `apply` it.

        `apply` gets a locator: the (record seq, index) of a tick of this message,
        journaling staged ticks first if they are not yet. `stream` identifies the
        sender: only messages of one stream are staged together, so one stream's
        refusal can never take another's ticks with it. `journal_now` journals the
        message before returning even if it caused nothing. `admit` is the
        caller's own admission check, run under the lock before anything changes;
        it refuses by raising. `feed_id` and `sequence` (from 1) make the message
        processed once: one numbered no higher than the last accepted for the feed
        raises DuplicateMessage, having changed nothing."""
        ticks = len(batch)
        if ticks > MAX_TICKS_PER_MESSAGE:
            raise message_too_large(ticks)
        if feed_id and sequence < 1:
            raise InvalidInput(
                "a message names a feed but has no sequence: a feed that names itself "
                "numbers its messages 1, 2, 3, ...",
                reason="BAD_FEED_SEQUENCE",
            )
        key = stream if stream is not None else source
        with self._input(at_ns):
            if feed_id:
                last = self._feeds.get(feed_id, 0)
                if sequence <= last:
                    raise DuplicateMessage(feed_id, sequence, last)
            if admit is not None:
                admit()
            staged = self._staged
            if staged is not None and (
                staged.key != key or staged.source != source or staged.feed_id != feed_id
            ):
                self._journal_staged()
            self._admit(max(1, -(-ticks // CHUNK_TICKS)))  # the records it journals
            if feed_id:
                self._feeds[feed_id] = sequence
            stamp = self.clock.now_ns()
            if ticks > STAGE_TICKS:
                self._journal_staged()
                chunks = self._journal_chunks(batch, source, stamp, feed_id, sequence)

                def locate(index: int) -> tuple[int, int]:
                    return chunks[index // CHUNK_TICKS], index % CHUNK_TICKS

                _, caused = self._collect(lambda: apply(locate))
                return caused
            offset = self._stage(key, source, feed_id, sequence, batch, stamp)

            def locate_staged(index: int) -> tuple[int, int]:
                journaled = self._journal_staged()
                seq = journaled.seq if journaled is not None else self._last_market_seq
                return seq, offset + index

            def work() -> None:
                apply(locate_staged)
                current = self._staged
                if journal_now or (current is not None and current.ticks >= STAGE_TICKS):
                    self._journal_staged()

            _, caused = self._collect(work)
            return caused

    @contextmanager
    def _input(self, at_ns: int | None) -> Iterator[None]:
        """Hold the sequencer for one input; the outermost one stamps the clock and,
        once it has let go of the sequencer, runs the effects the input asked for."""
        self._lock.acquire()
        outermost = self._depth == 0
        try:
            if outermost:
                self.clock.begin_input(at_ns)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outermost:
                    self.clock.end_input()
        finally:
            self._lock.release()
            if outermost:
                self._run_effects()

    # --- effects -----------------------------------------------------------------------

    def after_input(self, effect: Callable[[], None]) -> None:
        """Run `effect` once the current input is over and the sequencer is released
        (call it inside an input). This is how engines reach the world: a request to
        a broker is never made while the sequencer is held, so no input ever waits
        on the network, and whatever the world answers comes back as an input of
        its own. Effects run in the order they were asked for, one at a time, on
        the thread of whichever input finishes first; an effect that raises is
        logged and the others still run."""
        self._effects.append(effect)

    def _run_effects(self) -> None:
        while self._effects:
            if not self._draining.acquire(blocking=False):
                return  # another thread is draining, and will see what we queued
            try:
                while self._effects:
                    effect = self._effects.popleft()
                    try:
                        effect()
                    except Exception:
                        log.exception("an effect of an input failed")
            finally:
                self._draining.release()

    def _collect(self, work: Callable[[], T]) -> tuple[T, list[Envelope]]:
        collected: list[Envelope] = []
        self._collectors.append(collected)
        try:
            return work(), collected
        finally:
            self._collectors.pop()

    def _admit(self, records: int) -> None:
        room = self._store.room()
        if room < records:
            raise Unavailable(
                "audit store unavailable: its backlog is full "
                f"({-room + records} rows over what it accepts), so no new input is "
                "accepted until the database catches up; nothing of this message was applied",
                reason="AUDIT_BACKLOG_FULL",
            )

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the sequencer while reading engine state, so a reader never sees half an input."""
        with self._lock:
            yield

    # --- feeds -----------------------------------------------------------------------

    def last_sequence(self, feed_id: str) -> int:
        """The last message sequence accepted for `feed_id` (0: none yet): where it resumes."""
        with self._lock:
            return self._feeds.get(feed_id, 0)

    def restore_feed(self, feed_id: str, sequence: int) -> None:
        """At start-up, from the journal: `feed_id` got up to `sequence` (never lowered)."""
        with self._lock:
            if sequence > self._feeds.get(feed_id, 0):
                self._feeds[feed_id] = sequence

    # --- events ----------------------------------------------------------------------

    def publish(self, event: DomainEvent, caused_by: int = 0) -> Envelope:
        """Journal the event, then hand it to its subscribers (depth first). Staged
        market data is journaled first: nothing it caused may precede it."""
        if self._staged is not None and not isinstance(event, MarketDataReceived):
            self._journal_staged()
        at = self.clock.now()
        record = self._store.append(to_new_record(at, caused_by, event))
        envelope = Envelope(seq=record.seq, at=at, caused_by=caused_by, event=event)
        for collected in self._collectors:
            collected.append(envelope)
        for handler in self._handlers.get(type(event), ()):
            handler(envelope)
        return envelope

    def next_seq(self) -> int:
        """The seq the next published event will get. Only meaningful inside an
        input, where nothing else can publish first: it lets an event carry an id
        derived from its own seq (an analysis is `a<seq>`). Staged ticks are
        journaled first, so the answer holds."""
        self._journal_staged()
        return self._store.last_seq() + 1

    def flush(self) -> None:
        """Make every published event durable before an effect leaves the process."""
        with self._lock:
            self._journal_staged()
        self._store.flush()

    # --- the market-data journal ------------------------------------------------------

    def _stage(
        self,
        key: object,
        source: str,
        feed_id: str,
        sequence: int,
        batch: MarketBatch,
        stamp: int,
    ) -> int:
        """Stage a message; return the index its first tick will have in the record."""
        staged = self._staged
        if staged is None:
            staged = self._staged = _Staged(key, source, feed_id)
        offset = staged.ticks
        staged.batches.append(batch)
        staged.starts.append(offset)
        staged.stamps.append(stamp)
        if feed_id:
            staged.sequences.append(sequence)
        staged.ticks += len(batch)
        return offset

    def _journal_staged(self) -> Envelope | None:
        """Journal the staged market data as one record (None when nothing is staged)."""
        staged = self._staged
        if staged is None:
            return None
        self._staged = None
        batches = staged.batches
        batch = batches[0] if len(batches) == 1 else _concatenate(batches)
        return self._publish_market(
            MarketDataReceived(
                batch,
                staged.source,
                tuple(staged.starts),
                tuple(staged.stamps),
                feed_id=staged.feed_id,
                message_sequences=tuple(staged.sequences),
            )
        )

    def _journal_chunks(
        self, batch: MarketBatch, source: str, stamp: int, feed_id: str, sequence: int
    ) -> list[int]:
        """Journal one large message as records of CHUNK_TICKS ticks; all but the last
        say that the message continues, so a replay applies it whole. Every record
        carries the message's feed sequence."""
        seqs = []
        total = len(batch)
        sequences = (sequence,) if feed_id else ()
        for start in range(0, total, CHUNK_TICKS):
            end = min(start + CHUNK_TICKS, total)
            part = batch if (start, end) == (0, total) else _slice(batch, start, end)
            event = MarketDataReceived(
                part,
                source,
                (0,),
                (stamp,),
                continues=end < total,
                feed_id=feed_id,
                message_sequences=sequences,
            )
            seqs.append(self._publish_market(event).seq)
        return seqs

    def _publish_market(self, event: MarketDataReceived) -> Envelope:
        envelope = self.publish(event)
        self._last_market_seq = envelope.seq
        return envelope


def _concatenate(batches: list[MarketBatch]) -> MarketBatch:
    return MarketBatch(
        [s for b in batches for s in b.symbols],
        [p for b in batches for p in b.prices],
        [v for b in batches for v in b.volumes],
        [t for b in batches for t in b.timestamps_ns],
    )


def _slice(batch: MarketBatch, start: int, end: int) -> MarketBatch:
    return MarketBatch(
        batch.symbols[start:end],
        batch.prices[start:end],
        batch.volumes[start:end],
        batch.timestamps_ns[start:end],
    )
