"""Audit events per second through SqlAlchemyEventStore, next to the raw ceiling of
the same database in the same run.

For each database: append N realistic events (~300-byte payloads) through the
store and flush, timed from the first append to the end of the flush; then
insert the same, already sealed, rows into a fresh copy of the same schema
(indexes and triggers included) the fastest plain ways the driver offers, in
one transaction: executemany, and on PostgreSQL also COPY. The raw figures
leave out sealing (validation and hashing), which the store must do.

Run it with `.venv/bin/python -m tests.bench.bench_audit`.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.chain import GENESIS, Sealer
from audit.codec import canonical_json
from audit.migrations import upgrade
from audit.records import AuditRecord, NewRecord
from audit.sql_store import SqlAlchemyEventStore
from tests import pg

N = 50_000
COLUMNS = AuditRecord._fields  # so a sealed row is its own parameter tuple
Out = Callable[[str], None]


def _events(n: int) -> list[NewRecord]:
    """Signals, risk decisions and order updates, as the core would audit them."""
    start = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
    symbols = ("AAPL", "MSFT", "SPY", "QQQ", "NVDA")
    kinds = ("SignalGenerated", "RiskDecisionMade", "OrderUpdated")
    events = []
    for i in range(n):
        symbol, kind = symbols[i % len(symbols)], kinds[i % len(kinds)]
        order_id = f"ord-{i // 3:08d}" if kind == "OrderUpdated" else None
        payload = canonical_json(
            {
                "signal": {
                    "symbol": symbol,
                    "side": "BUY" if i % 2 else "SELL",
                    "qty": str(100 + i % 7),
                    "limit_price": f"{187 + i % 13}.25",
                    "strategy": "sma_cross",
                    "source": "strategy:sma_cross",
                },
                "verdicts": [
                    {"rule": "max_position", "ok": True, "reason": "within 10000 limit"},
                    {"rule": "market_hours", "ok": True, "reason": "XNYS open"},
                ],
                "order_id": order_id,
                "at": (start + timedelta(microseconds=i)).isoformat(),
            }
        )
        events.append(
            NewRecord(
                start + timedelta(microseconds=i * 250),
                kind,
                i,
                payload,
                symbol=symbol,
                order_id=order_id,
            )
        )
    return events


def _sealed_rows(events: list[NewRecord]) -> tuple[list[AuditRecord], list[str]]:
    """The rows as the store seals them, and their recorded_at as SQLite stores it."""
    sealer, rows, times, prev = Sealer(), [], [], GENESIS
    for seq, event in enumerate(events, start=1):
        record, recorded_at = sealer.seal(event, seq, prev)
        prev = record.hash
        rows.append(record)
        times.append(recorded_at)
    return rows, times


def _store_rate(url: str, events: list[NewRecord]) -> tuple[float, float]:
    """(events/s appended and committed, µs per append on the caller's thread)."""
    store = SqlAlchemyEventStore(url, flush_timeout_s=300)
    try:
        started = time.perf_counter()
        for event in events:
            store.append(event)
        appended = time.perf_counter()
        store.flush()
        done = time.perf_counter()
    finally:
        store.close()
    return len(events) / (done - started), (appended - started) / len(events) * 1e6


def _timed(action: Callable[[], None], rows: int) -> float:
    started = time.perf_counter()
    action()
    return rows / (time.perf_counter() - started)


def _insert_sql(placeholder: str) -> str:
    return (
        f"INSERT INTO audit_events ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join([placeholder] * len(COLUMNS))})"
    )


def _bench_sqlite(
    out: Out, events: list[NewRecord], rows: list[AuditRecord], times: list[str]
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    try:
        store_rate, append_us = _store_rate(f"sqlite:///{folder / 'store.db'}", events)
        raw_path = folder / "raw.db"
        upgrade(f"sqlite:///{raw_path}")
        text_rows = [(r.seq, at, *r[2:]) for r, at in zip(rows, times, strict=True)]
        connection = sqlite3.connect(raw_path, isolation_level=None)
        # The store's settings, so both pay the same durability.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")

        def raw() -> None:
            connection.execute("BEGIN")
            connection.executemany(_insert_sql("?"), text_rows)
            connection.execute("COMMIT")

        raw_rate = _timed(raw, len(rows))
        connection.close()
    finally:
        shutil.rmtree(folder)
    out(
        f"SQLite      store {store_rate:>9,.0f} events/s (append {append_us:.1f} µs/event"
        f" on the caller) | raw executemany {raw_rate:>9,.0f} rows/s"
        f" | store/raw {store_rate / raw_rate:.2f}"
    )


def _bench_postgres(out: Out, events: list[NewRecord], rows: list[AuditRecord]) -> None:
    error = pg.postgres_error()
    if error is not None:
        out(f"PostgreSQL  skipped: not reachable on {pg.HOST}:{pg.PORT}: {error}")
        return
    urls = [pg.create_database("bench_audit") for _ in range(3)]
    try:
        store_url, executemany_url, copy_url = urls
        store_rate, append_us = _store_rate(store_url, events)
        upgrade(executemany_url)
        upgrade(copy_url)
        with pg.connect(executemany_url) as connection:

            def executemany() -> None:
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.executemany(_insert_sql("%s"), rows)

            executemany_rate = _timed(executemany, len(rows))
        with pg.connect(copy_url) as connection:

            def copy() -> None:
                with (
                    connection.transaction(),
                    connection.cursor() as cursor,
                    cursor.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as stream,
                ):
                    for row in rows:
                        stream.write_row(row)

            copy_rate = _timed(copy, len(rows))
    finally:
        for url in urls:
            pg.drop_database(url)
    out(
        f"PostgreSQL  store {store_rate:>9,.0f} events/s (append {append_us:.1f} µs/event"
        f" on the caller) | raw executemany {executemany_rate:>9,.0f} rows/s"
        f" | COPY {copy_rate:>9,.0f} rows/s | store/raw executemany"
        f" {store_rate / executemany_rate:.2f}"
    )


def run(out: Out = print) -> None:
    events = _events(N)
    started = time.perf_counter()
    rows, times = _sealed_rows(events)
    seal_rate = N / (time.perf_counter() - started)
    payload = sum(len(e.payload) for e in events) / len(events)
    out(
        f"audit store: {N:,} events, {payload:.0f}-byte payloads on average;"
        f" sealing alone (validate + hash, no database) {seal_rate:,.0f} events/s"
    )
    _bench_sqlite(out, events, rows, times)
    _bench_postgres(out, events, rows)


if __name__ == "__main__":
    run()
