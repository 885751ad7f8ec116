"""Market-data files: read bars from CSV and turn them into MarketEvent messages.

The format, plain or gzip-compressed (told apart by content, not by name)::

    symbol,timestamp,open,high,low,close,volume
    AAPL,2004-03-15T20:59:00Z,13.2341,13.4014,12.9631,13.0002,7453200

Time stamps are ISO 8601 with a UTC offset (``Z`` or ``+00:00``); a time stamp
without one is refused, because guessing a zone would shift every bar. The
bundled file, ``client/data/daily_bars.csv.gz``, is built by
``client.sampledata``, which documents where its numbers come from.

`tradectl stream` reads files with `read_market_file`, through the backtest's
reader (client/backtest/data.py, whose docstring is the format's reference): this
format, or any CSV or Parquet file with a time stamp and a price (`close`) column,
names matched in any letter case, others mapped with ``--columns``. Each event
keeps the line it was read from, so a refusal, even the service's, names it.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from google.protobuf import timestamp_pb2

from trading_sdk.client import market_event
from trading_sdk.v1 import market_pb2

DEFAULT_BARS: Final = Path(__file__).resolve().parent / "data" / "daily_bars.csv.gz"
CSV_HEADER: Final = ("symbol", "timestamp", "open", "high", "low", "close", "volume")

_GZIP_MAGIC: Final = b"\x1f\x8b"
_NS: Final = 1_000_000_000
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of one symbol; `timestamp` is UTC and marks the bar's end."""

    symbol: str
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def load_bars(path: str | Path = DEFAULT_BARS, symbols: Iterable[str] | None = None) -> list[Bar]:
    """Read the bars in `path`, only those of `symbols` if given, sorted by (timestamp, symbol).

    Raises ValueError, naming the line, for a missing column, a number that does
    not parse, or a time stamp without a UTC offset.
    """
    wanted = None if symbols is None else {symbol.upper() for symbol in symbols}
    with _open_text(Path(path)) as text:
        reader = csv.DictReader(text)
        missing = set(CSV_HEADER) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        bars = [
            _bar(row, f"{path}:{reader.line_num}")
            for row in reader
            if wanted is None or row["symbol"] in wanted
        ]
    bars.sort(key=lambda bar: (bar.timestamp, bar.symbol))
    return bars


@dataclass(frozen=True, slots=True)
class MarketFile:
    """A market-data file as `tradectl stream` sends it: one event a row, in time order
    (equal times by symbol), each with the line (or Parquet row) it came from."""

    path: Path
    events: list[market_pb2.MarketEvent]
    lines: list[int]
    line_unit: str
    symbols: list[str]
    first_ns: int
    last_ns: int

    def where(self, index: int) -> str:
        """`PATH: line N` of the event at `index`, as the file's own errors say it."""
        return f"{self.path}: {self.line_unit} {self.lines[index]}"


def read_market_file(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    symbols: Iterable[str] | None = None,
    timezone: str | None = None,
) -> MarketFile:
    """Read and check `path` (client/backtest/data.py: CSV, plain or gzip, or Parquet),
    keeping only `symbols` (any letter case) if given.

    Raises ValueError naming the file's line for a bad row, and naming the symbols
    the file has when none of `symbols` is among them.
    """
    # Imported here, as the SDK imports them: tradectl's other commands need neither.
    import numpy as np

    from client.backtest.data import load_market_data

    data = load_market_data(path, columns=columns, timezone=timezone)
    keep = np.ones(len(data), dtype=bool)
    if symbols is not None:
        wanted = sorted({symbol.strip().upper() for symbol in symbols})
        keep = np.isin(data.symbols, wanted)
        if not keep.any():
            raise ValueError(
                f"{path}: no rows of {', '.join(wanted)}; the file has "
                f"{', '.join(data.symbol_names)}"
            )
    names = data.symbols[keep].tolist()
    stamps = data.timestamps_ns[keep].tolist()
    prices = data.prices[keep].tolist()
    volumes = data.volumes[keep].tolist()
    lines = [] if data.lines is None else data.lines[keep].tolist()
    events = [
        market_pb2.MarketEvent(
            symbol=symbol,
            price=price,
            volume=volume,
            timestamp=timestamp_pb2.Timestamp(seconds=ns // _NS, nanos=ns % _NS),
        )
        for symbol, price, volume, ns in zip(names, prices, volumes, stamps, strict=True)
    ]
    return MarketFile(
        path=Path(path),
        events=events,
        lines=lines,
        line_unit=data.line_unit,
        symbols=sorted(set(names)),
        first_ns=min(stamps),
        last_ns=max(stamps),
    )


def to_market_events(bars: Iterable[Bar]) -> list[market_pb2.MarketEvent]:
    """One MarketEvent per bar: its close as the price, its volume and time stamp."""
    return [
        market_event(bar.symbol, bar.close, volume=bar.volume, timestamp=bar.timestamp)
        for bar in bars
    ]


def batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """Consecutive lists of `size` items (the last one may be shorter), lazily.

    A size below 1 raises ValueError here, not at the first batch, so the
    mistake surfaces before any item is consumed or sent.
    """
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return _batches(items, size)


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _open_text(path: Path) -> io.TextIOWrapper:
    with path.open("rb") as probe:
        compressed = probe.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
    if compressed:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _bar(row: dict[str, str], where: str) -> Bar:
    try:
        timestamp = datetime.fromisoformat(row["timestamp"])
        if timestamp.tzinfo is None:
            raise ValueError(f"time stamp {row['timestamp']!r} has no UTC offset")
        return Bar(
            symbol=row["symbol"],
            timestamp=timestamp.astimezone(UTC),
            open=float(row["open"]),
            high=float(row["high"]),
            low=float(row["low"]),
            close=float(row["close"]),
            volume=float(row["volume"]),
        )
    except (TypeError, ValueError) as error:
        # TypeError: a short row leaves a field None.
        raise ValueError(f"{where}: {error}") from None
