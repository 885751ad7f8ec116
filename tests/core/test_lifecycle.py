"""Stopping a real `trading-server` process: SIGTERM drains it gracefully (health
NOT_SERVING at once, no new calls, an open stream gets its summary, the audit log
is flushed and closed, exit 0); a second signal exits at once, and the log still
verifies and holds every acknowledged tick."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import grpc
import pytest
from grpc_health.v1 import health_pb2

from audit.codec import record_to_envelope
from audit.records import AuditQuery
from audit.sql_store import SqlAlchemyEventStore
from domain.events import MarketDataReceived
from tests.support.calls import TRADING_SERVICE
from tests.support.market import SECOND, SESSION, ticks, v_reversal
from tests.support.polling import wait_for_ticks
from tests.support.tools import REPO
from trading_sdk.client import TradingClient
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

pytestmark = pytest.mark.slow
TOKEN = "lifecycle-token"
GRACE = 30.0  # generous: the machine is shared; the drain itself takes well under a second
SERVING_LINE = re.compile(r"serving trading\.v1\.TradingService on 127\.0\.0\.1:(\d+)")
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _batches(count: int, size: int, day: int = 0) -> list[list[market_pb2.MarketEvent]]:
    prices = v_reversal()
    events = ticks(
        "SPY",
        [prices[k % len(prices)] for k in range(count * size)],
        start=SESSION + timedelta(days=day),
        step=SECOND,
    )
    return [events[i : i + size] for i in range(0, len(events), size)]


class Server:
    """`python -m server.main` on 127.0.0.1:0, its log in a file; the port is read from it."""

    def __init__(self, tmp_path: Path, grace: float) -> None:
        self.database_url = f"sqlite:///{tmp_path / 'audit.db'}"
        self.log_path = tmp_path / "server.log"
        env = {
            **os.environ,
            "TRADING_API_KEY": TOKEN,
            "TRADING_CLOCK": "event",
            "DATABASE_URL": self.database_url,
            "TRADING_SHUTDOWN_GRACE_SECONDS": str(grace),
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.main", "--listen", "127.0.0.1:0"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        match = self.wait_for_log(SERVING_LINE, 60)
        self.target = f"127.0.0.1:{match.group(1)}"
        self.client = TradingClient(self.target, TOKEN)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := pattern.search(self.log()):
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern.pattern!r} in the server's log:\n{self.log()}")

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


StartServer = Callable[[float], Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    started: list[Server] = []

    def start(grace: float) -> Server:
        server = Server(tmp_path, grace)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


class HeldStream:
    """A StreamMarketData call on its own thread: sends `batches`, then keeps the
    stream open until `end()`; `summary` or `error` once the call is over."""

    def __init__(self, client: TradingClient, batches: list[list[market_pb2.MarketEvent]]) -> None:
        self._release = threading.Event()
        self.summary: pb.StreamMarketDataResponse | None = None
        self.error: grpc.RpcError | None = None

        def messages() -> Iterator[list[market_pb2.MarketEvent]]:
            yield from batches
            self._release.wait(120)

        def run() -> None:
            try:
                self.summary = client.stream_market_data(messages())
            except grpc.RpcError as error:
                self.error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def end(self) -> None:
        self._release.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream's call did not complete"


class _Watch(Protocol):
    def __next__(self) -> health_pb2.HealthCheckResponse: ...
    def cancel(self) -> bool: ...


def _health_watch(channel: grpc.Channel, service: str) -> _Watch:
    # The method by name: the grpc-health type stubs declare no methods on HealthStub.
    watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    return watch(health_pb2.HealthCheckRequest(service=service), timeout=60)


def _refused_within(target: str, timeout: float) -> grpc.StatusCode:
    """The code a new call gets once the server takes no more (polled: health goes
    NOT_SERVING just before the server stops taking calls). A call that reached
    the transport in the very moment gRPC stopped accepting is CANCELLED by gRPC
    itself (a reset stream): it was not new, so the poll goes on to the next."""
    deadline = time.monotonic() + timeout
    with TradingClient(target, TOKEN, timeout=5) as fresh:
        while True:
            try:
                fresh.get_status()
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.CANCELLED:
                    return error.code()
            assert time.monotonic() < deadline, "the server still takes new calls"
            time.sleep(0.01)


def _audited_ticks(database_url: str) -> tuple[int, int]:
    """(ticks journaled, last seq) of the log, after checking its chain."""
    store = SqlAlchemyEventStore(database_url)
    try:
        verdict = store.verify()
        assert verdict.ok, verdict.reason
        journaled = 0
        kinds = frozenset({"MarketDataReceived"})
        for record in store.query(AuditQuery(event_types=kinds)):
            event = record_to_envelope(record).event
            assert isinstance(event, MarketDataReceived)
            journaled += len(event.batch)
        return journaled, verdict.last_seq
    finally:
        store.close()


def test_sigterm_drains_an_open_stream_flushes_the_log_and_exits_0(
    start_server: StartServer,
) -> None:
    server = start_server(GRACE)
    acknowledged = server.client.stream_market_data(_batches(3, 20, day=0))
    assert acknowledged.events_accepted == 60
    batches = _batches(5, 20, day=1)
    stream = HeldStream(server.client, batches)
    wait_for_ticks(server.client, 60 + 100)
    with grpc.insecure_channel(server.target) as watcher:
        watches = {name: _health_watch(watcher, name) for name in ("", TRADING_SERVICE)}
        for call in watches.values():
            assert next(call).status == health_pb2.HealthCheckResponse.SERVING

        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # Health says NOT_SERVING for the process and for the trading service at once.
        for name, call in watches.items():
            assert next(call).status == NOT_SERVING, name
            call.cancel()
    # And, a moment later, the server takes no new call while the stream drains.
    assert _refused_within(server.target, 10) is grpc.StatusCode.UNAVAILABLE
    assert server.proc.poll() is None, "the server did not wait for the open stream"

    # The client ends its stream within the grace period: it gets its summary.
    stream.end()
    stream.join(GRACE)
    assert stream.error is None, stream.error
    assert stream.summary is not None
    assert stream.summary.events_accepted == 100
    assert stream.summary.batches_accepted == 5

    assert server.proc.wait(GRACE) == 0, server.log()
    assert time.monotonic() - signalled < GRACE
    log = server.log()
    for phase in ("SIGTERM: shutting down", "every call finished", "audit log flushed and closed"):
        assert phase in log, log
    assert "Traceback" not in log, log

    journaled, last_seq = _audited_ticks(server.database_url)
    assert journaled == 60 + 100, "an acknowledged tick is missing from the audit log"
    assert last_seq >= stream.summary.last_seq


def test_a_second_sigint_exits_at_once_and_the_log_still_verifies(
    start_server: StartServer,
) -> None:
    server = start_server(120)  # the second signal, not the grace, must end it
    acknowledged = server.client.stream_market_data(_batches(4, 20, day=0))
    assert acknowledged.events_accepted == 80
    stream = HeldStream(server.client, _batches(3, 20, day=1))  # never ended by the client
    wait_for_ticks(server.client, 80 + 60)

    server.proc.send_signal(signal.SIGINT)
    server.wait_for_log(re.compile("SIGINT: shutting down"), 30)
    time.sleep(0.6)  # past the window in which a repeat counts as a copy of the first
    assert server.proc.poll() is None, "the server did not wait for the open stream"
    server.proc.send_signal(signal.SIGINT)
    second = time.monotonic()

    assert server.proc.wait(10) == 128 + signal.SIGINT, server.log()
    assert time.monotonic() - second < 10
    assert "SIGINT again: exiting at once" in server.log()
    stream.end()
    stream.join(30)
    assert stream.summary is None and stream.error is not None  # never acknowledged

    journaled, last_seq = _audited_ticks(server.database_url)
    assert journaled >= 80, "an acknowledged tick is missing from the audit log"
    assert last_seq >= acknowledged.last_seq


def test_a_stream_still_open_when_the_grace_is_over_is_cancelled_and_the_exit_is_0(
    start_server: StartServer,
) -> None:
    server = start_server(1.0)
    acknowledged = server.client.stream_market_data(_batches(2, 20, day=0))
    stream = HeldStream(server.client, _batches(3, 20, day=1))  # its client never ends it
    wait_for_ticks(server.client, 40 + 60)

    server.proc.send_signal(signal.SIGTERM)

    assert server.proc.wait(30) == 0, server.log()
    stream.end()
    stream.join(30)
    assert stream.summary is None and stream.error is not None
    log = server.log()
    assert "grace of 1 s over, calls still open were cancelled" in log, log
    assert "audit log flushed and closed" in log, log
    assert "Traceback" not in log, log
    # The cancelled stream's ticks were taken in by the core, so they are journaled too.
    journaled, last_seq = _audited_ticks(server.database_url)
    assert journaled == 40 + 60
    assert last_seq >= acknowledged.last_seq
