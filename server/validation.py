"""Request validation at the edge: bad input becomes InvalidInput with a message a
person can act on, before anything reaches the core."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, repeat
from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from domain import numeric
from domain.errors import InvalidInput
from domain.market import MarketBatch
from domain.orders import ManualOrder, OrderType, Side, TimeInForce
from engines.bus import MAX_TICKS_PER_MESSAGE, message_too_large
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

T = TypeVar("T")
SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9./\-]{0,9}")
_INF = math.inf
NS = 1_000_000_000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# An error message travels in a gRPC trailer (with its ErrorInfo copy), which
# clients cap at 16 KiB: a client's string is quoted at most this long.
MAX_QUOTED = 40
# A columnar message whose series average at least this many ticks converts each
# series' arrays on their own (numpy copies a packed field in C); one of shorter
# series chains them into one list first (a numpy call per series costs more).
_DENSE_SERIES = 32
# A SymbolSeries' fields, each read once: symbol, prices, volumes, timestamps_ns.
_Series: TypeAlias = tuple[str, Sequence[float], Sequence[float], Sequence[int]]


def quoted(value: str) -> str:
    """A client's string as an error message shows it: repr, cut short if long."""
    if len(value) <= MAX_QUOTED:
        return repr(value)
    return f"{value[:MAX_QUOTED]!r}... ({len(value)} characters)"


def symbol(value: str, where: str = "symbol") -> str:
    if not SYMBOL.fullmatch(value):
        if not value:
            raise InvalidInput(f"{where} is empty")
        raise InvalidInput(
            f"{where} {quoted(value)} is malformed: "
            "use 1-10 upper-case letters, digits, '.', '-' or '/'"
        )
    return value


