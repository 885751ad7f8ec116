"""A SubmitOrder as alpaca-py's order request, or a refusal before anything is sent.

Alpaca takes quantities and notionals with up to 9 decimals, and limit prices
with at most 2 decimals at or above $1, 4 below. Amounts are rounded here with
`Decimal`, always to the side that asks for less than the caller did: a
quantity or a notional DOWN, a buy's limit DOWN, a sell's limit UP (never a
worse price than asked).

alpaca-py's request models type `qty`, `notional` and `limit_price` as `float`,
and the SDK posts that float as a JSON number (its shortest repr). So after
rounding, each amount must survive the trip through a binary float unchanged;
one that would not is refused locally rather than sent altered.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from alpaca.trading.enums import OrderSide
from alpaca.trading.enums import TimeInForce as AlpacaTimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from pydantic import ValidationError

from brokers.alpaca.mapping import SIDE_TO_ALPACA, TIME_IN_FORCE_TO_ALPACA
from domain.orders import OrderType, Side, SubmitOrder, TimeInForce

MAX_CLIENT_ORDER_ID = 48
"""Alpaca's archived API docs allow 48 characters, the current ones 128: 48 fits both."""

QUANTITY_STEP = Decimal("0.000000001")  # 9 decimals, for qty and notional alike
_CENT = Decimal("0.01")
_HUNDREDTH_CENT = Decimal("0.0001")
_ONE = Decimal(1)

OrderRequest = MarketOrderRequest | LimitOrderRequest


class LocalRefusal(Exception):
    """The order is not sent: `code` names the rule, `message` says what to change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class AlpacaAmounts:
    """What will be sent, once rounded (None: the field is not sent)."""

    quantity: Decimal
    limit_price: Decimal | None


def quantity_for_alpaca(quantity: Decimal) -> Decimal:
    """Rounded DOWN to Alpaca's 9 decimals."""
    return quantity.quantize(QUANTITY_STEP, rounding=ROUND_DOWN)


def notional_for_alpaca(notional: Decimal) -> Decimal:
    """A notional (dollar amount) rounded DOWN to Alpaca's 9 decimals."""
    return notional.quantize(QUANTITY_STEP, rounding=ROUND_DOWN)


def limit_price_for_alpaca(price: Decimal, side: Side) -> Decimal:
    """Rounded to 2 decimals at or above $1, 4 below: a buy DOWN, a sell UP."""
    step = _CENT if price >= _ONE else _HUNDREDTH_CENT
    rounding = ROUND_DOWN if side is Side.BUY else ROUND_UP
    return price.quantize(step, rounding=rounding)


def float_exact(value: Decimal) -> bool:
    """Whether the float alpaca-py will send for `value` is exactly `value`."""
    return Decimal(repr(float(value))) == value


def is_fractional(quantity: Decimal) -> bool:
    return quantity != quantity.to_integral_value()


def amounts_for_alpaca(order: SubmitOrder) -> AlpacaAmounts:
    """The order's quantity and limit price as Alpaca will get them; raises
    LocalRefusal for an order Alpaca could not take as asked."""
    if not order.client_order_id:
        raise LocalRefusal("client-order-id-missing", "the order has no client order id")
    if len(order.client_order_id) > MAX_CLIENT_ORDER_ID:
        raise LocalRefusal(
            "client-order-id-too-long",
            f"client order id is {len(order.client_order_id)} characters; "
            f"Alpaca takes at most {MAX_CLIENT_ORDER_ID}",
        )
    if not order.symbol:
        raise LocalRefusal("symbol-missing", "the order has no symbol")
    if not order.quantity.is_finite() or order.quantity <= 0:
        raise LocalRefusal("quantity-not-positive", f"quantity {order.quantity} is not positive")
    quantity = quantity_for_alpaca(order.quantity)
    if quantity <= 0:
        raise LocalRefusal(
            "quantity-below-step",
            f"quantity {order.quantity} is below Alpaca's smallest step {QUANTITY_STEP}",
        )
    if is_fractional(quantity) and order.time_in_force is not TimeInForce.DAY:
        raise LocalRefusal(
            "fractional-needs-day",
            f"a fractional quantity ({quantity}) must be a DAY order at Alpaca, "
            f"not {order.time_in_force.value}",
        )
    if not float_exact(quantity):
        raise LocalRefusal(
            "not-float-exact",
            f"quantity {quantity} has more significant digits than a float carries exactly "
            "(alpaca-py sends it as a float)",
        )
    limit_price = None
    if order.order_type is OrderType.LIMIT:
        if order.limit_price is None:
            raise LocalRefusal("limit-price-missing", "a limit order needs a limit price")
        if not order.limit_price.is_finite() or order.limit_price <= 0:
            raise LocalRefusal(
                "limit-price-not-positive", f"limit price {order.limit_price} is not positive"
            )
        limit_price = limit_price_for_alpaca(order.limit_price, order.side)
        if limit_price <= 0:
            raise LocalRefusal(
                "limit-price-below-step",
                f"limit price {order.limit_price} rounds to zero at Alpaca's $0.0001 step",
            )
        if not float_exact(limit_price):
            raise LocalRefusal(
                "not-float-exact",
                f"limit price {limit_price} has more significant digits than a float "
                "carries exactly (alpaca-py sends it as a float)",
            )
    elif order.limit_price is not None:
        raise LocalRefusal("limit-price-on-market", "a market order takes no limit price")
    return AlpacaAmounts(quantity, limit_price)


