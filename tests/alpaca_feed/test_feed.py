"""The live feed: alpaca-py's StockDataStream against the fake market-data stream,
the SDK's StreamMarketData into a real service. Each bar becomes one journaled
tick; neither a dropped data stream nor a restarted service loses or repeats one."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alpaca.data.models import Bar as AlpacaBar

from client import cli
from client.alpaca_bars import MINUTE, BarStamper, to_market_event, to_service_bar
from client.alpaca_feed import AlpacaFeed, FeedOutput, FeedSettings
from client.alpaca_history import AlpacaCredentials
from server.bootstrap import create_server
from server.settings import Settings
from tests.alpaca_feed import Tick, journaled
from tests.conftest import TOKEN, RunningService, StartService
from tests.fakes.alpaca_data_server import KEY, SECRET, FakeAlpacaData, FakeBar, bar
from tests.support.market import STRATEGY
from tests.support.polling import wait_for
from trading_sdk.client import TradingClient

OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York
WITHIN = 30.0  # every wait is bounded; a healthy run takes a fraction of it
FAST = FeedSettings(initial_backoff=0.05, max_backoff=0.4, confirm_seconds=0.2)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaData]:
    with FakeAlpacaData() as server:
        yield server


class Feed:
    """An AlpacaFeed run in a thread, with what it printed."""

    def __init__(self, target: str, fake: FakeAlpacaData, **settings: Any) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        credentials = AlpacaCredentials(
            KEY, SECRET, data_url=fake.rest_url, stream_url=fake.stream_url("iex")
        )
        self.feed = AlpacaFeed(
            target,
            TOKEN,
            credentials,
            dataclasses.replace(FAST, **settings),
            FeedOutput(self.out, self.err),
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def stats(self) -> Any:
        return self.feed.stats

    def _run(self) -> None:
        try:
            self.feed.run()
        except BaseException as error:
            self.error = error

    @contextlib.contextmanager
    def running(self) -> Iterator[Feed]:
        self._thread.start()
        try:
            yield self
        finally:
            self.feed.stop()
            self._thread.join(WITHIN)
        assert not self._thread.is_alive(), "the feed did not stop"
        if self.error is not None:
            raise self.error


def minutes(symbols: tuple[str, ...], first: int, last: int, base: float = 100.0) -> list[FakeBar]:
    """One bar a minute of each symbol, minute `first` to `last` - 1 after the open,
    by (time, symbol): the order the feed forwards them in."""
    return [
        bar(symbol, OPEN + k * timedelta(minutes=1), base + k + 0.25 * s, volume=100 * (k + 1))
        for k in range(first, last)
        for s, symbol in enumerate(sorted(symbols))
    ]


def ticks(bars: list[FakeBar]) -> list[Tick]:
    """The ticks the service must journal for `bars`: each close and volume, stamped at
    the bar's end - 1 µs."""
    stamper = BarStamper(MINUTE)
    out = []
    for b in bars:
        stamp = stamper.stamp(b.start)
        ns = int(stamp.timestamp()) * 10**9 + stamp.microsecond * 1000
        out.append((b.symbol, b.close, b.volume, ns))
    return out


def to_event(item: FakeBar) -> Any:
    """The MarketEvent the feed sends for `item`."""
    return to_market_event(to_service_bar(AlpacaBar(item.symbol, item.rest()), BarStamper(MINUTE)))


def push(fake: FakeAlpacaData, bars: list[FakeBar], subscribers: int = 1) -> None:
    for item in bars:
        assert fake.push_bar(item) == subscribers


def journal_has(client: TradingClient, count: int, feed_id: str) -> Callable[[], bool]:
    return lambda: len(journaled(client, feed_id)) >= count


