"""Risk-gate replies for the fake service in the client tests, shaped as the real service
answers them (rule names, codes and details copied from a run)."""

from __future__ import annotations

from tests.client.advisor_samples import stamp
from trading_sdk.v1 import orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

SINCE = "2024-03-05T15:00:04Z"


def halted_by_alice(reason: str = "broker incident") -> risk_pb2.TradingStatus:
    return risk_pb2.TradingStatus(
        state=risk_pb2.TRADING_STATE_HALTED,
        changed_by="alice",
        reason=reason,
        changed_at=stamp("2024-03-05T15:00:04+00:00"),
        cause=risk_pb2.TRADING_CAUSE_OPERATOR,
    )


def daily_loss_reducing() -> risk_pb2.TradingStatus:
    return risk_pb2.TradingStatus(
        state=risk_pb2.TRADING_STATE_REDUCING,
        changed_by="system:daily-loss",
        reason="loss=3100.00 floor=97000.00",
        changed_at=stamp("2024-03-05T15:00:00+00:00"),
        cause=risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
    )


def verdicts(*failing: tuple[str, str, str]) -> list[risk_pb2.RuleVerdict]:
    """Two passing verdicts, then one per (rule, code, detail) given, failed."""
    return [
        risk_pb2.RuleVerdict(
            rule="MarketHoursRule",
            passed=True,
            code="OK",
            detail="2024-03-05T15:00:04Z in session",
        ),
        risk_pb2.RuleVerdict(
            rule="MaxOrderQuantityRule", passed=True, code="OK", detail="quantity=5 limit=10000"
        ),
        *(risk_pb2.RuleVerdict(rule=r, passed=False, code=c, detail=d) for r, c, d in failing),
    ]


SIZE_REFUSAL = (
    "MaxPositionSizeRule",
    "POSITION_SIZE_EXCEEDS_LIMIT",
    "notional=5040.00 limit=5000.00",
)
COLLAR_REFUSAL = (
    "PriceCollarRule",
    "PRICE_OUTSIDE_COLLAR",
    "limit_price=100.00 last=124.00 allowed=[117.80, 130.20] price_collar_pct=0.05",
)


def signal(side: orders_pb2.Side.ValueType, quantity: str, source: str) -> risk_pb2.TradeSignal:
    return risk_pb2.TradeSignal(
        signal_id="m5",
        source=source,
        symbol="IBM",
        side=side,
        quantity=quantity,
        reference_price="124.0",
        confidence=1.0,
    )


def decision(
    decision_id: str,
    side: orders_pb2.Side.ValueType,
    quantity: str,
    *failing: tuple[str, str, str],
    source: str = "manual:alice",
) -> risk_pb2.RiskDecision:
    return risk_pb2.RiskDecision(
        decision_id=decision_id,
        signal=signal(side, quantity, source),
        approved=not failing,
        verdicts=verdicts(*failing),
    )


def order(
    order_id: str,
    side: orders_pb2.Side.ValueType,
    quantity: str,
    status: orders_pb2.OrderStatus.ValueType,
    order_type: orders_pb2.OrderType.ValueType = orders_pb2.ORDER_TYPE_MARKET,
    filled: str = "",
    price: str = "",
) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=order_id,
        symbol="IBM",
        side=side,
        quantity=quantity,
        type=order_type,
        status=status,
        filled_quantity=filled,
        average_fill_price=price,
    )


def rules() -> list[risk_pb2.RiskRule]:
    return [
        risk_pb2.RiskRule(
            name="PriceCollarRule",
            parameters={"price_collar_pct": "0.05"},
            passed=3,
            rejected=1,
            passed_total=40,
            rejected_total=2,
            applies_to_reducing=True,
        ),
        risk_pb2.RiskRule(
            name="MaxPositionSizeRule",
            parameters={"max_position_pct": "0.05"},
            passed=4,
            passed_total=41,
            rejected_total=1,
        ),
    ]


LIMITS = {"max_order_quantity": "10000", "duplicate_window": "60", "min_confidence": "0.6"}


def risk_status() -> pb.GetRiskStatusResponse:
    return pb.GetRiskStatusResponse(
        active=False,
        trading=halted_by_alice(),
        causes=[halted_by_alice(), daily_loss_reducing()],
        rules=rules(),
        approvals=3,
        rejections=1,
        recent_decisions=[decision("d5", orders_pb2.SIDE_BUY, "5")],
        limits=LIMITS,
    )
