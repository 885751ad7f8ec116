"""Market data processed exactly once: under the event clock a tick older than its
symbol's last is refused, so the same history cannot trade twice; a feed that names
itself and numbers its messages has a resend dropped (across streams, principals and
restarts), so a feed cut off by UNAVAILABLE simply sends everything again; and
`tradectl stream` does exactly that."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.codec import decode_event
from audit.memory_store import InMemoryEventStore
from client import cli
from client.marketdata import batches
from domain.events import MarketDataReceived
from engines.market import format_ns
from tests.client.conftest import fake  # noqa: F401  (the fake service, for tradectl's retries)
from tests.client.fake_service import FakeTradingService
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import failure_of
from tests.support.market import SESSION, crossover_prices, ticks
from tests.support.polling import wait_for
from tests.support.state import snapshot
from trading_sdk.client import TradingClient, error_info
from trading_sdk.v1 import market_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

Tick = tuple[str, float, int]  # symbol, price, timestamp (ns)


def history(symbol: str = "SPY", start: datetime = SESSION) -> list[list[market_pb2.MarketEvent]]:
    """The crossover path, one tick a second, in messages of 10 ticks: it buys once,
    late in the path (well after the third message)."""
    return list(batches(ticks(symbol, crossover_prices(), start=start), 10))


def journaled(client: TradingClient, feed_id: str | None = None) -> list[Tick]:
    """Every tick in the journal's market-data records (of one feed, if given), in order."""
    found: list[Tick] = []
    for record in client.query_audit(event_types=["MarketDataReceived"]):
        event = decode_event("MarketDataReceived", record.payload_json)
        assert isinstance(event, MarketDataReceived)
        if feed_id is None or event.feed_id == feed_id:
            b = event.batch
            found.extend(zip(b.symbols, b.prices, b.timestamps_ns, strict=True))
    return found


def sent(messages: list[list[market_pb2.MarketEvent]]) -> list[Tick]:
    return [
        (e.symbol, e.price, e.timestamp.seconds * 10**9 + e.timestamp.nanos)
        for message in messages
        for e in message
    ]


def orders(client: TradingClient) -> list[tuple[Any, ...]]:
    """What was traded, without ids or times (which differ between runs)."""
    return [
        (o.symbol, o.side, o.quantity, o.status, o.filled_quantity, o.average_fill_price)
        for o in client.list_order_history().orders
    ]


def trading_active(client: TradingClient) -> bool:
    return client.get_risk_status().trading.state == risk_pb2.TRADING_STATE_ACTIVE


# --- ticks in order under the event clock ------------------------------------------


def test_the_same_history_twice_under_the_event_clock_trades_once(
    start_service: StartService,
) -> None:
    running = start_service()
    client = running.client
    messages = history()
    assert client.stream_market_data(messages).orders == 1
    before = snapshot(client)

    failure = failure_of(lambda: client.stream_market_data(messages))

    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT
    first, last = sent(messages)[0][2], sent(messages)[-1][2]
    assert format_ns(first) in failure.details and format_ns(last) in failure.details
    assert "event 0 (SPY)" in failure.details
    after = snapshot(client)
    after.counters.audit_events = before.counters.audit_events  # the RequestRefused
    assert (after.counters, after.positions, after.orders, after.account) == (
        before.counters,
        before.positions,
        before.orders,
        before.account,
    )
    new = list(client.query_audit(from_seq=before.last_seq + 1))
    assert [r.event_type for r in new] == ["RequestRefused"]
    assert len(journaled(client)) == len(sent(messages))


