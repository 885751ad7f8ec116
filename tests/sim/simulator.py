"""A seeded simulator of the whole core, after TigerBeetle's VOPR and FoundationDB's
simulation: random inputs, faults and restarts, with the invariants checked after
every step. One seed is one run; a failing seed replays exactly.

A run drives the core as the server does (market data through the edge's own
reader, operator commands, idea analyses and decisions, cancels, duplicated broker
reports), and the world around it as it fails (audit-store outages that fill its
backlog, halts by the store's guard that come late, crashes that lose what was
not committed, restarts from the log). After every step it checks:

* no order without an approved decision journaled before it, at most one order
  per decision, and no approval while trading was halted;
* no approved decision built on a non-finite or out-of-range number;
* a refused input changed nothing (journal, counters, prices, strategy state);
* a resent message of a named feed (on any stream of that feed id) is dropped
  and changes nothing, even after a restart;
* every acknowledged tick is in the journal exactly once (each tick carries a
  unique id as its volume), whatever crashed;
* a duplicated broker report never moves a position;
* the hash chain verifies.

At the end it replays the journal, segment by segment between restarts, through
a fresh core built from the log as the restart did, and requires the same log
byte for byte. Store outages are part of the world, not of the input: the
replay's store fails the same flushes the live one did.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from audit.codec import decode_event, record_to_envelope
from audit.memory_store import InMemoryEventStore
from audit.records import AuditQuery, AuditRecord, NewRecord
from brokers.paper.config import Ambiguity, PaperBrokerConfig
from domain.broker import BrokerOrder, BrokerReport, Execution, ReportSource
from domain.errors import DomainError, InvalidInput, Unavailable
from domain.events import (
    MarketDataReceived,
    OrderUpdated,
    RiskDecisionMade,
    TradingStateChanged,
)
from domain.ideas import AnalysisKind, IdeaState
from domain.orders import OrderStatus
from domain.risk import TradingCause, TradingState
from engines.advisor.analyst import AnalysisRequest
from engines.bus import MAX_TICKS_PER_MESSAGE, DuplicateMessage
from engines.clock import datetime_to_ns
from engines.core import Core
from engines.replay import replay
from server.bootstrap import build_core
from server.settings import Settings
from server.store_outage import HALTED_BY
from server.validation import NS, MarketBatchReader
from tests.support.market import SESSION_START
from trading_sdk.v1 import market_pb2

SYMBOLS = ("SPY", "QQQ", "IWM")
# (principal, stream, feed id): two streams share a principal, one stream names no
# feed, and one feed id is sent by two principals' streams (a feed failing over).
FEEDS = (
    ("feeder", "a", "alpha"),
    ("feeder", "b", ""),
    ("other", "c", "alpha"),
    ("other", "d", "gamma"),
)
FEED_IDS = tuple(sorted({feed for _, _, feed in FEEDS if feed}))
RESEND_RATE = 0.1  # of a named feed's messages, a resend of one already accepted
RESENDABLE = 32  # recent accepted messages (of up to RESENDABLE_TICKS) kept to resend
RESENDABLE_TICKS = 2_000
# Values a hostile or broken feed sends; the edge must refuse what is outside the
# documented domain and the core must survive what is inside it.
HOSTILE_PRICES = (5e-324, 1e-300, 0.0, -1.0, math.nan, math.inf, 1.7e308, 1e-4, 1e7, 2e-4, 9e6)
TICK_NS = 200_000_000


_PER_SHARE = (Decimal("0.005"), Decimal("0.01"))
_MINIMUM = (Decimal(0), Decimal(1))


class SimulationFailure(AssertionError):
    def __init__(self, seed: int, step: int, what: str) -> None:
        super().__init__(
            f"seed {seed}, step {step}: {what}\n"
            f"replay it with: .venv/bin/python -m tests.sim --seed {seed}"
        )
        self.seed = seed


class FaultyStore(InMemoryEventStore):
    """The in-memory store, with flush failures the simulation can script and record:
    live, an outage fails them; in a replay, exactly the flushes that failed live."""

    def __init__(self, max_pending: int, fail_at: dict[int, str] | None = None) -> None:
        super().__init__(max_pending=max_pending)
        self.fail_at = dict(fail_at or {})
        self.core_failures: dict[int, str] = {}
        self.from_outside = False  # the simulation's own flush (an acknowledgement)

    def flush(self) -> None:
        seq = self.last_seq()
        if seq in self.fail_at:
            raise Unavailable(self.fail_at[seq])
        try:
            super().flush()
        except Unavailable as exc:
            if not self.from_outside:
                self.core_failures[seq] = str(exc)
            raise


@dataclass
class Stats:
    steps: int = 0
    ticks: int = 0
    refused: int = 0
    approvals: int = 0
    orders: int = 0
    restarts: int = 0
    outages: int = 0
    duplicates: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class Simulation:
    def __init__(self, seed: int, calendar: Any, steps: int = 40) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.calendar = calendar
        self.steps = steps
        clock = "wall" if self.rng.random() < 0.1 else "event"
        free = self.rng.random() < 0.5
        self.settings = Settings(
            trading_clock=clock,
            advisor_idea_ttl_seconds=60,
            # A commission on some seeds: fees are booked with fills and replayed.
            paper_commission_per_share=Decimal(0) if free else self.rng.choice(_PER_SHARE),
            paper_commission_minimum=Decimal(0) if free else self.rng.choice(_MINIMUM),
        )
        self.reader = MarketBatchReader(require_timestamp=True, max_future_skew_ns=300 * NS)
        self.max_pending = self.rng.choice((50, 500, 100_000))
        self.store = FaultyStore(self.max_pending)
        # The simulator with a real broker's habits: fills in parts, reports repeated
        # or ahead of the acknowledgement, and submissions without a clear answer
        # (taken or not), which the engine must resolve by lookups, never by a resend
        # of an order the broker has.
        self.paper = PaperBrokerConfig(
            partial_fills=self.rng.choice((1, 1, 2, 3)),
            duplicate_reports=self.rng.random() < 0.3,
            fill_before_ack=self.rng.random() < 0.3,
            unknown_submits=tuple(
                self.rng.choice((None, None, *Ambiguity)) for _ in range(self.rng.randrange(4))
            ),
        )
        self.core = self._build()
        self.now_ns = datetime_to_ns(SESSION_START)
        self.next_tick_id = 1
        # Per feed id the last sequence sent; and accepted messages that a resend must
        # find dropped: (feed id, sequence, events, tick ids).
        self.feed_sent: dict[str, int] = {}
        self.resendable: list[tuple[str, int, list[market_pb2.MarketEvent], set[int]]] = []
        self.unacknowledged: set[int] = set()
        self.acknowledged: set[int] = set()
        self.walk = dict.fromkeys(SYMBOLS, 100.0)
        self.trend = dict.fromkeys(SYMBOLS, 0.002)
        self.restarts: list[int] = []
        self.segment_failures: list[dict[int, str]] = []
        self.outage_steps = 0  # > 0: the store is down; the guard halts after a delay
        self.halt_delay = 0
        self.stats = Stats()
        self.step = 0
        self._checked_seq = 0
        self._decisions: dict[str, bool] = {}
        self._ordered: set[str] = set()
        self._journaled: Counter[int] = Counter()
        self._causes: dict[TradingCause, TradingState] = {}

    def _build(self) -> Core:
        return build_core(self.settings, self.store, self.calendar, paper_config=self.paper)

    # --- the run -----------------------------------------------------------------

    def run(self) -> Stats:
        actions: list[tuple[float, Callable[[], None]]] = [
            (60, self.market),
            (6, self.operator),
            (4, self.cancel),
            (6, self.advisor),
            (5, self.duplicate_report),
            (3, self.sweep),
            (5, self.outage),
            (3, self.restart),
        ]
        weights = [w for w, _ in actions]
        for step in range(self.steps):
            self.step = step
            action = self.rng.choices([a for _, a in actions], weights)[0]
            self.stats.kinds[action.__name__] += 1
            action()
            self.guard()
            self.acknowledge()
            self.check()
        self.settle()
        self.step = self.steps
        self.check()
        self.check_replay()
        self.stats.steps = self.steps
        return self.stats

    def fail(self, what: str) -> None:
        raise SimulationFailure(self.seed, self.step, what)

    # --- inputs ------------------------------------------------------------------

    def market(self) -> None:
        user, stream, feed = self.rng.choice(FEEDS)
        if feed and self.rng.random() < RESEND_RATE and self._resend(user, stream, feed):
            return
        sequence = 0
        if feed:
            sequence = self.feed_sent[feed] = self.feed_sent.get(feed, 0) + 1
        events = self._events(self._size())
        before = self.fingerprint()
        try:
            batch = self.reader.read(events, self.now_ns + 60 * NS)
            ids = {int(v) for v in batch.volumes}
            self.core.ingest(
                batch, f"stream:{user}", stream=(user, stream), feed_id=feed, sequence=sequence
            )
        except (InvalidInput, Unavailable) as exc:
            # Its number is not accepted: the feed's next message leaves a gap, accepted.
            self.stats.refused += 1
            if self.fingerprint() != before:
                self.fail(f"a refused message changed the core ({exc})")
            return
        except DuplicateMessage as exc:
            self.fail(f"a new message was dropped as a duplicate ({exc})")
        self.unacknowledged |= ids
        self.stats.ticks += len(batch)
        if feed and len(batch) <= RESENDABLE_TICKS:
            self.resendable = [*self.resendable[1 - RESENDABLE :], (feed, sequence, events, ids)]

    def _resend(self, user: str, stream: str, feed: str) -> bool:
        """Send again, on this stream, a message of `feed` already accepted (perhaps by
        another stream or principal): it must be dropped, changing nothing, even
        though under the event clock its ticks are older than the last ones."""
        sent = [entry for entry in self.resendable if entry[0] == feed]
        if not sent:
            return False
        _, sequence, events, _ids = self.rng.choice(sent)
        before = self.fingerprint()
        batch = self.reader.read(events, self.now_ns + 60 * NS)
        try:
            self.core.ingest(
                batch, f"stream:{user}", stream=(user, stream), feed_id=feed, sequence=sequence
            )
        except DuplicateMessage:
            self.stats.duplicates += 1
            if self.fingerprint() != before:
                self.fail(f"a dropped duplicate (feed {feed}, message {sequence}) changed the core")
            return True
        except (InvalidInput, Unavailable) as exc:
            self.fail(
                f"feed {feed}'s message {sequence}, sent again, was refused, not dropped: {exc}"
            )
        self.fail(f"feed {feed}'s message {sequence}, sent again, was accepted a second time")
        return True

    def _size(self) -> int:
        roll = self.rng.random()
        if roll < 0.85:
            return self.rng.randint(1, 40)
        if roll < 0.996:
            return self.rng.randint(41, 1_200)  # across the staging limit
        # Now and then a message of several journal records, up to the contract's limit.
        return int(math.exp(self.rng.uniform(math.log(1_200), math.log(MAX_TICKS_PER_MESSAGE))))

    def _events(self, size: int) -> list[market_pb2.MarketEvent]:
        rng = self.rng
        symbol = rng.choice(SYMBOLS) if rng.random() < 0.3 else "SPY"
        mixed = rng.random() < 0.2
        hostile = rng.random() < 0.08
        events = []
        for _ in range(size):
            sym = rng.choice(SYMBOLS) if mixed else symbol
            if rng.random() < 0.04:
                self.trend[sym] = rng.choice((-1, 1)) * rng.uniform(0.0005, 0.01)
            price = self.walk[sym] * (1 + self.trend[sym] + rng.gauss(0, 0.002))
            self.walk[sym] = price = min(max(price, 1e-3), 1e6)
            if hostile and rng.random() < 0.05:
                price = rng.choice(HOSTILE_PRICES)
            event = market_pb2.MarketEvent(symbol=sym, price=price, volume=self.next_tick_id)
            self.next_tick_id += 1
            self.now_ns += TICK_NS
            event.timestamp.seconds, event.timestamp.nanos = divmod(self.now_ns, NS)
            events.append(event)
        return events

    def operator(self) -> None:
        core = self.core
        roll = self.rng.random()
        try:
            if roll < 0.4:
                core.set_trading_state(TradingState.HALTED, "alice", "sim halt")
            elif roll < 0.8:
                core.set_trading_state(TradingState.ACTIVE, "alice", "sim resume")
            else:
                core.set_strategy_active("ma_crossover", self.rng.random() < 0.7, "alice")
        except Unavailable:
            self.stats.refused += 1

    def cancel(self) -> None:
        orders = self.core.execution.orders(open_only=False)
        if not orders:
            return
        order = self.rng.choice(orders)
        before = self.fingerprint()
        try:
            self.core.cancel_order(order.order_id, "bob")
        except DomainError as exc:
            if self.fingerprint() != before:
                self.fail(f"a refused cancel changed the core ({exc})")

    def advisor(self) -> None:
        advisor = self.core.advisor
        pending = advisor.ideas(IdeaState.PENDING_APPROVAL)
        try:
            if pending and self.rng.random() < 0.6:
                idea = self.rng.choice(pending).idea
                advisor.decide(idea.idea_id, self.rng.random() < 0.7, "carol", "sim")
            else:
                request = AnalysisRequest(AnalysisKind.MARKET_CONDITIONS, symbols=SYMBOLS)
                advisor.analyze(request, "carol")
        except DomainError:
            self.stats.refused += 1

    def duplicate_report(self) -> None:
        filled = [
            o for o in self.core.execution.orders(open_only=False) if o.status is OrderStatus.FILLED
        ]
        if not filled:
            return
        order = self.rng.choice(filled)
        positions = self.core.portfolio.positions()
        seen = BrokerOrder(
            order.client_order_id,
            order.broker_order_id,
            order.symbol,
            order.side,
            order.quantity,
            order.order_type,
            OrderStatus.FILLED,
            order.limit_price,
            order.time_in_force,
            order.filled_quantity,
            order.average_fill_price,
        )
        fill = order.history[-1]
        execution = Execution(fill.execution_id, fill.fill_quantity, fill.fill_price)
        self.core.execution.on_report(BrokerReport(seen, ReportSource.STREAM, "fill", execution))
        if self.core.portfolio.positions() != positions:
            self.fail(f"a duplicated fill of {order.order_id} moved a position")

    def sweep(self) -> None:
        """The supervisor's periodic sweep: the broker's state reconciled as an input.
        Against the simulator it must find nothing to change."""
        positions = self.core.portfolio.positions()
        try:
            found = self.core.sweep("periodic sweep")
        except DomainError:
            self.stats.refused += 1
            return
        if found.adopted or found.differences:
            self.fail(f"a sweep found what the core did not know: {found.summary}")
        if self.core.portfolio.positions() != positions:
            self.fail("a sweep moved a position the simulator agrees on")

    # --- the world ----------------------------------------------------------------

    def outage(self) -> None:
        if self.outage_steps:
            self.store.end_outage()
            self.outage_steps = 0
            self.core.set_trading_state(
                TradingState.ACTIVE,
                HALTED_BY,
                "audit store recovered",
                cause=TradingCause.AUDIT_STORE,
            )
            return
        self.stats.outages += 1
        self.store.simulate_outage()
        self.outage_steps = 1
        self.halt_delay = self.rng.randint(0, 3)  # the guard's thread is late, sometimes

    def guard(self) -> None:
        if not self.outage_steps:
            return
        self.outage_steps += 1
        if self.outage_steps > self.halt_delay:
            # With the backlog full the halt itself waits for room, as live.
            with contextlib.suppress(Unavailable):
                self.core.set_trading_state(
                    TradingState.HALTED,
                    HALTED_BY,
                    "audit store unavailable",
                    cause=TradingCause.AUDIT_STORE,
                )

    def restart(self) -> None:
        self.stats.restarts += 1
        if self.rng.random() < 0.5:
            self.store.crash()  # killed: what was not committed is gone
            self.unacknowledged.clear()
            # What was not committed is gone, so a resend of it is rightly accepted.
            self.resendable = [e for e in self.resendable if e[3] <= self.acknowledged]
        else:
            self.acknowledge()
        if self.outage_steps:
            self.store.end_outage()
            self.outage_steps = 0
        self.store.flush()
        self.restarts.append(self.store.last_seq())
        # Seqs are reused after a crash: the flush failures of each segment stay apart.
        self.segment_failures.append(dict(self.store.core_failures))
        self.store.core_failures.clear()
        self._checked_seq = min(self._checked_seq, self.store.last_seq())
        self.core = self._build()

    def acknowledge(self) -> None:
        """A feed's summary: what is committed when the flush returns is acknowledged."""
        self.store.from_outside = True
        try:
            self.core.bus.flush()
        except Unavailable:
            return
        finally:
            self.store.from_outside = False
        self.acknowledged |= self.unacknowledged
        self.unacknowledged = set()

    def settle(self) -> None:
        if self.outage_steps:
            self.outage()
        self.acknowledge()

    # --- invariants ------------------------------------------------------------------

    def fingerprint(self) -> tuple[Any, ...]:
        core = self.core
        states = tuple(
            (
                key,
                tuple(getattr(state, s) for s in type(state).__slots__ if s != "prices"),
                tuple(state.prices),
            )
            for key, state in sorted(core.strategies._states._states.items())
        )
        return (
            self.store.last_seq(),
            core.stats.market_events,
            tuple(sorted(core.prices.last.items())),
            tuple(sorted(core.prices.last_ns.items())),
            tuple(core.bus.last_sequence(feed) for feed in FEED_IDS),
            states,
        )

    def check(self) -> None:
        records = list(self.store.query(AuditQuery(from_seq=self._checked_seq + 1)))
        for record in records:
            self._check_record(record)
        if records:
            self._checked_seq = records[-1].seq
        if self.step % 8 == 0 or self.step == self.steps:
            verified = self.store.verify()
            if not verified.ok:
                self.fail(f"the chain does not verify: {verified.reason}")
        if not self.unacknowledged:
            self._check_ticks()

    def _check_record(self, record: AuditRecord) -> None:
        event = decode_event(record.event_type, record.payload)
        match event:
            case MarketDataReceived(batch=batch):
                for tick in batch.volumes:
                    self._journaled[int(tick)] += 1
                    if self._journaled[int(tick)] > 1:
                        self.fail(f"tick {int(tick)} is journaled twice (seq {record.seq})")
            case TradingStateChanged(status=status):
                self._causes[status.cause] = status.state
            case RiskDecisionMade(decision=decision):
                self._decisions[decision.decision_id] = decision.approved
                if decision.approved:
                    self.stats.approvals += 1
                    self._check_approval(decision, record.seq)
            case OrderUpdated(order=order) if order.status is OrderStatus.NEW:
                if not self._decisions.get(order.decision_id):
                    self.fail(f"order {order.order_id} has no approved decision before it")
                if order.decision_id in self._ordered:
                    self.fail(f"decision {order.decision_id} was ordered twice")
                self._ordered.add(order.decision_id)
                self.stats.orders += 1

    def _check_approval(self, decision: Any, seq: int) -> None:
        if TradingState.HALTED in self._causes.values():
            self.fail(f"decision {decision.decision_id} (seq {seq}) approved while halted")
        signal = decision.signal
        numbers = (signal.confidence, float(signal.quantity), float(signal.reference_price))
        if not all(math.isfinite(n) for n in numbers) or not 0.0 <= signal.confidence <= 1.0:
            self.fail(f"decision {decision.decision_id} approved on non-finite {numbers}")
        if not Decimal("1e-4") <= signal.reference_price <= Decimal("1e7"):
            self.fail(f"decision {decision.decision_id} approved at {signal.reference_price}")

    def _check_ticks(self) -> None:
        lost = self.acknowledged - self._journaled.keys()
        if lost:
            self.fail(f"{len(lost)} acknowledged ticks are not in the journal: {sorted(lost)[:5]}")

    def check_replay(self) -> None:
        live = list(self.store.query(AuditQuery()))
        bounds = [0, *self.restarts, live[-1].seq if live else 0]
        failures = [*self.segment_failures, self.store.core_failures]
        for first, last, failed in zip(bounds, bounds[1:], failures, strict=False):
            if last <= first:
                continue
            # Every input in the log was admitted live: the replay's backlog never refuses.
            store = FaultyStore(10**9)
            for record in live[:first]:
                store.append(_as_new(record))
            store.flush()
            store.fail_at = dict(failed)
            core = build_core(self.settings, store, self.calendar, paper_config=self.paper)
            replay(core, (record_to_envelope(r) for r in live[first:last]))
            store.fail_at.clear()  # the replay is over: commit it all
            core.bus.flush()
            replayed = list(store.query(AuditQuery(from_seq=first + 1)))
            want = [_row(r) for r in live[first:last]]
            got = [_row(r) for r in replayed]
            if got != want:
                self.fail(
                    f"replay of seqs {first + 1}..{last} differs: {_first_difference(got, want)}"
                )


def _first_difference(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> str:
    for g, w in zip(got, want, strict=False):
        if g != w:
            text_g, text_w = repr(g), repr(w)
            at = next(i for i, (a, b) in enumerate(zip(text_g, text_w, strict=False)) if a != b)
            return (
                f"at seq {w[0]}: live ...{text_w[max(0, at - 80) : at + 120]}... "
                f"replayed ...{text_g[max(0, at - 80) : at + 120]}..."
            )
    return f"live has {len(want)} records, the replay {len(got)}"


def _as_new(record: AuditRecord) -> NewRecord:
    return NewRecord(
        record.recorded_at,
        record.event_type,
        record.caused_by,
        record.payload,
        record.symbol,
        record.order_id,
        record.idea_id,
    )


def _row(record: AuditRecord) -> tuple[Any, ...]:
    return (record.seq, record.recorded_at, record.event_type, record.caused_by, record.payload)


def run_seed(seed: int, calendar: Any, steps: int = 40) -> Stats:
    return Simulation(seed, calendar, steps).run()
