"""Historical bars from Alpaca, written in the file format `tradectl stream` reads.

    tradectl data alpaca --symbols SPY,QQQ --start 2024-03-01 --end 2024-03-31 \\
        --timeframe 1Min --out spy-qqq-march.csv.gz
    tradectl stream spy-qqq-march.csv.gz

The bars come from alpaca-py's ``StockHistoricalDataClient`` (the SDK follows
``next_page_token`` itself) and are stamped at their end by
``client.alpaca_bars``, the rule the live feed uses too, so a strategy run on the
file sees the ticks it would have been sent live. The range is asked for in
pieces of about 100,000 bars, each written before the next is fetched, so memory
stays bounded for years of minute bars; the file appears, whole, only once every
piece has arrived (it is written to a temporary file, then renamed).

`--start` and `--end` take New York dates (the end date included) or ISO 8601
times with a UTC offset (the end excluded); a bar is in the range when it
*starts* in it.

Settings, shared with the live feed (``client.alpaca_feed``): the environment
variables the service reads (ALPACA_API_KEY, ALPACA_SECRET_KEY, ALPACA_DATA_URL,
ALPACA_DATA_STREAM_URL, ALPACA_DATA_FEED iex|sip), each overridden by its flag.
tradectl is a client: it reads them itself and never imports the server. alpaca-py
(and pandas under it) takes a second to import, so it is imported only when a
command needs it, not whenever tradectl starts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import io
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO, cast

from client.marketdata import CSV_HEADER, Bar

if TYPE_CHECKING:
    from alpaca.data.enums import DataFeed
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.data.models import Bar as AlpacaModelBar
    from alpaca.data.timeframe import TimeFrame

__all__ = [
    "AlpacaCredentials",
    "AlpacaError",
    "DownloadSummary",
    "add_arguments",
    "add_credential_arguments",
    "credentials_from",
    "data_client",
    "download_bars",
    "fetch_bars",
    "format_stamp",
    "run_command",
    "symbol_list",
    "write_bars",
]

# tradectl's exit statuses (client/cli.py): 1 a remote failed, 2 refused as given.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

# The SDK sets no HTTP timeout (alpaca-py#415): a stalled request would hang for ever.
REQUEST_TIMEOUT_SECONDS: Final = 30.0
# About this many bars are fetched (and held) at once.
BARS_PER_PIECE: Final = 100_000
# Bars per symbol and day of the intraday units, extended hours (04:00-20:00 New York) included.
_BARS_PER_DAY: Final = {"Min": 16 * 60, "Hour": 16}
ADJUSTMENTS: Final = ("raw", "split", "dividend", "all")
FEEDS: Final = ("iex", "sip")

FeedName = Literal["iex", "sip"]


class AlpacaError(Exception):
    """Alpaca could not be reached or refused a request; the message says which."""


@dataclass(frozen=True)
class AlpacaCredentials:
    """Keys and endpoints for Alpaca market data (None: the SDK's default URL)."""

    api_key: str
    secret_key: str
    feed: FeedName = "iex"
    data_url: str | None = None
    stream_url: str | None = None

    @property
    def data_feed(self) -> DataFeed:
        from alpaca.data.enums import DataFeed

        return DataFeed(self.feed)

    def stream_endpoint(self) -> str | None:
        """StockDataStream's url_override: ALPACA_DATA_STREAM_URL as given when it has a
        path (wss://host/v2/iex), with /v2/<feed> added to a bare host."""
        if not self.stream_url:
            return None
        url = self.stream_url.rstrip("/")
        _, sep, rest = url.partition("://")
        if sep and "/" not in rest:
            return f"{url}/v2/{self.feed}"
        return url


def add_credential_arguments(parser: argparse.ArgumentParser, *, stream: bool) -> None:
    """The flags that override the ALPACA_* environment variables."""
    parser.add_argument("--alpaca-api-key", help="Alpaca key id (env ALPACA_API_KEY)")
    parser.add_argument("--alpaca-secret-key", help="Alpaca secret key (env ALPACA_SECRET_KEY)")
    parser.add_argument(
        "--feed",
        choices=FEEDS,
        help="Alpaca's data feed: iex (free) or sip (needs a plan) "
        "(env ALPACA_DATA_FEED, default iex)",
    )
    parser.add_argument("--data-url", help="Alpaca market-data REST base URL (env ALPACA_DATA_URL)")
    if stream:
        parser.add_argument(
            "--stream-url",
            help="Alpaca market-data websocket, e.g. wss://stream.data.alpaca.markets/v2/iex "
            "(env ALPACA_DATA_STREAM_URL)",
        )


def credentials_from(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> AlpacaCredentials:
    """The flags over the environment; ValueError, in one line naming the variables,
    when a key is missing or ALPACA_DATA_FEED is neither iex nor sip."""
    key = args.alpaca_api_key or environ.get("ALPACA_API_KEY", "").strip()
    secret = args.alpaca_secret_key or environ.get("ALPACA_SECRET_KEY", "").strip()
    missing = [
        name
        for name, value in (("ALPACA_API_KEY", key), ("ALPACA_SECRET_KEY", secret))
        if not value
    ]
    if missing:
        raise ValueError(
            f"no Alpaca {' or '.join(missing)}: set {' and '.join(missing)} in the "
            "environment (or pass --alpaca-api-key and --alpaca-secret-key)"
        )
    feed = args.feed or environ.get("ALPACA_DATA_FEED", "").strip().lower() or "iex"
    if feed not in FEEDS:
        raise ValueError(f"ALPACA_DATA_FEED is {feed!r}: it must be iex or sip")
    return AlpacaCredentials(
        api_key=key,
        secret_key=secret,
        feed=cast(FeedName, feed),
        data_url=args.data_url or environ.get("ALPACA_DATA_URL") or None,
        stream_url=getattr(args, "stream_url", None)
        or environ.get("ALPACA_DATA_STREAM_URL")
        or None,
    )


def data_client(
    credentials: AlpacaCredentials, timeout: float = REQUEST_TIMEOUT_SECONDS
) -> StockHistoricalDataClient:
    """alpaca-py's historical client for `credentials`, with an HTTP timeout: a
    transport adapter mounted on the session the client owns (how `requests` is
    configured; no SDK code is changed)."""
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from requests import PreparedRequest, Response
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(
            self,
            request: PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: Any = True,
            cert: Any = None,
            proxies: Any = None,
        ) -> Response:
            return super().send(
                request,
                stream=stream,
                timeout=wait if timeout is None else timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )

    wait = timeout
    # The SDK adds /v2 to the base URL itself.
    url = credentials.data_url.rstrip("/").removesuffix("/v2") if credentials.data_url else None
    client = StockHistoricalDataClient(
        credentials.api_key, credentials.secret_key, url_override=url
    )
    adapter = TimeoutAdapter()
    client._session.mount("https://", adapter)
    client._session.mount("http://", adapter)
    return client


def fetch_bars(
    client: StockHistoricalDataClient,
    symbols: Sequence[str],
    timeframe: TimeFrame,
    start: datetime,
    end: datetime,
    *,
    feed: DataFeed,
    adjustment: str = "raw",
) -> list[AlpacaModelBar]:
    """The bars of `symbols` that start in [start, end), sorted by (start, symbol),
    each once. One call of the SDK, which pages through next_page_token;
    AlpacaError when Alpaca refuses or cannot be reached."""
    import requests
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import Adjustment
    from alpaca.data.requests import StockBarsRequest

    request = StockBarsRequest(
        symbol_or_symbols=list(symbols),
        timeframe=timeframe,
        start=start,
        end=end,
        feed=feed,
        adjustment=Adjustment(adjustment),
    )
    try:
        barset = client.get_stock_bars(request)
    except APIError as error:
        raise AlpacaError(_api_error_text(error)) from None
    except requests.RequestException as error:
        where = str(client._base_url)
        raise AlpacaError(f"cannot reach Alpaca market data at {where}: {error}") from None
    data: dict[str, list[AlpacaModelBar]] = getattr(barset, "data", {})
    seen: set[tuple[str, datetime]] = set()
    bars: list[AlpacaModelBar] = []
    for symbol_bars in data.values():
        for bar in symbol_bars:
            key = (bar.symbol, bar.timestamp)
            if start <= bar.timestamp < end and key not in seen:
                seen.add(key)
                bars.append(bar)
    bars.sort(key=lambda bar: (bar.timestamp, bar.symbol))
    return bars


def _api_error_text(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    body = str(error).strip()
    # `message` parses the body as Alpaca's JSON; a gateway's page is kept as it is.
    with contextlib.suppress(ValueError, KeyError, TypeError):
        body = str(getattr(error, "message", body))
    if len(body) > 300:
        body = body[:300] + "..."
    return f"Alpaca market data answered {status}: {body}"


# --- the download ------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadSummary:
    """What a download wrote."""

    path: Path
    bars: int
    per_symbol: dict[str, int]
    first: datetime | None
    last: datetime | None
    pieces: int


def pieces(
    start: datetime, end: datetime, timeframe: TimeFrame, symbols: int
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive spans of about BARS_PER_PIECE bars."""
    per_day = _BARS_PER_DAY.get(timeframe.unit.value)
    if per_day is None:  # a bar a day or fewer
        days = max(1, BARS_PER_PIECE // max(symbols, 1))
    else:
        days = max(1, BARS_PER_PIECE * timeframe.amount // (per_day * max(symbols, 1)))
    step = timedelta(days=days)
    at = start
    while at < end:
        stop = min(at + step, end)
        yield at, stop
        at = stop


def download_bars(
    client: StockHistoricalDataClient,
    symbols: Sequence[str],
    timeframe: TimeFrame,
    start: datetime,
    end: datetime,
    out: Path,
    *,
    feed: DataFeed,
    adjustment: str = "raw",
    progress: TextIO | None = None,
) -> DownloadSummary:
    """Fetch the bars of `symbols` that start in [start, end) and write them to `out`
    (gzip-compressed when its name ends in .gz), stamped by client.alpaca_bars.

    `out` is replaced only once every piece has been written; on any error it is
    left as it was.
    """
    from client.alpaca_bars import BarStamper, needs_calendar, to_service_bar, xnys_calendar

    if not start < end:
        raise ValueError(f"the start {start.isoformat()} is not before the end {end.isoformat()}")
    calendar = xnys_calendar(start.date(), end.date()) if needs_calendar(timeframe) else None
    stamper = BarStamper(timeframe, calendar)
    spans = list(pieces(start, end, timeframe, len(symbols)))
    per_symbol = dict.fromkeys(symbols, 0)
    first: datetime | None = None
    last: datetime | None = None
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(handle)
    try:
        with _open_out(Path(temporary), out.name.endswith(".gz")) as text:
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(CSV_HEADER)
            for number, (begin, stop) in enumerate(spans, start=1):
                fetched = fetch_bars(
                    client, symbols, timeframe, begin, stop, feed=feed, adjustment=adjustment
                )
                rows = [to_service_bar(bar, stamper) for bar in fetched]
                write_bars(writer, rows)
                for row in rows:
                    per_symbol[row.symbol] = per_symbol.get(row.symbol, 0) + 1
                if rows:
                    first = first or rows[0].timestamp
                    last = rows[-1].timestamp
                if progress is not None and len(spans) > 1:
                    print(
                        f"{number}/{len(spans)}: {_minute_text(begin)} .. {_minute_text(stop)}: "
                        f"{len(rows)} bars",
                        file=progress,
                        flush=True,
                    )
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return DownloadSummary(out, sum(per_symbol.values()), per_symbol, first, last, len(spans))


def _minute_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _open_out(path: Path, compress: bool) -> TextIO:
    if compress:
        # mtime=0 and no name in the header: the same bars give the same bytes.
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=path.open("wb"), mtime=0)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")


def write_bars(writer: Any, bars: Sequence[Bar]) -> None:
    """Rows of the file format (client/marketdata.py), with numbers written so that
    they read back as the same floats."""
    for bar in bars:
        writer.writerow(
            (
                bar.symbol,
                format_stamp(bar.timestamp),
                _number(bar.open),
                _number(bar.high),
                _number(bar.low),
                _number(bar.close),
                _number(bar.volume),
            )
        )


def format_stamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, microseconds always shown: 2024-03-05T14:30:59.999999Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"Alpaca sent a number that is not finite: {value!r}")
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)  # the shortest text that reads back as the same float


# --- the command line ------------------------------------------------------------

_TIMEFRAME_TEXT: Final = re.compile(r"\d+(min|hour|day|week|month)", re.IGNORECASE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`tradectl data alpaca`'s flags. The command needs no trading service (no token)."""
    parser.add_argument(
        "--symbols", required=True, type=symbol_list, help="comma-separated, e.g. SPY,QQQ"
    )
    parser.add_argument(
        "--start",
        required=True,
        type=_range_bound,
        help="first day (YYYY-MM-DD, New York) or an ISO 8601 time with a UTC offset",
    )
    parser.add_argument(
        "--end",
        required=True,
        type=_range_bound,
        help="last day, included (YYYY-MM-DD), or an ISO 8601 time with a UTC offset, excluded",
    )
    parser.add_argument(
        "--timeframe",
        type=_timeframe_text,
        default="1Min",
        help="bar length: 1Min (the live feed's), 5Min, 1Hour, 1Day, 1Week, 1Month "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="file to write (gzip when it ends in .gz) for `tradectl stream FILE`",
    )
    parser.add_argument(
        "--adjustment",
        choices=ADJUSTMENTS,
        default="raw",
        help="corporate-action adjustment (default raw: the prices the live feed sends)",
    )
    add_credential_arguments(parser, stream=False)
    parser.set_defaults(needs_service=False)


@dataclass(frozen=True)
class RangeBound:
    """A --start or --end as given: a New York day, or an instant."""

    day: date | None = None
    moment: datetime | None = None

    def as_start(self) -> datetime:
        """The instant a range starting here starts at (a day: its midnight, New York)."""
        return self._instant(0)

    def as_end(self) -> datetime:
        """The instant a range ending here ends at (a day: the next midnight, New York)."""
        return self._instant(1)

    def _instant(self, days_after: int) -> datetime:
        if self.moment is not None:
            return self.moment.astimezone(UTC)
        from client.alpaca_bars import new_york_midnight

        assert self.day is not None
        return new_york_midnight(self.day + timedelta(days=days_after))


def _range_bound(text: str) -> RangeBound:
    value = text.strip()
    try:
        if len(value) == 10:
            return RangeBound(day=date.fromisoformat(value))
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date (YYYY-MM-DD) or an ISO 8601 time: {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +00:00")
    return RangeBound(moment=moment)


def _timeframe_text(text: str) -> str:
    if not _TIMEFRAME_TEXT.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"timeframe {text!r}: give <amount><unit>, e.g. 1Min, 15Min, 1Hour, 1Day"
        )
    return text.strip()


def symbol_list(text: str) -> tuple[str, ...]:
    """'SPY, qqq' as ('SPY', 'QQQ'): in order, upper case, without repeats."""
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in text.split(",") if s.strip()))
    if not symbols:
        raise argparse.ArgumentTypeError(f"no symbols in {text!r}")
    for symbol in symbols:
        if len(symbol) > 16 or not symbol.replace(".", "").replace("/", "").isalnum():
            raise argparse.ArgumentTypeError(f"not a stock symbol: {symbol!r}")
    return symbols


def run_command(client: object, args: argparse.Namespace, printer: object) -> int:
    """`tradectl data alpaca`: download, then say what was written. The trading
    service is not involved (`client` and `printer`, tradectl's, are unused)."""
    try:
        credentials = credentials_from(args)
        from client.alpaca_bars import parse_timeframe

        timeframe = parse_timeframe(args.timeframe)
        summary = download_bars(
            data_client(credentials),
            args.symbols,
            timeframe,
            args.start.as_start(),
            args.end.as_end(),
            args.out,
            feed=credentials.data_feed,
            adjustment=args.adjustment,
            progress=sys.stderr,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (AlpacaError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if getattr(args, "json", False):
        print(json.dumps(summary_document(summary, str(timeframe), credentials.feed)), flush=True)
    else:
        print(summary_text(summary, str(timeframe), credentials.feed), flush=True)
    return EXIT_OK


def summary_document(summary: DownloadSummary, timeframe: str, feed: str) -> dict[str, Any]:
    """The summary for --json."""
    return {
        "path": str(summary.path),
        "timeframe": timeframe,
        "feed": feed,
        "bars": summary.bars,
        "per_symbol": summary.per_symbol,
        "first": format_stamp(summary.first) if summary.first else None,
        "last": format_stamp(summary.last) if summary.last else None,
    }


def summary_text(summary: DownloadSummary, timeframe: str, feed: str) -> str:
    counts = ", ".join(f"{symbol} {count}" for symbol, count in summary.per_symbol.items())
    text = f"wrote {summary.bars} {timeframe} bars of Alpaca's {feed} feed ({counts}) "
    text += f"to {summary.path}"
    if summary.first is None or summary.last is None:
        return text + "\nno bars in that range: are they trading days, and the symbols right?"
    return text + (
        f"\nstamped at each bar's end - 1us: {format_stamp(summary.first)} .. "
        f"{format_stamp(summary.last)}"
    )
