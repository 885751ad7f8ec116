"""`tradectl data alpaca` downloads bars with alpaca-py's StockHistoricalDataClient
(pointed at the fake's REST API) into the file format `tradectl stream` reads: the
file reads back to the same ticks, across pages and pieces, and streams into the
service as exactly those ticks."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from client import cli
from client.alpaca_bars import (
    MINUTE,
    STAMP_BEFORE_END,
    BarStamper,
    new_york_midnight,
    parse_timeframe,
)
from client.alpaca_history import AlpacaCredentials, data_client, download_bars
from client.marketdata import Bar, load_bars, to_market_events
from tests.alpaca_feed import journaled, tick_of
from tests.conftest import TOKEN, StartService
from tests.fakes.alpaca_data_server import KEY, SECRET, FakeAlpacaData, FakeBar, bar

OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York


@pytest.fixture
def fake() -> Iterator[FakeAlpacaData]:
    with FakeAlpacaData(page_size=7) as server:
        yield server


@pytest.fixture
def alpaca_env(fake: FakeAlpacaData, monkeypatch: pytest.MonkeyPatch) -> FakeAlpacaData:
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
    monkeypatch.setenv("ALPACA_DATA_URL", fake.rest_url)
    monkeypatch.delenv("ALPACA_DATA_FEED", raising=False)
    monkeypatch.delenv("TRADING_API_KEY", raising=False)
    return fake


def minute_bars(
    symbol: str, count: int, start: datetime = OPEN, base: float = 100.0
) -> list[FakeBar]:
    return [
        bar(symbol, start + k * timedelta(minutes=1), round(base + 0.37 * (k % 11), 2), 100 + k)
        for k in range(count)
    ]


def expected(bars: list[FakeBar], stamper: BarStamper) -> list[Bar]:
    """The rows the file must hold: each bar stamped at its end, by (time, symbol)."""
    rows = [
        Bar(b.symbol, stamper.stamp(b.start), b.open, b.high, b.low, b.close, b.volume)
        for b in bars
    ]
    return sorted(rows, key=lambda row: (row.timestamp, row.symbol))


def credentials(fake: FakeAlpacaData) -> AlpacaCredentials:
    return AlpacaCredentials(KEY, SECRET, data_url=fake.rest_url)


def download(*args: str) -> int:
    return cli.main(["data", "alpaca", *args])


def test_the_download_reads_back_to_the_same_bars_across_pages(
    alpaca_env: FakeAlpacaData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = alpaca_env
    bars = minute_bars("SPY", 30) + minute_bars("QQQ", 25, base=400.0)
    fake.add_bars(bars)
    fake.add_bars([bar("SPY", OPEN - timedelta(days=1), 1.0)])  # outside the range
    out = tmp_path / "bars.csv"

    status = download(
        "--symbols", "SPY,QQQ", "--start", "2024-03-05", "--end", "2024-03-05",
        "--timeframe", "1Min", "--out", str(out),
    )  # fmt: skip

    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert load_bars(out) == expected(bars, BarStamper(MINUTE))
    pages = [r for r in fake.rest_requests if r.path == "/v2/stocks/bars"]
    assert len(pages) == 8  # 55 bars, 7 a page
    assert [bool(p.params.get("page_token")) for p in pages] == [False] + [True] * 7
    assert {p.params["symbols"] for p in pages} == {"SPY,QQQ"}
    assert {p.params["feed"] for p in pages} == {"iex"}
    assert "wrote 55 1Min bars" in captured.out and "SPY 30, QQQ 25" in captured.out
    assert "2024-03-05T14:30:59.999999Z .. 2024-03-05T14:59:59.999999Z" in captured.out


def test_with_json_the_download_says_what_it_wrote_as_one_object(
    alpaca_env: FakeAlpacaData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpaca_env.add_bars(minute_bars("SPY", 2))
    out = tmp_path / "bars.csv"

    status = download(
        "--symbols", "SPY", "--start", "2024-03-05", "--end", "2024-03-05",
        "--out", str(out), "--json",
    )  # fmt: skip

    assert status == 0
    assert json.loads(capsys.readouterr().out) == {
        "path": str(out),
        "timeframe": "1Min",
        "feed": "iex",
        "bars": 2,
        "per_symbol": {"SPY": 2},
        "first": "2024-03-05T14:30:59.999999Z",
        "last": "2024-03-05T14:31:59.999999Z",
    }


def test_tradectl_stream_sends_the_downloaded_file_as_exactly_its_ticks(
    alpaca_env: FakeAlpacaData, start_service: StartService, tmp_path: Path
) -> None:
    fake = alpaca_env
    fake.add_bars(minute_bars("SPY", 40) + minute_bars("IWM", 40, base=200.0))
    out = tmp_path / "session.csv.gz"
    assert download(
        "--symbols", "SPY,IWM", "--start", "2024-03-05T14:30:00Z",
        "--end", "2024-03-05T15:10:00Z", "--out", str(out),
    ) == 0  # fmt: skip
    service = start_service()

    status = cli.main(["--target", service.target, "--token", TOKEN, "stream", str(out)])

    assert status == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip, as asked by the name
    assert journaled(service.client) == [tick_of(e) for e in to_market_events(load_bars(out))]
    assert len(journaled(service.client)) == 80


def test_a_long_range_is_fetched_and_written_piece_by_piece(
    fake: FakeAlpacaData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three sessions of SPY, a bar an hour from 13:30Z, and one where two pieces meet.
    start = new_york_midnight(date(2024, 3, 5))
    starts = [OPEN + timedelta(days=d, hours=h) for d in range(3) for h in range(-1, 6)]
    starts.append(start + timedelta(days=1))
    bars = [bar("SPY", moment, 100.0 + k) for k, moment in enumerate(starts)]
    fake.add_bars(bars)
    monkeypatch.setattr("client.alpaca_history.BARS_PER_PIECE", 960)  # a day a piece
    out = tmp_path / "three-days.csv"

    summary = download_bars(
        data_client(credentials(fake)), ["SPY"], MINUTE, start, start + timedelta(days=3), out,
        feed=credentials(fake).data_feed,
    )  # fmt: skip

    assert summary.pieces == 3
    assert load_bars(out) == expected(bars, BarStamper(MINUTE))
    assert summary.per_symbol == {"SPY": len(bars)}


def test_daily_bars_are_stamped_before_each_session_close_early_ones_too(
    alpaca_env: FakeAlpacaData, tmp_path: Path
) -> None:
    fake = alpaca_env
    days = [date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29)]  # Friday closes early
    daily = [
        bar("SPY", new_york_midnight(day), 590.0 + k, timeframe="1Day")
        for k, day in enumerate(days)
    ]
    fake.add_bars(daily)
    out = tmp_path / "daily.csv"

    assert download(
        "--symbols", "SPY", "--start", "2024-11-25", "--end", "2024-11-29",
        "--timeframe", "1Day", "--out", str(out),
    ) == 0  # fmt: skip

    stamps = [row.timestamp for row in load_bars(out)]
    assert stamps == [
        datetime(2024, 11, 26, 21, 0, tzinfo=UTC) - STAMP_BEFORE_END,
        datetime(2024, 11, 27, 21, 0, tzinfo=UTC) - STAMP_BEFORE_END,
        datetime(2024, 11, 29, 18, 0, tzinfo=UTC) - STAMP_BEFORE_END,
    ]
    assert stamps == [BarStamper(parse_timeframe("1Day")).stamp(b.start) for b in daily]


def test_the_same_bars_give_the_same_compressed_bytes(fake: FakeAlpacaData, tmp_path: Path) -> None:
    fake.add_bars(minute_bars("SPY", 12))
    first, second = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz"
    for out in (first, second):
        download_bars(
            data_client(credentials(fake)), ["SPY"], MINUTE, OPEN, OPEN + timedelta(hours=1),
            out, feed=credentials(fake).data_feed,
        )  # fmt: skip

    assert first.read_bytes() == second.read_bytes()
    assert gzip.decompress(first.read_bytes()).startswith(
        b"symbol,timestamp,open,high,low,close,volume\nSPY,2024-03-05T14:30:59.999999Z,"
    )


def test_missing_keys_are_named_in_one_line_and_exit_2(
    fake: FakeAlpacaData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    monkeypatch.delenv("TRADING_API_KEY", raising=False)  # the service is not needed
    out = tmp_path / "bars.csv"

    status = download(
        "--symbols", "SPY", "--start", "2024-03-05", "--end", "2024-03-05",
        "--out", str(out), "--data-url", fake.rest_url,
    )  # fmt: skip

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "ALPACA_API_KEY" in err and "ALPACA_SECRET_KEY" in err
    assert "Traceback" not in err
    assert not out.exists() and not fake.rest_requests


def test_flags_override_the_environment(
    alpaca_env: FakeAlpacaData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = alpaca_env
    fake.add_bars(minute_bars("SPY", 3))
    monkeypatch.setenv("ALPACA_API_KEY", "wrong")
    monkeypatch.setenv("ALPACA_DATA_FEED", "iex")

    status = download(
        "--symbols", "spy", "--start", "2024-03-05", "--end", "2024-03-05",
        "--out", str(tmp_path / "bars.csv"), "--alpaca-api-key", KEY, "--feed", "sip",
    )  # fmt: skip

    assert status == 0
    (request,) = fake.rest_requests
    assert request.headers["apca-api-key-id"] == KEY
    assert request.params["feed"] == "sip" and request.params["symbols"] == "SPY"


def test_a_refusal_from_alpaca_exits_1_and_leaves_no_file(
    alpaca_env: FakeAlpacaData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = alpaca_env
    fake.add_bars(minute_bars("SPY", 20))
    fake.fail_rest(403, {"code": 40310000, "message": "subscription does not permit querying"})
    out = tmp_path / "bars.csv"
    out.write_text("what was there\n")

    status = download(
        "--symbols", "SPY", "--start", "2024-03-05", "--end", "2024-03-05", "--out", str(out)
    )

    err = capsys.readouterr().err
    assert status == 1
    assert err == (
        "error: Alpaca market data answered 403: subscription does not permit querying\n"
    )
    assert out.read_text() == "what was there\n"
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_wrong_keys_are_reported_as_alpaca_answered(
    alpaca_env: FakeAlpacaData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = download(
        "--symbols", "SPY", "--start", "2024-03-05", "--end", "2024-03-05",
        "--out", str(tmp_path / "x.csv"), "--alpaca-secret-key", "not-the-secret",
    )  # fmt: skip

    assert status == 1
    assert capsys.readouterr().err == "error: Alpaca market data answered 401: unauthorized.\n"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--timeframe", "1Sec"), ("--start", "March 5"), ("--start", "2024-03-05T14:30")],
)
def test_a_malformed_flag_is_a_usage_error(
    alpaca_env: FakeAlpacaData, tmp_path: Path, flag: str, value: str
) -> None:
    args = {"--symbols": "SPY", "--start": "2024-03-05", "--end": "2024-03-06"}
    args[flag] = value
    argv = [part for item in args.items() for part in item]

    with pytest.raises(SystemExit) as exited:
        download(*argv, "--out", str(tmp_path / "x.csv"))

    assert exited.value.code == 2


def test_an_end_before_the_start_is_refused(
    alpaca_env: FakeAlpacaData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = download(
        "--symbols", "SPY", "--start", "2024-03-06", "--end", "2024-03-04",
        "--out", str(tmp_path / "x.csv"),
    )  # fmt: skip

    assert status == 2
    assert "is not before the end" in capsys.readouterr().err
