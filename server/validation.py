"""Request validation at the edge: bad input becomes InvalidInput with a message a
person can act on, before anything reaches the core."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from trading.v1 import market_pb2

from domain.errors import InvalidInput
from domain.market import MarketBatch

SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9./\-]{0,9}")
_INF = math.inf
NS = 1_000_000_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


def symbol(value: str, where: str = "symbol") -> str:
    if not SYMBOL.fullmatch(value):
        if not value:
            raise InvalidInput(f"{where} is empty")
        raise InvalidInput(
            f"{where} {value!r} is malformed: use 1-10 upper-case letters, digits, '.', '-' or '/'"
        )
    return value


class MarketBatchReader:
    """Turns `MarketEvent` messages into a columnar `MarketBatch`, refusing the whole
    batch at the first bad event. Symbols already seen valid skip the regex."""

    def __init__(self, require_timestamp: bool, max_future_skew_ns: int) -> None:
        self.require_timestamp = require_timestamp
        self.max_future_skew_ns = max_future_skew_ns
        self._valid_symbols: set[str] = set()

    def read(self, events: Sequence[market_pb2.MarketEvent], now_ns: int) -> MarketBatch:
        if not events:
            raise InvalidInput("the batch has no events: send at least one")
        valid = self._valid_symbols
        latest = now_ns + self.max_future_skew_ns
        symbols: list[str] = []
        prices: list[float] = []
        volumes: list[float] = []
        stamps: list[int] = []
        for i, event in enumerate(events):
            sym = event.symbol
            if sym not in valid:
                symbol(sym, f"event {i}: symbol")
                valid.add(sym)
            price = event.price
            if not 0.0 < price < _INF:
                raise InvalidInput(f"event {i} ({sym}): price must be finite and > 0, got {price}")
            volume = event.volume
            if not 0.0 <= volume < _INF:
                raise InvalidInput(
                    f"event {i} ({sym}): volume must be finite and >= 0, got {volume}"
                )
            if event.HasField("timestamp"):
                ts = event.timestamp
                stamp = ts.seconds * NS + ts.nanos
                if not 0 <= stamp <= latest or not 0 <= ts.nanos < NS:
                    raise InvalidInput(self._bad_timestamp(i, sym, stamp, now_ns))
            elif self.require_timestamp:
                raise InvalidInput(
                    f"event {i} ({sym}): timestamp is required when TRADING_CLOCK=event"
                )
            else:
                stamp = now_ns
            symbols.append(sym)
            prices.append(price)
            volumes.append(volume)
            stamps.append(stamp)
        return MarketBatch(symbols, prices, volumes, stamps)

    def _bad_timestamp(self, i: int, sym: str, stamp: int, now_ns: int) -> str:
        if stamp < 0:
            return f"event {i} ({sym}): timestamp is before 1970-01-01"
        ahead = (stamp - now_ns) / NS
        return (
            f"event {i} ({sym}): timestamp is {ahead:.0f}s in the future; "
            f"at most {self.max_future_skew_ns // NS}s ahead of the service's clock is accepted"
        )


def page(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, size) from a page request; the token is the offset we handed out."""
    if page_size > MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be at most {MAX_PAGE_SIZE}, got {page_size}")
    size = page_size or DEFAULT_PAGE_SIZE
    if not page_token:
        return 0, size
    if not page_token.isdigit():
        raise InvalidInput("page_token is not one this service issued; start without it")
    return int(page_token), size


def reason(value: str, what: str = "reason") -> str:
    value = value.strip()
    if len(value) > 500:
        raise InvalidInput(f"{what} is too long: at most 500 characters")
    return value