def confirmed(feed: Feed, count: int) -> Callable[[], bool]:
    return lambda: feed.stats.confirmed >= count


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def service_on(port: int, settings: Settings, calendar: Any) -> Iterator[RunningService]:
    """The service on a given port (as a restarted process would be), stopped after."""
    service = create_server(settings, f"127.0.0.1:{port}", token=TOKEN, calendar=calendar)
    service.server.start()
    handle = RunningService(service, TradingClient(f"127.0.0.1:{port}", TOKEN), settings)
    try:
        yield handle
    finally:
        handle.stop()


# --- forwarding ----------------------------------------------------------------------


def test_each_bar_of_the_active_strategies_symbols_becomes_one_journaled_tick(
    fake: FakeAlpacaData, start_service: StartService
) -> None:
    service = start_service()
    feed = Feed(service.target, fake)  # no symbols: the active strategies'
    bars = minutes(("SPY", "QQQ", "IWM"), 0, 4)

    with feed.running():
        wait_for(lambda: fake.subscribers("IWM") == 1, "the feed to subscribe", WITHIN)
        assert fake.subscribed_symbols() == {"SPY", "QQQ", "IWM"}
        push(fake, bars)
        wait_for(lambda: feed.stats.confirmed == len(bars), "the service to confirm", WITHIN)

    assert journaled(service.client, "alpaca-bars-iex") == ticks(bars)
    printed = feed.out.getvalue()
    assert "subscribed to Alpaca's iex bars: IWM, QQQ, SPY" in printed
    assert "SPY    2024-03-05T14:30:59.999999Z  close 100.5  volume 100  #" in printed
    assert printed.count("  #") == len(bars)  # one line per forwarded bar
    assert feed.err.getvalue() == ""
    assert (feed.stats.duplicates_dropped, feed.stats.refused) == (0, 0)


def test_a_dropped_data_stream_loses_no_bar_and_repeats_none(
    fake: FakeAlpacaData, start_service: StartService
) -> None:
    service = start_service()
    feed = Feed(service.target, fake, symbols=("QQQ", "SPY"))
    symbols = ("QQQ", "SPY")
    before, missed, after = minutes(symbols, 0, 3), minutes(symbols, 3, 5), minutes(symbols, 5, 8)

    with feed.running():
        wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
        push(fake, before)
        wait_for(journal_has(service.client, 6, feed.feed.feed_id), "the first bars", WITHIN)

        assert fake.drop_streams() == 1
        push(fake, missed, subscribers=0)  # nobody listens: only Alpaca's history has them
        wait_for(lambda: "fetched" in feed.out.getvalue(), "alpaca-py to reconnect", WITHIN)
        push(fake, after)
        wait_for(journal_has(service.client, 16, feed.feed.feed_id), "every bar", WITHIN)

    assert journaled(service.client) == ticks(before + missed + after)
    assert fake.connects == 2
    assert (feed.stats.data_reconnects, feed.stats.backfilled) == (1, len(missed))
    assert feed.stats.repeated == 2  # the last bars before the drop, fetched again, not sent
    assert "Alpaca's data stream dropped" in feed.err.getvalue()
    assert "fetched 4 missed bars from Alpaca's REST API" in feed.out.getvalue()
    (fetch,) = fake.rest_requests
    assert fetch.params["symbols"] == "QQQ,SPY" and fetch.params["timeframe"] == "1Min"


