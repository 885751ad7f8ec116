"""`tradectl stream FILE`: the warnings before it sends (no strategy watches the
symbols; history on a wall-clock service), the progress bar (on a terminal only),
the summary with the rejections by reason code, the CSV's line in every error (the
file's own and the service's refusals), and the columns: any letter case, or mapped
with --columns."""

from __future__ import annotations

import io
import socket
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from client import cli, progress, streaming
from client.marketdata import read_market_file
from client.progress import progress_bar
from client.streaming import stream_progress
from tests.client.advisor_samples import stamp
from tests.client.fake_service import TOKEN, FakeTradingService
from tests.conftest import StartService
from tests.support.market import SESSION_START, STRATEGY, sideways
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

HEADER = "symbol,timestamp,open,high,low,close,volume"


def tradectl(target: str, *args: str) -> int:
    return cli.main(["--target", target, "--token", TOKEN, *args])


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def bars_file(path: Path, symbol: str = "AAPL", start: datetime = SESSION_START) -> Path:
    """Three minute bars of `symbol` from `start`."""
    rows = [f"{symbol},{iso(start + timedelta(minutes=k))},1,2,0.5,{10 + k},100" for k in range(3)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def sent(fake: FakeTradingService) -> list[market_pb2.MarketEvent]:
    [call] = fake.calls_to("StreamMarketData")
    return [e for r in call.requests if isinstance(r, pb.StreamMarketDataRequest) for e in r.events]


def strategies(*entries: tuple[str, bool, list[str]]) -> pb.ListStrategiesResponse:
    return pb.ListStrategiesResponse(
        strategies=[pb.Strategy(name=n, active=a, symbols=s) for n, a, s in entries]
    )


# --- warnings before anything is sent -------------------------------------------------


def test_no_active_strategy_on_the_files_symbols_is_a_warning_naming_them_and_the_fixes(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["ListStrategies"] = [
        strategies(("ma_crossover", True, ["SPY", "QQQ"]), ("momentum", False, ["AAPL"]))
    ]

    assert tradectl(fake.target, "stream", str(bars_file(tmp_path / "aapl.csv"))) == 0

    err = capsys.readouterr().err
    assert err == (
        "warning: no active strategy watches AAPL, so this stream makes no signals and no "
        "trades (active: ma_crossover (SPY, QQQ))\n"
        "  to trade them: start the service with TRADING_STRATEGY_SYMBOLS=AAPL; or "
        "tradectl strategies activate momentum (it watches AAPL)\n"
    )
    assert len(sent(fake)) == 3  # a warning, not a refusal: the file is streamed


def test_a_strategy_watching_one_of_the_symbols_means_no_warning(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["ListStrategies"] = [strategies(("ma_crossover", True, ["AAPL"]))]
    fake.replies["GetStatus"] = [pb.GetStatusResponse(clock="event")]

    assert tradectl(fake.target, "stream", str(bars_file(tmp_path / "aapl.csv"))) == 0
    assert capsys.readouterr().err == ""


def test_history_on_a_wall_clock_service_is_a_warning_to_use_the_event_clock(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["ListStrategies"] = [strategies(("ma_crossover", True, ["AAPL"]))]
    now = datetime.now(UTC)
    fake.replies["GetStatus"] = [pb.GetStatusResponse(clock="wall", now=stamp(now.isoformat()))]
    old = bars_file(tmp_path / "old.csv", start=datetime(2004, 3, 15, 20, 57, tzinfo=UTC))

    assert tradectl(fake.target, "stream", str(old)) == 0

    assert capsys.readouterr().err == (
        "warning: the service runs on the wall clock, and this file's bars are history "
        "(2004-03-15 to 2004-03-15): the risk gate judges each signal at the service's "
        "time, not the bar's, so outside today's market hours every signal is refused "
        "(OUTSIDE_MARKET_HOURS)\n"
        "  to replay history: run the service with TRADING_CLOCK=event "
        "(TRADING_CLOCK=event make run)\n"
    )

    # Bars of the last hour are a live feed, not history: nothing to warn about.
    recent = bars_file(tmp_path / "recent.csv", start=now - timedelta(hours=1))
    assert tradectl(fake.target, "stream", str(recent)) == 0
    assert capsys.readouterr().err == ""


def test_the_checks_are_advice_a_principal_that_may_not_read_the_status_still_streams(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.errors["GetStatus"] = (grpc.StatusCode.PERMISSION_DENIED, "feed may not")

    assert tradectl(fake.target, "stream", str(bars_file(tmp_path / "aapl.csv"))) == 0

    assert capsys.readouterr().err == ""
    assert len(sent(fake)) == 3


def test_an_unreachable_service_is_one_line_at_once_not_five_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(cli, "_pause", pauses.append)
    with socket.socket() as held:  # bound, never listening: the connection is refused
        held.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{held.getsockname()[1]}"

        status = tradectl(target, "stream", str(bars_file(tmp_path / "aapl.csv")))

    assert status == cli.EXIT_UNREACHABLE
    assert capsys.readouterr().err == (
        f"error: cannot reach the trading service at {target} (connection refused): start it "
        "with 'make run', or point --target (or TRADING_TARGET) at it\n"
    )
    assert pauses == []


# --- the progress bar -----------------------------------------------------------------


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    fake: FakeTradingService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_AFTER_S", 0.0)  # it would show at once
    fake.replies["ListStrategies"] = [strategies(("ma_crossover", True, ["AAPL"]))]

    assert (
        tradectl(fake.target, "stream", str(bars_file(tmp_path / "a.csv")), "--batch-size", "1")
        == 0
    )

    err = capsys.readouterr().err
    assert err == ""
    assert len(sent(fake)) == 3


def test_the_progress_bar_shows_after_a_second_with_count_rate_and_eta() -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    now = [0.0]

    with progress_bar("ticks", console=terminal, clock=lambda: now[0]) as advance:
        advance(100, 1000)
        assert screen.getvalue() == ""  # under a second: nothing
        now[0] = 1.5
        advance(400, 1000)
        advance(500, 1000)

    shown = screen.getvalue()
    assert "ticks" in shown
    assert "500/1000" in shown
    assert "ticks/s" in shown
    assert "eta" in shown


class _Service:
    """Answers GetStatus with `processed` market events."""

    def __init__(self, processed: int) -> None:
        self.processed = processed

    def get_status(self) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(counters=pb.Counters(market_events=self.processed))


def test_the_stream_bar_counts_what_the_service_processed_not_what_grpc_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(streaming, "POLL_SECONDS", 0.01)
    service = _Service(processed=5000)  # what the service had processed before
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    tick = market_pb2.MarketEvent(symbol="IBM", price=1.0)

    with stream_progress(service, service.get_status(), 100, console=terminal) as counted:
        assert len(list(counted([[tick] * 50, [tick] * 50]))) == 2  # gRPC took it all
        service.processed = 5030
        deadline = time.monotonic() + 10
        while " 30/100" not in screen.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)

    assert " 30/100" in screen.getvalue()
    assert "100/100" not in screen.getvalue()


def test_without_the_services_status_the_stream_bar_counts_what_was_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_AFTER_S", 0.0)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    tick = market_pb2.MarketEvent(symbol="IBM", price=1.0)

    with stream_progress(_Service(0), None, 100, console=terminal) as counted:
        list(counted([[tick] * 60, [tick] * 40]))

    assert "100/100" in screen.getvalue()


def test_the_progress_bar_is_never_drawn_off_a_terminal() -> None:
    screen = io.StringIO()
    now = [10.0]

    with progress_bar("ticks", console=Console(file=screen), clock=lambda: now[0]) as advance:
        now[0] = 20.0
        advance(1, 2)

    assert screen.getvalue() == ""


# --- the summary ----------------------------------------------------------------------


def test_after_a_stream_the_rejections_are_broken_down_by_reason_code(
    start_service: StartService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = start_service()  # event clock, the crossover on SPY, QQQ, IWM
    running.client.deactivate_risk("halted, so that every signal is rejected")
    path = tmp_path / "spy.csv"
    prices = sideways(200)
    rows = [
        f"SPY,{iso(SESSION_START + timedelta(minutes=k))},{p},{p},{p},{p},100"
        for k, p in enumerate(prices)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n")

    assert tradectl(running.target, "stream", str(path)) == 0

    out, err = capsys.readouterr()
    # The strategy watches SPY and the clock is the events': no warning. (The in-process
    # service logs its calls to this stderr too.)
    assert "warning" not in err
    decisions = running.client.get_risk_status(recent_decisions=1000).recent_decisions
    expected = Counter(v.code for d in decisions for v in d.verdicts if not v.passed)
    assert expected  # the sideways walk crosses, and every signal was refused
    lines = out.splitlines()
    shown = [line.split() for line in lines]
    assert ["rejections", f"{len(decisions):,}"] in shown
    assert ["approvals", "0"] in shown
    table = lines.index("Rejections by reason")
    assert shown[table + 1] == ["CODE", "COUNT"]
    by_code = [row for row in shown[table + 3 :] if row]
    assert by_code == [
        [code, f"{count:,}"]
        for code, count in sorted(expected.items(), key=lambda item: (-item[1], item[0]))
    ]
    assert running.client.list_strategies().strategies[0].name == STRATEGY


def test_a_stream_without_rejections_says_none(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["StreamMarketData"] = [pb.StreamMarketDataResponse(events_accepted=3)]

    assert tradectl(fake.target, "stream", str(bars_file(tmp_path / "a.csv"))) == 0

    out = capsys.readouterr().out
    assert "rejections by reason: none" in out.splitlines()
    shown = [line.split() for line in out.splitlines()]
    for counter in ("signals", "approvals", "rejections", "orders"):
        assert [counter, "0"] in shown  # every count, even at zero
    assert ["feed", "id", "tradectl:a.csv"] in shown


# --- the file's lines in errors -------------------------------------------------------


def test_a_bad_row_names_its_line_and_nothing_is_sent(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        f"{HEADER}\n"
        "AAPL,2024-03-05T14:31:00Z,1,2,0.5,10,100\n"
        "AAPL,2024-03-05T14:32:00Z,1,2,0.5,11,100\n"
        "AAPL,2024-03-05T14:33:00Z,1,2,0.5,abc,100\n"
    )

    assert tradectl(fake.target, "stream", str(path)) == 2

    assert capsys.readouterr().err == f"error: {path}: line 4: price 'abc' is not a finite number\n"
    assert fake.calls_to("StreamMarketData") == []


def test_a_tick_the_service_refuses_is_named_by_its_line_in_the_file(
    start_service: StartService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = start_service()
    path = tmp_path / "two.csv"
    # IBM's rows first, AAPL's after: sent merged in time order, so the refused tick
    # (IBM's, dated far in the future, the last sent) is event 5, on the file's line 4.
    path.write_text(
        f"{HEADER}\n"
        "IBM,2024-03-05T14:31:00Z,1,2,0.5,120,100\n"
        "IBM,2024-03-05T14:32:00Z,1,2,0.5,121,100\n"
        "IBM,2099-03-05T14:33:00Z,1,2,0.5,122,100\n"
        "AAPL,2024-03-05T14:31:00Z,1,2,0.5,10,100\n"
        "AAPL,2024-03-05T14:32:00Z,1,2,0.5,11,100\n"
        "AAPL,2024-03-05T14:33:00Z,1,2,0.5,12,100\n"
    )

    status = tradectl(running.target, "stream", str(path), "--batch-size", "2")

    err = capsys.readouterr().err
    assert status == 2
    refused = err.splitlines()[-1]
    assert refused.startswith(
        f"error: {path}: line 4: refused by the service: INVALID_ARGUMENT: message 2 refused"
    )
    assert "event 1 (IBM)" in refused and "in the future" in refused


# --- columns --------------------------------------------------------------------------

CANONICAL = (
    "symbol,timestamp,price,volume\n"
    "AAPL,2024-03-05T14:31:00Z,10.5,100\n"
    "IBM,2024-03-05T14:31:00Z,120.25,7\n"
    "AAPL,2024-03-05T14:32:00Z,10.75,200\n"
)


def test_column_names_match_in_any_letter_case_and_close_stands_for_price(
    fake: FakeTradingService, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text(CANONICAL)
    shouting = tmp_path / "shouting.csv"
    shouting.write_text(
        CANONICAL.replace("symbol,timestamp,price,volume", "SYMBOL,TimeStamp,Close,VOLUME")
    )

    assert tradectl(fake.target, "stream", str(plain)) == 0
    expected = sent(fake)
    fake.calls.clear()
    assert tradectl(fake.target, "stream", str(shouting)) == 0

    assert sent(fake) == expected
    assert [(e.symbol, e.price, e.volume) for e in expected] == [
        ("AAPL", 10.5, 100.0),
        ("IBM", 120.25, 7.0),
        ("AAPL", 10.75, 200.0),
    ]


def test_columns_maps_other_names(fake: FakeTradingService, tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text(CANONICAL)
    theirs = tmp_path / "theirs.csv"
    theirs.write_text(CANONICAL.replace("symbol,timestamp,price,volume", "Name,When,Last,Qty"))
    assert tradectl(fake.target, "stream", str(plain)) == 0
    expected = sent(fake)
    fake.calls.clear()

    mapping = "symbol=Name,timestamp=When,price=Last,volume=Qty"
    assert tradectl(fake.target, "stream", str(theirs), "--columns", mapping) == 0

    assert sent(fake) == expected


def test_a_missing_column_names_what_the_file_has_and_how_to_map_it(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "theirs.csv"
    theirs.write_text(CANONICAL.replace("symbol,timestamp,price,volume", "Name,When,Last,Qty"))

    assert tradectl(fake.target, "stream", str(theirs)) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: {theirs}: missing column(s) timestamp, price")
    assert "the file has Name, When, Last, Qty; map them with --columns" in err


def test_a_symbol_the_file_does_not_have_names_those_it_has(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text(CANONICAL)

    assert tradectl(fake.target, "stream", str(plain), "--symbol", "msft") == 2
    assert capsys.readouterr().err == f"error: {plain}: no rows of MSFT; the file has AAPL, IBM\n"


def test_the_help_documents_the_file_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["stream", "--help"])

    out = capsys.readouterr().out
    assert "  symbol,timestamp,open,high,low,close,volume" in out
    assert "--columns maps other names: --columns timestamp=Date,symbol=Ticker,price=Close" in out
    assert "TRADING_CLOCK=event" in out


COLUMNS = ("symbol", "timestamp", "price", "volume")
ROWS = [line.split(",") for line in CANONICAL.splitlines()[1:]]


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(len(COLUMNS))),
    cases=st.lists(st.booleans(), min_size=4 * 10, max_size=4 * 10),
    extra=st.booleans(),
)
def test_any_order_and_letter_case_of_the_columns_reads_the_same_ticks(
    order: list[int], cases: list[bool], extra: bool
) -> None:
    def cased(name: str, offset: int) -> str:
        flips = cases[offset * 10 : offset * 10 + len(name)]
        return "".join(c.upper() if up else c for c, up in zip(name, flips, strict=False))

    header = [cased(COLUMNS[i], i) for i in order]
    lines = [[row[i] for i in order] for row in ROWS]
    if extra:  # a column tradectl does not read changes nothing
        header.append("Notes")
        lines = [[*line, "x"] for line in lines]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.csv"
        path.write_text("\n".join(",".join(line) for line in [header, *lines]) + "\n")
        shuffled = read_market_file(path)
        canonical = Path(folder) / "canonical.csv"
        canonical.write_text(CANONICAL)
        expected = read_market_file(canonical)

    assert shuffled.events == expected.events
    assert shuffled.lines == expected.lines == [2, 3, 4]
