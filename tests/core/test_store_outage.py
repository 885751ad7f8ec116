"""Fail closed, lose nothing: the audit database goes away in the middle of a
stream (a TCP proxy the test controls is cut; the shared server is never
stopped) and comes back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest

from tests import pg
from tests.conftest import RunningService, StartService
from tests.support.databases import postgres_database
from tests.support.market import SESSION_START, minute_ticks, v_reversal
from tests.support.polling import wait_for
from tests.tcp_proxy import TcpProxy
from trading_sdk.v1 import events_pb2, risk_pb2

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied_url() -> Iterator[tuple[str, TcpProxy]]:
    with postgres_database("outage_test") as url:
        proxy = TcpProxy(pg.HOST, pg.PORT)
        try:
            yield pg.with_port(url, proxy.port), proxy
        finally:
            proxy.close()


class Subscriber:
    """Everything the service tells a client, collected in the background."""

    def __init__(self, running: RunningService) -> None:
        self.events: list[events_pb2.Event] = []
        self._stream = running.client.subscribe_events(from_seq=1)
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        for event in self._stream:
            self.events.append(event)

    def stop(self) -> None:
        self._stream.cancel()
        self._thread.join(5)


def test_an_outage_mid_stream_halts_trading_sends_nothing_unlogged_and_loses_nothing(
    start_service: StartService, proxied_url: tuple[str, TcpProxy]
) -> None:
    url, proxy = proxied_url
    running = start_service(database_url=url)
    client = running.client
    told = Subscriber(running)
    # The subscription is live (it has the service's start) before anything is cut.
    wait_for(lambda: told.events, "the subscription")
    # A first crossing trades while the database is up.
    assert client.stream_market_data([minute_ticks("SPY", v_reversal())]).orders == 1

    proxy.cut()
    later = SESSION_START + timedelta(hours=3)
    with pytest.raises(grpc.RpcError) as refused:
        client.stream_market_data([minute_ticks("QQQ", v_reversal(), start=later)])
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "audit store unavailable" in (refused.value.details() or "")

    # Fail closed: halted by the store, and the QQQ order never left the process.
    def halted() -> bool:
        return client.get_risk_status().trading.state == risk_pb2.TRADING_STATE_HALTED

    wait_for(halted, "the halt")
    trading = client.get_risk_status().trading
    assert trading.changed_by == "system:audit-store"
    assert [p.symbol for p in client.list_positions().positions] == ["SPY"]
    audit = {c.name: c for c in client.get_status().components}["audit"]
    assert not audit.healthy  # reads still answer while the store is down

    proxy.restore()

    def resumed() -> bool:
        return client.get_risk_status().trading.state == risk_pb2.TRADING_STATE_ACTIVE

    wait_for(resumed, "the automatic resume")
    verdict = client.verify_audit()
    assert verdict.ok, verdict.reason
    told.stop()

    records = list(client.query_audit())
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    by_seq = {r.seq: r for r in records}
    # Every event a client was told about is in the log.
    assert told.events and all(e.seq in by_seq for e in told.events)
    # Every order the broker holds a position for was logged as an intent first.
    intents = {
        r.symbol for r in records if r.event_type == "OrderUpdated" and '"NEW"' in r.payload_json
    }
    assert {p.symbol for p in client.list_positions().positions} <= intents


def test_an_operators_halt_does_not_clear_when_the_store_returns(
    start_service: StartService, proxied_url: tuple[str, TcpProxy]
) -> None:
    url, proxy = proxied_url
    running = start_service(database_url=url)
    running.client.deactivate_risk("investigating fills")

    proxy.cut()
    with pytest.raises(grpc.RpcError):
        running.client.stream_market_data([minute_ticks("SPY", v_reversal()[:10])])
    proxy.restore()
    wait_for(lambda: running.client.verify_audit().ok, "the store to recover")

    trading = running.client.get_risk_status().trading
    assert trading.state == risk_pb2.TRADING_STATE_HALTED
    assert (trading.changed_by, trading.reason) == ("operator", "investigating fills")
