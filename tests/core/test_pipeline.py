"""Phase 1 end to end, through the SDK against a real server on a loopback port."""

from __future__ import annotations

import json
from decimal import Decimal

from audit.batch_codec import decode_batch
from tests.conftest import RunningService
from tests.support.market import SESSION_START, minute_ticks, sideways, v_reversal
from trading_sdk.v1 import events_pb2, orders_pb2, risk_pb2


def test_a_golden_cross_buys_once_and_the_audit_log_tells_the_whole_chain(
    svc: RunningService,
) -> None:
    client = svc.client
    events = minute_ticks("SPY", v_reversal())
    summary = client.stream_market_data([events[:70], events[70:]])

    assert (summary.events_accepted, summary.batches_accepted) == (140, 2)
    assert (summary.signals, summary.approvals, summary.rejections, summary.orders) == (1, 1, 0, 1)

    [decision] = client.get_risk_status(recent_decisions=10).recent_decisions
    assert decision.approved and decision.signal.side == orders_pb2.SIDE_BUY
    assert decision.signal.confidence > 0.6
    assert {v.rule for v in decision.verdicts} == {
        "NumericDomainRule",
        "MarketHoursRule",
        "BrokerHealthRule",
        "UnresolvedOrderRule",
        "StaleDataRule",
        "PriceCollarRule",
        "MinConfidenceRule",
        "MaxOrderQuantityRule",
        "MaxOrderNotionalRule",
        "MaxPositionSizeRule",
        "MaxPositionsPerSymbolRule",
        "GrossExposureRule",
        "DailyLossRule",
        "DuplicateSignalRule",
        "OrderRateRule",
    }

    [order] = client.list_order_history().orders
    assert order.status == orders_pb2.ORDER_STATUS_FILLED
    assert [h.status for h in order.history] == [
        orders_pb2.ORDER_STATUS_NEW,
        orders_pb2.ORDER_STATUS_ACCEPTED,
        orders_pb2.ORDER_STATUS_FILLED,
    ]
    assert order.client_order_id.endswith(decision.decision_id)
    # Sized at 4% of equity at the crossing price: under the 5% limit.
    reference = Decimal(decision.signal.reference_price)
    assert Decimal(order.quantity) == (
        Decimal(100000) * Decimal("0.04") / reference
    ).to_integral_value(rounding="ROUND_FLOOR")

    [position] = client.list_positions().positions
    assert (position.symbol, position.quantity) == ("SPY", order.filled_quantity)
    account = client.get_account().account
    spent = Decimal(order.filled_quantity) * Decimal(order.average_fill_price)
    assert Decimal(account.cash) == Decimal(100000) - spent

    records = list(client.query_audit())
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    # The service's start: its log's identity, then the start-up reconciliation.
    started, swept, reconciled, *records = records
    assert (started.event_type, swept.event_type, reconciled.event_type) == (
        "ServiceStarted",
        "BrokerSwept",
        "BrokerReconciled",
    )
    assert started.caused_by == swept.caused_by == 0 and reconciled.caused_by == swept.seq
    kinds = [r.event_type for r in records]
    assert kinds == [
        "MarketDataReceived",
        "SignalGenerated",
        "RiskDecisionMade",
        "OrderUpdated",
        "BrokerReportReceived",
        "OrderUpdated",
        "BrokerReportReceived",
        "OrderUpdated",
    ]
    market, signal, risk, new, ack, accepted, fill, filled = records
    # Each event names its cause: tick batch -> signal -> decision -> order -> the
    # broker's answers -> the order's moves.
    assert signal.caused_by == market.seq
    assert risk.caused_by == signal.seq
    assert new.caused_by == risk.seq
    assert ack.caused_by == new.seq and accepted.caused_by == ack.seq
    assert fill.caused_by == accepted.seq and filled.caused_by == fill.seq
    assert [json.loads(r.payload_json)["order"]["status"] for r in (new, accepted, filled)] == [
        "NEW",
        "ACCEPTED",
        "FILLED",
    ]
    assert json.loads(started.payload_json)["log_id"] in order.client_order_id
    # The small messages were journaled together, as one record, before the signal.
    assert len(decode_batch(json.loads(market.payload_json)["batch"])) == 140
    assert client.verify_audit().ok


