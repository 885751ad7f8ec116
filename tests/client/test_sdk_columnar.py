"""The SDK's columnar market data: `stream_arrays` (numpy arrays) and `stream_frame`
(a pandas DataFrame) build SymbolSeries messages, in chunks, lazily, and the
service makes of them exactly what it makes of the same rows."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.marketdata import batches
from engines import bus
from engines.clock import datetime_to_ns
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import failure_of
from tests.support.market import SESSION, crossover_prices, sideways
from tests.support.state import comparable_log
from trading_sdk import AsyncTradingClient, TradingClient, columnar
from trading_sdk.client import DEFAULT_CHUNK, MAX_TICKS_PER_MESSAGE, error_info
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

NS = 1_000_000_000
START_NS = datetime_to_ns(SESSION)


def _rows(
    symbols: Sequence[str], stamps: Sequence[int], prices: Sequence[float], volumes: Sequence[float]
) -> list[market_pb2.MarketEvent]:
    """The same ticks as MarketEvents (a stamp of 0 left unset)."""
    events = []
    for symbol, stamp, price, volume in zip(symbols, stamps, prices, volumes, strict=True):
        event = market_pb2.MarketEvent(symbol=symbol, price=price, volume=volume)
        if stamp:
            event.timestamp.FromNanoseconds(int(stamp))
        events.append(event)
    return events


def _flat(requests: Iterable[pb.StreamMarketDataRequest]) -> list[tuple[str, int, float, float]]:
    """Every tick of columnar messages, in message order."""
    out: list[tuple[str, int, float, float]] = []
    for request in requests:
        assert not request.events
        for series in request.series:
            volumes = list(series.volumes) or [0.0] * len(series.prices)
            out.extend(
                (series.symbol, t, p, v)
                for t, p, v in zip(series.timestamps_ns, series.prices, volumes, strict=True)
            )
    return out


def _spy() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """3,000 SPY ticks a second apart that cross (and buy) and then wander."""
    prices = np.array(crossover_prices() + sideways(2910, seed=5), dtype=np.float64)
    stamps = START_NS + np.arange(len(prices), dtype=np.int64) * NS
    volumes = np.arange(len(prices), dtype=np.float64) % 17 * 10
    return stamps, prices, volumes


def _outcome(running: RunningService, summary: pb.StreamMarketDataResponse) -> tuple[Any, ...]:
    """What a split of the same ticks must not change: decisions, orders, fills (seqs
    and ids derived from them aside)."""
    orders = [
        (o.symbol, o.side, o.quantity, o.status, o.filled_quantity, o.average_fill_price)
        for o in running.client.list_order_history().orders
    ]
    return (
        summary.events_accepted,
        summary.signals,
        summary.approvals,
        summary.rejections,
        summary.orders,
        dict(summary.rejections_by_code),
        running.client.list_positions(),
        running.client.get_account(),
        orders,
    )


# --- building messages from arrays --------------------------------------------------


def test_arrays_become_one_series_per_chunk_with_a_short_last_one() -> None:
    stamps = START_NS + np.arange(25, dtype=np.int64)
    prices = np.linspace(100.0, 101.0, 25)

    requests = list(columnar.array_requests("SPY", stamps, prices, chunk=10))

    assert [len(r.series) for r in requests] == [1, 1, 1]
    assert [len(r.series[0].prices) for r in requests] == [10, 10, 5]
    assert all(not r.series[0].volumes for r in requests)  # no volumes: all 0
    assert _flat(requests) == [
        ("SPY", int(t), float(p), 0.0) for t, p in zip(stamps, prices, strict=True)
    ]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_datetime64_of_any_unit_becomes_nanoseconds_and_nat_no_timestamp(unit: str) -> None:
    moments = np.array(["2024-03-05T15:00:00", "NaT", "2024-03-05T15:00:01"], f"datetime64[{unit}]")

    assert columnar.timestamps_ns(moments).tolist() == [START_NS, 0, START_NS + NS]


@pytest.mark.parametrize(
    ("stamps", "error", "says"),
    [
        (np.array([1.5, 2.5]), TypeError, "integer nanoseconds"),
        (np.array(["2024-03-05", "x"], dtype=object), TypeError, "pandas.to_datetime"),
        (np.array([2**64 - 1, 1], dtype=np.uint64), TypeError, "integer nanoseconds"),
        (np.array(["3000-01-01", "2024-01-01"], "datetime64[s]"), ValueError, "years 1678"),
        (np.zeros((2, 1), dtype=np.int64), ValueError, "one-dimensional"),
    ],
    ids=["floats", "objects", "uint64-overflow", "year-3000", "two-dimensional"],
)
def test_timestamps_that_are_no_nanoseconds_are_refused_before_anything_is_sent(
    stamps: Any, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        columnar.array_requests("SPY", stamps, np.ones(len(stamps)))


@pytest.mark.parametrize("chunk", [0, -1, MAX_TICKS_PER_MESSAGE + 1])
def test_a_chunk_outside_1_to_the_message_limit_is_refused(chunk: int) -> None:
    with pytest.raises(ValueError, match="chunk must be 1 to 100000"):
        columnar.array_requests("SPY", [START_NS], [1.0], chunk=chunk)


def test_arrays_of_different_lengths_are_refused_naming_each() -> None:
    with pytest.raises(ValueError, match="timestamps_ns 3, prices 3, volumes 2"):
        columnar.array_requests("SPY", [1, 2, 3], [1.0, 2.0, 3.0], [1.0, 2.0])


def test_the_sdks_limit_is_the_contracts() -> None:
    assert MAX_TICKS_PER_MESSAGE == bus.MAX_TICKS_PER_MESSAGE
    assert 1 <= DEFAULT_CHUNK <= MAX_TICKS_PER_MESSAGE


def test_importing_the_sdk_imports_neither_numpy_nor_pandas() -> None:
    code = "import sys, trading_sdk.client; print('numpy' in sys.modules, 'pandas' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert found.stdout.split() == ["False", "False"]


# --- building messages from a DataFrame --------------------------------------------


def _frame(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Symbol": ["SPY", "SPY", "QQQ", "SPY", "QQQ", "QQQ"][:n],
            "TimeStamp": pd.date_range(
                "2024-03-05 10:00", periods=n, freq="s", tz="America/New_York"
            ),
            "PRICE": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0][:n],
            "Volume": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0][:n],
        }
    )


def test_a_frame_is_sent_in_its_row_order_as_runs_of_one_symbol() -> None:
    """Columns are matched in any letter case; a tz-aware time becomes UTC."""
    (request,) = columnar.frame_requests(_frame())

    assert [(s.symbol, len(s.prices)) for s in request.series] == [
        ("SPY", 2),
        ("QQQ", 1),
        ("SPY", 1),
        ("QQQ", 2),
    ]
    assert _flat([request]) == [
        (symbol, START_NS + k * NS, float(k + 1), float(10 * (k + 1)))
        for k, symbol in enumerate(["SPY", "SPY", "QQQ", "SPY", "QQQ", "QQQ"])
    ]


def test_a_frame_takes_other_column_names_an_index_of_times_and_one_symbol() -> None:
    frame = pd.DataFrame(
        {"Close": [1.0, 2.0]},
        index=pd.DatetimeIndex(["2024-03-05T15:00:00", "2024-03-05T15:00:01"]),  # naive: UTC
    )

    requests = columnar.frame_requests(frame, columns={"price": "Close"}, symbol="SPY")

    assert _flat(requests) == [("SPY", START_NS, 1.0, 0.0), ("SPY", START_NS + NS, 2.0, 0.0)]


def test_a_frame_sends_a_missing_time_as_none_and_a_missing_price_as_nan() -> None:
    frame = pd.DataFrame(
        {
            "symbol": pd.Series(["SPY", "SPY"], dtype="category"),
            "timestamp": pd.to_datetime([START_NS, None]),
            "price": pd.array([1.0, None], dtype="Float64"),
        }
    )

    (request,) = columnar.frame_requests(frame)

    assert list(request.series[0].timestamps_ns) == [START_NS, 0]
    prices = list(request.series[0].prices)
    assert prices[0] == 1.0 and np.isnan(prices[1])  # the service refuses it by name


@pytest.mark.parametrize(
    ("frame", "options", "says"),
    [
        (_frame().drop(columns="PRICE"), {}, "no price column"),
        (_frame().drop(columns="Symbol"), {}, "pass symbol="),
        (_frame().drop(columns="TimeStamp"), {}, "no timestamp column"),
        (_frame(), {"symbol": "SPY"}, "pass one"),
        (_frame().assign(price=1.0), {}, "2 columns named price"),
        (_frame(), {"columns": {"close": "PRICE"}}, "the roles are"),
        (_frame(), {"columns": {"price": "Close"}}, "no such column"),
    ],
    ids=["no-price", "no-symbol", "no-time", "two-symbols", "ambiguous", "no-role", "no-column"],
)
def test_a_frame_that_does_not_say_what_is_what_is_refused_before_anything_is_sent(
    frame: pd.DataFrame, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        columnar.frame_requests(frame, **options)


SMALL_SYMBOLS = st.lists(st.sampled_from(["SPY", "QQQ", "IWM"]), min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(symbols=SMALL_SYMBOLS, chunk=st.integers(1, 70), with_volume=st.booleans())
def test_the_messages_of_a_frame_hold_its_rows_in_order_chunk_by_chunk(
    symbols: list[str], chunk: int, with_volume: bool
) -> None:
    """Property: the messages list the frame's rows, in order, at most `chunk` per
    message (every message but the last exactly `chunk`), each run of one symbol
    within a message one series."""
    n = len(symbols)
    frame = pd.DataFrame(
        {
            "symbol": symbols,
            "timestamp": START_NS + np.arange(n, dtype=np.int64) * NS,
            "price": np.arange(n, dtype=np.float64) + 1,
        }
    )
    if with_volume:
        frame["volume"] = np.arange(n, dtype=np.float64) * 2

    requests = list(columnar.frame_requests(frame, chunk=chunk))

    volumes = frame["volume"] if with_volume else [0.0] * n
    assert _flat(requests) == list(
        zip(symbols, frame["timestamp"], frame["price"], volumes, strict=True)
    )
    sizes = [sum(len(s.prices) for s in r.series) for r in requests]
    assert sizes == [len(part) for part in batches(range(n), chunk)]
    for request in requests:
        names = [s.symbol for s in request.series]
        assert all(a != b for a, b in pairwise(names))


def test_a_chunk_of_many_short_series_is_split_to_fit_grpcs_message_limit() -> None:
    n = MAX_TICKS_PER_MESSAGE
    frame = pd.DataFrame(
        {
            "symbol": ["ABCDEFGHIJ", "KLMNOPQRST"] * (n // 2),
            "timestamp": START_NS + np.arange(n, dtype=np.int64),
            "price": np.full(n, 123.456),
            "volume": np.full(n, 1e9 + 0.5),
        }
    )

    requests = list(columnar.frame_requests(frame, chunk=n))

    assert len(requests) >= 2
    assert all(r.ByteSize() < 4 * 1024 * 1024 - 1024 for r in requests)
    assert sum(len(r.series) for r in requests) == n


# --- through the service ------------------------------------------------------------


def _pair(start_service: StartService, tmp_path: Path) -> tuple[RunningService, RunningService]:
    return (
        start_service(database_url=f"sqlite:///{tmp_path / 'rows.db'}"),
        start_service(database_url=f"sqlite:///{tmp_path / 'columns.db'}"),
    )


@pytest.mark.parametrize(
    "chunk", [1, 7, 999, 1000, 1001, 2345, DEFAULT_CHUNK, MAX_TICKS_PER_MESSAGE]
)
def test_stream_arrays_gives_what_the_same_rows_give(
    start_service: StartService, tmp_path: Path, chunk: int
) -> None:
    stamps, prices, volumes = _spy()
    events = _rows(["SPY"] * len(prices), stamps.tolist(), prices.tolist(), volumes.tolist())
    rows, columns = _pair(start_service, tmp_path)

    by_rows = rows.client.stream_market_data(batches(events, chunk))
    by_columns = columns.client.stream_arrays("SPY", stamps, prices, volumes, chunk=chunk)

    assert by_rows.orders >= 1
    assert by_columns == by_rows
    assert comparable_log(columns.client) == comparable_log(rows.client)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_arrays_cut_at_random_boundaries_decide_as_one_message_of_rows(
    start_service: StartService, tmp_path: Path, seed: int
) -> None:
    """Any split of the same ticks gives the same decisions, orders and fills; the
    same split as rows gives the very same log."""
    stamps, prices, volumes = _spy()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(prices)), rng.randint(1, 40)))
    bounds = list(zip([0, *cuts], [*cuts, len(prices)], strict=True))
    events = _rows(["SPY"] * len(prices), stamps.tolist(), prices.tolist(), volumes.tolist())
    rows, columns = _pair(start_service, tmp_path)
    whole = start_service(database_url=f"sqlite:///{tmp_path / 'whole.db'}")

    by_rows = rows.client.stream_market_data(events[a:b] for a, b in bounds)
    by_columns = columns.client.stream_market_data(
        request
        for a, b in bounds
        for request in columnar.array_requests(
            "SPY", stamps[a:b], prices[a:b], volumes[a:b], chunk=b - a
        )
    )
    by_one = whole.client.stream_market_data([events])

    assert by_columns == by_rows
    assert comparable_log(columns.client) == comparable_log(rows.client)
    assert _outcome(columns, by_columns) == _outcome(whole, by_one)


def _market_frame() -> pd.DataFrame:
    """SPY, QQQ and IWM a second apart, interleaved in time order, stamped in New York."""
    paths = {
        "SPY": crossover_prices() + sideways(910, seed=6),
        "QQQ": sideways(1000, level=400.0, seed=7),
        "IWM": sideways(1000, level=200.0, seed=8),
    }
    parts = []
    for offset, (symbol, path) in enumerate(paths.items()):
        parts.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "timestamp": pd.date_range(
                        SESSION + timedelta(milliseconds=offset), periods=len(path), freq="s"
                    ).tz_convert("America/New_York"),
                    "price": path,
                    "volume": 100.0,
                }
            )
        )
    return pd.concat(parts).sort_values("timestamp", kind="stable").reset_index(drop=True)


def _frame_rows(frame: pd.DataFrame) -> list[market_pb2.MarketEvent]:
    stamps = columnar.timestamps_ns(frame["timestamp"].dt.tz_convert(None).to_numpy())
    return _rows(
        frame["symbol"].tolist(), stamps.tolist(), frame["price"].tolist(), frame["volume"].tolist()
    )


@pytest.mark.parametrize("order", ["by-time", "by-symbol"])
@pytest.mark.parametrize("chunk", [1, 5, 1000, 4097, MAX_TICKS_PER_MESSAGE])
def test_stream_frame_gives_what_the_same_rows_give(
    start_service: StartService, tmp_path: Path, order: str, chunk: int
) -> None:
    frame = _market_frame()
    if order == "by-symbol":
        frame = frame.sort_values("symbol", kind="stable")
    rows, columns = _pair(start_service, tmp_path)

    by_rows = rows.client.stream_market_data(batches(_frame_rows(frame), chunk))
    by_columns = columns.client.stream_frame(frame, chunk=chunk)

    assert by_rows.events_accepted == len(frame) and by_rows.signals >= 1
    if order == "by-time":
        # Sorted by symbol, SPY comes last, its ticks stale by the clock of the others:
        # a frame's order matters, which is why it is kept.
        assert by_rows.orders >= 1
    assert by_columns == by_rows
    assert comparable_log(columns.client) == comparable_log(rows.client)


def test_a_bad_row_of_a_frame_is_named_and_the_chunks_before_it_are_kept(
    start_service: StartService,
) -> None:
    """With runs in row order, a frame's row is refused_message_index * chunk +
    event_index."""
    running = start_service()
    frame = _market_frame()
    frame.loc[1234, "price"] = float("nan")
    chunk = 500

    failure = failure_of(lambda: running.client.stream_frame(frame, chunk=chunk))

    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(failure.error)
    assert info is not None
    row = int(info.metadata["refused_message_index"]) * chunk + int(info.metadata["event_index"])
    assert row == 1234
    symbol = frame.loc[1234, "symbol"]
    assert f"event {1234 - 2 * chunk} ({symbol}): price must be finite" in failure.details
    assert f"series {info.metadata['series_index']} tick {info.metadata['tick_index']}, " in (
        failure.details
    )
    assert info.metadata["accepted_events"] == str(2 * chunk)


def test_a_feed_streaming_a_frame_again_is_processed_once(start_service: StartService) -> None:
    running = start_service()
    frame = _market_frame()

    first = running.client.stream_frame(frame, chunk=700, feed_id="frame")
    again = running.client.stream_frame(frame, chunk=700, feed_id="frame")

    assert (first.events_accepted, first.last_sequence) == (len(frame), 5)
    assert (again.events_accepted, again.duplicates_dropped, again.last_sequence) == (0, 5, 5)


def test_the_async_client_streams_arrays_and_frames(
    start_service: StartService, tmp_path: Path
) -> None:
    stamps, prices, volumes = _spy()
    rows, columns = _pair(start_service, tmp_path)
    frame = pd.DataFrame({"timestamp": stamps, "price": prices, "volume": volumes})

    async def scenario() -> list[pb.StreamMarketDataResponse]:
        async with AsyncTradingClient(columns.target, TOKEN) as client:
            return [
                await client.stream_arrays("SPY", stamps[:1500], prices[:1500], volumes[:1500]),
                await client.stream_frame(frame[1500:], symbol="SPY", chunk=700),
            ]

    by_columns = asyncio.run(scenario())
    events = _rows(["SPY"] * len(prices), stamps.tolist(), prices.tolist(), volumes.tolist())
    by_rows = [
        rows.client.stream_market_data(batches(events[:1500], DEFAULT_CHUNK)),
        rows.client.stream_market_data(batches(events[1500:], 700)),
    ]

    assert by_columns == by_rows
    assert comparable_log(columns.client) == comparable_log(rows.client)


# --- back-pressure ------------------------------------------------------------------


class _SlowReader(grpc.GenericRpcHandler):  # type: ignore[misc, unused-ignore]
    """A StreamMarketData that reads one message, then waits until told to go on."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.read = 0

    def service(self, handler_call_details: Any) -> Any:
        if not handler_call_details.method.endswith("/StreamMarketData"):
            return None

        def behaviour(requests: Iterator[pb.StreamMarketDataRequest], context: Any) -> Any:
            for _ in requests:
                self.read += 1
                self.go_on.wait(30)
            return pb.StreamMarketDataResponse(batches_accepted=self.read)

        return grpc.stream_unary_rpc_method_handler(
            behaviour,
            request_deserializer=pb.StreamMarketDataRequest.FromString,
            response_serializer=pb.StreamMarketDataResponse.SerializeToString,
        )


def test_messages_are_built_only_as_fast_as_the_service_reads_them() -> None:
    """gRPC pulls the next message when the previous one is on its way, so a
    service that does not read holds the SDK back: a few messages are built, not
    the whole stream."""
    reader = _SlowReader()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((reader,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    built = 0
    messages = 30
    count = messages * MAX_TICKS_PER_MESSAGE
    stamps = START_NS + np.arange(count, dtype=np.int64)
    prices = np.full(count, 100.25)

    def counted(requests: Iterator[pb.StreamMarketDataRequest]) -> Iterator[Any]:
        nonlocal built
        for request in requests:
            built += 1
            yield request

    try:
        with (
            TradingClient(f"127.0.0.1:{port}", TOKEN) as client,
            futures.ThreadPoolExecutor(1) as pool,
        ):
            requests = columnar.array_requests("SPY", stamps, prices, chunk=MAX_TICKS_PER_MESSAGE)
            call = pool.submit(client.stream_market_data, counted(requests))
            time.sleep(1.0)  # time enough to build them all, were nothing holding it back
            held_back = built
            reader.go_on.set()
            summary = call.result(timeout=60)
    finally:
        server.stop(None)

    assert reader.read == messages == summary.batches_accepted
    assert 1 <= held_back <= 10
