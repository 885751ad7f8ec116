"""The last price seen per symbol: written once per tick by the strategy engine,
read when a signal is sized, risk-checked, or a paper order is filled."""

from __future__ import annotations

from decimal import Decimal


class MarketPrices:
    """Last traded price per symbol. Floats on the hot path; `Decimal` on demand."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def last_price(self, symbol: str) -> Decimal | None:
        price = self.last.get(symbol)
        return None if price is None else Decimal(repr(price))
