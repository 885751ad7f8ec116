"""Advisor messages for the client tests: an analysis with one idea, pending or approved."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from trading_sdk.v1 import advisor_pb2, orders_pb2, risk_pb2

ANALYSIS_ID = "a506"
IDEA_ID = "i506.1"
RATIONALE = "Put a small part of the idle cash into MSFT, the symbol in the strongest uptrend."
RISKS = ("the trend may reverse", "a single-stock position is concentrated risk")


def stamp(text: str) -> timestamp_pb2.Timestamp:
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(datetime.fromisoformat(text).astimezone(UTC))
    return moment


def pending_idea() -> advisor_pb2.TradeIdea:
    return advisor_pb2.TradeIdea(
        idea_id=IDEA_ID,
        analysis_id=ANALYSIS_ID,
        symbol="MSFT",
        side=orders_pb2.SIDE_BUY,
        quantity="101",
        notional="2822.95",
        reference_price="27.95",
        confidence=0.6,
        rationale=RATIONALE,
        risks=RISKS,
        created_at=stamp("2013-03-01T20:59:00+00:00"),
        expires_at=stamp("2013-03-01T21:14:00+00:00"),
        state=advisor_pb2.IDEA_STATE_PENDING_APPROVAL,
    )


def approved_idea() -> advisor_pb2.TradeIdea:
    idea = pending_idea()
    idea.state = advisor_pb2.IDEA_STATE_APPROVED
    idea.decided_by = "alice"
    idea.decision_reason = "fits the plan"
    idea.decided_at.CopyFrom(stamp("2013-03-01T21:00:00+00:00"))
    idea.decision_id = "d509"
    idea.risk_decision.CopyFrom(
        risk_pb2.RiskDecision(
            decision_id="d509",
            approved=True,
            signal=risk_pb2.TradeSignal(
                symbol="MSFT",
                side=orders_pb2.SIDE_BUY,
                quantity="101",
                reference_price="27.95",
                confidence=0.6,
                source=f"idea:{IDEA_ID}",
            ),
        )
    )
    idea.order_id = "o510"
    idea.order.CopyFrom(
        orders_pb2.Order(
            order_id="o510",
            symbol="MSFT",
            side=orders_pb2.SIDE_BUY,
            quantity="101",
            type=orders_pb2.ORDER_TYPE_MARKET,
            status=orders_pb2.ORDER_STATUS_FILLED,
            filled_quantity="101",
            average_fill_price="27.9640",
        )
    )
    return idea


def analysis(*dropped: str) -> advisor_pb2.Analysis:
    return advisor_pb2.Analysis(
        analysis_id=ANALYSIS_ID,
        requested_by="alice",
        kind=advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW,
        symbols=["MSFT", "GOOG"],
        text="MSFT: trend up.\nCash is 95.8% of equity.",
        warnings=["Not financial advice."],
        analyst="offline",
        model="offline-rules",
        prompt_version="offline_rules_v1",
        created_at=stamp("2013-03-01T20:59:00+00:00"),
        idea_ids=[IDEA_ID],
        dropped=dropped,
    )
