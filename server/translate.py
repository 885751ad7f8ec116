"""Domain objects to protobuf messages, and back: the only place the two meet."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from audit.records import AuditRecord
from domain import events as ev
from domain.broker import BrokerReport, Reconciliation
from domain.errors import InvalidInput
from domain.ideas import Analysis, AnalysisKind, IdeaState, TradeIdea
from domain.orders import Order, OrderStatus, OrderType, Side, TimeInForce
from domain.portfolio import Account, Position
from domain.risk import RiskDecision, RuleVerdict, TradingCause, TradingState, TradingStatus
from domain.signals import TradeSignal
from engines.advisor.analyst import Analyst
from engines.advisor.engine import AdvisorStats
from engines.strategy.engine import StrategyInfo
from trading_sdk.v1 import (
    advisor_pb2,
    audit_pb2,
    events_pb2,
    orders_pb2,
    risk_pb2,
    trading_service_pb2,
)

SIDE_TO_PROTO = {Side.BUY: orders_pb2.SIDE_BUY, Side.SELL: orders_pb2.SIDE_SELL}
SIDE_FROM_PROTO = {v: k for k, v in SIDE_TO_PROTO.items()}
ORDER_TYPE_TO_PROTO = {
    OrderType.MARKET: orders_pb2.ORDER_TYPE_MARKET,
    OrderType.LIMIT: orders_pb2.ORDER_TYPE_LIMIT,
}
ORDER_TYPE_FROM_PROTO = {v: k for k, v in ORDER_TYPE_TO_PROTO.items()}
TIME_IN_FORCE_TO_PROTO = {
    TimeInForce.DAY: orders_pb2.TIME_IN_FORCE_DAY,
    TimeInForce.GTC: orders_pb2.TIME_IN_FORCE_GTC,
    TimeInForce.IOC: orders_pb2.TIME_IN_FORCE_IOC,
    TimeInForce.FOK: orders_pb2.TIME_IN_FORCE_FOK,
    TimeInForce.OPG: orders_pb2.TIME_IN_FORCE_OPG,
    TimeInForce.CLS: orders_pb2.TIME_IN_FORCE_CLS,
}
TIME_IN_FORCE_FROM_PROTO = {v: k for k, v in TIME_IN_FORCE_TO_PROTO.items()}
ORDER_STATUS_TO_PROTO = {
    OrderStatus.NEW: orders_pb2.ORDER_STATUS_NEW,
    OrderStatus.ACCEPTED: orders_pb2.ORDER_STATUS_ACCEPTED,
    OrderStatus.PARTIALLY_FILLED: orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
    OrderStatus.FILLED: orders_pb2.ORDER_STATUS_FILLED,
    OrderStatus.CANCELLED: orders_pb2.ORDER_STATUS_CANCELLED,
    OrderStatus.REJECTED: orders_pb2.ORDER_STATUS_REJECTED,
    OrderStatus.EXPIRED: orders_pb2.ORDER_STATUS_EXPIRED,
    OrderStatus.SUBMITTED: orders_pb2.ORDER_STATUS_SUBMITTED,
    OrderStatus.PENDING_CANCEL: orders_pb2.ORDER_STATUS_PENDING_CANCEL,
}
TRADING_STATE_TO_PROTO = {
    TradingState.ACTIVE: risk_pb2.TRADING_STATE_ACTIVE,
    TradingState.REDUCING: risk_pb2.TRADING_STATE_REDUCING,
    TradingState.HALTED: risk_pb2.TRADING_STATE_HALTED,
}
TRADING_STATE_FROM_PROTO = {v: k for k, v in TRADING_STATE_TO_PROTO.items()}
TRADING_CAUSE_TO_PROTO = {
    TradingCause.OPERATOR: risk_pb2.TRADING_CAUSE_OPERATOR,
    TradingCause.AUDIT_STORE: risk_pb2.TRADING_CAUSE_AUDIT_STORE,
    TradingCause.BROKER: risk_pb2.TRADING_CAUSE_BROKER,
    TradingCause.DAILY_LOSS_BREAKER: risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
}
TRADING_CAUSE_FROM_PROTO = {v: k for k, v in TRADING_CAUSE_TO_PROTO.items()}
# Event classes by the EventType a subscriber filters on.
EVENT_TYPE_TO_PROTO: dict[type[object], int] = {
    ev.MarketDataReceived: events_pb2.EVENT_TYPE_MARKET_DATA,
    ev.SignalGenerated: events_pb2.EVENT_TYPE_SIGNAL,
    ev.RiskDecisionMade: events_pb2.EVENT_TYPE_RISK_DECISION,
    ev.OrderUpdated: events_pb2.EVENT_TYPE_ORDER,
    ev.TradingStateChanged: events_pb2.EVENT_TYPE_TRADING_STATE,
    ev.StrategyStateChanged: events_pb2.EVENT_TYPE_STRATEGY_STATE,
    ev.RequestRefused: events_pb2.EVENT_TYPE_REQUEST_REFUSED,
    ev.IdeaUpdated: events_pb2.EVENT_TYPE_IDEA,
    ev.AnalysisCompleted: events_pb2.EVENT_TYPE_ANALYSIS,
    ev.CancelRequested: events_pb2.EVENT_TYPE_CANCEL_REQUESTED,
    ev.RiskLimitsChanged: events_pb2.EVENT_TYPE_RISK_LIMITS,
    ev.BrokerReportReceived: events_pb2.EVENT_TYPE_BROKER_REPORT,
    ev.BrokerRequestFailed: events_pb2.EVENT_TYPE_BROKER_REQUEST_FAILED,
    ev.BrokerSwept: events_pb2.EVENT_TYPE_BROKER_SWEPT,
    ev.BrokerReconciled: events_pb2.EVENT_TYPE_BROKER_RECONCILED,
    ev.ServiceStarted: events_pb2.EVENT_TYPE_SERVICE_STARTED,
}
EVENT_TYPE_NAMES: dict[int, str] = {v: k.__name__ for k, v in EVENT_TYPE_TO_PROTO.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def datetime_from(ts: Timestamp) -> datetime:
    """A Timestamp this service made (or one already checked) as a UTC datetime.
    A Timestamp from a client goes through `client_datetime` instead."""
    return ts.ToDatetime(tzinfo=UTC)


# What a client may send, checked here before anything reaches the core or a database.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
"""0001-01-01T00:00:00Z, the first instant a google.protobuf.Timestamp may hold."""
MAX_TIMESTAMP_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a google.protobuf.Timestamp may hold."""
MAX_SEQ = 2**63 - 1
"""The largest seq there can ever be: seqs are BIGINT in the audit database."""


