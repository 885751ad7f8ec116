"""Helpers shared by the edge tests: market data inside an NYSE session, a
snapshot of everything a refused request must leave alone, and the tools of
the virtualenv (grpcurl, lint-imports) found next to the running interpreter."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client.sdk import ServerStream, TradingClient, market_event
from tests.conftest import TOKEN
from trading.v1 import market_pb2, risk_pb2
from trading.v1 import trading_service_pb2 as pb

# Tuesday 2024-03-05, 10:00 in New York: inside a regular NYSE session.
SESSION = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
TRADING_SERVICE = "trading.v1.TradingService"
STRATEGY = "ma_crossover"
# A safety net for server streams that should fail at once: if one does not,
# it is cancelled after this long and the test fails on the missing error.
STREAM_GUARD_SECONDS = 10.0


def bearer(token: str = TOKEN) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a bearer token, as any gRPC client would send it."""
    return (("authorization", f"Bearer {token}"),)


def venv_tool(name: str) -> Path:
    """An executable installed in the same virtualenv as the running Python."""
    path = Path(sys.executable).with_name(name)
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return path


def ticks(
    symbol: str, prices: Iterable[float], start: datetime = SESSION, volume: float = 100.0
) -> list[market_pb2.MarketEvent]:
    """One event per price, a second apart from `start`."""
    return [
        market_event(symbol, price, volume, start + timedelta(seconds=i))
        for i, price in enumerate(prices)
    ]


def crossover_prices() -> list[float]:
    """A slide then a sharp rally: the 20/50 crossover strategy buys once, with
    enough confidence to pass risk, and the paper broker fills the market order."""
    return [100 - 0.2 * i for i in range(60)] + [88 + 1.0 * i for i in range(30)]


@dataclass(frozen=True)
class Failure:
    """How a call failed: its status code and the explanation a person reads."""

    code: grpc.StatusCode
    details: str


def failure_of(call: Callable[[], object]) -> Failure:
    """Run a call that must fail and return how it failed. A server stream is
    read to the end (and cancelled by a guard if it never ends)."""
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if isinstance(result, ServerStream):
            guard = threading.Timer(STREAM_GUARD_SECONDS, result.cancel)
            guard.start()
            try:
                list(result)
            finally:
                guard.cancel()
    return Failure(info.value.code(), info.value.details() or "")


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused request must leave exactly as it was."""

    last_seq: int
    chain_ok: bool
    counters: pb.Counters
    trading: risk_pb2.TradingStatus
    positions: pb.ListPositionsResponse
    strategies: pb.ListStrategiesResponse
    orders: pb.ListOrderHistoryResponse
    account: pb.GetAccountResponse


def snapshot(client: TradingClient) -> Snapshot:
    verified = client.verify_audit()
    status = client.get_status()
    return Snapshot(
        last_seq=verified.last_seq,
        chain_ok=verified.ok,
        counters=status.counters,
        trading=status.trading,
        positions=client.list_positions(),
        strategies=client.list_strategies(),
        orders=client.list_order_history(),
        account=client.get_account(),
    )


def journaled_ticks(client: TradingClient) -> list[tuple[str, int]]:
    """(symbol, record seq) of every tick in the audit log's market-data records.

    Small messages may be journaled together as one MarketDataReceived record,
    so ticks are counted from each record's payload, not by record."""
    found: list[tuple[str, int]] = []
    for record in client.query_audit(event_types=["MarketDataReceived"]):
        payload = json.loads(record.payload_json)
        found.extend((symbol, record.seq) for symbol in payload["batch"]["symbols"])
    return found


def health_of(channel: grpc.Channel, service: str) -> int:
    """The serving status the standard health service reports; no token sent."""
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    status: int = response.status
    return status
