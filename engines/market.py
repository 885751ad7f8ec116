"""The last price seen per symbol: written once per tick by the strategy engine,
read when a signal is sized, risk-checked, or a paper order is filled."""

from __future__ import annotations

from decimal import Decimal

from domain import numeric


class MarketPrices:
    """Last traded price per symbol. Floats on the hot path; `Decimal` on demand."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def last_price(self, symbol: str) -> Decimal | None:
        """The last price as an exact Decimal, or None when there is no usable one:
        none seen yet, or the last one is outside the numeric price domain (NaN,
        infinite, non-positive or out of range).

        The edge refuses such prices, but the core does not rely on it: a price
        that got in anyway is treated as no price, so it can never become a
        Decimal infinity or a mark that no amount of money can hold. Readers
        already handle None: sizing and the advisor find no price, the paper
        broker rejects the order, and the portfolio marks at the average cost.
        (A crossing at such a tick is not traded either: sizing gives a buy no
        shares at a price outside the domain, and a sell carries the price as
        its reference price, which the risk gate's NumericDomainRule refuses.)"""
        price = self.last.get(symbol)
        if price is None or not numeric.price_in_domain(price):
            return None
        return Decimal(repr(price))