def client_datetime(ts: Timestamp, field: str) -> datetime:
    """A Timestamp from a client as a UTC datetime (microseconds: finer nanos are
    dropped). InvalidInput, naming `field`, when it is outside what a Timestamp may
    hold: seconds from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, nanos 0 to 999999999.
    """
    if not MIN_TIMESTAMP_SECONDS <= ts.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidInput(
            f"{field}.seconds must be from {MIN_TIMESTAMP_SECONDS} (0001-01-01T00:00:00Z) "
            f"to {MAX_TIMESTAMP_SECONDS} (9999-12-31T23:59:59Z), got {ts.seconds}"
        )
    if not 0 <= ts.nanos <= 999_999_999:
        raise InvalidInput(f"{field}.nanos must be from 0 to 999999999, got {ts.nanos}")
    return ts.ToDatetime(tzinfo=UTC)


def client_seq(value: int, field: str) -> int:
    """A seq from a client, checked to be at most MAX_SEQ (a uint64 field may carry up
    to 2**64-1, which no database integer holds); InvalidInput naming `field` otherwise."""
    if not 0 <= value <= MAX_SEQ:
        raise InvalidInput(
            f"{field} must be from 0 to {MAX_SEQ} (2**63-1, the largest seq there can be), "
            f"got {value}"
        )
    return value


