"""The last price seen per symbol, and when: written by the strategy engine as it
runs a batch, read when a signal is sized, risk-checked, or a paper order is
filled, and (under the event clock) when a market-data message is admitted."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from domain import numeric
from domain.errors import InvalidInput
from domain.market import MarketBatch

NS = 1_000_000_000


class MarketPrices:
    """Last traded price and tick time per symbol. Floats on the hot path; `Decimal`
    on demand.

    `last_ns[symbol]` is the timestamp (ns since the epoch) of the last tick of
    `symbol` the core accepted; it is kept per batch, and brought up to the very
    tick before a signal is sized, as `last` is."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.last_ns: dict[str, int] = {}

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

    def check_in_order(self, batch: MarketBatch) -> None:
        """Refuse `batch` (InvalidInput, BAD_MARKET_EVENT with its `event_index`) if a
        tick is older than the last one accepted for its symbol, before or earlier in
        the batch. Equal times are in order. Under the event clock the sequencer asks
        this before it admits a message, so the same history streamed twice cannot
        trade twice.

        The common case costs two C-level passes: the batch is in time order
        (sorting a sorted list is one pass) and its first tick is no older than
        the last accepted tick of any of its symbols. Otherwise the ticks are
        walked one by one to find the first out of order, if there is one."""
        stamps = batch.timestamps_ns
        last_ns = self.last_ns
        if len(stamps) == 1 or stamps == sorted(stamps):
            first = stamps[0]
            symbols = batch.symbols
            distinct = (symbols[0],) if len(symbols) == 1 else set(symbols)
            if all(last_ns.get(s, first) <= first for s in distinct):
                return
        _find_out_of_order(batch, last_ns)


def _find_out_of_order(batch: MarketBatch, last_ns: dict[str, int]) -> None:
    latest: dict[str, tuple[int, int]] = {}  # symbol -> (time, index in the batch)
    for index, (symbol, stamp) in enumerate(zip(batch.symbols, batch.timestamps_ns, strict=True)):
        seen = latest.get(symbol)
        if seen is None:
            accepted = last_ns.get(symbol)
            if accepted is not None and stamp < accepted:
                raise _out_of_order(
                    index,
                    symbol,
                    stamp,
                    f"the last tick of {symbol} already accepted ({format_ns(accepted)})",
                )
        elif stamp < seen[0]:
            raise _out_of_order(
                index, symbol, stamp, f"event {seen[1]} of this message ({format_ns(seen[0])})"
            )
        latest[symbol] = (stamp, index)


def _out_of_order(index: int, symbol: str, stamp: int, before: str) -> InvalidInput:
    return InvalidInput(
        f"event {index} ({symbol}): timestamp {format_ns(stamp)} is older than {before}; "
        "under TRADING_CLOCK=event a symbol's ticks must not go back in time, so history "
        "already sent is not processed twice (a feed that resends should name itself "
        "with feed_id and number its messages)",
        reason="BAD_MARKET_EVENT",
        metadata={"event_index": str(index)},
    )


def format_ns(ns: int) -> str:
    """A tick time as ISO 8601 UTC to the nanosecond: 2024-03-05T15:00:01.000000000Z."""
    seconds, nanos = divmod(ns, NS)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"
