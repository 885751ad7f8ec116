"""trading.v1.TradingService: validate, translate, hand one input to the core, answer."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

import grpc

from audit.anchor import NO_ANCHOR_FILE, AnchorReport, AnchorWriter
from audit.records import AuditQuery, EventStore
from domain import events as ev
from domain.errors import InvalidInput, PreconditionFailed, Unavailable
from domain.orders import Order, OrderStatus, OrderType
from domain.risk import TradingCause, TradingState, TradingStatus
from engines.bus import DuplicateMessage
from engines.core import Core
from engines.risk.engine import StateChange
from server import translate as tr
from server import validation
from server.advisor_rpcs import AdvisorRpcs
from server.auth import Authenticator
from server.event_stream import EventHub, read_in_chunks
from trading_sdk.v1 import risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

VERSION = "0.1.0"


class TradingServicer(AdvisorRpcs, pb_grpc.TradingServiceServicer):
    def __init__(
        self,
        core: Core,
        store: EventStore,
        hub: EventHub,
        auth: Authenticator,
        reader: validation.MarketBatchReader,
        anchors: AnchorWriter | None = None,
    ) -> None:
        self._core = core
        self._store = store
        self._hub = hub
        self._auth = auth
        self._reader = reader
        self._anchors = anchors  # VerifyAudit checks the log against them

    # --- status ------------------------------------------------------------------

    def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetStatusResponse:
        core = self._core
        with core.bus.reading():
            strategies = core.strategies.list()
            active = sum(s.active for s in strategies)
            risk, execution = core.risk, core.execution
            open_orders = len(execution.orders(open_only=True))
            broker_health = execution.broker_health()  # the adapter's own view: no I/O
            broker = execution.broker_info()
            components = [
                pb.ComponentHealth(
                    name="strategy", healthy=True, detail=f"{active} of {len(strategies)} active"
                ),
                pb.ComponentHealth(
                    name="risk", healthy=True, detail=f"trading {risk.trading.state.value}"
                ),
                pb.ComponentHealth(
                    name="execution", healthy=True, detail=f"{open_orders} open orders"
                ),
                pb.ComponentHealth(
                    name="broker",
                    healthy=broker_health.healthy,
                    detail=f"{execution.broker_name}: {broker_health.detail}".rstrip(": "),
                ),
                pb.ComponentHealth(
                    name="audit",
                    healthy=self._store.healthy,
                    detail=f"last seq {self._store.last_seq()}",
                ),
            ]
            counters = pb.Counters(
                market_events=core.stats.market_events,
                signals=sum(s.signals for s in strategies),
                approvals=risk.stats.approvals,
                rejections=risk.stats.rejections,
                orders=execution.stats.submitted,
                fills=execution.stats.filled,
                audit_events=self._store.last_seq(),
            )
            return pb.GetStatusResponse(
                components=components,
                trading=tr.trading_status_to_proto(risk.trading),
                counters=counters,
                clock=core.bus.clock.name,
                now=tr.timestamp(core.bus.clock.now()),
                broker=execution.broker_name,
                version=VERSION,
                broker_endpoint=broker.endpoint,
                broker_account=broker.account,
                broker_live=broker.live,
                advisor=tr.advisor_counters_to_proto(core.advisor.analyst, core.advisor.counters()),
            )

    # --- strategies ----------------------------------------------------------------

    def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: grpc.ServicerContext
    ) -> pb.ListStrategiesResponse:
        with self._core.bus.reading():
            return pb.ListStrategiesResponse(
                strategies=[tr.strategy_to_proto(s) for s in self._core.strategies.list()]
            )

    def _set_strategy(self, name: str, active: bool, context: grpc.ServicerContext) -> pb.Strategy:
        validation.identifier(name, "name", "give a strategy name (see ListStrategies)")
        info = self._core.set_strategy_active(name, active, self._auth.of(context))
        self._core.bus.flush()  # an operator action is durable before it is confirmed
        return tr.strategy_to_proto(info)

    def ActivateStrategy(
        self, request: pb.ActivateStrategyRequest, context: grpc.ServicerContext
    ) -> pb.ActivateStrategyResponse:
        return pb.ActivateStrategyResponse(strategy=self._set_strategy(request.name, True, context))

    def DeactivateStrategy(
        self, request: pb.DeactivateStrategyRequest, context: grpc.ServicerContext
    ) -> pb.DeactivateStrategyResponse:
        return pb.DeactivateStrategyResponse(
            strategy=self._set_strategy(request.name, False, context)
        )

    # --- risk ----------------------------------------------------------------------

    def GetRiskStatus(
        self, request: pb.GetRiskStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetRiskStatusResponse:
        if request.recent_decisions > 1000:
            raise InvalidInput("recent_decisions must be at most 1000")
        risk = self._core.risk
        with self._core.bus.reading():
            recent = (
                list(risk.recent)[-request.recent_decisions :] if request.recent_decisions else []
            )
            config = risk.config
            return pb.GetRiskStatusResponse(
                active=risk.active,
                trading=tr.trading_status_to_proto(risk.trading),
                causes=_causes(risk.causes.values()),
                rules=[
                    risk_pb2.RiskRule(
                        name=rule.name,
                        parameters=rule.parameters(config),
                        passed=(counts := risk.stats.per_rule[rule.name]).passed,
                        rejected=counts.rejected,
                        passed_total=counts.passed_total,
                        rejected_total=counts.rejected_total,
                        applies_to_reducing=rule.applies_to_reducing,
                    )
                    for rule in risk.rules
                ],
                approvals=risk.stats.approvals,
                rejections=risk.stats.rejections,
                recent_decisions=[tr.decision_to_proto(d) for d in recent],
                limits=config.as_limits(),
            )

    def _set_operator_state(
        self, state: TradingState, reason: str, context: grpc.ServicerContext
    ) -> StateChange:
        change = self._core.set_trading_state(state, self._auth.of(context), reason)
        self._core.bus.flush()  # an operator action is durable before it is confirmed
        return change

    def ActivateRisk(
        self, request: pb.ActivateRiskRequest, context: grpc.ServicerContext
    ) -> pb.ActivateRiskResponse:
        reason = validation.reason(request.reason) or "risk engine activated"
        change = self._set_operator_state(TradingState.ACTIVE, reason, context)
        return pb.ActivateRiskResponse(trading=tr.trading_status_to_proto(change.trading))

    def DeactivateRisk(
        self, request: pb.DeactivateRiskRequest, context: grpc.ServicerContext
    ) -> pb.DeactivateRiskResponse:
        reason = validation.reason(request.reason) or "risk engine deactivated"
        change = self._set_operator_state(TradingState.HALTED, reason, context)
        return pb.DeactivateRiskResponse(trading=tr.trading_status_to_proto(change.trading))

    def SetTradingState(
        self, request: pb.SetTradingStateRequest, context: grpc.ServicerContext
    ) -> pb.SetTradingStateResponse:
        state = tr.TRADING_STATE_FROM_PROTO.get(request.state)
        if state is None:
            raise InvalidInput("state is required: ACTIVE, REDUCING or HALTED")
        cause = tr.TRADING_CAUSE_FROM_PROTO.get(request.cause, TradingCause.OPERATOR)
        if request.cause and request.cause not in tr.TRADING_CAUSE_FROM_PROTO:
            raise InvalidInput(f"cause {request.cause} is not a known TradingCause")
        reason = validation.reason(request.reason)
        if state is not TradingState.ACTIVE and not reason:
            raise InvalidInput(f"a reason is required to set {state.value}: say why")
        if cause is TradingCause.DAILY_LOSS_BREAKER and state is not TradingState.ACTIVE:
            raise InvalidInput("the daily loss breaker can only be reset (state ACTIVE)")
        if cause in (TradingCause.AUDIT_STORE, TradingCause.BROKER):
            raise PreconditionFailed(
                f"the {cause.value} cause is the system's: it clears by itself when that "
                "dependency recovers; set the OPERATOR cause instead"
            )
        change = self._core.set_trading_state(
            state, self._auth.of(context), reason or "trading resumed", cause=cause
        )
        self._core.bus.flush()
        with self._core.bus.reading():
            causes = _causes(self._core.risk.causes.values())
        return pb.SetTradingStateResponse(
            trading=tr.trading_status_to_proto(change.trading),
            causes=causes,
            changed=change.changed,
            message=change.message,
        )

    def Flatten(
        self, request: pb.FlattenRequest, context: grpc.ServicerContext
    ) -> pb.FlattenResponse:
        reason = validation.reason(request.reason)
        halted, report = self._core.flatten(self._auth.of(context), reason)
        self._core.bus.flush()
        return pb.FlattenResponse(
            trading=tr.trading_status_to_proto(halted.trading),
            cancelled=[tr.order_to_proto(o) for o in report.cancelled],
            closing_decisions=[tr.decision_to_proto(d) for d in report.decisions],
            closing_orders=[tr.order_to_proto(o) for o in report.orders],
            deferred_symbols=report.deferred,
        )

    def UpdateRiskLimits(
        self, request: pb.UpdateRiskLimitsRequest, context: grpc.ServicerContext
    ) -> pb.UpdateRiskLimitsResponse:
        if not request.limits:
            raise InvalidInput("limits is empty: name at least one limit (see GetRiskStatus)")
        reason = validation.reason(request.reason)
        previous = self._core.risk.config.as_limits()
        config = self._core.update_risk_limits(dict(request.limits), self._auth.of(context), reason)
        self._core.bus.flush()
        return pb.UpdateRiskLimitsResponse(limits=config.as_limits(), previous=previous)

    def CheckOrder(
        self, request: pb.CheckOrderRequest, context: grpc.ServicerContext
    ) -> pb.CheckOrderResponse:
        order = validation.manual_order(
            request.symbol,
            tr.SIDE_FROM_PROTO.get(request.side),
            request.quantity,
            OrderType.LIMIT if request.limit_price else OrderType.MARKET,
            request.limit_price,
            notional_text=request.notional,
        )
        decision, reduces = self._core.check_order(order, self._auth.of(context))
        return pb.CheckOrderResponse(
            approved=decision.approved,
            verdicts=[tr.verdict_to_proto(v) for v in decision.verdicts],
            reference_price=str(decision.signal.reference_price),
            reduces_position=reduces,
        )

    def SubmitOrder(
        self, request: pb.SubmitOrderRequest, context: grpc.ServicerContext
    ) -> pb.SubmitOrderResponse:
        if request.type and request.type not in tr.ORDER_TYPE_FROM_PROTO:
            raise InvalidInput(f"type {request.type} is not a known OrderType")
        if request.time_in_force and request.time_in_force not in tr.TIME_IN_FORCE_FROM_PROTO:
            raise InvalidInput(f"time_in_force {request.time_in_force} is not a known TimeInForce")
        order = validation.manual_order(
            request.symbol,
            tr.SIDE_FROM_PROTO.get(request.side),
            request.quantity,
            tr.ORDER_TYPE_FROM_PROTO.get(request.type) if request.type else None,
            request.limit_price,
            request.reason,
            tr.TIME_IN_FORCE_FROM_PROTO.get(request.time_in_force),
            request.notional,
        )
        decision, placed = self._core.submit_order(order, self._auth.of(context))
        self._core.bus.flush()
        response = pb.SubmitOrderResponse(decision=tr.decision_to_proto(decision))
        if placed is not None:
            response.order.CopyFrom(tr.order_to_proto(placed))
        return response

    # --- execution -------------------------------------------------------------------

    def GetExecutionStatus(
        self, request: pb.GetExecutionStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetExecutionStatusResponse:
        execution = self._core.execution
        with self._core.bus.reading():
            health = execution.broker_health()  # the adapter's own view: no I/O
            response = pb.GetExecutionStatusResponse(
                broker=execution.broker_name,
                broker_healthy=health.healthy,
                open_orders=len(execution.orders(open_only=True)),
                orders_submitted=execution.stats.submitted,
                orders_filled=execution.stats.filled,
                orders_cancelled=execution.stats.cancelled,
                orders_rejected=execution.stats.rejected,
                unresolved_orders=len(execution.unresolved()),
                stream_connected=health.stream_connected,
                broker_detail=health.detail,
            )
            if execution.last_reconciliation is not None:
                at, found = execution.last_reconciliation
                response.last_reconciled_at.CopyFrom(tr.timestamp(at))
                response.last_reconciliation.CopyFrom(tr.reconciliation_to_proto(found))
            return response

    def _orders_page(
        self, open_only: bool, symbol: str, page_size: int, page_token: str
    ) -> tuple[Sequence[Order], str]:
        if symbol:
            validation.symbol(symbol)
        requested = validation.page(page_size, page_token)
        with self._core.bus.reading():
            return requested.of(self._core.execution.orders(open_only=open_only, symbol=symbol))

    def ListActiveOrders(
        self, request: pb.ListActiveOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListActiveOrdersResponse:
        orders, token = self._orders_page(
            True, request.symbol, request.page_size, request.page_token
        )
        return pb.ListActiveOrdersResponse(
            orders=[tr.order_to_proto(o) for o in orders], next_page_token=token
        )

    def ListOrderHistory(
        self, request: pb.ListOrderHistoryRequest, context: grpc.ServicerContext
    ) -> pb.ListOrderHistoryResponse:
        orders, token = self._orders_page(
            False, request.symbol, request.page_size, request.page_token
        )
        return pb.ListOrderHistoryResponse(
            orders=[tr.order_to_proto(o) for o in orders], next_page_token=token
        )

    def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.ServicerContext
    ) -> pb.CancelOrderResponse:
        validation.identifier(request.order_id, "order_id", "see ListActiveOrders")
        order = self._core.cancel_order(request.order_id, self._auth.of(context))
        self._core.bus.flush()
        return pb.CancelOrderResponse(order=tr.order_to_proto(order))

    def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.ServicerContext
    ) -> pb.GetAccountResponse:
        return pb.GetAccountResponse(account=tr.account_to_proto(self._core.account()))

    def ListPositions(
        self, request: pb.ListPositionsRequest, context: grpc.ServicerContext
    ) -> pb.ListPositionsResponse:
        positions = self._core.positions()
        return pb.ListPositionsResponse(positions=[tr.position_to_proto(p) for p in positions])

    # --- market data -------------------------------------------------------------------

    def StreamMarketData(
        self, request_iterator: Iterable[pb.StreamMarketDataRequest], context: grpc.ServicerContext
    ) -> pb.StreamMarketDataResponse:
        summary = pb.StreamMarketDataResponse()
        principal = self._auth.of(context)
        # This stream's own identity: its staged ticks are journaled apart from every
        # other stream's, so another stream's refusal can never take them along.
        stream = object()
        requests = iter(request_iterator)
        index = 0
        feed_id: str | None = None  # named by the stream's first message ("" for none)
        while True:
            try:
                request = next(requests, None)
                if request is None:
                    break
                named, sequence = validation.feed(request.feed_id, request.sequence)
                if feed_id is None:
                    feed_id = named
                elif named != feed_id:
                    raise _another_feed(named, feed_id)
                batch = self._reader.read_message(request, time.time_ns())
                try:
                    caused = self._core.ingest(
                        batch,
                        source=f"stream:{principal}",
                        stream=stream,
                        feed_id=named,
                        sequence=sequence,
                    )
                except InvalidInput as exc:
                    # The core names a tick by its place in the batch (an old tick
                    # under the event clock); a columnar message's sender also
                    # needs its series and its place there.
                    located = validation.in_series(exc, request.series)
                    if located is exc:
                        raise
                    raise located from exc
            except DuplicateMessage:
                summary.duplicates_dropped += 1  # already accepted: nothing changed
                index += 1
                continue
            except InvalidInput as exc:
                self._resume_point(summary, feed_id)
                self._refuse_stream(principal, index, summary, exc, feed_id)
            except Unavailable as exc:
                self._resume_point(summary, feed_id)
                raise Unavailable(
                    f"message {index} was not applied: {exc}. The "
                    f"{summary.batches_accepted} messages before it "
                    f"({summary.events_accepted} events) were accepted; resend from this one "
                    "when the store is back (a feed with a feed_id may resend from the start: "
                    "what was accepted is dropped).",
                    reason=exc.reason or "AUDIT_STORE_UNAVAILABLE",
                    metadata={**exc.metadata, **_accepted(index, summary, feed_id)},
                ) from exc
            summary.events_accepted += len(batch)
            summary.batches_accepted += 1
            _tally(summary, caused)
            index += 1
        self._resume_point(summary, feed_id)
        try:
            self._core.bus.flush()  # the summary promises that all of it is durable
        except Unavailable as exc:
            raise Unavailable(
                f"{exc}. The {summary.batches_accepted} messages were processed but are "
                "not yet durable; they are committed, in order, when the store returns "
                "(no order was sent meanwhile). Check QueryAudit before resending, or "
                "resend with the same feed_id and sequences: what was accepted is dropped.",
                reason=exc.reason or "AUDIT_STORE_UNAVAILABLE",
                metadata={**exc.metadata, **_accepted(index, summary, feed_id)},
            ) from exc
        summary.last_seq = self._store.last_seq()
        return summary

    def _resume_point(self, summary: pb.StreamMarketDataResponse, feed_id: str | None) -> None:
        """The last sequence accepted for the stream's feed (from any stream of it)."""
        if feed_id:
            summary.last_sequence = self._core.bus.last_sequence(feed_id)

    def _refuse_stream(
        self,
        principal: str,
        index: int,
        summary: pb.StreamMarketDataResponse,
        exc: InvalidInput,
        feed_id: str | None = None,
    ) -> None:
        def record() -> None:
            reason = f"message {index} refused: {exc}"
            self._core.bus.publish(ev.RequestRefused("StreamMarketData", principal, reason))

        self._core.bus.process(record)
        self._core.bus.flush()
        raise InvalidInput(
            f"message {index} refused, nothing in it was applied: {exc}. "
            f"The {summary.batches_accepted} messages before it ({summary.events_accepted} events) "
            "were accepted and committed; resend from this message.",
            reason="MARKET_DATA_MESSAGE_REFUSED",
            metadata={**exc.metadata, "cause": exc.reason, **_accepted(index, summary, feed_id)},
        )

    def SimulateMarketEvent(
        self, request: pb.SimulateMarketEventRequest, context: grpc.ServicerContext
    ) -> pb.SimulateMarketEventResponse:
        if not request.HasField("event"):
            raise InvalidInput("event is required")
        batch = self._reader.read([request.event], time.time_ns())
        caused = self._core.ingest(
            batch, source=f"simulate:{self._auth.of(context)}", journal_now=True
        )
        self._core.bus.flush()
        orders: dict[str, Order] = {}
        # The journal record holding this tick is the last market-data record it caused
        # (staged ticks of another feed may have been journaled just before it).
        journaled = [e for e in caused if isinstance(e.event, ev.MarketDataReceived)]
        response = pb.SimulateMarketEventResponse(seq=journaled[-1].seq)
        for envelope in caused:
            match envelope.event:
                case ev.SignalGenerated(signal=s):
                    response.signals.append(tr.signal_to_proto(s))
                case ev.RiskDecisionMade(decision=d):
                    response.decisions.append(tr.decision_to_proto(d))
                case ev.OrderUpdated(order=o):
                    orders[o.order_id] = o
        response.orders.extend(tr.order_to_proto(o) for o in orders.values())
        return response

    # --- events and audit -----------------------------------------------------------------

    def SubscribeEvents(
        self, request: pb.SubscribeEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SubscribeEventsResponse]:
        types = frozenset(_event_type_name(t) for t in request.types)
        symbols = frozenset(validation.symbol(s, "symbols") for s in request.symbols)
        # A from_seq past the end of the log replays nothing and goes live; one past
        # any seq there can be (2**63-1) is a client's mistake.
        from_seq = tr.client_seq(request.from_seq, "from_seq")
        for event in self._hub.subscribe(types, symbols, from_seq, context.is_active):
            yield pb.SubscribeEventsResponse(event=event)

    def QueryAudit(
        self, request: pb.QueryAuditRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.QueryAuditResponse]:
        # Seqs up to 2**63-1 are accepted (a range past the end of the log is simply
        # empty); a larger one, or a Timestamp no Timestamp may hold, is INVALID_ARGUMENT.
        from_seq = tr.client_seq(request.from_seq, "from_seq")
        to_seq = tr.client_seq(request.to_seq, "to_seq")
        if to_seq and from_seq > to_seq:
            raise InvalidInput("from_seq must not be greater than to_seq")
        since = tr.client_datetime(request.since, "since") if request.HasField("since") else None
        until = tr.client_datetime(request.until, "until") if request.HasField("until") else None
        if since is not None and until is not None and since >= until:
            raise InvalidInput("since must be before until")
        unknown = set(request.event_types) - set(tr.EVENT_TYPE_NAMES.values())
        if unknown:
            known = ", ".join(sorted(tr.EVENT_TYPE_NAMES.values()))
            # A few of them, each cut short: the message must stay small whatever was sent.
            shown = [name if len(name) <= 40 else f"{name[:40]}..." for name in sorted(unknown)]
            more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
            raise InvalidInput(f"unknown event_types {shown[:5]}{more}; known: {known}")
        query = AuditQuery(
            from_seq=from_seq or None,
            to_seq=to_seq or None,
            since=since,
            until=until,
            event_types=frozenset(request.event_types),
            symbol=validation.symbol(request.symbol) if request.symbol else None,
            order_id=_optional_id(request.order_id, "order_id"),
            idea_id=_optional_id(request.idea_id, "idea_id"),
        )
        # In chunks: a client slow to read holds no pooled database connection.
        for record in read_in_chunks(self._store, query, context.is_active):
            yield pb.QueryAuditResponse(record=tr.audit_record_to_proto(record))

    def VerifyAudit(
        self, request: pb.VerifyAuditRequest, context: grpc.ServicerContext
    ) -> pb.VerifyAuditResponse:
        self._core.bus.flush()
        result = self._store.verify()
        anchor = self._anchors.check() if self._anchors else AnchorReport(reason=NO_ANCHOR_FILE)
        response = pb.VerifyAuditResponse(
            ok=result.ok and not anchor.failed,
            checked=result.checked,
            last_seq=result.last_seq,
            # The chain's own finding first: it names the very row.
            first_bad_seq=result.first_bad_seq or (anchor.bad_seq if anchor.failed else 0),
            reason=result.reason or (anchor.reason if anchor.failed else ""),
            anchored_seq=anchor.anchored_seq,
            anchor_ok=anchor.ok,
            anchor_reason=anchor.reason,
        )
        if anchor.anchored_at is not None:
            response.anchored_at.CopyFrom(tr.timestamp(anchor.anchored_at))
        return response


