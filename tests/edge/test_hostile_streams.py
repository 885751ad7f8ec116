"""Market-data streams as an attacker or an unlucky feed sends them: what a summary
acknowledges is in the journal, a refused message changes nothing, a large one is
journaled before it moves anything, and memory does not follow message size."""

from __future__ import annotations

import gc
import queue
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
import pytest

from audit.memory_store import InMemoryEventStore
from domain.errors import Unavailable
from domain.market import MarketBatch
from engines.bus import CHUNK_TICKS, MAX_TICKS_PER_MESSAGE
from engines.clock import datetime_to_ns
from server.bootstrap import build_core
from server.settings import Settings
from tests.conftest import RunningService, StartService
from tests.support.calls import bearer, failure_of
from tests.support.market import SESSION, ticks
from tests.support.polling import wait_for_ticks
from tests.support.state import journaled_ticks, snapshot
from trading_sdk.client import error_info
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

_END = object()


class OpenStream:
    """A StreamMarketData call kept open: messages are sent when `send` is called."""

    def __init__(self, running: RunningService, pool: ThreadPoolExecutor) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.result: Future[pb.StreamMarketDataResponse] = pool.submit(
            running.client.stream_market_data, self._messages()
        )

    def _messages(self) -> Iterator[list[market_pb2.MarketEvent]]:
        while (item := self._queue.get()) is not _END:
            yield item

    def send(self, events: list[market_pb2.MarketEvent]) -> None:
        self._queue.put(events)

    def close(self) -> pb.StreamMarketDataResponse:
        self._queue.put(_END)
        return self.result.result(timeout=60)


@pytest.mark.parametrize("refused", ["bad event", "undecodable"])
def test_a_refused_stream_never_takes_another_streams_acknowledged_ticks(
    start_service: StartService, refused: str
) -> None:
    running = start_service()
    flat = [100.0] * 800
    with ThreadPoolExecutor(2) as pool:
        a = OpenStream(running, pool)
        for k in range(500):
            a.send(ticks("SPY", [flat[k]], start=SESSION + timedelta(seconds=k)))
        wait_for_ticks(running.client, 500)

        b_events = ticks("QQQ", [100.0] * 3)
        if refused == "bad event":
            b_events[1].price = -1.0
            failure = failure_of(lambda: running.client.stream_market_data([b_events]))
        else:
            failure = failure_of(lambda: _send_raw(running, [b"\x0a\x05\xff\xff\xff\xff\xff"]))
        assert failure.code is grpc.StatusCode.INVALID_ARGUMENT

        for k in range(500, 800):
            a.send(ticks("SPY", [flat[k]], start=SESSION + timedelta(seconds=k)))
        summary = a.close()

    assert summary.events_accepted == 800
    spy = [symbol for symbol, _ in journaled_ticks(running.client) if symbol == "SPY"]
    assert len(spy) == 800
    assert running.client.verify_audit().ok


def _send_raw(running: RunningService, messages: list[bytes]) -> object:
    """Raw bytes as StreamMarketData messages, as a broken client would send them."""
    channel = grpc.insecure_channel(running.target)
    call: grpc.StreamUnaryMultiCallable[bytes, pb.StreamMarketDataResponse] = channel.stream_unary(
        "/trading.v1.TradingService/StreamMarketData",
        request_serializer=None,
        response_deserializer=pb.StreamMarketDataResponse.FromString,
    )
    good = pb.StreamMarketDataRequest(events=ticks("IWM", [50.0])).SerializeToString()
    try:
        return call(
            iter([good, *messages]),
            metadata=bearer(),
            timeout=30,
        )
    finally:
        channel.close()