def signal_to_proto(s: TradeSignal) -> risk_pb2.TradeSignal:
    return risk_pb2.TradeSignal(
        signal_id=s.signal_id,
        source=s.source,
        symbol=s.symbol,
        side=SIDE_TO_PROTO[s.side],
        quantity=str(s.quantity),
        reference_price=str(s.reference_price),
        confidence=s.confidence,
        rationale=s.rationale,
        created_at=timestamp(s.created_at),
        time_in_force=TIME_IN_FORCE_TO_PROTO[s.effective_time_in_force],
    )


def verdict_to_proto(v: RuleVerdict) -> risk_pb2.RuleVerdict:
    return risk_pb2.RuleVerdict(rule=v.rule, passed=v.passed, code=v.code, detail=v.detail)


def decision_to_proto(d: RiskDecision) -> risk_pb2.RiskDecision:
    return risk_pb2.RiskDecision(
        decision_id=d.decision_id,
        signal=signal_to_proto(d.signal),
        approved=d.approved,
        verdicts=[verdict_to_proto(v) for v in d.verdicts],
        decided_at=timestamp(d.decided_at),
    )


def order_to_proto(o: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        decision_id=o.decision_id,
        symbol=o.symbol,
        side=SIDE_TO_PROTO[o.side],
        type=ORDER_TYPE_TO_PROTO[o.order_type],
        quantity=str(o.quantity),
        limit_price="" if o.limit_price is None else str(o.limit_price),
        status=ORDER_STATUS_TO_PROTO[o.status],
        filled_quantity=str(o.filled_quantity),
        average_fill_price=str(o.average_fill_price),
        created_at=timestamp(o.created_at),
        updated_at=timestamp(o.updated_at),
        broker_order_id=o.broker_order_id,
        history=[
            orders_pb2.OrderStateChange(
                status=ORDER_STATUS_TO_PROTO[h.status],
                time=timestamp(h.at),
                reason=h.reason,
                fill_quantity=str(h.fill_quantity),
                fill_price=str(h.fill_price),
                execution_id=h.execution_id,
            )
            for h in o.history
        ],
        time_in_force=TIME_IN_FORCE_TO_PROTO[o.time_in_force],
        external=o.external,
        notional="" if o.amount is None else str(o.amount),
    )


def broker_report_to_proto(r: BrokerReport) -> events_pb2.BrokerReport:
    o, x = r.order, r.execution
    return events_pb2.BrokerReport(
        source=r.source.value,
        event=r.event,
        client_order_id=o.client_order_id,
        broker_order_id=o.broker_order_id,
        symbol=o.symbol,
        status=ORDER_STATUS_TO_PROTO[o.status],
        broker_status=o.broker_status,
        filled_quantity=str(o.filled_quantity),
        average_fill_price=str(o.average_fill_price),
        execution_id=x.execution_id if x else "",
        execution_quantity=str(x.quantity) if x else "",
        execution_price=str(x.price) if x else "",
        reason=o.reason,
    )


def reconciliation_to_proto(r: Reconciliation) -> events_pb2.Reconciliation:
    return events_pb2.Reconciliation(
        reason=r.reason,
        adopted=r.adopted,
        updated=r.updated,
        missing=r.missing,
        differences=[
            events_pb2.PositionDifference(
                symbol=d.symbol,
                core_quantity=str(d.core_quantity),
                broker_quantity=str(d.broker_quantity),
            )
            for d in r.differences
        ],
        positions_applied=r.positions_applied,
        summary=r.summary,
    )


def trading_status_to_proto(t: TradingStatus) -> risk_pb2.TradingStatus:
    out = risk_pb2.TradingStatus(
        state=TRADING_STATE_TO_PROTO[t.state],
        changed_by=t.changed_by,
        reason=t.reason,
        cause=TRADING_CAUSE_TO_PROTO[t.cause],
    )
    # Unset before anything changed, and for a change made before the event clock saw
    # its first tick: a time is never shown as the epoch.
    if t.changed_at is not None and t.changed_at > _EPOCH:
        out.changed_at.CopyFrom(timestamp(t.changed_at))
    return out