def test_a_stale_tick_is_refused_with_its_index_and_both_times_equal_times_pass(
    start_service: StartService,
) -> None:
    client = start_service().client
    at = [SESSION + timedelta(seconds=s) for s in (0, 0, 5)]
    same_time = [ticks("SPY", [100.0], start=t)[0] for t in at]
    qqq = ticks("QQQ", [50.0], start=SESSION)  # another symbol has its own last time
    assert client.stream_market_data([same_time, same_time[2:], qqq]).events_accepted == 5

    late = ticks("SPY", [100.0], start=at[2] + timedelta(seconds=1))[0]
    stale = ticks("SPY", [100.0], start=at[2] - timedelta(seconds=1))[0]
    with pytest.raises(grpc.RpcError) as refused:
        client.stream_market_data([[late, stale]])

    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(refused.value)
    assert info is not None and info.reason == "MARKET_DATA_MESSAGE_REFUSED"
    assert (info.metadata["cause"], info.metadata["event_index"]) == ("BAD_MARKET_EVENT", "1")
    details = refused.value.details() or ""
    assert "event 1 (SPY)" in details and "event 0 of this message" in details
    assert format_ns(datetime_ns(stale)) in details and format_ns(datetime_ns(late)) in details
    assert len(journaled(client)) == 5


def datetime_ns(event: market_pb2.MarketEvent) -> int:
    return event.timestamp.seconds * 10**9 + event.timestamp.nanos


def test_under_the_wall_clock_ticks_are_not_checked_for_order(
    start_service: StartService,
) -> None:
    client = start_service(trading_clock="wall").client
    messages = [ticks("SPY", [100.0, 100.5])]

    client.stream_market_data(messages)
    assert client.stream_market_data(messages).events_accepted == 2


# --- feeds: exactly once -----------------------------------------------------------


class CutStream:
    """The history as feed `feed_id`; after `cut_after` messages the audit store goes
    down with a full backlog, so the next message is refused with UNAVAILABLE."""

    def __init__(self, running: RunningService, store: InMemoryEventStore, cut_after: int) -> None:
        self.running = running
        self.store = store
        self.cut_after = cut_after

    def messages(self, messages: list[list[market_pb2.MarketEvent]]) -> Iterator[Any]:
        yield from messages[: self.cut_after]
        core, client = self.running.service.core, self.running.client
        ticks_sent = sum(len(m) for m in messages[: self.cut_after])
        wait_for(lambda: core.stats.market_events >= ticks_sent, "the first messages")
        self.store.simulate_outage()
        self.store.max_pending -= self.store.room()  # the backlog is full
        wait_for(lambda: not trading_active(client), "the store's guard to halt")
        yield from messages[self.cut_after :]

    def recover(self, max_pending: int) -> None:
        self.store.max_pending = max_pending
        self.store.end_outage()
        wait_for(lambda: trading_active(self.running.client), "trading to resume")


def test_a_stream_cut_by_unavailable_then_resent_whole_is_exactly_once(
    start_service: StartService, tmp_path: Path
) -> None:
    messages = history()
    reference = start_service(database_url=f"sqlite:///{tmp_path / 'reference.db'}")
    assert reference.client.stream_market_data(messages, feed_id="spy-bars").orders == 1
    store = InMemoryEventStore()
    running = start_service(store=store)
    client = running.client
    cut = CutStream(running, store, cut_after=3)

    with pytest.raises(grpc.RpcError) as refused:
        client.stream_market_data(cut.messages(messages), feed_id="spy-bars")
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    info = error_info(refused.value)
    assert info is not None
    assert (info.metadata["accepted_messages"], info.metadata["last_sequence"]) == ("3", "3")
    cut.recover(100_000)

    summary = client.stream_market_data(messages, feed_id="spy-bars")

    assert (summary.duplicates_dropped, summary.batches_accepted) == (3, len(messages) - 3)
    assert summary.last_sequence == len(messages)
    assert summary.orders == 1
    assert journaled(client) == sent(messages)  # every tick once, in order
    assert orders(client) == orders(reference.client)
    assert client.verify_audit().ok