class MarketBatchReader:
    """Turns a market-data message into a columnar `MarketBatch`, refusing the whole
    message at the first bad tick. Symbols already seen valid skip the regex.

    A message carries its ticks as rows (`MarketEvent`s, `read`) or as columns
    (`SymbolSeries`, `read_series`); `read_message` takes either. Both forms go
    through the same rules, in the same order (symbol, price and volume of each
    tick, then the timestamps), so the same ticks give the same batch, or the
    same refusal, whatever form they came in.

    Prices and volumes must lie in the numeric domain (`domain.numeric`): a price
    finite and in [MIN_PRICE, MAX_PRICE], a volume finite and in [MIN_VOLUME,
    MAX_VOLUME]. Anything else (NaN, ±inf, subnormals, 1.7e308, -0.0) is refused
    with BAD_MARKET_EVENT, its `event_index`, and a message naming the event,
    the symbol, the value and the range allowed. A message of more than
    MAX_TICKS_PER_MESSAGE ticks is refused (MESSAGE_TOO_LARGE) before any tick
    of it is read."""

    def __init__(self, require_timestamp: bool, max_future_skew_ns: int) -> None:
        self.require_timestamp = require_timestamp
        self.max_future_skew_ns = max_future_skew_ns
        self._valid_symbols: set[str] = set()

    def read_message(self, request: pb.StreamMarketDataRequest, now_ns: int) -> MarketBatch:
        """A StreamMarketData message's ticks, from its events or its series (never both)."""
        if request.events and request.series:
            raise InvalidInput(
                "the message carries both events (rows) and series (columns): send each "
                "message's ticks in one form"
            )
        if request.series:
            return self.read_series(request.series, now_ns)
        if not request.events:
            raise InvalidInput("the message has no events and no series: send at least one tick")
        return self.read(request.events, now_ns)

    def read(self, events: Sequence[market_pb2.MarketEvent], now_ns: int) -> MarketBatch:
        if not events:
            raise InvalidInput("the batch has no events: send at least one")
        if len(events) > MAX_TICKS_PER_MESSAGE:
            raise message_too_large(len(events))
        # One pass pulls the fields out (each access of a message field costs as
        # much as the rest of the tick), then whole-column checks run in C: a sum
        # is NaN if any element is (min() and max() may skip a NaN, depending on
        # where it sits), and min()/max() find values outside the numeric domain.
        rows = [(e.symbol, e.price, e.volume, e.timestamp) for e in events]
        symbols, prices, volumes, stamps = (list(c) for c in zip(*rows, strict=True))
        total_price = sum(prices)
        total_volume = sum(volumes)
        if not (
            total_price < _INF
            and min(prices) >= numeric.MIN_PRICE
            and max(prices) <= numeric.MAX_PRICE
            and total_volume < _INF
            and min(volumes) >= numeric.MIN_VOLUME
            and max(volumes) <= numeric.MAX_VOLUME
            and set(symbols) <= self._valid_symbols
        ):
            self._find_bad_event(symbols, prices, volumes)
        nanos = [t.nanos for t in stamps]
        stamps_ns = [t.seconds * NS + n for t, n in zip(stamps, nanos, strict=True)]
        if (
            min(stamps_ns) <= 0
            or max(stamps_ns) > now_ns + self.max_future_skew_ns
            or min(nanos) < 0
            or max(nanos) >= NS
        ):
            stamps_ns = self._check_stamps(events, stamps_ns, now_ns)
        return MarketBatch(symbols, prices, volumes, stamps_ns)

    def read_series(self, series: Sequence[market_pb2.SymbolSeries], now_ns: int) -> MarketBatch:
        """The columnar form: the series' ticks concatenated in message order, checked
        by the same rules as `read`. The common all-good case costs a few numpy
        passes over the arrays; only a message with a bad value is walked tick by
        tick (by the row form's own code) to find the first one. An error names
        the series, the tick's index in it and its event_index in the message."""
        # Each access of a message field costs (upb wraps it), so each once.
        parts = [(one.symbol, one.prices, one.volumes, one.timestamps_ns) for one in series]
        counts = _series_shape(parts)
        symbols: list[str] = []
        for (sym, _, _, _), count in zip(parts, counts, strict=True):
            symbols += [sym] * count
        # Long series convert array by array in C; many short ones (one tick each,
        # say) are cheaper chained into one list first.
        dense = len(parts) == 1 or len(symbols) >= _DENSE_SERIES * len(parts)
        prices = _column([p for _, p, _, _ in parts], np.float64, dense)
        volumes = _column(
            [
                v if len(v) else (np.zeros(n) if dense else repeat(0.0, n))
                for (_, _, v, _), n in zip(parts, counts, strict=True)
            ],
            np.float64,
            dense,
        )
        stamps = _column([t for _, _, _, t in parts], np.int64, dense)
        try:
            if not (
                {sym for sym, _, _, _ in parts} <= self._valid_symbols
                and _all_within(prices, numeric.MIN_PRICE, numeric.MAX_PRICE)
                and _all_within(volumes, numeric.MIN_VOLUME, numeric.MAX_VOLUME)
            ):
                self._find_bad_event(symbols, prices.tolist(), volumes.tolist())
            stamps_ns: list[int] = stamps.tolist()
            if not (
                int(stamps.min()) > 0 and int(stamps.max()) <= now_ns + self.max_future_skew_ns
            ):
                # 0 is "no timestamp", as an unset MarketEvent.timestamp.
                stamps_ns = [
                    self._stamp(i, sym, stamp or None, now_ns)
                    for i, (sym, stamp) in enumerate(zip(symbols, stamps_ns, strict=True))
                ]
        except InvalidInput as exc:
            raise in_series(exc, series) from None
        return MarketBatch(symbols, prices.tolist(), volumes.tolist(), stamps_ns)

    def _find_bad_event(
        self, symbols: list[str], prices: list[float], volumes: list[float]
    ) -> None:
        for i, (sym, price, volume) in enumerate(zip(symbols, prices, volumes, strict=True)):
            if sym not in self._valid_symbols:
                try:
                    symbol(sym, f"event {i}: symbol")
                except InvalidInput as exc:
                    raise _event_error(i, str(exc)) from None
                self._valid_symbols.add(sym)
            # Written as "inside the domain", so that NaN fails the test.
            if not numeric.price_in_domain(price):
                raise _event_error(
                    i,
                    f"event {i} ({sym}): price must be finite and > 0, within "
                    f"{numeric.PRICE_RANGE}; got {price!r}",
                )
            if not numeric.volume_in_domain(volume):
                raise _event_error(
                    i,
                    f"event {i} ({sym}): volume must be finite and >= 0, within "
                    f"{numeric.VOLUME_RANGE}; got {volume!r}",
                )

    def _check_stamps(
        self, events: Sequence[market_pb2.MarketEvent], stamps_ns: list[int], now_ns: int
    ) -> list[int]:
        """The slow path: some stamp is missing, malformed, negative or too far ahead."""
        checked = []
        for i, (event, stamp) in enumerate(zip(events, stamps_ns, strict=True)):
            if not event.HasField("timestamp"):
                checked.append(self._stamp(i, event.symbol, None, now_ns))
                continue
            if not 0 <= event.timestamp.nanos < NS:
                raise _event_error(
                    i,
                    f"event {i} ({event.symbol}): timestamp nanos must be 0 to 999999999, "
                    f"got {event.timestamp.nanos}",
                )
            checked.append(self._stamp(i, event.symbol, stamp, now_ns))
        return checked

    def _stamp(self, i: int, sym: str, stamp: int | None, now_ns: int) -> int:
        """The time of event `i`: its own (None: the sender gave none), or now."""
        if stamp is None:
            if self.require_timestamp:
                raise _event_error(
                    i, f"event {i} ({sym}): timestamp is required when TRADING_CLOCK=event"
                )
            return now_ns
        if not 0 <= stamp <= now_ns + self.max_future_skew_ns:
            raise _event_error(i, self._bad_timestamp(i, sym, stamp, now_ns))
        return stamp

    def _bad_timestamp(self, i: int, sym: str, stamp: int, now_ns: int) -> str:
        if stamp < 0:
            return f"event {i} ({sym}): timestamp is before 1970-01-01"
        ahead = (stamp - now_ns) / NS
        return (
            f"event {i} ({sym}): timestamp is {ahead:.0f}s in the future; "
            f"at most {self.max_future_skew_ns // NS}s ahead of the service's clock is accepted"
        )