def account_to_proto(a: Account) -> orders_pb2.Account:
    return orders_pb2.Account(
        cash=str(a.cash),
        equity=str(a.equity),
        buying_power=str(a.buying_power),
        currency=a.currency,
    )


def position_to_proto(p: Position) -> orders_pb2.Position:
    return orders_pb2.Position(
        symbol=p.symbol,
        quantity=str(p.quantity),
        average_price=str(p.average_price),
        market_price=str(p.market_price),
        market_value=str(p.market_value),
        unrealized_pnl=str(p.unrealized_pnl),
    )


def strategy_to_proto(s: StrategyInfo) -> trading_service_pb2.Strategy:
    return trading_service_pb2.Strategy(
        name=s.name, active=s.active, symbols=s.symbols, parameters=s.parameters, signals=s.signals
    )


def envelope_to_event(e: ev.Envelope) -> events_pb2.Event:
    out = events_pb2.Event(
        seq=e.seq,
        time=timestamp(e.at),
        caused_by=e.caused_by,
        type=EVENT_TYPE_TO_PROTO[type(e.event)],  # type: ignore[arg-type]
    )
    match e.event:
        case ev.MarketDataReceived(batch=b, source=source):
            out.market_data.CopyFrom(
                events_pb2.MarketDataBatch(
                    source=source, event_count=len(b), symbols=sorted(set(b.symbols))
                )
            )
        case ev.SignalGenerated(signal=s):
            out.signal.CopyFrom(signal_to_proto(s))
        case ev.RiskDecisionMade(decision=d):
            out.risk_decision.CopyFrom(decision_to_proto(d))
        case ev.OrderUpdated(order=o):
            out.order.CopyFrom(order_to_proto(o))
        case ev.TradingStateChanged(status=t):
            out.trading_status.CopyFrom(trading_status_to_proto(t))
        case ev.StrategyStateChanged(name=name, active=active, changed_by=by):
            out.strategy_state.CopyFrom(
                events_pb2.StrategyStateChange(name=name, active=active, changed_by=by)
            )
        case ev.RequestRefused(method=method, principal=principal, reason=reason):
            out.request_refused.CopyFrom(
                events_pb2.RequestRefusal(method=method, principal=principal, reason=reason)
            )
        case ev.IdeaUpdated(idea=idea):
            out.idea.CopyFrom(idea_to_proto(idea))
        case ev.AnalysisCompleted(analysis=analysis):
            out.analysis.CopyFrom(analysis_to_proto(analysis))
        case ev.CancelRequested(order_id=order_id, requested_by=by):
            out.cancel_requested.CopyFrom(
                events_pb2.CancelRequest(order_id=order_id, requested_by=by)
            )
        case ev.BrokerReportReceived(report=report):
            out.broker_report.CopyFrom(broker_report_to_proto(report))
        case ev.BrokerRequestFailed(failure=f):
            out.broker_request_failed.CopyFrom(
                events_pb2.BrokerRequestFailure(
                    client_order_id=f.client_order_id,
                    request=f.request.value,
                    outcome=f.outcome.value,
                    code=f.code,
                    message=f.message,
                )
            )
        case ev.BrokerSwept(reason=why, snapshot=snapshot):
            out.broker_swept.CopyFrom(
                events_pb2.BrokerSweep(
                    reason=why,
                    orders=len(snapshot.orders),
                    positions=len(snapshot.positions),
                    account=account_to_proto(snapshot.account),
                )
            )
        case ev.BrokerReconciled(reconciliation=r):
            out.broker_reconciled.CopyFrom(reconciliation_to_proto(r))
        case ev.ServiceStarted(log_id=log_id, broker=b, instance=instance, lease_epoch=epoch):
            out.service_started.CopyFrom(
                events_pb2.ServiceStart(
                    log_id=log_id,
                    broker=b.name,
                    endpoint=b.endpoint,
                    account=b.account,
                    live=b.live,
                    instance=instance,
                    lease_epoch=epoch,
                )
            )
        case ev.RiskLimitsChanged(limits=limits, previous=previous, changed_by=by, reason=why):
            out.risk_limits.CopyFrom(
                events_pb2.RiskLimitsChange(
                    limits=limits, previous=previous, changed_by=by, reason=why
                )
            )
    return out