def test_a_stream_whose_summary_was_lost_is_all_dropped_when_resent(
    start_service: StartService,
) -> None:
    store = InMemoryEventStore()
    running = start_service(store=store)
    client = running.client
    messages = history()[:4]
    store.simulate_outage()  # processed, but the summary cannot promise durability

    failure = failure_of(lambda: client.stream_market_data(messages, feed_id="f"))
    assert failure.code is grpc.StatusCode.UNAVAILABLE
    store.end_outage()
    summary = client.stream_market_data(messages, feed_id="f")

    assert (summary.duplicates_dropped, summary.batches_accepted) == (4, 0)
    assert summary.last_sequence == 4
    assert journaled(client) == sent(messages)


FEED_TOKENS = {"feed-a": "feed-a-token-0123456789", "feed-b": "feed-b-token-0123456789"}
TEAM = {name: {"token": token, "roles": ["feed"]} for name, token in FEED_TOKENS.items()}


def test_a_feed_id_is_deduplicated_across_streams_and_principals(
    start_service: StartService, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TEAM))
    tokens.chmod(0o600)
    running = start_service(trading_tokens_file=str(tokens))
    messages = history()
    requests = [
        pb.StreamMarketDataRequest(events=m, feed_id="bars", sequence=k)
        for k, m in enumerate(messages, start=1)
    ]
    a = TradingClient(running.target, FEED_TOKENS["feed-a"])
    b = TradingClient(running.target, FEED_TOKENS["feed-b"])
    try:
        first = a.stream_market_data(requests[:5])
        # Another principal's stream takes over from message 3 (one it saw but whose
        # acknowledgement it never had): 3, 4 and 5 are dropped.
        second = b.stream_market_data(requests[2:])
        other_feed = b.stream_market_data(history("QQQ")[:1], feed_id="other")
    finally:
        a.close()
        b.close()

    assert (first.batches_accepted, first.last_sequence) == (5, 5)
    assert (second.duplicates_dropped, second.batches_accepted) == (3, len(messages) - 5)
    assert second.last_sequence == len(messages) and second.orders == 1
    assert (other_feed.batches_accepted, other_feed.last_sequence) == (1, 1)
    assert journaled(running.client, "bars") == sent(messages)


