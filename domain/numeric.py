"""The numeric domain: the finite ranges every number the service works with lies in.

DESIGN.md invariant 7 says numbers outside a documented finite domain are
refused at the edge and any non-finite intermediate in the core refuses the
signal. This module is that documentation, as constants and small pure checks
that the edge (`server/validation.py`) and the core (the risk gate, sizing, the
advisor) share, so that both sides agree on one set of bounds.

The domain
----------
- price: finite, in [MIN_PRICE, MAX_PRICE] = [0.0001, 10000000]. A hundredth of
  a cent to ten million covers every listed instrument with room to spare.
- volume: finite, in [MIN_VOLUME, MAX_VOLUME] = [0, 1e12] shares, far above any day's
  trading in anything.
- order quantity: finite, in (0, MAX_ORDER_QUANTITY] = (0, 1e9] shares.
- money (cash, equity, a notional, a P&L): finite, |x| <= MAX_MONEY = 1e16,
  which is MAX_PRICE * MAX_ORDER_QUANTITY, the largest single notional.
- confidence: finite, in [0, 1].

Exact integer arithmetic
------------------------
Every bound is chosen so that the numbers fit exact fixed-point integers:

- a price in units of 1e-8 (``PRICE_SCALE``) is at most 1e7 * 1e8 = 1e15, which
  fits int64 (up to about 9.2e18) more than 9000 times over, and is even below
  2**53 (about 9.0e15), the largest range in which a double holds every integer
  exactly; the smallest price, 1e-4, is still 10 000 units, so no price in the
  domain rounds to zero;
- an order quantity in units of 1e-8 is at most 1e9 * 1e8 = 1e17, within int64;
- money in cents is at most 1e16 * 100 = 1e18, within int64; and every money
  amount in the domain has at most 19 digits at cent precision, well inside the
  28 digits of Python's default Decimal context, so ``quantize(Decimal("0.01"))``
  never raises ``InvalidOperation`` for a value in the domain;
- a volume is at most 1e12, within int64 as a whole number of shares (volume
  only informs; it is never priced, so it needs no finer fixed-point unit).

(The product of a price and a quantity in 1e-8 units, 1e32, needs 128 bits:
such products are done in Decimal, as the domain does for all money.)

Checks are written so that NaN fails them: a float comparison with NaN is
always False, so each check asks "is it inside?" and refuses when the answer is
not True, never "is it outside?". A Decimal NaN raises on `<` instead, so the
Decimal checks ask `is_finite()` first.
"""

from __future__ import annotations

import math
from decimal import Decimal

MIN_PRICE = 1e-4
MAX_PRICE = 1e7
MIN_VOLUME = 0.0
MAX_VOLUME = 1e12
MAX_ORDER_QUANTITY = Decimal(10) ** 9
MAX_MONEY = Decimal(10) ** 16
MIN_CONFIDENCE = 0.0
MAX_CONFIDENCE = 1.0

# The fixed-point unit the bounds above are sized for (see the module docstring).
PRICE_SCALE = 10**8
INT64_MAX = 2**63 - 1

MIN_PRICE_DECIMAL = Decimal(repr(MIN_PRICE))
MAX_PRICE_DECIMAL = Decimal(repr(MAX_PRICE))


def plain(value: float | Decimal) -> str:
    """A bound as a person writes it: 0.0001, 10000000, 1000000000000 (no exponent)."""
    text = f"{Decimal(repr(value)) if isinstance(value, float) else value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


PRICE_RANGE = f"[{plain(MIN_PRICE)}, {plain(MAX_PRICE)}]"
VOLUME_RANGE = f"[{plain(MIN_VOLUME)}, {plain(MAX_VOLUME)}]"
ORDER_QUANTITY_RANGE = f"(0, {plain(MAX_ORDER_QUANTITY)}]"
MONEY_RANGE = f"[-{plain(MAX_MONEY)}, {plain(MAX_MONEY)}]"
CONFIDENCE_RANGE = f"[{plain(MIN_CONFIDENCE)}, {plain(MAX_CONFIDENCE)}]"


def is_finite(value: float | Decimal) -> bool:
    """True for a finite float or Decimal; False for NaN (quiet or signalling) and ±inf."""
    if isinstance(value, Decimal):
        return value.is_finite()
    return math.isfinite(value)


def price_in_domain(price: float) -> bool:
    """A market price the service accepts (NaN and ±inf fail the comparison)."""
    return MIN_PRICE <= price <= MAX_PRICE


def volume_in_domain(volume: float) -> bool:
    return MIN_VOLUME <= volume <= MAX_VOLUME


def decimal_price_in_domain(price: Decimal) -> bool:
    """A Decimal price (a reference or limit price) inside the price domain."""
    # A Decimal NaN raises on `<=`, so finiteness is asked first.
    return price.is_finite() and MIN_PRICE_DECIMAL <= price <= MAX_PRICE_DECIMAL


def order_quantity_in_domain(quantity: Decimal) -> bool:
    return quantity.is_finite() and Decimal(0) < quantity <= MAX_ORDER_QUANTITY


def money_in_domain(amount: Decimal) -> bool:
    """Cash, equity, a notional or a P&L the core can value and round to cents."""
    return amount.is_finite() and -MAX_MONEY <= amount <= MAX_MONEY


def confidence_in_domain(confidence: float) -> bool:
    return MIN_CONFIDENCE <= confidence <= MAX_CONFIDENCE


def decimal_or_none(value: float) -> Decimal | None:
    """The exact Decimal of a finite float (through its shortest repr, so 512.3
    stays 512.3), or None for NaN and ±inf, which no Decimal amount may be."""
    return Decimal(repr(value)) if math.isfinite(value) else None