def _event_error(index: int, message: str) -> InvalidInput:
    return InvalidInput(message, reason="BAD_MARKET_EVENT", metadata={"event_index": str(index)})


def _series_shape(parts: Sequence[_Series]) -> list[int]:
    """Each series' tick count (its prices), once the message's shape is checked:
    at most MAX_TICKS_PER_MESSAGE ticks in all, asked before any array is read
    (so a huge array costs nothing), and in each series at least one tick, one
    timestamp per price, and one volume per price or none."""
    counts = [len(prices) for _, prices, _, _ in parts]
    total = sum(counts)
    if total > MAX_TICKS_PER_MESSAGE:
        raise message_too_large(total)
    start = 0
    for index, ((sym, _, volumes, stamps), count) in enumerate(zip(parts, counts, strict=True)):
        if count and len(stamps) == count and len(volumes) in (0, count):
            start += count
            continue
        where = f"series {index} ({quoted(sym)})"
        if count == 0:
            raise _series_error(
                index, 0, start, f"{where} has no ticks: send at least one price, or leave it out"
            )
        if len(stamps) != count:
            raise _series_error(
                index,
                min(len(stamps), count),
                start,
                f"{where} has {count} prices but {len(stamps)} timestamps_ns: send one "
                "timestamp per price (0 for none)",
            )
        raise _series_error(
            index,
            min(len(volumes), count),
            start,
            f"{where} has {count} prices but {len(volumes)} volumes: send one volume per "
            "price, or none for volume 0",
        )
    return counts


def _series_error(series: int, tick: int, start: int, message: str) -> InvalidInput:
    return InvalidInput(
        message,
        reason="BAD_MARKET_EVENT",
        metadata={
            "event_index": str(start + tick),
            "series_index": str(series),
            "tick_index": str(tick),
        },
    )


def in_series(error: InvalidInput, series: Sequence[market_pb2.SymbolSeries]) -> InvalidInput:
    """An error about event `event_index` of a columnar message, located in its
    series: "series 1 tick 4, " before the row form's own words ("event 104 (SPY):
    ..."), and `series_index` and `tick_index` beside `event_index`. Errors that
    name no event are returned as they are."""
    index_text = error.metadata.get("event_index")
    if index_text is None or "series_index" in error.metadata:
        return error
    index = int(index_text)
    start = 0
    for number, one in enumerate(series):
        count = len(one.prices)
        if index < start + count:
            tick = index - start
            return InvalidInput(
                f"series {number} tick {tick}, {error}",
                reason=error.reason,
                metadata={
                    **error.metadata,
                    "series_index": str(number),
                    "tick_index": str(tick),
                },
            )
        start += count
    return error


def _column(
    arrays: Sequence[Iterable[float] | Iterable[int]], dtype: type[np.generic], dense: bool
) -> npt.NDArray[Any]:
    """One column of the message: each series' packed array, end to end."""
    if len(arrays) == 1:
        return np.array(arrays[0], dtype=dtype)
    if dense:
        return np.concatenate([np.array(a, dtype=dtype) for a in arrays])
    return np.array(list(chain.from_iterable(arrays)), dtype=dtype)