def test_a_service_restart_is_resumed_with_backoff_and_without_duplicates(
    fake: FakeAlpacaData, start_service: StartService, calendar: Any
) -> None:
    first = start_service()
    port = first.service.port
    # Nothing is confirmed before the restart: everything sent must be sent again.
    feed = Feed(first.target, fake, symbols=("SPY",), confirm_seconds=600)
    early, during, later = (minutes(("SPY",), a, b) for a, b in ((0, 3), (3, 5), (5, 6)))

    with feed.running():
        wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
        push(fake, early)
        # Taken in (the open stream's ticks are journaled when it ends, or at a stop).
        wait_for(lambda: first.service.core.stats.market_events == 3, "the first bars", WITHIN)
        first.stop()
        wait_for(lambda: feed.stats.service_failures >= 3, "the feed to try again", WITHIN)
        push(fake, during)  # held by the feed while the service is away
        with service_on(port, first.settings, calendar) as second:
            push(fake, later)
            # The new process takes in the new ticks only: the resent ones it drops.
            core = second.service.core
            wait_for(lambda: core.stats.market_events == 3, "the bars after the first", WITHIN)
            feed.feed.stop()  # ends the stream: its summary says what was dropped
            wait_for(lambda: feed.stats.confirmed == 6, "the service to confirm", WITHIN)
            journal = journaled(second.client)

    assert journal == ticks(early + during + later)
    assert feed.stats.duplicates_dropped >= 1  # the resent early messages
    backoffs = feed.stats.backoffs
    assert backoffs[:3] == [0.05, 0.1, 0.2] and max(backoffs) <= 0.4  # doubling, bounded
    assert "trying again in 0.05s" in feed.err.getvalue()
    assert "answers again; what it had not confirmed was sent again" in feed.out.getvalue()
    assert "the service already had" in feed.out.getvalue()


def test_a_feed_started_before_the_service_waits_for_it(
    fake: FakeAlpacaData, calendar: Any, tmp_path: Path
) -> None:
    port = free_port()
    feed = Feed(f"127.0.0.1:{port}", fake)  # asks the service for the symbols first
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}", trading_clock="event")

    with feed.running():
        wait_for(lambda: len(feed.stats.backoffs) >= 5, "the feed to try a few times", WITHIN)
        assert fake.connects == 0  # no symbols yet, no subscription
        with service_on(port, settings, calendar) as service:
            wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
            push(fake, minutes(("SPY",), 0, 1))
            wait_for(lambda: feed.stats.confirmed == 1, "the service to confirm", WITHIN)
            assert journaled(service.client) == ticks(minutes(("SPY",), 0, 1))

    assert feed.stats.backoffs[:5] == [0.05, 0.1, 0.2, 0.4, 0.4]
    assert f"the trading service at 127.0.0.1:{port} answered UNAVAILABLE" in feed.err.getvalue()


def test_a_tick_the_service_refuses_is_left_out_and_the_rest_goes_on(
    fake: FakeAlpacaData, start_service: StartService
) -> None:
    service = start_service()  # event clock: a tick older than its symbol's last is refused
    service.client.simulate_market_event("SPY", 99.0, 10, OPEN + timedelta(minutes=10))
    feed = Feed(service.target, fake, symbols=("QQQ", "SPY"))
    stale = bar("SPY", OPEN, 100.0)
    fresh = [bar("QQQ", OPEN, 400.0), bar("SPY", OPEN + timedelta(minutes=20), 101.0)]

    with feed.running():
        wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
        push(fake, [stale, *fresh])
        wait_for(lambda: feed.stats.confirmed == 2, "the service to confirm", WITHIN)

    assert journaled(service.client, feed.feed.feed_id) == ticks(fresh)
    assert feed.stats.refused == 1
    warning = feed.err.getvalue()
    assert "the service refused SPY 2024-03-05T14:30:59.999999Z; left out:" in warning


def test_a_new_run_of_a_feed_numbers_above_the_last_and_is_not_dropped(
    fake: FakeAlpacaData, start_service: StartService
) -> None:
    service = start_service()
    first_bars, second_bars = minutes(("SPY",), 0, 2), minutes(("SPY",), 2, 4)
    for bars in (first_bars, second_bars):
        feed = Feed(service.target, fake, symbols=("SPY",))
        with feed.running():
            wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
            push(fake, bars)
            wait_for(confirmed(feed, 2), "the service to confirm", WITHIN)
        assert feed.stats.duplicates_dropped == 0
        wait_for(lambda: fake.subscribers("SPY") == 0, "the stream to close", WITHIN)

    assert journaled(service.client, "alpaca-bars-iex") == ticks(first_bars + second_bars)


# --- tradectl feed alpaca ---------------------------------------------------------------


