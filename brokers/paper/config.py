from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class PaperBrokerConfig:
    """Starting cash, and slippage in basis points against the taker (buys pay up)."""

    starting_cash: Decimal = Decimal("100000")
    slippage_bps: Decimal = Decimal("5")
    allow_short: bool = False
