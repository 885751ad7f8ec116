"""The columnar form of market data (`SymbolSeries` in StreamMarketDataRequest.series):
the same ticks as rows give the same batch, the same journal, the same summary;
every bad value is refused by the same rules, named by series, symbol and index;
and the message limits hold whatever the arrays."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import numeric
from domain.errors import InvalidInput
from domain.market import MarketBatch
from engines.bus import CHUNK_TICKS, MAX_TICKS_PER_MESSAGE, STAGE_TICKS
from engines.clock import datetime_to_ns
from server.validation import NS, MarketBatchReader
from tests.conftest import RunningService, StartService
from tests.support.calls import failure_of
from tests.support.market import SESSION, as_series, crossover_prices, sideways, ticks
from tests.support.state import comparable_log, journaled_ticks, snapshot
from trading_sdk.client import error_info, market_event
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
LATER = SESSION + timedelta(minutes=30)
LATER_NS = datetime_to_ns(LATER)
NOW_NS = datetime_to_ns(SESSION + timedelta(hours=1))


def _columnar(events: Sequence[market_pb2.MarketEvent]) -> pb.StreamMarketDataRequest:
    return pb.StreamMarketDataRequest(series=as_series(events))


def _split(
    events: list[market_pb2.MarketEvent], sizes: Sequence[int]
) -> Iterator[list[market_pb2.MarketEvent]]:
    start = 0
    for size in sizes:
        if start >= len(events):
            return
        yield events[start : start + size]
        start += size
    if start < len(events):
        yield events[start:]


# --- the same ticks, either form -------------------------------------------------------

# Message sizes that take every journaling path: staged one by one, staged up to the
# record limit, journaled whole, and split into several records.
SIZES = [1, 7, CHUNK_TICKS + 17, 250, STAGE_TICKS - 1, 1, STAGE_TICKS + 1, 3, 40, 1]


def _session(layout: str) -> list[market_pb2.MarketEvent]:
    """Three symbols the strategy trades, one it does not, 4,000 ticks each: SPY
    crosses (and buys), the others wander; as blocks of one symbol or tick by tick."""
    paths = {
        "SPY": crossover_prices() + sideways(3910, seed=1),
        "QQQ": sideways(4000, level=400.0, seed=2),
        "IWM": sideways(4000, level=200.0, seed=3),
        "ZZZ": sideways(4000, level=50.0, seed=4),
    }
    per_symbol = {symbol: ticks(symbol, prices) for symbol, prices in paths.items()}
    if layout == "blocks":
        # Each symbol's ticks in runs of 500, symbols in turn: series of many ticks.
        events = []
        for start in range(0, 4000, 500):
            for symbol_ticks in per_symbol.values():
                events.extend(symbol_ticks[start : start + 500])
        return events
    return [tick for group in zip(*per_symbol.values(), strict=True) for tick in group]


@pytest.mark.parametrize("layout", ["blocks", "interleaved"])
def test_the_same_ticks_as_columns_give_the_identical_log_and_summary(
    start_service: StartService, tmp_path: Path, layout: str
) -> None:
    messages = list(_split(_session(layout), SIZES))
    rows = start_service(database_url=f"sqlite:///{tmp_path / 'rows.db'}")
    columns = start_service(database_url=f"sqlite:///{tmp_path / 'columns.db'}")

    by_rows = rows.client.stream_market_data(messages)
    by_columns = columns.client.stream_market_data(_columnar(m) for m in messages)

    assert by_rows.orders >= 1 and by_rows.rejections >= 1, "the input should trade"
    assert by_columns == by_rows
    assert comparable_log(columns.client) == comparable_log(rows.client)
    assert columns.client.verify_audit().ok


# --- the reader: one set of rules for both forms ---------------------------------------

SYMBOLS = st.sampled_from(["SPY", "QQQ", "BRK.B", "spy", "", "A B", "TOO-LONG-SYMBOL"])
FLOATS = st.one_of(
    st.floats(min_value=1.0, max_value=1000.0),
    st.sampled_from(
        [
            0.0,
            -0.0,
            -1.0,
            5e-324,
            numeric.MIN_PRICE,
            numeric.MAX_PRICE,
            math.nextafter(numeric.MAX_PRICE, math.inf),
            numeric.MAX_VOLUME,
            1.7e308,
            math.nan,
            math.inf,
            -math.inf,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)
# 0: no timestamp (an unset MarketEvent.timestamp); negative; inside; ahead of now.
STAMPS = st.one_of(
    st.integers(min_value=NOW_NS - 10**12, max_value=NOW_NS),
    st.sampled_from([0, -1, -(10**18), NOW_NS + 300 * NS, NOW_NS + 301 * NS, 2**63 - 1]),
)
TICKS = st.lists(st.tuples(SYMBOLS, FLOATS, FLOATS, STAMPS), min_size=1, max_size=12)


def _event(symbol: str, price: float, volume: float, stamp: int) -> market_pb2.MarketEvent:
    event = market_pb2.MarketEvent(symbol=symbol, price=price, volume=volume)
    if stamp:
        event.timestamp.FromNanoseconds(stamp)
    return event


def _read(read: Callable[[], MarketBatch]) -> MarketBatch | InvalidInput:
    try:
        return read()
    except InvalidInput as refusal:
        return refusal


@settings(max_examples=400, deadline=None)
@given(ticks_=TICKS, cuts=st.lists(st.integers(0, 11)), require_timestamp=st.booleans())
def test_a_columnar_message_reads_as_the_same_rows_or_is_refused_for_the_same_tick(
    ticks_: list[tuple[str, float, float, int]], cuts: list[int], require_timestamp: bool
) -> None:
    """Property: however the ticks are cut into series (a series per run of one
    symbol, and runs cut further at random), the columnar reader gives the row
    reader's batch, or refuses the same tick with the row form's words, located in
    its series."""
    events = [_event(*tick) for tick in ticks_]
    series = [
        part for piece in _split(events, _sizes(len(events), cuts)) for part in as_series(piece)
    ]
    by_rows = _read(lambda: MarketBatchReader(require_timestamp, 300 * NS).read(events, NOW_NS))
    by_columns = _read(
        lambda: MarketBatchReader(require_timestamp, 300 * NS).read_series(series, NOW_NS)
    )
    if isinstance(by_rows, MarketBatch):
        assert by_columns == by_rows
        assert repr(by_columns) == repr(by_rows)  # -0.0 is not 0.0 in a journal
        return
    assert isinstance(by_columns, InvalidInput), f"accepted what rows refuse: {by_rows}"
    index = int(by_rows.metadata["event_index"])
    number, tick = _locate(series, index)
    assert by_columns.reason == by_rows.reason == "BAD_MARKET_EVENT"
    assert by_columns.metadata == {
        "event_index": str(index),
        "series_index": str(number),
        "tick_index": str(tick),
    }
    assert str(by_columns) == f"series {number} tick {tick}, {by_rows}"


def _sizes(count: int, cuts: list[int]) -> list[int]:
    points = sorted({c for c in cuts if 0 < c < count})
    return [b - a for a, b in zip([0, *points], [*points, count], strict=True)]


def _locate(series: Sequence[market_pb2.SymbolSeries], index: int) -> tuple[int, int]:
    for number, one in enumerate(series):
        if index < len(one.prices):
            return number, index
        index -= len(one.prices)
    raise AssertionError("no such tick")


def test_a_series_without_volumes_reads_as_volume_zero_and_0_as_no_timestamp() -> None:
    reader = MarketBatchReader(require_timestamp=False, max_future_skew_ns=0)
    series = market_pb2.SymbolSeries(symbol="SPY", prices=[1.5, 2.5], timestamps_ns=[LATER_NS, 0])
    rows = [market_event("SPY", 1.5, None, LATER), market_event("SPY", 2.5)]

    batch = reader.read_series([series], NOW_NS)

    assert batch == MarketBatch(["SPY", "SPY"], [1.5, 2.5], [0.0, 0.0], [LATER_NS, NOW_NS])
    assert batch == reader.read(rows, NOW_NS)


def test_the_fast_path_still_finds_a_nan_among_many_series() -> None:
    reader = MarketBatchReader(require_timestamp=True, max_future_skew_ns=0)
    series = [
        market_pb2.SymbolSeries(symbol="SPY", prices=[1.0] * 40, timestamps_ns=[LATER_NS] * 40)
        for _ in range(3)
    ]
    series[2].prices[39] = math.nan

    with pytest.raises(InvalidInput) as refused:
        reader.read_series(series, NOW_NS)

    assert str(refused.value).startswith("series 2 tick 39, event 119 (SPY): price must be")


# --- refusals through the service ------------------------------------------------------

GOOD = [market_event("SPY", 500.0 + k, 10.0, LATER + k * timedelta(seconds=1)) for k in range(3)]


def _series(
    symbol: str = "QQQ",
    prices: Sequence[float] = (400.0, 401.0, 402.0),
    stamps: Sequence[int] | None = None,
    volumes: Sequence[float] = (5.0, 5.0, 5.0),
) -> market_pb2.SymbolSeries:
    if stamps is None:
        stamps = [LATER_NS + k * NS for k in range(len(prices))]
    return market_pb2.SymbolSeries(
        symbol=symbol, prices=prices, timestamps_ns=stamps, volumes=volumes
    )


def _with(**changes: object) -> Callable[[], list[market_pb2.SymbolSeries]]:
    """The bad message: IWM's two good ticks, then QQQ's three with `changes`."""

    def build() -> list[market_pb2.SymbolSeries]:
        iwm = _series("IWM", (200.0, 201.0), volumes=(1.0, 1.0))
        return [iwm, _series(**changes)]  # type: ignore[arg-type]

    return build


def _ahead(seconds: int) -> list[int]:
    """Stamps whose last is `seconds` ahead of the service's (wall) clock."""
    return [LATER_NS, LATER_NS + NS, time.time_ns() + seconds * NS]


