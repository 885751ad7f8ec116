"""Alpaca market data into the service: the bar-time conversion (test_bars), the
download into the file format `tradectl stream` reads (test_history) and the live
feed (test_feed), driven through alpaca-py's real clients against the loopback
fake in tests/fakes/alpaca_data_server.py and a real service."""

from __future__ import annotations

from audit.codec import decode_event
from domain.events import MarketDataReceived
from trading_sdk.client import TradingClient
from trading_sdk.v1 import market_pb2

# symbol, price, volume, time stamp (ns since the epoch)
Tick = tuple[str, float, float, int]


def journaled(client: TradingClient, feed_id: str | None = None) -> list[Tick]:
    """Every tick in the service's market-data journal (of one feed, if given), in order."""
    found: list[Tick] = []
    for record in client.query_audit(event_types=["MarketDataReceived"]):
        event = decode_event("MarketDataReceived", record.payload_json)
        assert isinstance(event, MarketDataReceived)
        if feed_id is None or event.feed_id == feed_id:
            b = event.batch
            found.extend(zip(b.symbols, b.prices, b.volumes, b.timestamps_ns, strict=True))
    return found


def tick_of(event: market_pb2.MarketEvent) -> Tick:
    """A MarketEvent as the journal has it."""
    stamp = event.timestamp.seconds * 10**9 + event.timestamp.nanos
    return (event.symbol, event.price, event.volume, stamp)
