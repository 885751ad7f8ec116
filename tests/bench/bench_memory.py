"""Server memory over long StreamMarketData streams at 10,000 ticks per message, in
rows (6M ticks) and in columns (50M ticks): the resident set size of the
service's process, sampled as the stream goes on. It should be flat once warm
(the sequencer keeps identities, never payloads)."""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import grpc
import psutil

from tests.bench.bench_stream import TOKEN, _serve_service, make_batches
from tests.support.market import as_series
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

TICKS_PER_MESSAGE = 10_000
MESSAGES = 600  # 6M ticks
COLUMNAR_MESSAGES = 5_000  # 50M ticks
SAMPLES = 12


def run(out: Callable[[str], None] = print) -> None:
    rows = make_batches(TICKS_PER_MESSAGE * 10, TICKS_PER_MESSAGE)
    _run(out, rows, MESSAGES, "rows")
    columns = [pb.StreamMarketDataRequest(series=as_series(list(batch.events))) for batch in rows]
    _run(out, columns, COLUMNAR_MESSAGES, "columns")


def _run(
    out: Callable[[str], None],
    template: list[pb.StreamMarketDataRequest],
    messages: int,
    form: str,
) -> None:
    ctx = mp.get_context("spawn")
    ports: Queue[int] = ctx.Queue()
    stop = ctx.Event()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench-memory.db")
        proc = ctx.Process(target=_serve_service, args=(ports, stop, db), daemon=True)
        proc.start()
        try:
            port = ports.get(timeout=60)
            server = psutil.Process(proc.pid)
            curve = _stream(port, template, server, messages)
        finally:
            stop.set()
            proc.join(10)
    total = messages * TICKS_PER_MESSAGE
    out(f"Server RSS over {total:,} ticks in {form} at {TICKS_PER_MESSAGE:,} per message")
    out(f"{'ticks':>12} {'RSS MiB':>9}")
    for ticks, rss in curve:
        out(f"{ticks:>12,} {rss / 2**20:>9.1f}")
    warm = curve[len(curve) // 4][1]
    out(f"last / warm (a quarter in): {curve[-1][1] / warm:.2f}")


def _stream(
    port: int, template: list[pb.StreamMarketDataRequest], server: psutil.Process, count: int
) -> list[tuple[int, int]]:
    curve: list[tuple[int, int]] = []
    every = count // SAMPLES

    def messages() -> Iterator[pb.StreamMarketDataRequest]:
        for n in range(count):
            if n % every == 0:
                curve.append((n * TICKS_PER_MESSAGE, server.memory_info().rss))
            yield template[n % len(template)]

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.TradingServiceStub(channel)
        reply = stub.StreamMarketData(messages(), metadata=(("authorization", f"Bearer {TOKEN}"),))
    time.sleep(0.5)
    curve.append((reply.events_accepted, server.memory_info().rss))
    return curve


if __name__ == "__main__":
    run()