def _all_within(values: npt.NDArray[np.float64], low: float, high: float) -> bool:
    """Every value in [low, high]: the domain checks' bounds, over a whole column.
    Written as "inside", so that NaN fails it."""
    return bool(np.logical_and(values >= low, values <= high).all())


@dataclass(frozen=True, slots=True)
class Page:
    """A validated page request; the token is the offset this service handed out."""

    offset: int
    size: int

    def of(self, items: Sequence[T]) -> tuple[Sequence[T], str]:
        """This page of `items` and the token of the next one ("" at the end)."""
        end = self.offset + self.size
        return items[self.offset : end], str(end) if end < len(items) else ""


def page(page_size: int, page_token: str) -> Page:
    """Check a page request before any work is done for it."""
    if page_size > MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be at most {MAX_PAGE_SIZE}, got {page_size}")
    size = page_size or DEFAULT_PAGE_SIZE
    if not page_token:
        return Page(0, size)
    # Only ASCII digits: str.isdigit() also passes '²', which int() refuses, and
    # int() refuses more than 4300 digits; no offset we hand out is that long.
    if not (page_token.isascii() and page_token.isdigit() and len(page_token) <= 18):
        raise InvalidInput("page_token is not one this service issued; start without it")
    return Page(int(page_token), size)


MAX_ID_LENGTH = 64
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")  # 64: MAX_ID_LENGTH


def identifier(value: str, what: str, hint: str) -> str:
    """A name or id a client refers to (a strategy, an order, an idea): this service
    only hands out short ASCII ones, so anything else is refused here, and no error
    ever echoes an unbounded string back."""
    if not value:
        raise InvalidInput(f"{what} is empty: {hint}")
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidInput(
            f"{what} {value[:40]!r}{'...' if len(value) > 40 else ''} is not one this "
            f"service issues (at most {MAX_ID_LENGTH} letters, digits, '_', '.', ':' or "
            f"'-'): {hint}"
        )
    return value


def reason(value: str, what: str = "reason") -> str:
    value = value.strip()
    if len(value) > 500:
        raise InvalidInput(f"{what} is too long: at most 500 characters")
    return value


def decimal_text(value: str, what: str) -> Decimal:
    """A decimal number sent as text ("10", "450.25"); refused unless finite."""
    text = value.strip()
    if not text or len(text) > 40:
        raise InvalidInput(
            f"{what} must be a decimal number such as 10 or 450.25, got {value!r:.50}"
        )
    try:
        number = Decimal(text)
    except ArithmeticError:
        raise InvalidInput(
            f"{what} must be a decimal number such as 10 or 450.25, got {value!r:.50}"
        ) from None
    if not number.is_finite():
        raise InvalidInput(f"{what} must be finite, got {value!r:.50}")
    return number


QUANTITY_PLACES = 9
"""Fractional quantities are taken to this many decimals (Alpaca's limit)."""


def manual_order(
    symbol_text: str,
    side: Side | None,
    quantity_text: str,
    order_type: OrderType | None,
    limit_price_text: str,
    reason_text: str = "",
    time_in_force: TimeInForce | None = None,
    notional_text: str = "",
) -> ManualOrder:
    """A person's order (SubmitOrder, CheckOrder) checked whole before anything runs:
    a symbol, a side, and either a positive quantity inside the numeric domain with
    at most nine decimals (a fractional one only for the day, as brokers take them)
    or a notional amount (a market order for the day); a limit price exactly when
    the order is a LIMIT one."""
    sym = symbol(symbol_text)
    if side is None:
        raise InvalidInput("side is required: BUY or SELL (UNSPECIFIED is not allowed)")
    if notional_text:
        return _notional_order(
            sym,
            side,
            quantity_text,
            order_type,
            limit_price_text,
            reason_text,
            time_in_force,
            notional_text,
        )
    quantity = decimal_text(quantity_text, "quantity")
    if not numeric.order_quantity_in_domain(quantity):
        raise InvalidInput(
            f"quantity must be in {numeric.ORDER_QUANTITY_RANGE}, got {quantity_text!r:.50}"
        )
    whole = quantity == quantity.to_integral_value()
    if not whole and quantity != round(quantity, QUANTITY_PLACES):
        raise InvalidInput(
            f"quantity {quantity_text!r:.50} has more than {QUANTITY_PLACES} decimals"
        )
    if not whole and time_in_force not in (None, TimeInForce.DAY):
        raise InvalidInput(
            f"quantity {quantity_text!r:.50} is fractional: fractional orders are DAY "
            f"orders only, not {time_in_force.value}"
        )
    kind = order_type or OrderType.MARKET
    limit: Decimal | None = None
    if kind is OrderType.LIMIT:
        if not limit_price_text:
            raise InvalidInput("a LIMIT order needs limit_price")
        limit = decimal_text(limit_price_text, "limit_price")
        if not numeric.decimal_price_in_domain(limit):
            raise InvalidInput(
                f"limit_price must be in {numeric.PRICE_RANGE}, got {limit_price_text!r:.50}"
            )
    elif limit_price_text:
        raise InvalidInput("limit_price is set on a MARKET order: leave it empty, or use LIMIT")
    # Whole shares as the integer they are ('10.0' is 10, never 1E+1); a fraction
    # in plain notation.
    amount = Decimal(int(quantity)) if whole else Decimal(f"{quantity.normalize():f}")
    return ManualOrder(sym, side, amount, kind, limit, reason(reason_text), time_in_force)