def test_sideways_noise_crosses_but_never_clears_the_confidence_bar(svc: RunningService) -> None:
    summary = svc.client.stream_market_data([minute_ticks("SPY", sideways())])

    assert summary.signals >= 2, "the noise path should produce crossings to judge"
    assert summary.approvals == 0 and summary.orders == 0
    decisions = svc.client.get_risk_status(recent_decisions=100).recent_decisions
    for decision in decisions:
        assert decision.signal.confidence < 0.6
        codes = {v.code for v in decision.verdicts if not v.passed}
        assert codes == {"CONFIDENCE_BELOW_MINIMUM"}
    assert not svc.client.list_positions().positions


def test_a_downward_cross_sells_what_is_held_and_never_opens_a_short(svc: RunningService) -> None:
    up_then_down = v_reversal() + v_reversal(down=0, up=0)  # buy first
    prices = up_then_down + [round(up_then_down[-1] * (1 - 0.006) ** k, 4) for k in range(1, 90)]
    summary = svc.client.stream_market_data([minute_ticks("SPY", prices)])

    assert summary.orders == 2
    buy, sell = svc.client.list_order_history().orders
    assert (buy.side, sell.side) == (orders_pb2.SIDE_BUY, orders_pb2.SIDE_SELL)
    assert sell.quantity == buy.quantity
    assert not svc.client.list_positions().positions
    # Another fall when flat: no signal at all (long-only), so no short.
    more = [round(prices[-1] * (1 + 0.006) ** k, 4) for k in range(1, 80)]
    more += [round(more[-1] * (1 - 0.006) ** k, 4) for k in range(1, 80)]
    start = SESSION_START.replace(day=6)
    svc.client.stream_market_data([minute_ticks("SPY", more, start=start)])
    sides = [o.side for o in svc.client.list_order_history().orders]
    assert sides.count(orders_pb2.SIDE_SELL) == sides.count(orders_pb2.SIDE_BUY)
    assert not svc.client.list_positions().positions


def test_deactivating_risk_halts_trading_and_no_order_reaches_the_broker(
    svc: RunningService,
) -> None:
    halted = svc.client.deactivate_risk("end of day checks").trading
    assert halted.state == risk_pb2.TRADING_STATE_HALTED
    assert (halted.changed_by, halted.reason) == ("operator", "end of day checks")

    summary = svc.client.stream_market_data([minute_ticks("SPY", v_reversal())])

    assert (summary.signals, summary.approvals, summary.orders) == (1, 0, 0)
    [decision] = svc.client.get_risk_status(recent_decisions=1).recent_decisions
    [halt] = [v for v in decision.verdicts if not v.passed]
    assert halt.code == "RISK_ENGINE_DEACTIVATED" and "end of day checks" in halt.detail
    assert svc.client.get_execution_status().orders_submitted == 0
    assert not svc.client.list_order_history().orders
    account = svc.client.get_account().account
    assert Decimal(account.cash) == Decimal(100000)


def test_subscribers_see_signals_decisions_and_orders_live_filtered_by_type(
    svc: RunningService,
) -> None:
    stream = svc.client.subscribe_events(types=[events_pb2.EVENT_TYPE_ORDER], symbols=["SPY"])
    svc.client.stream_market_data([minute_ticks("SPY", v_reversal())])
    seen = [next(stream) for _ in range(3)]
    stream.cancel()

    assert all(e.type == events_pb2.EVENT_TYPE_ORDER for e in seen)
    assert [e.order.status for e in seen] == [
        orders_pb2.ORDER_STATUS_NEW,
        orders_pb2.ORDER_STATUS_ACCEPTED,
        orders_pb2.ORDER_STATUS_FILLED,
    ]
    # From a seq: the log first, then live, nothing twice.
    replay = svc.client.subscribe_events(from_seq=1)
    replayed = [next(replay) for _ in range(5)]
    replay.cancel()
    assert [e.seq for e in replayed] == sorted({e.seq for e in replayed})
    assert replayed[0].type == events_pb2.EVENT_TYPE_SERVICE_STARTED


def test_strategies_can_be_listed_deactivated_and_reactivated(svc: RunningService) -> None:
    [strategy] = svc.client.list_strategies().strategies
    assert strategy.name == "ma_crossover" and strategy.active
    assert list(strategy.symbols) == ["SPY", "QQQ", "IWM"]
    assert strategy.parameters["short_period"] == "20"

    assert not svc.client.deactivate_strategy("ma_crossover").strategy.active
    summary = svc.client.stream_market_data([minute_ticks("SPY", v_reversal())])
    assert summary.signals == 0

    assert svc.client.activate_strategy("ma_crossover").strategy.active
    status = svc.client.get_status()
    assert {c.name for c in status.components} == {
        "strategy",
        "risk",
        "execution",
        "broker",
        "audit",
    }
    assert status.counters.market_events == 140
