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

from trading.v1 import market_pb2
from trading.v1 import trading_service_pb2 as pb
from trading.v1 import trading_service_pb2_grpc as pb_grpc

TOKEN = "bench-token"
SYMBOLS = ["SPY", "QQQ", "IWM"]
SERVICE = "trading.v1.TradingService"


def _count_events(
    request_iterator: Iterable[pb.StreamMarketDataRequest], context: grpc.ServicerContext
) -> pb.StreamMarketDataResponse:
    """The do-nothing StreamMarketData: decode each message and count its events."""
    n = 0
    for request in request_iterator:
        n += len(request.events)
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


def _serve_service(port_queue: Queue[int], stop: Event, db: str) -> None:
    from server.bootstrap import create_server
    from server.settings import Settings

    settings = Settings(
        trading_clock="wall", database_url=f"sqlite:///{db}", trading_strategy_symbols=SYMBOLS
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
        ticks = sum(len(b.events) for b in batches)
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


def _run_once(
    target: Callable[..., None], batches: list[pb.StreamMarketDataRequest], *args: object
) -> float:
    for port in _with_server(target, *args):
        _measure(port, batches[: max(1, len(batches) // 20)])  # warm up
        return _measure(port, batches)
    raise RuntimeError("server did not start")


if __name__ == "__main__":
    run()