@dataclass(frozen=True)
class Bad:
    """A bad second message, what the error must say and its facts."""

    series: Callable[[], list[market_pb2.SymbolSeries]]
    says: str
    metadata: dict[str, str] = field(default_factory=dict)
    cause: str = "BAD_MARKET_EVENT"


def _at(series: int, tick: int, event: int) -> dict[str, str]:
    return {"series_index": str(series), "tick_index": str(tick), "event_index": str(event)}


QQQ_TICK_2 = _at(1, 2, 4)
BAD = {
    "nan-price": Bad(
        _with(prices=(400.0, 401.0, math.nan)),
        "series 1 tick 2, event 4 (QQQ): price must be finite and > 0",
        QQQ_TICK_2,
    ),
    "inf-price": Bad(_with(prices=(400.0, 401.0, math.inf)), "got inf", QQQ_TICK_2),
    "zero-price": Bad(_with(prices=(400.0, 401.0, 0.0)), "(QQQ): price must be", QQQ_TICK_2),
    "negative-price": Bad(_with(prices=(400.0, 401.0, -2.0)), "got -2.0", QQQ_TICK_2),
    "subnormal-price": Bad(_with(prices=(400.0, 401.0, 5e-324)), "got 5e-324", QQQ_TICK_2),
    "huge-price": Bad(_with(prices=(400.0, 401.0, 1.7e308)), "got 1.7e+308", QQQ_TICK_2),
    "negative-volume": Bad(
        _with(volumes=(5.0, 5.0, -1.0)),
        "series 1 tick 2, event 4 (QQQ): volume must be finite and >= 0",
        QQQ_TICK_2,
    ),
    "nan-volume": Bad(_with(volumes=(5.0, 5.0, math.nan)), "volume must be", QQQ_TICK_2),
    "malformed-symbol": Bad(
        _with(symbol="qqq"), "series 1 tick 0, event 2: symbol 'qqq' is malformed", _at(1, 0, 2)
    ),
    "empty-symbol": Bad(_with(symbol=""), "event 2: symbol is empty", _at(1, 0, 2)),
    "no-timestamp": Bad(
        _with(stamps=[LATER_NS, LATER_NS + NS, 0]),
        "series 1 tick 2, event 4 (QQQ): timestamp is required when TRADING_CLOCK=event",
        QQQ_TICK_2,
    ),
    "before-1970": Bad(
        _with(stamps=[LATER_NS, LATER_NS + NS, -5]), "timestamp is before 1970", QQQ_TICK_2
    ),
    "a-day-ahead": Bad(lambda: _with(stamps=_ahead(86_400))(), "in the future", QQQ_TICK_2),
    "back-in-time-in-a-series": Bad(
        _with(stamps=[LATER_NS, LATER_NS + 2 * NS, LATER_NS + NS]),
        "series 1 tick 2, event 4 (QQQ): timestamp 2024-03-05T15:30:01.000000000Z is older "
        "than event 3 of this message",
        QQQ_TICK_2,
    ),
    "back-in-time-across-series": Bad(
        lambda: [
            _series("QQQ", (400.0,), [LATER_NS + 9 * NS], (1.0,)),
            _series("QQQ", (401.0, 402.0), [LATER_NS + 9 * NS, LATER_NS], (1.0, 1.0)),
        ],
        "series 1 tick 1, event 2 (QQQ): timestamp 2024-03-05T15:30:00.000000000Z is older "
        "than event 1 of this message",
        _at(1, 1, 2),
    ),
    "older-than-the-accepted-message": Bad(
        lambda: [
            _series("IWM", (1.0,), [LATER_NS], (1.0,)),
            _series("SPY", (1.0,), [LATER_NS], ()),
        ],
        "series 1 tick 0, event 1 (SPY): timestamp 2024-03-05T15:30:00.000000000Z is older "
        "than the last tick of SPY already accepted (2024-03-05T15:30:02.000000000Z)",
        _at(1, 0, 1),
    ),
    "too-few-timestamps": Bad(
        _with(stamps=[LATER_NS, LATER_NS]),
        "series 1 ('QQQ') has 3 prices but 2 timestamps_ns",
        _at(1, 2, 4),
    ),
    "too-many-timestamps": Bad(
        _with(stamps=[LATER_NS] * 400_000),
        "series 1 ('QQQ') has 3 prices but 400000 timestamps_ns",
        _at(1, 3, 5),
    ),
    "too-few-volumes": Bad(
        _with(volumes=(1.0,)), "series 1 ('QQQ') has 3 prices but 1 volumes", _at(1, 1, 3)
    ),
    "empty-series": Bad(
        _with(prices=(), stamps=[], volumes=()),
        "series 1 ('QQQ') has no ticks",
        _at(1, 0, 2),
    ),
    "too-many-ticks-in-a-series": Bad(
        _with(
            prices=[1.0] * (MAX_TICKS_PER_MESSAGE + 1),
            stamps=[LATER_NS] * (MAX_TICKS_PER_MESSAGE + 1),
            volumes=(),
        ),
        f"the message has {MAX_TICKS_PER_MESSAGE + 3} events; at most {MAX_TICKS_PER_MESSAGE}",
        {"events": str(MAX_TICKS_PER_MESSAGE + 3)},
        cause="MESSAGE_TOO_LARGE",
    ),
    "too-many-ticks-in-all": Bad(
        lambda: [
            _series("QQQ", [1.0] * half, [LATER_NS] * half, ())
            for half in (MAX_TICKS_PER_MESSAGE // 2, MAX_TICKS_PER_MESSAGE // 2 + 1)
        ],
        f"the message has {MAX_TICKS_PER_MESSAGE + 1} events",
        {"events": str(MAX_TICKS_PER_MESSAGE + 1), "limit": str(MAX_TICKS_PER_MESSAGE)},
        cause="MESSAGE_TOO_LARGE",
    ),
    "too-many-series": Bad(
        lambda: [_series("QQQ", (1.0,), [LATER_NS], ())] * (MAX_TICKS_PER_MESSAGE + 1),
        f"the message has {MAX_TICKS_PER_MESSAGE + 1} events",
        {"events": str(MAX_TICKS_PER_MESSAGE + 1)},
        cause="MESSAGE_TOO_LARGE",
    ),
}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_a_bad_series_is_refused_by_name_and_the_message_before_it_is_kept(
    svc: RunningService, bad: Bad
) -> None:
    client = svc.client
    before = snapshot(client)
    messages = [_columnar(GOOD), pb.StreamMarketDataRequest(series=bad.series())]

    failure = failure_of(lambda: client.stream_market_data(messages))

    assert failure.code == INVALID
    assert bad.says in failure.details
    assert "message 1 refused" in failure.details
    info = error_info(failure.error)
    assert info is not None and info.reason == "MARKET_DATA_MESSAGE_REFUSED"
    assert info.metadata["cause"] == bad.cause
    assert dict(info.metadata) | bad.metadata == dict(info.metadata)
    assert (info.metadata["refused_message_index"], info.metadata["accepted_events"]) == ("1", "3")
    assert [symbol for symbol, _ in journaled_ticks(client)] == ["SPY"] * 3
    after = snapshot(client)
    assert after.counters.market_events == before.counters.market_events + 3
    (refusal,) = client.query_audit(from_seq=after.last_seq)
    assert refusal.event_type == "RequestRefused"
    assert after.chain_ok


def test_a_message_with_both_rows_and_columns_is_refused(svc: RunningService) -> None:
    client = svc.client
    both = pb.StreamMarketDataRequest(events=ticks("QQQ", [1.0], start=LATER))
    both.series.append(_series())

    failure = failure_of(lambda: client.stream_market_data([_columnar(GOOD), both]))

    assert failure.code == INVALID
    assert "carries both events (rows) and series (columns)" in failure.details
    assert "message 1 refused" in failure.details
    assert [symbol for symbol, _ in journaled_ticks(client)] == ["SPY"] * 3


def test_a_message_of_neither_form_is_refused(svc: RunningService) -> None:
    failure = failure_of(lambda: svc.client.stream_market_data([pb.StreamMarketDataRequest()]))

    assert failure.code == INVALID
    assert "no events and no series" in failure.details


def test_a_message_at_the_limit_is_accepted_and_journaled_in_chunks(svc: RunningService) -> None:
    count = MAX_TICKS_PER_MESSAGE
    series = market_pb2.SymbolSeries(
        symbol="ZZZ",
        prices=[50.0 + (k % 7) * 0.01 for k in range(count)],
        timestamps_ns=[LATER_NS + k * 1000 for k in range(count)],
    )

    summary = svc.client.stream_market_data([pb.StreamMarketDataRequest(series=[series])])

    assert (summary.events_accepted, summary.batches_accepted) == (count, 1)
    records = list(svc.client.query_audit(event_types=["MarketDataReceived"]))
    assert len(records) == count // CHUNK_TICKS
    assert svc.client.verify_audit().ok


def test_a_feed_resending_columnar_messages_is_processed_once(svc: RunningService) -> None:
    client = svc.client
    messages = [_columnar(GOOD), pb.StreamMarketDataRequest(series=[_series()])]

    first = client.stream_market_data(messages, feed_id="columns")
    again = client.stream_market_data(messages, feed_id="columns")

    assert (first.batches_accepted, first.events_accepted, first.last_sequence) == (2, 6, 2)
    assert (again.batches_accepted, again.duplicates_dropped, again.last_sequence) == (0, 2, 2)
    assert sorted(symbol for symbol, _ in journaled_ticks(client)) == ["QQQ"] * 3 + ["SPY"] * 3
