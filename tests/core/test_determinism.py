"""The deterministic core: the same recorded input gives the same decisions and
orders, byte for byte, whether sent live twice or replayed from the journal."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from audit.codec import record_to_envelope
from audit.memory_store import InMemoryEventStore
from audit.records import AuditQuery, AuditRecord
from audit.sql_store import SqlAlchemyEventStore
from client.marketdata import batches, load_bars, to_market_events
from domain.market import MarketBatch
from domain.risk import TradingState
from engines.bus import CHUNK_TICKS, STAGE_TICKS
from engines.clock import datetime_to_ns
from engines.core import Core
from engines.replay import replay
from server.bootstrap import build_core
from server.settings import Settings
from tests.conftest import StartService
from tests.core.harness import make_harness
from tests.support.market import SESSION_START

SYMBOLS = ["AAPL", "IBM", "MSFT", "GOOG"]
DECISIONS_AND_ORDERS = ("SignalGenerated", "RiskDecisionMade", "OrderUpdated")


def _session_log(start_service: StartService, db: Path) -> list[tuple[int, str, str, str]]:
    running = start_service(
        database_url=f"sqlite:///{db}", trading_strategy_symbols=",".join(SYMBOLS)
    )
    bars = [b for b in load_bars(symbols=SYMBOLS) if b.timestamp.year <= 2004]
    summary = running.client.stream_market_data(batches(to_market_events(bars), 250))
    assert summary.orders > 0, "the recorded input should trade"
    records = list(running.client.query_audit())
    running.stop()
    # A log's own identity is unique by design (its id prefixes every client order
    # id, so no two logs can send the same one to a broker), and so is the instance
    # that wrote it: they are named, not compared.
    started = json.loads(records[0].payload_json)
    assert records[0].event_type == "ServiceStarted" and len(started["log_id"]) == 12
    own = {started["log_id"]: "LOG-ID", started["instance"]: "INSTANCE"}
    log = []
    for r in records:
        payload = r.payload_json
        for text, name in own.items():
            payload = payload.replace(text, name)
        log.append((r.seq, r.event_type, payload, str(r.caused_by)))
    return log


def test_the_same_input_twice_gives_an_identical_audit_log(
    start_service: StartService, tmp_path: Path
) -> None:
    first = _session_log(start_service, tmp_path / "first.db")
    second = _session_log(start_service, tmp_path / "second.db")

    assert first == second  # payloads and causes, byte for byte but for the log's identity
    kinds = {kind for _, kind, _, _ in first}
    assert set(DECISIONS_AND_ORDERS) <= kinds


def _recorded(db: Path) -> list[AuditRecord]:
    store = SqlAlchemyEventStore(f"sqlite:///{db}")
    try:
        return list(store.query(AuditQuery()))
    finally:
        store.close()


def _replayed(core: Core, store: InMemoryEventStore, live: list[AuditRecord]) -> list[Any]:
    replay(core, (record_to_envelope(r) for r in live))
    store.flush()
    return [(r.seq, r.recorded_at, r.event_type, r.payload) for r in store.query(AuditQuery())]


def _as_rows(records: list[AuditRecord]) -> list[Any]:
    return [(r.seq, r.recorded_at, r.event_type, r.payload) for r in records]


def test_replaying_the_journal_reproduces_every_decision_and_order(
    start_service: StartService, tmp_path: Path, calendar: Any
) -> None:
    _session_log(start_service, tmp_path / "live.db")
    live = _recorded(tmp_path / "live.db")

    replay_harness = make_harness(calendar, start=None, trading_strategy_symbols=",".join(SYMBOLS))

    assert _replayed(replay_harness.core, replay_harness.store, live) == _as_rows(live)


# Message sizes that take every journaling path: staged one by one, staged up to the
# record limit, journaled whole, and split into several records.
MESSAGE_SIZES = [1, 1, 7, 250, 999, 1, STAGE_TICKS + 1, 3, CHUNK_TICKS * 2 + 17, 40, 1]


def _mixed_messages(count: int) -> list[MarketBatch]:
    prices = [100 * (1 + 0.05 * math.sin(k / 60)) + 0.01 * (k % 7) for k in range(count)]
    start = datetime_to_ns(SESSION_START)
    out, k = [], 0
    for size in MESSAGE_SIZES:
        part = range(k, k + size)
        out.append(
            MarketBatch(
                ["SPY"] * size,
                [prices[i] for i in part],
                [100.0] * size,
                [start + i * 1_000_000 for i in part],
            )
        )
        k += size
    return out


@pytest.mark.parametrize("clock", ["event", "wall"])
def test_a_replay_reproduces_the_log_whatever_the_message_sizes_and_clock(
    calendar: Any, clock: str
) -> None:
    messages = _mixed_messages(sum(MESSAGE_SIZES))
    live_store = InMemoryEventStore()
    live = build_core(Settings(trading_clock=clock), live_store, calendar)
    stream = object()
    for message in messages:
        live.ingest(message, "stream:feeder", stream=stream)
    live.set_trading_state(TradingState.HALTED, "alice", "lunch")
    # Another stream's tick (another symbol: under the event clock SPY's first tick,
    # sent again, is older than SPY's last and refused).
    first = messages[0]
    live.ingest(
        MarketBatch(["QQQ"], first.prices, first.volumes, first.timestamps_ns), "stream:other"
    )
    live.bus.flush()
    recorded = list(live_store.query(AuditQuery()))
    assert sum(r.event_type == "MarketDataReceived" for r in recorded) >= 5

    fresh_store = InMemoryEventStore()
    fresh = build_core(Settings(trading_clock=clock), fresh_store, calendar)

    assert _replayed(fresh, fresh_store, recorded) == _as_rows(recorded)