@pytest.fixture
def alpaca_env(fake: FakeAlpacaData, monkeypatch: pytest.MonkeyPatch) -> FakeAlpacaData:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
    monkeypatch.setenv("ALPACA_DATA_URL", fake.rest_url)
    # A bare host: the feed adds /v2/<feed>, as the SDK's default URL has it.
    monkeypatch.setenv("ALPACA_DATA_STREAM_URL", f"ws://127.0.0.1:{fake.stream_port}")
    monkeypatch.delenv("ALPACA_DATA_FEED", raising=False)
    return fake


class Tradectl:
    """`tradectl --target T --token K feed alpaca ARGS`, run in a thread."""

    def __init__(self, target: str, *args: str, token: str = TOKEN) -> None:
        self._status: list[int] = []
        argv = ["--target", target, "--token", token, "feed", "alpaca", *args]
        self._thread = threading.Thread(
            target=lambda: self._status.append(cli.main(argv)), daemon=True
        )
        self._thread.start()

    def status(self) -> int:
        self._thread.join(WITHIN)
        assert self._status, "tradectl did not finish"
        return self._status[0]


def test_tradectl_feed_alpaca_forwards_a_count_of_bars_and_says_so(
    alpaca_env: FakeAlpacaData,
    start_service: StartService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = alpaca_env
    service = start_service()
    bars = minutes(("SPY",), 0, 2)

    run = Tradectl(service.target, "--symbols", "spy", "--count", "2", "--confirm-seconds", "0.2")
    wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
    push(fake, bars)

    assert run.status() == 0
    out = capsys.readouterr().out
    assert "feed alpaca-bars-iex: Alpaca iex 1Min bars of SPY" in out
    assert "SPY    2024-03-05T14:30:59.999999Z  close 100  volume 100  #" in out
    assert "SPY    2024-03-05T14:31:59.999999Z  close 101  volume 200  #" in out
    assert journaled(service.client, "alpaca-bars-iex") == ticks(bars)


def test_tradectl_feed_alpaca_without_keys_names_them_in_one_line(
    start_service: StartService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
    service = start_service()

    assert Tradectl(service.target).status() == 2

    err = capsys.readouterr().err
    assert err.startswith("error: no Alpaca ALPACA_API_KEY: set ALPACA_API_KEY")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_tradectl_feed_alpaca_with_keys_alpaca_refuses_stops_with_exit_2(
    alpaca_env: FakeAlpacaData,
    start_service: StartService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ALPACA_SECRET_KEY", "not-the-secret")
    service = start_service()

    assert Tradectl(service.target, "--symbols", "SPY").status() == 2

    err = capsys.readouterr().err
    assert "error: Alpaca refused the API keys (auth failed)" in err
    assert "ALPACA_API_KEY and ALPACA_SECRET_KEY" in err
    assert "Traceback" not in err and alpaca_env.auth_failures >= 1


def test_tradectl_feed_alpaca_without_an_active_strategy_asks_for_symbols(
    alpaca_env: FakeAlpacaData, start_service: StartService, capsys: pytest.CaptureFixture[str]
) -> None:
    service = start_service()
    service.client.deactivate_strategy(STRATEGY)

    assert Tradectl(service.target).status() == 2

    assert "error: no active strategy trades any symbol" in capsys.readouterr().err
    assert alpaca_env.connects == 0


def test_tradectl_feed_alpaca_with_a_wrong_token_exits_2(
    alpaca_env: FakeAlpacaData, start_service: StartService, capsys: pytest.CaptureFixture[str]
) -> None:
    service = start_service()

    assert Tradectl(service.target, token="not-the-token").status() == 2

    assert capsys.readouterr().err.startswith("error: UNAUTHENTICATED: ")


def test_a_feed_id_numbered_higher_elsewhere_is_numbered_on_and_nothing_is_lost(
    fake: FakeAlpacaData, start_service: StartService
) -> None:
    """Another process once sent this feed id a number above this run's (a clock that
    was ahead): the service drops the feed's first message as a repeat; the feed sees
    the service's last number above its own, numbers on from it and sends again."""
    service = start_service()
    elsewhere = minutes(("IWM",), 0, 1)
    service.client.stream_market_data(
        [[to_event(b) for b in elsewhere]], feed_id="alpaca-bars-iex", first_sequence=2**62
    )
    feed = Feed(service.target, fake, symbols=("SPY",))
    bars = minutes(("SPY",), 0, 3)

    with feed.running():
        wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
        push(fake, bars)
        wait_for(confirmed(feed, 3), "the service to confirm", WITHIN)

    assert journaled(service.client, "alpaca-bars-iex") == ticks(elsewhere + bars)
    assert "above this run's numbers" in feed.err.getvalue()


def test_symbols_a_strategy_needs_later_are_subscribed_to_as_well(
    fake: FakeAlpacaData, start_service: StartService, calendar: Any
) -> None:
    """The service comes back trading QQQ too (reconfigured and restarted): the feed,
    asking for the active strategies' symbols every so often, subscribes to it."""
    first = start_service(trading_strategy_symbols=["SPY"])
    feed = Feed(first.target, fake, refresh_seconds=0.2)
    settings = first.settings.model_copy(update={"trading_strategy_symbols": ["SPY", "QQQ"]})

    with feed.running():
        wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
        assert fake.subscribed_symbols() == {"SPY"}
        first.stop()
        with service_on(first.service.port, settings, calendar) as second:
            wait_for(lambda: fake.subscribers("QQQ") == 1, "QQQ to be subscribed", WITHIN)
            push(fake, minutes(("QQQ", "SPY"), 0, 1))
            wait_for(confirmed(feed, 2), "the service to confirm", WITHIN)
            journal = journaled(second.client)

    assert journal == ticks(minutes(("QQQ", "SPY"), 0, 1))
    assert "subscribing to bars of QQQ as well" in feed.out.getvalue()
    assert fake.connects == 1  # added to the open connection


def test_while_the_service_is_away_the_feed_holds_a_bounded_number_of_bars_and_drops_none(
    fake: FakeAlpacaData, calendar: Any, tmp_path: Path
) -> None:
    """Past `max_held` ticks, Alpaca's stream is made to wait (its handler does not
    return) instead of bars being thrown away."""
    port = free_port()
    feed = Feed(f"127.0.0.1:{port}", fake, symbols=("SPY",), max_held=2, max_batch=1)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}", trading_clock="event")
    bars = minutes(("SPY",), 0, 5)

    with feed.running():
        wait_for(lambda: fake.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
        push(fake, bars)
        wait_for(lambda: "the most bars are waiting" in feed.err.getvalue(), "the bound", WITHIN)
        assert sum(feed.feed.window_counts()) == 2
        with service_on(port, settings, calendar) as service:
            wait_for(confirmed(feed, 5), "the service to confirm", WITHIN)
            journal = journaled(service.client)

    assert journal == ticks(bars)


def test_with_json_each_forwarded_bar_is_one_object(
    alpaca_env: FakeAlpacaData, start_service: StartService, capsys: pytest.CaptureFixture[str]
) -> None:
    service = start_service()
    run = Tradectl(service.target, "--json", "--symbols", "SPY", "--count", "1")
    wait_for(lambda: alpaca_env.subscribers("SPY") == 1, "the feed to subscribe", WITHIN)
    push(alpaca_env, minutes(("SPY",), 0, 1))

    assert run.status() == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    bars = [line["bar"] for line in lines if "bar" in line]
    assert [{k: v for k, v in b.items() if k != "seq"} for b in bars] == [
        {
            "symbol": "SPY",
            "timestamp": "2024-03-05T14:30:59.999999Z",
            "price": 100.0,
            "volume": 100.0,
        }
    ]
    assert all(set(line) <= {"bar", "info"} for line in lines)
