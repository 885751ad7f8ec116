"""Notional orders: a person asks for an amount of money's worth; the gate judges
the quantity it buys at the last price (rounded down to the ninth decimal); the
broker fixes the real quantity, which the order then carries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.orders import ManualOrder, OrderStatus, OrderType, Side, TimeInForce
from server.validation import manual_order
from tests.core.harness import make_harness

NINE_PLACES = Decimal("1e-9")


def _notional(amount: str) -> ManualOrder:
    return manual_order("SPY", Side.BUY, "", None, "", "by hand", None, amount)


def test_a_notional_order_buys_what_the_money_buys_at_the_fill_price(calendar: Any) -> None:
    harness = make_harness(calendar)
    harness.core.prices.last["SPY"] = 300.0
    harness.core.prices.last_ns["SPY"] = harness.core.bus.clock.now_ns()

    decision, order = harness.core.submit_order(_notional("1000"), "alice")

    assert decision.approved
    # Judged at the last price: 1000 / 300, to nine places, rounded down.
    assert decision.signal.quantity == Decimal("3.333333333")
    assert order is not None and order.status is OrderStatus.FILLED
    assert order.amount == Decimal(1000)
    # Filled at the paper broker's price (300 plus 5 bps), for what 1000 buys there.
    fill_price = Decimal("300.1500")
    assert order.average_fill_price == fill_price
    assert (
        order.quantity
        == order.filled_quantity
        == (Decimal(1000) / fill_price).quantize(NINE_PLACES, rounding="ROUND_DOWN")
    )
    assert order.filled_quantity * fill_price <= 1000
    assert harness.core.portfolio.quantity("SPY") == order.filled_quantity


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cents=st.integers(min_value=1, max_value=10**12),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2),
)
def test_the_estimate_never_spends_more_than_the_amount(cents: int, price: Decimal) -> None:
    from engines.desk import manual_signal
    from engines.market import MarketPrices
    from tests.support.market import SESSION

    prices = MarketPrices()
    prices.last["SPY"] = float(price)
    amount = Decimal(cents).scaleb(-2)
    try:
        signal = manual_signal(_notional(str(amount)), "manual:alice", "m1", prices, SESSION)
    except InvalidInput as exc:
        assert exc.reason == "NOTIONAL_TOO_SMALL"
        assert amount / Decimal(float(price)) < NINE_PLACES
        return
    reference = signal.reference_price
    assert signal.quantity * reference <= amount
    assert (signal.quantity + NINE_PLACES) * reference > amount  # nothing left on the table
    assert signal.amount == amount
    assert signal.quantity == signal.quantity.quantize(NINE_PLACES)  # at most nine places


@pytest.mark.parametrize(
    ("quantity", "order_type", "limit", "tif", "amount", "says"),
    [
        ("1", None, "", None, "100", "not both"),
        ("", OrderType.LIMIT, "10", None, "100", "MARKET order"),
        ("", None, "", TimeInForce.GTC, "100", "DAY order"),
        ("", None, "", None, "0", "above 0"),
        ("", None, "", None, "-5", "above 0"),
        ("", None, "", None, "100.001", "more than 2 decimals"),
        ("", None, "", None, "1e17", "at most"),
        ("", None, "", None, "NaN", "notional"),
    ],
)
def test_a_bad_notional_order_is_refused_before_anything_runs(
    quantity: str,
    order_type: OrderType | None,
    limit: str,
    tif: TimeInForce | None,
    amount: str,
    says: str,
) -> None:
    with pytest.raises(InvalidInput, match=says):
        manual_order("SPY", Side.BUY, quantity, order_type, limit, "", tif, amount)