def order_request_for(order: SubmitOrder) -> OrderRequest:
    """alpaca-py's request for `order` (a notional one for an order with an amount);
    raises LocalRefusal."""
    if order.amount is not None:
        if order.order_type is not OrderType.MARKET or order.time_in_force is not TimeInForce.DAY:
            raise LocalRefusal(
                "notional-needs-market-day", "Alpaca takes notional orders as market DAY orders"
            )
        return notional_order_request_for(
            order.client_order_id, order.symbol, order.side, order.amount
        )
    amounts = amounts_for_alpaca(order)
    fields = {
        "symbol": order.symbol,
        "qty": float(amounts.quantity),
        "side": OrderSide(SIDE_TO_ALPACA[order.side]),
        "time_in_force": AlpacaTimeInForce(TIME_IN_FORCE_TO_ALPACA[order.time_in_force]),
        "client_order_id": order.client_order_id,
    }
    request: OrderRequest
    try:
        if amounts.limit_price is None:
            request = MarketOrderRequest(**fields)
        else:
            request = LimitOrderRequest(**fields, limit_price=float(amounts.limit_price))
    except ValidationError as exc:
        raise LocalRefusal("invalid-request", _first_error(exc)) from exc
    _check_sent(request.qty, amounts.quantity, "quantity")
    if amounts.limit_price is not None:
        _check_sent(getattr(request, "limit_price", None), amounts.limit_price, "limit price")
    return request


def notional_order_request_for(
    client_order_id: str, symbol: str, side: Side, notional: Decimal
) -> MarketOrderRequest:
    """A DAY market order for a dollar amount (Alpaca takes notionals on market DAY
    orders only); raises LocalRefusal."""
    if not client_order_id or len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise LocalRefusal(
            "client-order-id-too-long",
            f"client order id must be 1 to {MAX_CLIENT_ORDER_ID} characters",
        )
    if not notional.is_finite() or notional <= 0:
        raise LocalRefusal("notional-not-positive", f"notional {notional} is not positive")
    amount = notional_for_alpaca(notional)
    if amount <= 0:
        raise LocalRefusal("notional-below-step", f"notional {notional} rounds to zero")
    if not float_exact(amount):
        raise LocalRefusal(
            "not-float-exact",
            f"notional {amount} has more significant digits than a float carries exactly "
            "(alpaca-py sends it as a float)",
        )
    try:
        request = MarketOrderRequest(
            symbol=symbol,
            notional=float(amount),
            side=OrderSide(SIDE_TO_ALPACA[side]),
            time_in_force=AlpacaTimeInForce.DAY,
            client_order_id=client_order_id,
        )
    except ValidationError as exc:
        raise LocalRefusal("invalid-request", _first_error(exc)) from exc
    _check_sent(request.notional, amount, "notional")
    return request


def _check_sent(sent: float | None, meant: Decimal, what: str) -> None:
    if sent is None or Decimal(repr(sent)) != meant:
        raise LocalRefusal(
            "not-float-exact", f"the SDK would send {what} {sent!r} for {meant}: not sent"
        )


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    return str(errors[0].get("msg", exc)) if errors else str(exc)