def test_an_undecodable_message_mid_stream_says_what_was_kept_and_is_audited(
    start_service: StartService,
) -> None:
    running = start_service()

    with pytest.raises(grpc.RpcError) as raised:
        _send_raw(running, [b"\x0a\x05\xff\xff\xff\xff\xff"])

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(raised.value)
    assert info is not None and info.reason == "MARKET_DATA_MESSAGE_REFUSED"
    assert info.metadata["cause"] == "UNDECODABLE_MESSAGE"
    assert info.metadata["refused_message_index"] == "1"
    assert info.metadata["accepted_events"] == "1"
    refusals = list(running.client.query_audit(event_types=["RequestRefused"]))
    assert len(refusals) == 1 and "message 1 refused" in refusals[0].payload_json
    assert [s for s, _ in journaled_ticks(running.client)] == ["IWM"]


def test_a_large_message_is_journaled_whole_before_it_moves_the_strategy(
    start_service: StartService,
) -> None:
    running = start_service()
    size = 40_000
    events = ticks("SPY", [100.0 + (k % 10) * 0.01 for k in range(size)])

    summary = running.client.stream_market_data([events])

    assert summary.events_accepted == size
    assert running.client.get_status().counters.market_events == size
    records = list(running.client.query_audit(event_types=["MarketDataReceived"]))
    assert len(records) == -(-size // CHUNK_TICKS)
    assert len(journaled_ticks(running.client)) == size
    assert running.client.verify_audit().ok


def test_a_message_over_the_contract_limit_is_refused_and_changes_nothing(
    start_service: StartService,
) -> None:
    running = start_service()
    before = snapshot(running.client)
    stamp = market_pb2.MarketEvent(symbol="A", price=1.0)
    stamp.timestamp.FromDatetime(SESSION)
    events = [stamp] * (MAX_TICKS_PER_MESSAGE + 1)

    failure = failure_of(lambda: running.client.stream_market_data([events]))

    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    assert str(MAX_TICKS_PER_MESSAGE) in failure.details
    after = snapshot(running.client)
    assert after.counters.market_events == before.counters.market_events == 0
    assert (after.positions, after.orders, after.account) == (
        before.positions,
        before.orders,
        before.account,
    )
    new = list(running.client.query_audit(from_seq=before.last_seq + 1))
    assert [r.event_type for r in new] == ["RequestRefused"]


def _core_batch(size: int, start_ns: int, price: float = 100.0) -> MarketBatch:
    return MarketBatch(
        ["SPY"] * size,
        [price + (k % 13) * 0.01 for k in range(size)],
        [1.0] * size,
        [start_ns + k * 1_000_000 for k in range(size)],
    )


def test_the_sequencer_keeps_no_market_data_once_it_is_journaled(calendar: Any) -> None:
    store = InMemoryEventStore()
    core = build_core(Settings(trading_clock="event"), store, calendar)
    start = datetime_to_ns(SESSION)
    for k in range(30):
        core.ingest(_core_batch(10_000, start + k * 10**10), "stream:feeder")
        store.flush()
    gc.collect()

    alive = sum(isinstance(o, MarketBatch) for o in gc.get_objects())
    assert alive <= 1  # at most the staged one; none of the 30 journaled messages


def test_a_full_backlog_refuses_a_message_before_anything_changes(calendar: Any) -> None:
    store = InMemoryEventStore(max_pending=3)
    core = build_core(Settings(trading_clock="event"), store, calendar)
    start = datetime_to_ns(SESSION)
    store.simulate_outage()
    core.ingest(_core_batch(5, start), "stream:feeder", journal_now=True)
    core.ingest(_core_batch(5, start + 10**10), "stream:feeder", journal_now=True)
    core.ingest(_core_batch(5, start + 2 * 10**10), "stream:feeder", journal_now=True)
    before = (core.stats.market_events, store.last_seq(), dict(core.prices.last))

    with pytest.raises(Unavailable, match="backlog is full"):
        core.ingest(_core_batch(5, start + 3 * 10**10, price=150.0), "stream:feeder")

    assert (core.stats.market_events, store.last_seq(), dict(core.prices.last)) == before