NOTIONAL_PLACES = 2
"""A notional amount is money: at most cents."""


def _notional_order(
    sym: str,
    side: Side,
    quantity_text: str,
    order_type: OrderType | None,
    limit_price_text: str,
    reason_text: str,
    time_in_force: TimeInForce | None,
    notional_text: str,
) -> ManualOrder:
    if quantity_text:
        raise InvalidInput("give a quantity or a notional amount, not both")
    if order_type not in (None, OrderType.MARKET) or limit_price_text:
        raise InvalidInput("a notional order is a MARKET order: no limit price")
    if time_in_force not in (None, TimeInForce.DAY):
        raise InvalidInput(f"a notional order is a DAY order, not {time_in_force.value}")
    amount = decimal_text(notional_text, "notional")
    if not (numeric.money_in_domain(amount) and amount > 0):
        raise InvalidInput(
            f"notional must be above 0 and at most {numeric.plain(numeric.MAX_MONEY)}, "
            f"got {notional_text!r:.50}"
        )
    if amount != round(amount, NOTIONAL_PLACES):
        raise InvalidInput(f"notional {notional_text!r:.50} has more than 2 decimals")
    return ManualOrder(
        sym,
        side,
        Decimal(0),
        OrderType.MARKET,
        None,
        reason(reason_text),
        TimeInForce.DAY,
        Decimal(f"{amount.normalize():f}"),
    )


MAX_FEED_ID = 128
MAX_FEED_SEQUENCE = 2**63 - 1


def feed(feed_id: str, sequence: int) -> tuple[str, int]:
    """A market-data message's feed id and sequence, checked before it is read.

    A feed that names itself numbers its messages from 1: a feed id without a
    sequence (0) is refused, and so is a sequence without a feed id. A feed id is
    1-128 printable characters (no control characters, no leading or trailing
    space). Messages say what is wrong without quoting the id back (it may be
    anything, and a refusal is journaled)."""
    if not feed_id:
        if sequence:
            raise InvalidInput(
                f"sequence {sequence} is set but feed_id is empty: name the feed whose "
                "messages are numbered (or send neither)",
                reason="BAD_FEED_ID",
            )
        return feed_id, sequence
    if len(feed_id) > MAX_FEED_ID:
        raise InvalidInput(
            f"feed_id is {len(feed_id)} characters long: at most {MAX_FEED_ID} are accepted",
            reason="BAD_FEED_ID",
        )
    if not feed_id.isprintable() or feed_id != feed_id.strip():
        raise InvalidInput(
            "feed_id is malformed: use printable characters (no control characters), "
            "without leading or trailing spaces",
            reason="BAD_FEED_ID",
        )
    if sequence == 0:
        raise InvalidInput(
            "the message names a feed (feed_id) but has no sequence: a feed that names "
            "itself numbers its messages 1, 2, 3, ... (the last one accepted is in the "
            "stream's summary as last_sequence)",
            reason="BAD_FEED_SEQUENCE",
        )
    if sequence > MAX_FEED_SEQUENCE:
        raise InvalidInput(
            f"sequence {sequence} is above {MAX_FEED_SEQUENCE}", reason="BAD_FEED_SEQUENCE"
        )
    return feed_id, sequence
