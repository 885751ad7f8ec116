"""Health check and GetStatus latency with no streams open, then with 100 idle
SubscribeEvents open (DESIGN.md invariant 8: health and unary calls always have
capacity). The service runs in its own process, with stream caps raised so that
all 100 streams get in; the client calls one at a time from this process.

Run it with `.venv/bin/python -m tests.bench.bench_health`.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

TOKEN = "bench-token-0123456789"
CALLS = 200
WARM_UP = 20
IDLE_STREAMS = 100
METADATA = (("authorization", f"Bearer {TOKEN}"),)
Out = Callable[[str], None]


def _serve(port_queue: Queue[int], stop: Event, db: str) -> None:
    from server.bootstrap import create_server
    from server.settings import Settings

    settings = Settings(
        trading_clock="wall",
        database_url=f"sqlite:///{db}",
        # As in production (one line per call), but beside the database, not in the figures.
        trading_access_log=f"{db}.access.log",
        trading_max_streams=IDLE_STREAMS + 28,
        trading_max_streams_per_principal=IDLE_STREAMS + 28,
    )
    service = create_server(settings, "127.0.0.1:0", token=TOKEN)
    port_queue.put(service.port)
    service.server.start()
    stop.wait()
    service.stop(0)


def _server(db: str) -> Iterator[int]:
    ctx = mp.get_context("spawn")
    ports: Queue[int] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(ports, stop, db), daemon=True)
    proc.start()
    try:
        yield ports.get(timeout=60)
    finally:
        stop.set()
        proc.join(10)


def _latencies_ms(call: Callable[[], object]) -> list[float]:
    for _ in range(WARM_UP):
        call()
    timings = []
    for _ in range(CALLS):
        began = time.perf_counter()
        call()
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def _p(timings: list[float], percentile: int) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[percentile - 1]


def _open_idle_streams(channel: grpc.Channel, n: int) -> list[Any]:
    """n SubscribeEvents, each confirmed open by its first (replayed) event."""
    stub = pb_grpc.TradingServiceStub(channel)
    streams = []
    for _ in range(n):
        call = stub.SubscribeEvents(
            pb.SubscribeEventsRequest(from_seq=1), metadata=METADATA, timeout=600
        )
        next(call)
        streams.append(call)
    return streams


def run(out: Out = print) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for port in _server(str(Path(tmp) / "bench-health.db")):
            _measure(port, out)


def _measure(port: int, out: Out) -> None:
    target = f"127.0.0.1:{port}"
    with grpc.insecure_channel(target) as channel, grpc.insecure_channel(target) as streams_ch:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.TradingServiceStub(channel)
        # Two records, so a subscriber from seq 1 is confirmed open by a replayed one
        # (setting a state already in force records nothing).
        stub.DeactivateRisk(pb.DeactivateRiskRequest(reason="bench"), metadata=METADATA)
        stub.ActivateRisk(pb.ActivateRiskRequest(reason="bench"), metadata=METADATA)
        check = health_pb2_grpc.HealthStub(channel).Check
        request = health_pb2.HealthCheckRequest(service="")
        calls: dict[str, Callable[[], object]] = {
            "health Check": lambda: check(request, timeout=10),
            "GetStatus": lambda: stub.GetStatus(
                pb.GetStatusRequest(), metadata=METADATA, timeout=10
            ),
        }
        quiet = {name: _latencies_ms(call) for name, call in calls.items()}
        streams = _open_idle_streams(streams_ch, IDLE_STREAMS)
        try:
            busy = {name: _latencies_ms(call) for name, call in calls.items()}
        finally:
            for stream in streams:
                stream.cancel()
    out(f"Unary latency (ms, {CALLS} calls one at a time), no streams vs {IDLE_STREAMS} idle")
    out(
        f"{'call':<13} {'p50 none':>9} {'p50 busy':>9} {'ratio':>6}"
        f" {'p99 none':>9} {'p99 busy':>9} {'ratio':>6}"
    )
    for name in calls:
        p50 = _p(quiet[name], 50), _p(busy[name], 50)
        p99 = _p(quiet[name], 99), _p(busy[name], 99)
        out(
            f"{name:<13} {p50[0]:>9.2f} {p50[1]:>9.2f} {p50[1] / p50[0]:>5.2f}x"
            f" {p99[0]:>9.2f} {p99[1]:>9.2f} {p99[1] / p99[0]:>5.2f}x"
        )


if __name__ == "__main__":
    run()