def _optional_id(value: str, what: str) -> str | None:
    return validation.identifier(value, what, "or leave it empty") if value else None


def _causes(statuses: Iterable[TradingStatus]) -> list[risk_pb2.TradingStatus]:
    return [tr.trading_status_to_proto(s) for s in sorted(statuses, key=lambda s: s.cause.value)]


def _event_type_name(value: int) -> str:
    name = tr.EVENT_TYPE_NAMES.get(value)
    if name is None:
        raise InvalidInput(
            f"types contains {value}, which is not a known EventType (UNSPECIFIED is not allowed)"
        )
    return name


def _accepted(
    index: int, summary: pb.StreamMarketDataResponse, feed_id: str | None = None
) -> dict[str, str]:
    """Where a feed resumes after its stream ended early: the message refused (or, if
    every message was processed, their count), what was accepted, and for a named
    feed the duplicates dropped and its last accepted sequence."""
    accepted = {
        "refused_message_index": str(index),
        "accepted_messages": str(summary.batches_accepted),
        "accepted_events": str(summary.events_accepted),
    }
    if feed_id:
        accepted["duplicates_dropped"] = str(summary.duplicates_dropped)
        accepted["last_sequence"] = str(summary.last_sequence)
    return accepted


def _another_feed(named: str, first: str) -> InvalidInput:
    # The ids are not quoted back: they may be anything, and the refusal is journaled.
    if named and first:
        what = "another feed_id than the stream's first message"
    elif named:
        what = "a feed_id but the stream's first message named none"
    else:
        what = "no feed_id but the stream's first message named one"
    return InvalidInput(
        f"the message has {what}: one stream carries one feed", reason="BAD_FEED_ID"
    )


def _tally(summary: pb.StreamMarketDataResponse, caused: list[ev.Envelope]) -> None:
    for envelope in caused:
        match envelope.event:
            case ev.SignalGenerated():
                summary.signals += 1
            case ev.RiskDecisionMade(decision=d):
                if d.approved:
                    summary.approvals += 1
                else:
                    summary.rejections += 1
                    for verdict in d.rejections:
                        summary.rejections_by_code[verdict.code] += 1
            case ev.OrderUpdated(order=o) if o.status is OrderStatus.NEW:
                summary.orders += 1
