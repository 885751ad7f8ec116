"""The deterministic core: the same recorded input gives the same decisions and
orders, byte for byte, whether sent live twice or replayed from the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.codec import decode_event
from audit.records import AuditQuery
from client.marketdata import batches, load_bars, to_market_events
from domain.events import MarketDataReceived
from tests.conftest import StartService
from tests.core.harness import make_harness

SYMBOLS = ["AAPL", "IBM", "MSFT", "GOOG"]
DECISIONS_AND_ORDERS = ("SignalGenerated", "RiskDecisionMade", "OrderUpdated")


def _session_log(start_service: StartService, db: Path) -> list[tuple[int, str, str, str]]:
    running = start_service(
        database_url=f"sqlite:///{db}", trading_strategy_symbols=",".join(SYMBOLS)
    )
    bars = [b for b in load_bars(symbols=SYMBOLS) if b.timestamp.year <= 2004]
    summary = running.client.stream_market_data(batches(to_market_events(bars), 250))
    assert summary.orders > 0, "the recorded input should trade"
    log = [(r.seq, r.event_type, r.payload_json, r.hash) for r in running.client.query_audit()]
    running.stop()
    return log


def test_the_same_input_twice_gives_an_identical_audit_log(
    start_service: StartService, tmp_path: Path
) -> None:
    first = _session_log(start_service, tmp_path / "first.db")
    second = _session_log(start_service, tmp_path / "second.db")

    assert first == second  # payloads and hash chains, byte for byte
    kinds = {kind for _, kind, _, _ in first}
    assert set(DECISIONS_AND_ORDERS) <= kinds


def test_replaying_the_journal_reproduces_every_decision_and_order(
    start_service: StartService, tmp_path: Path, calendar: Any
) -> None:
    live = _session_log(start_service, tmp_path / "live.db")

    replay = make_harness(calendar, start=None, trading_strategy_symbols=",".join(SYMBOLS))
    for _, kind, payload, _ in live:
        if kind == "MarketDataReceived":
            event = decode_event(kind, payload)
            assert isinstance(event, MarketDataReceived)
            replay.core.ingest(event.batch, event.source)
    replay.store.flush()
    replayed = [(r.seq, r.event_type, r.payload) for r in replay.store.query(AuditQuery())]

    assert replayed == [(seq, kind, payload) for seq, kind, payload, _ in live]
