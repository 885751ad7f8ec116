"""Domain events (past tense) and the envelope the sequencer puts around each one.

Every event that crosses the core's bus is appended to the audit log before any
subscriber sees it. Market ticks are journaled per batch (`MarketDataReceived`),
not one row per tick; a signal names its tick as (batch event seq, index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.broker import (
    BrokerInfo,
    BrokerReport,
    BrokerSnapshot,
    Reconciliation,
    RequestFailure,
)
from domain.ideas import Analysis, TradeIdea
from domain.market import MarketBatch
from domain.orders import Order
from domain.risk import RiskDecision, TradingState, TradingStatus
from domain.signals import TradeSignal


@dataclass(frozen=True, slots=True)
class MarketDataReceived:
    """Market data accepted by the core: the replay journal.

    One record holds the ticks of one or more messages of one stream (small
    messages are journaled together), or part of one large message.
    `message_starts[k]` is the index of message k's first tick in `batch` and
    `message_stamps_ns[k]` the time that message was stamped with when it was
    processed, so a replay feeds the same messages at the same times. Empty
    (logs written before they were recorded): one message at the record's time.
    `continues`: the message goes on in the next market-data record.

    `feed_id` names the feed the messages came from ("" when it named none) and
    `message_sequences[k]` the number it gave message k (every record of a chunked
    message carries it), so a restart and a replay know the last message accepted
    per feed and drop a resend. Empty without a feed id, and in older logs.
    """

    batch: MarketBatch
    source: str
    message_starts: tuple[int, ...] = ()
    message_stamps_ns: tuple[int, ...] = ()
    continues: bool = False
    feed_id: str = ""
    message_sequences: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SignalGenerated:
    signal: TradeSignal
    tick_index: int = -1


@dataclass(frozen=True, slots=True)
class RiskDecisionMade:
    decision: RiskDecision


@dataclass(frozen=True, slots=True)
class OrderUpdated:
    """An order changed state; `order.history[-1]` is the change."""

    order: Order


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """One cause's setting changed (`status.cause`); `previous` is the effective
    state before it, so the trail reads "from X to Y, by whom, why"."""

    status: TradingStatus
    previous: TradingState | None = None


@dataclass(frozen=True, slots=True)
class RiskLimitsChanged:
    """An operator replaced risk limits; effective for the next signal."""

    limits: dict[str, str]
    previous: dict[str, str]
    changed_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class StrategyStateChanged:
    name: str
    active: bool
    changed_by: str


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """An operator-facing call that was refused; kept for the audit trail."""

    method: str
    principal: str
    reason: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Someone asked to cancel an order; the broker's answer follows as `OrderUpdated`.
    Journaled as the input, so the audit trail says who, and a replay re-issues it."""

    order_id: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class AnalysisCompleted:
    """The advisor answered an Analyze request; its ideas follow as `IdeaUpdated`."""

    analysis: Analysis


@dataclass(frozen=True, slots=True)
class IdeaUpdated:
    """An idea was proposed, decided or expired; `idea` is its new state.

    One event class for the whole lifecycle, as `OrderUpdated` is for orders:
    the row carries the idea as it now is (who decided, why, when).
    """

    idea: TradeIdea


@dataclass(frozen=True, slots=True)
class BrokerReportReceived:
    """The broker reported an order's state (an input): journaled before it is applied.
    `order_id` is the core's id for the order ("" for one it has not adopted yet),
    so the audit log finds the report by order."""

    report: BrokerReport
    order_id: str = ""


@dataclass(frozen=True, slots=True)
class BrokerRequestFailed:
    """A request to the broker ended without a report (an input): refused, unknown,
    not found, or not sent. What it means for the order follows as `OrderUpdated`."""

    failure: RequestFailure
    order_id: str = ""


@dataclass(frozen=True, slots=True)
class BrokerSwept:
    """A REST sweep of the broker's state (an input), taken because of `reason`
    (start-up, a reconnect of the stream, the periodic sweep). `fills_before` is
    how many fills the core had booked when the sweep began: if more were booked
    by the time it is applied, its positions are already out of date."""

    reason: str
    snapshot: BrokerSnapshot
    fills_before: int


@dataclass(frozen=True, slots=True)
class BrokerReconciled:
    """What a sweep found and did (caused by the `BrokerSwept` it applies)."""

    reconciliation: Reconciliation


@dataclass(frozen=True, slots=True)
class ServiceStarted:
    """The service started on this log (an input, journaled first thing).
    `log_id` names the log for ever (created with its first start) and prefixes
    every client order id, so no two logs can ever send the same id to a broker;
    `lease_epoch` is the fencing epoch of the lease this instance trades under."""

    log_id: str
    broker: BrokerInfo
    instance: str
    lease_epoch: int = 0


DomainEvent = (
    MarketDataReceived
    | SignalGenerated
    | RiskDecisionMade
    | OrderUpdated
    | TradingStateChanged
    | RiskLimitsChanged
    | StrategyStateChanged
    | RequestRefused
    | CancelRequested
    | AnalysisCompleted
    | IdeaUpdated
    | BrokerReportReceived
    | BrokerRequestFailed
    | BrokerSwept
    | BrokerReconciled
    | ServiceStarted
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as sequenced: its number, the clock's time and what caused it.

    `caused_by` is the seq of the event that led to this one (0 for an input
    from outside the core), so the chain tick -> signal -> decision -> order ->
    fill can be followed back through the audit log.
    """

    seq: int
    at: datetime
    caused_by: int
    event: DomainEvent

    @property
    def event_type(self) -> str:
        return type(self.event).__name__