def audit_record_to_proto(r: AuditRecord) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        seq=r.seq,
        recorded_at=timestamp(r.recorded_at),
        event_type=r.event_type,
        caused_by=r.caused_by,
        symbol=r.symbol or "",
        order_id=r.order_id or "",
        idea_id=r.idea_id or "",
        payload_json=r.payload,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


# --- the advisor ---------------------------------------------------------------------

ANALYSIS_KIND_TO_PROTO = {
    AnalysisKind.PORTFOLIO_REVIEW: advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW,
    AnalysisKind.MARKET_CONDITIONS: advisor_pb2.ANALYSIS_KIND_MARKET_CONDITIONS,
    AnalysisKind.EDUCATION: advisor_pb2.ANALYSIS_KIND_EDUCATION,
}
ANALYSIS_KIND_FROM_PROTO = {v: k for k, v in ANALYSIS_KIND_TO_PROTO.items()}
IDEA_STATE_TO_PROTO = {
    IdeaState.PENDING_APPROVAL: advisor_pb2.IDEA_STATE_PENDING_APPROVAL,
    IdeaState.APPROVED: advisor_pb2.IDEA_STATE_APPROVED,
    IdeaState.REJECTED: advisor_pb2.IDEA_STATE_REJECTED,
    IdeaState.EXPIRED: advisor_pb2.IDEA_STATE_EXPIRED,
}
IDEA_STATE_FROM_PROTO = {v: k for k, v in IDEA_STATE_TO_PROTO.items()}


def idea_to_proto(
    idea: TradeIdea, decision: RiskDecision | None = None, order: Order | None = None
) -> advisor_pb2.TradeIdea:
    """An idea; with the risk decision and order its approval led to, when given."""
    out = advisor_pb2.TradeIdea(
        idea_id=idea.idea_id,
        analysis_id=idea.analysis_id,
        symbol=idea.symbol,
        side=SIDE_TO_PROTO[idea.side],
        quantity=str(idea.quantity),
        notional=str(idea.notional),
        limit_price="" if idea.limit_price is None else str(idea.limit_price),
        reference_price=str(idea.reference_price),
        confidence=idea.confidence,
        rationale=idea.rationale,
        risks=idea.risks,
        created_at=timestamp(idea.created_at),
        expires_at=timestamp(idea.expires_at),
        state=IDEA_STATE_TO_PROTO[idea.state],
        decided_by=idea.decided_by,
        decision_reason=idea.decision_reason,
        decision_id=idea.decision_id,
        order_id=idea.order_id,
    )
    if idea.decided_at is not None:
        out.decided_at.CopyFrom(timestamp(idea.decided_at))
    if decision is not None:
        out.risk_decision.CopyFrom(decision_to_proto(decision))
    if order is not None:
        out.order.CopyFrom(order_to_proto(order))
    return out


def analysis_to_proto(a: Analysis) -> advisor_pb2.Analysis:
    return advisor_pb2.Analysis(
        analysis_id=a.analysis_id,
        requested_by=a.requested_by,
        kind=ANALYSIS_KIND_TO_PROTO[a.kind],
        question=a.question,
        symbols=a.symbols,
        text=a.text,
        warnings=a.warnings,
        analyst=a.analyst,
        model=a.model,
        prompt_version=a.prompt_version,
        created_at=timestamp(a.created_at),
        idea_ids=a.idea_ids,
        dropped=a.dropped,
    )


def advisor_counters_to_proto(analyst: Analyst, stats: AdvisorStats) -> advisor_pb2.AdvisorCounters:
    return advisor_pb2.AdvisorCounters(
        analyst=analyst.name,
        model=analyst.model,
        analyses=stats.analyses,
        ideas_proposed=stats.proposed,
        ideas_approved=stats.approved,
        ideas_rejected=stats.rejected,
        ideas_expired=stats.expired,
        ideas_dropped=stats.dropped,
        analyst_unavailable=stats.unavailable,
    )