def test_the_last_sequence_of_each_feed_survives_a_restart(
    start_service: StartService, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    messages = history()
    # One message large enough to be journaled in several records.
    big = ticks("IWM", [50.0 + (k % 7) * 0.01 for k in range(25_000)])
    first = start_service(database_url=url)
    first.client.stream_market_data(messages, feed_id="bars")
    first.client.stream_market_data([big], feed_id="big")
    journal = journaled(first.client)
    first.stop()

    again = start_service(database_url=url)
    summary = again.client.stream_market_data(messages, feed_id="bars")
    big_again = again.client.stream_market_data([big], feed_id="big")

    assert (summary.duplicates_dropped, summary.batches_accepted) == (len(messages), 0)
    assert summary.last_sequence == len(messages)
    assert (big_again.duplicates_dropped, big_again.last_sequence) == (1, 1)
    assert journaled(again.client) == journal
    later = ticks("SPY", [90.0], start=SESSION + timedelta(hours=1))
    resumed = again.client.stream_market_data([later], feed_id="bars", first_sequence=91)
    assert (resumed.batches_accepted, resumed.last_sequence) == (1, 91)  # a gap is accepted


def test_a_feed_that_names_itself_must_number_its_messages(
    start_service: StartService,
) -> None:
    client = start_service().client
    message = ticks("SPY", [100.0])
    cases = {
        "no sequence": [pb.StreamMarketDataRequest(events=message, feed_id="f")],
        "no feed id": [pb.StreamMarketDataRequest(events=message, sequence=1)],
        "control character": [
            pb.StreamMarketDataRequest(events=message, feed_id="f\n", sequence=1)
        ],
        "too long": [pb.StreamMarketDataRequest(events=message, feed_id="f" * 129, sequence=1)],
        "two feeds": [
            pb.StreamMarketDataRequest(events=message, feed_id="f", sequence=1),
            pb.StreamMarketDataRequest(events=message, feed_id="g", sequence=2),
        ],
    }
    for case, requests in cases.items():
        with pytest.raises(grpc.RpcError) as refused:
            client.stream_market_data(requests)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, case
        info = error_info(refused.value)
        assert info is not None and info.metadata["cause"].startswith("BAD_FEED_"), case
    assert journaled(client) == sent([message])  # only the first of "two feeds"


def test_the_summary_counts_rejections_by_reason_code(start_service: StartService) -> None:
    client = start_service().client
    client.deactivate_risk("closed for lunch")

    summary = client.stream_market_data(history(), feed_id="bars")

    assert summary.rejections == 1
    assert sum(summary.rejections_by_code.values()) >= 1
    assert all(code and code.isupper() for code in summary.rejections_by_code)


# --- the property: any resend point, each tick once -----------------------------------


def test_any_resend_from_an_earlier_point_journals_each_tick_exactly_once(
    start_service: StartService,
) -> None:
    running = start_service()
    client = running.client
    runs = itertools.count()

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        sizes=st.lists(st.integers(1, 30), min_size=1, max_size=12),
        data=st.data(),
    )
    def check(sizes: list[int], data: st.DataObject) -> None:
        run = next(runs)
        symbol, feed = f"P{run}", f"prop-{run}"
        prices = [100.0 + (k % 17) * 0.25 for k in range(sum(sizes))]
        events = ticks(symbol, prices)
        bounds = list(itertools.accumulate(sizes, initial=0))
        messages = [events[a:b] for a, b in itertools.pairwise(bounds)]
        prefix = data.draw(st.integers(0, len(messages)), label="messages sent first")
        # At least one message is resent: an empty stream names no feed.
        resend_from = data.draw(st.integers(0, min(prefix, len(messages) - 1)), label="resent from")

        if prefix:
            client.stream_market_data(messages[:prefix], feed_id=feed)
        summary = client.stream_market_data(
            messages[resend_from:], feed_id=feed, first_sequence=resend_from + 1
        )

        assert summary.duplicates_dropped == prefix - resend_from
        assert summary.last_sequence == len(messages)
        assert journaled(client, feed) == sent(messages)

    check()


# --- tradectl stream ----------------------------------------------------------------


def write_bars(path: Path, count: int) -> None:
    day = SESSION
    rows = ["symbol,timestamp,open,high,low,close,volume"]
    for k in range(count):
        stamp = (day + timedelta(minutes=k)).isoformat().replace("+00:00", "Z")
        rows.append(f"SPY,{stamp},1,2,0.5,{100 + (k % 9) * 0.5},10")
    path.write_text("\n".join(rows) + "\n")


