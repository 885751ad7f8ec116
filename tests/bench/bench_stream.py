"""Ticks per second through StreamMarketData with the crossover strategy active,
next to the same client streaming to a do-nothing servicer in the same run.

Each server runs in its own process (as in production), the client in this one,
so both figures pay the same serialisation and transport costs.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import grpc

from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

TOKEN = "bench-token"
SYMBOLS = ["SPY", "QQQ", "IWM"]
SERVICE = "trading.v1.TradingService"


def _count_events(
    request_iterator: Iterable[pb.StreamMarketDataRequest], context: grpc.ServicerContext
) -> pb.StreamMarketDataResponse:
    """The do-nothing StreamMarketData: decode each message and count its ticks."""
    n = 0
    for request in request_iterator:
        n += len(request.events) + sum(len(series.prices) for series in request.series)
    return pb.StreamMarketDataResponse(events_accepted=n)


def _serve_do_nothing(port_queue: Queue[int], stop: Event) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.stream_unary_rpc_method_handler(
        _count_events,
        request_deserializer=pb.StreamMarketDataRequest.FromString,
        response_serializer=pb.StreamMarketDataResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"StreamMarketData": handler}),)
    )
    port_queue.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    stop.wait()
    server.stop(0)


def _serve_service(
    port_queue: Queue[int], stop: Event, db: str, clock: str = "wall", risk: str = ""
) -> None:
    from server.bootstrap import create_server
    from server.settings import Settings

    settings = Settings(
        trading_clock=clock,
        database_url=f"sqlite:///{db}",
        # As in production (one line per call), but beside the database, not in the figures.
        trading_access_log=f"{db}.access.log",
        trading_strategy_symbols=SYMBOLS,
        trading_risk_config=Path(risk) if risk else None,
    )
    service = create_server(settings, "127.0.0.1:0", token=TOKEN)
    port_queue.put(service.port)
    service.server.start()
    stop.wait()
    service.stop(0)


def make_batches(total: int, batch_size: int) -> list[pb.StreamMarketDataRequest]:
    """A random-walk-free sine path per symbol: crossings happen, signals flow."""
    import math

    start = datetime.now(UTC) - timedelta(days=1)
    events = []
    for i in range(total):
        e = market_pb2.MarketEvent(
            symbol=SYMBOLS[i % 3], price=100.0 + 5.0 * math.sin(i / 300.0), volume=100.0
        )
        e.timestamp.FromDatetime(start + timedelta(microseconds=i))
        events.append(e)
    return [
        pb.StreamMarketDataRequest(events=events[i : i + batch_size])
        for i in range(0, total, batch_size)
    ]


def _measure(port: int, batches: list[pb.StreamMarketDataRequest]) -> float:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.TradingServiceStub(channel)
        md = (("authorization", f"Bearer {TOKEN}"),)
        ticks = sum(len(b.events) + sum(len(s.prices) for s in b.series) for b in batches)
        began = time.perf_counter()
        reply = stub.StreamMarketData(iter(batches), metadata=md)
        elapsed = time.perf_counter() - began
        assert reply.events_accepted == ticks
        return ticks / elapsed


def _with_server(target: Callable[..., None], *args: object) -> Iterator[int]:
    ctx = mp.get_context("spawn")
    ports: Queue[int] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=target, args=(ports, stop, *args), daemon=True)
    proc.start()
    try:
        yield ports.get(timeout=60)
    finally:
        stop.set()
        proc.join(10)


def run(out: Callable[[str], None] = print) -> None:
    cases = [(1, 20_000), (1000, 600_000)]
    out("StreamMarketData throughput (ticks/s), crossover strategy on SPY/QQQ/IWM")
    out(f"{'batch':>6} {'do-nothing':>12} {'service':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size, total in cases:
            batches = make_batches(total, batch_size)
            baseline = max(_run_once(_serve_do_nothing, batches) for _ in range(2))
            db = str(Path(tmp) / f"bench-{batch_size}.db")
            service = max(_run_once(_serve_service, batches, db) for _ in range(2))
            out(f"{batch_size:>6} {baseline:>12,.0f} {service:>12,.0f} {service / baseline:>7.1%}")
    run_columnar(out)


# The columnar form, under the event clock inside one regular session, so signals are
# judged, sized and filled whatever the hour the bench runs (the row figures above
# stamp their ticks a day back under the wall clock, where market hours refuse them).
COLUMNAR_TICKS = 3_000_000
COLUMNAR_CHUNK = 10_000
COLUMNAR_STEP_NS = 5_000_000  # 3M ticks in 4.2 hours of the session
RELAXED_RISK = """
max_orders_per_window = 100000
max_orders_per_symbol_per_window = 100000
duplicate_window = 0.000001
daily_loss_pct = 1
max_positions_per_symbol = 1000
"""


def columnar_batches(kind: str) -> list[pb.StreamMarketDataRequest]:
    """SPY on a seeded random walk (a 20/50 crossover crosses on ~2% of ticks) or a
    slow sine with a little noise (~0.1%), one SymbolSeries of COLUMNAR_CHUNK a message."""
    import numpy as np

    from tests.support.market import SESSION_START

    rng = np.random.default_rng(11)
    # The walk's crossings cost ~100x what its ticks do: a tenth as long keeps the
    # bench to minutes and still holds thousands of orders.
    n = COLUMNAR_TICKS // 10 if kind == "walk" else COLUMNAR_TICKS
    k = np.arange(n)
    if kind == "walk":
        prices = 100 * np.exp(np.cumsum(rng.normal(0, 4e-4, n)))
    else:
        prices = 100 + 5 * np.sin(k / 4000) + rng.normal(0, 0.002, n)
    stamps = int(SESSION_START.timestamp()) * 1_000_000_000 + k * COLUMNAR_STEP_NS
    return [
        pb.StreamMarketDataRequest(
            series=[
                market_pb2.SymbolSeries(
                    symbol="SPY",
                    timestamps_ns=stamps[i : i + COLUMNAR_CHUNK].tolist(),
                    prices=prices[i : i + COLUMNAR_CHUNK].tolist(),
                    volumes=[100.0] * len(prices[i : i + COLUMNAR_CHUNK]),
                )
            ]
        )
        for i in range(0, n, COLUMNAR_CHUNK)
    ]


def run_columnar(out: Callable[[str], None] = print) -> None:
    out(
        f"StreamMarketData columnar, {COLUMNAR_CHUNK:,} ticks a message, event clock in a "
        "session, crossover + risk + paper + SQLite audit (ticks/s)"
    )
    out(f"{'path':>14} {'do-nothing':>12} {'service':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        risk = Path(tmp) / "risk.toml"
        risk.write_text(RELAXED_RISK)
        for kind, label in (("walk", "2% walk"), ("sine", "rare crossings")):
            batches = columnar_batches(kind)
            baseline = max(_run_once(_serve_do_nothing, batches, warm=False) for _ in range(2))
            db = str(Path(tmp) / f"columnar-{kind}.db")
            service = _run_once(_serve_service, batches, db, "event", str(risk), warm=False)
            out(f"{label:>14} {baseline:>12,.0f} {service:>12,.0f} {service / baseline:>7.1%}")


def _run_once(
    target: Callable[..., None],
    batches: list[pb.StreamMarketDataRequest],
    *args: object,
    warm: bool = True,
) -> float:
    """`warm`: stream a twentieth first (not under the event clock, where the same
    ticks sent twice are refused as old)."""
    for port in _with_server(target, *args):
        if warm:
            _measure(port, batches[: max(1, len(batches) // 20)])
        return _measure(port, batches)
    raise RuntimeError("server did not start")


if __name__ == "__main__":
    run()