def test_tradectl_stream_resends_after_unavailable_and_the_result_is_exactly_once(
    start_service: StartService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = InMemoryEventStore()
    running = start_service(store=store)
    path = tmp_path / "bars.csv"
    write_bars(path, 45)
    pauses: list[float] = []

    def store_returns(seconds: float) -> None:
        pauses.append(seconds)
        store.end_outage()
        wait_for(lambda: trading_active(running.client), "trading to resume")

    monkeypatch.setattr(cli, "_pause", store_returns)
    store.simulate_outage()

    status = cli.main(
        ["--target", running.target, "--token", TOKEN, "stream", str(path), "--batch-size", "10"]
    )

    out, err = capsys.readouterr()
    assert status == 0, err
    assert pauses == [cli.STREAM_BACKOFF_SECONDS]
    assert "UNAVAILABLE" in err and "tradectl:bars.csv/10" in err
    rows = [line.split() for line in out.splitlines()]
    assert ["duplicates", "dropped", "5"] in rows
    assert "Rejections by reason" in out or "rejections by reason: none" in out
    assert "(the counts of the last of 2 tries" in out
    assert len(journaled(running.client, "tradectl:bars.csv/10")) == 45


def test_tradectl_stream_gives_up_after_its_tries_sending_the_same_numbers(
    fake: FakeTradingService,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bars.csv"
    write_bars(path, 5)
    fake.errors["StreamMarketData"] = (grpc.StatusCode.UNAVAILABLE, "store down")
    pauses: list[float] = []
    monkeypatch.setattr(cli, "_pause", pauses.append)

    status = cli.main(
        ["--target", fake.target, "--token", TOKEN, "stream", str(path), "--batch-size", "2"]
    )

    assert status == 1
    assert capsys.readouterr().err.endswith("error: UNAVAILABLE: store down\n")
    base = cli.STREAM_BACKOFF_SECONDS
    assert pauses == [base, 2 * base, 4 * base, 8 * base]
    calls = fake.calls_to("StreamMarketData")
    assert len(calls) == cli.STREAM_TRIES
    numbered = [
        [
            (r.feed_id, r.sequence)
            for r in call.requests
            if isinstance(r, pb.StreamMarketDataRequest)
        ]
        for call in calls
    ]
    assert numbered[0] == [("tradectl:bars.csv/2", k) for k in (1, 2, 3)]
    assert all(n == numbered[0] for n in numbered)


def test_tradectl_stream_prints_duplicates_and_rejections_by_code(
    fake: FakeTradingService,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bars.csv"
    write_bars(path, 3)
    reply = pb.StreamMarketDataResponse(events_accepted=1, duplicates_dropped=2, rejections=3)
    reply.rejections_by_code["MARKET_HOURS"] = 1
    reply.rejections_by_code["MAX_POSITION"] = 2
    fake.replies["StreamMarketData"] = [reply]

    assert cli.main(["--target", fake.target, "--token", TOKEN, "stream", str(path)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert ["duplicates", "dropped", "2"] in [line.split() for line in lines]
    table = lines.index("Rejections by reason")
    assert [line.split() for line in lines[table + 1 : table + 5]] == [
        ["CODE", "COUNT"],
        ["─" * len(lines[table + 2])],
        ["MAX_POSITION", "2"],  # the most frequent first
        ["MARKET_HOURS", "1"],
    ]
    [call] = fake.calls_to("StreamMarketData")
    assert {r.feed_id for r in call.requests if isinstance(r, pb.StreamMarketDataRequest)} == {
        "tradectl:bars.csv"
    }


def test_the_default_feed_id_names_what_was_sent() -> None:
    bars = Path("data/bars.csv")
    assert cli.default_feed_id(bars, None, cli.STREAM_BATCH_SIZE) == "tradectl:bars.csv"
    assert cli.default_feed_id(bars, ["ibm", "AAPL"], 50) == "tradectl:bars.csv[AAPL,IBM]/50"
    long = cli.default_feed_id(Path("x" * 300), None, cli.STREAM_BATCH_SIZE)
    assert len(long) == 128 and long != cli.default_feed_id(Path("x" * 301), None, 500)


def test_the_sdk_numbers_messages_unless_the_caller_did(fake: FakeTradingService) -> None:  # noqa: F811
    with TradingClient(fake.target, TOKEN) as client:
        own = pb.StreamMarketDataRequest(events=ticks("SPY", [1.0]), sequence=7)
        client.stream_market_data([ticks("SPY", [1.0]), own, ticks("SPY", [2.0])], feed_id="f")
        client.stream_market_data([ticks("SPY", [1.0])])

    numbered, plain = (
        [
            (r.feed_id, r.sequence)
            for r in call.requests
            if isinstance(r, pb.StreamMarketDataRequest)
        ]
        for call in fake.calls_to("StreamMarketData")
    )
    assert numbered == [("f", 1), ("f", 7), ("f", 8)]
    assert own.feed_id == ""  # the caller's request was copied, not changed
    assert plain == [("", 0)]
