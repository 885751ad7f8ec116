"""Market data for a backtest: a CSV or Parquet file read into columns, checked row
by row, in time order.

Columns (names matched case-insensitively; ``--columns price=Close`` maps others):

* ``symbol``: the ticker (also ``ticker``). A file without one holds one symbol:
  ``symbol=`` names it (``--symbol``), else the file name does (``SPY.csv``: SPY).
  Tickers are upper-cased, so ``spy`` and ``SPY`` are one symbol.
* ``timestamp``: when the bar ends (also ``date``, ``datetime``, ``time``). ISO 8601
  with a UTC offset (``2024-03-05T15:00:00Z``), or a date alone (``2024-03-05``) for
  a daily bar, stamped as the bundled data and the demo stamp one: a minute before
  that session's close on the NYSE calendar, so it falls inside the session. A time
  without an offset is refused unless a zone is given (``--timezone``), because
  guessing one would shift every bar. In Parquet, timestamp and date columns too.
* ``price``: the price traded at, the bar's close (also ``close``); finite and in
  the service's price domain.
* ``volume``: optional (0 when absent); finite and not negative.

Each symbol's rows must be in strictly increasing time order; a row that goes back
in time or repeats a time is refused, naming both lines. Lines are the file's
(the header is line 1); in Parquet, rows count from 1. Symbols may be grouped or
interleaved: the data is merged into one stream in time order (equal times by
symbol), as a live feed would deliver it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from domain import numeric

if TYPE_CHECKING:
    import pandas as pd

COLUMNS: Final = ("symbol", "timestamp", "price", "volume")
ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "symbol": ("symbol", "ticker"),
    "timestamp": ("timestamp", "date", "datetime", "time"),
    "price": ("price", "close"),
    "volume": ("volume",),
}
SYMBOL: Final = re.compile(r"[A-Z0-9][A-Z0-9./\-]{0,9}")
_DATE_ONLY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_NS_PER_MINUTE: Final = 60 * 1_000_000_000
_FIRST_LINE: Final = 2  # a CSV's first data row is line 2, after the header


class DataError(ValueError):
    """A data file that cannot be backtested; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class MarketData:
    """Ticks of one or more symbols, merged in time order (equal times by symbol)."""

    symbols: npt.NDArray[np.object_]
    timestamps_ns: npt.NDArray[np.int64]
    prices: npt.NDArray[np.float64]
    volumes: npt.NDArray[np.float64]
    source: str = ""
    # Where each tick was read: its line in a CSV file (the header is line 1), or its
    # row in a Parquet file (from 1, `line_unit` "row"), so that a refusal of a tick,
    # even one the service sends back (`tradectl stream`), can name it. None for
    # data not read from a file.
    lines: npt.NDArray[np.int64] | None = None
    line_unit: str = "line"

    def __len__(self) -> int:
        return len(self.timestamps_ns)

    @property
    def symbol_names(self) -> list[str]:
        """The distinct symbols, sorted."""
        return sorted(set(self.symbols.tolist()))

    def of(self, symbol: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(timestamps_ns, prices) of one symbol, in time order."""
        mask = self.symbols == symbol
        return self.timestamps_ns[mask], self.prices[mask]


def parse_columns(text: str) -> dict[str, str]:
    """``timestamp=Date,price=Close`` -> {"timestamp": "Date", "price": "Close"}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        ours, sep, theirs = item.partition("=")
        ours = ours.strip().lower()
        if not sep or ours not in COLUMNS or not theirs.strip():
            raise DataError(
                f"--columns: {item!r} is not COLUMN=NAME with COLUMN one of {', '.join(COLUMNS)}"
            )
        mapping[ours] = theirs.strip()
    return mapping


def load_market_data(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    symbol: str | None = None,
    timezone: str | None = None,
    calendar: Any = None,
) -> MarketData:
    """Read and check `path` (CSV, plain or gzip, or Parquet: told apart by content).
    Raises DataError naming the line of the first bad row."""
    import pandas as pd

    path = Path(path)
    try:
        with path.open("rb") as probe:
            parquet = probe.read(4) == b"PAR1"
        if parquet:
            frame = pd.read_parquet(path)
            first_line, unit = 1, "row"
        else:
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, compression="infer", skipinitialspace=True
            )
            first_line, unit = _FIRST_LINE, "line"
    except DataError:
        raise
    except (OSError, ValueError, ImportError) as error:
        raise DataError(f"{path}: cannot read it: {error}") from None
    where = _Where(str(path), first_line, unit)
    if frame.empty:
        raise DataError(f"{path}: no rows (an empty file, or a header alone)")
    found = _resolve(frame, columns or {}, where)
    if "symbol" in found:
        names = frame[found["symbol"]].astype(str).str.strip().str.upper().to_numpy(dtype=object)
    else:
        name = (symbol or path.name.split(".")[0]).strip().upper()
        if not SYMBOL.fullmatch(name):
            raise DataError(
                f"{path}: no symbol column, and {name!r} (from "
                f"{'--symbol' if symbol else 'the file name'}) is not a ticker: name it with "
                "--symbol, or map a column with --columns symbol=NAME"
            )
        names = np.full(len(frame), name, dtype=object)
    tickers = pd.Series(names).str.fullmatch(SYMBOL.pattern).to_numpy(dtype=bool)
    if not tickers.all():
        i = int(np.flatnonzero(~tickers)[0])
        raise DataError(
            f"{where.at(i)}: symbol {names[i]!r} is not a ticker "
            "(1-10 letters, digits, '.', '-' or '/')"
        )
    stamps = _timestamps(frame[found["timestamp"]], names, where, timezone, calendar)
    prices = _numbers(frame[found["price"]], "price", where)
    bad = ~((prices >= numeric.MIN_PRICE) & (prices <= numeric.MAX_PRICE))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where.at(i)}: price {frame[found['price']].iloc[i]!r} is outside the price domain "
            f"[{numeric.MIN_PRICE:g}, {numeric.MAX_PRICE:g}]"
        )
    if "volume" in found:
        volumes = _numbers(frame[found["volume"]], "volume", where)
        bad = ~((volumes >= numeric.MIN_VOLUME) & (volumes <= numeric.MAX_VOLUME))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where.at(i)}: volume {frame[found['volume']].iloc[i]!r} is negative or too large"
            )
    else:
        volumes = np.zeros(len(frame))
    _check_in_order(names, stamps, where)
    order = np.lexsort((names, stamps))  # by time, then symbol; stable
    lines = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    return MarketData(
        names[order],
        stamps[order],
        prices[order],
        volumes[order],
        str(path),
        lines=lines[order],
        line_unit=unit,
    )


@dataclass(frozen=True, slots=True)
class _Where:
    path: str
    first_line: int
    unit: str

    def at(self, index: int) -> str:
        return f"{self.path}: {self.unit} {index + self.first_line}"


def _resolve(frame: pd.DataFrame, mapping: Mapping[str, str], where: _Where) -> dict[str, str]:
    """Our column -> the frame's column name, matched case-insensitively."""
    by_lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    found: dict[str, str] = {}
    for ours in COLUMNS:
        wanted = (mapping[ours],) if ours in mapping else ALIASES[ours]
        match = next((by_lower[w.lower()] for w in wanted if w.lower() in by_lower), None)
        if match is not None:
            found[ours] = match
        elif ours in mapping:
            raise DataError(
                f"{where.path}: no column {mapping[ours]!r} (for {ours}); "
                f"the file has {', '.join(map(str, frame.columns))}"
            )
    missing = [c for c in ("timestamp", "price") if c not in found]
    if missing:
        raise DataError(
            f"{where.path}: missing column(s) {', '.join(missing)} (looked for "
            + "; ".join(f"{c}: {'/'.join(ALIASES[c])}" for c in missing)
            + f"); the file has {', '.join(map(str, frame.columns))}; map them with --columns"
        )
    return found


def _numbers(column: pd.Series[Any], what: str, where: _Where) -> npt.NDArray[np.float64]:
    import pandas as pd

    values: npt.NDArray[np.float64] = pd.to_numeric(column, errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where.at(i)}: {what} {column.iloc[i]!r} is not a finite number")
    return values


def _timestamps(
    column: pd.Series[Any],
    names: npt.NDArray[np.object_],
    where: _Where,
    timezone: str | None,
    calendar: Any,
) -> npt.NDArray[np.int64]:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = column
        if stamps.dt.tz is None:
            if timezone is None:
                raise DataError(
                    f"{where.path}: the timestamp column has no time zone: give one with "
                    "--timezone (America/New_York, UTC, ...)"
                )
            stamps = stamps.dt.tz_localize(timezone)
        return _checked_ns(stamps.dt.tz_convert("UTC"), column, where)
    text = column.astype(str).str.strip()
    dates = text.str.fullmatch(_DATE_ONLY.pattern)
    if dates.all():
        return _daily_stamps(text, where, calendar)
    if dates.any():
        i = int(np.flatnonzero(dates.to_numpy())[0])
        raise DataError(
            f"{where.at(i)}: {text.iloc[i]!r} is a date, but other rows have times: "
            "use one or the other"
        )
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=False)
    except (ValueError, TypeError):
        parsed = pd.Series([pd.NaT] * len(text))
    return _stamps_of(parsed, text, where, timezone)


def _stamps_of(
    parsed: pd.Series[Any], text: pd.Series[Any], where: _Where, timezone: str | None
) -> npt.NDArray[np.int64]:
    """Parsed times (tz-aware, naive, or mixed as objects) as UTC nanoseconds."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(parsed) and parsed.dt.tz is not None:
        return _checked_ns(parsed.dt.tz_convert("UTC"), text, where)
    if pd.api.types.is_datetime64_any_dtype(parsed):  # naive throughout
        if parsed.isna().any():
            _refuse_time(parsed, text, where)
        if timezone is None:
            raise DataError(
                f"{where.at(0)}: time stamp {text.iloc[0]!r} has no UTC offset: add one "
                "(Z or +00:00), or say which zone the file's times are in with --timezone"
            )
        return _checked_ns(parsed.dt.tz_localize(timezone).dt.tz_convert("UTC"), text, where)
    # Mixed offsets, or some with an offset and some without: row by row.
    stamps = np.empty(len(text), dtype=np.int64)
    for i, raw in enumerate(text):
        try:
            stamp = pd.Timestamp(raw)
        except (ValueError, TypeError):
            raise DataError(f"{where.at(i)}: {raw!r} is not a time stamp") from None
        if stamp is pd.NaT:
            raise DataError(f"{where.at(i)}: {raw!r} is not a time stamp")
        if stamp.tzinfo is None:
            if timezone is None:
                raise DataError(
                    f"{where.at(i)}: time stamp {raw!r} has no UTC offset: add one, "
                    "or give the file's zone with --timezone"
                )
            stamp = stamp.tz_localize(timezone)
        stamps[i] = stamp.tz_convert("UTC").value
    return stamps


def _refuse_time(parsed: pd.Series[Any], text: pd.Series[Any], where: _Where) -> None:
    i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
    raise DataError(f"{where.at(i)}: {text.iloc[i]!r} is not a time stamp")


def _checked_ns(
    stamps: pd.Series[Any], text: pd.Series[Any], where: _Where
) -> npt.NDArray[np.int64]:
    if stamps.isna().any():
        _refuse_time(stamps, text, where)
    values: npt.NDArray[np.int64] = stamps.dt.as_unit("ns").astype("int64").to_numpy()
    if (values <= 0).any():
        i = int(np.flatnonzero(values <= 0)[0])
        raise DataError(f"{where.at(i)}: {text.iloc[i]!r} is not after 1970")
    return values


def _daily_stamps(text: pd.Series[Any], where: _Where, calendar: Any) -> npt.NDArray[np.int64]:
    """Dates of daily bars -> a minute before each session's close (UTC), as the
    bundled data is stamped (client/sampledata.py)."""
    import pandas as pd

    if calendar is None:
        from server.bootstrap import load_calendar

        calendar = load_calendar()
    days = pd.to_datetime(text, errors="coerce", format="%Y-%m-%d")
    if days.isna().any():
        _refuse_time(days, text, where)
    unique = pd.DatetimeIndex(days.unique())
    first, last = calendar.first_session, calendar.last_session
    closes: dict[pd.Timestamp, int] = {}
    for day in unique:
        if first <= day <= last and calendar.is_session(day):
            closes[day] = int(calendar.session_close(day).value) - _NS_PER_MINUTE
    stamps = np.empty(len(text), dtype=np.int64)
    for i, day in enumerate(days):
        close = closes.get(day)
        if close is None:
            raise DataError(
                f"{where.at(i)}: {text.iloc[i]} is not a trading session of the NYSE "
                "calendar, so a daily bar cannot be placed in it"
            )
        stamps[i] = close
    return stamps


def _check_in_order(
    names: npt.NDArray[np.object_], stamps: npt.NDArray[np.int64], where: _Where
) -> None:
    """Each symbol's rows in strictly increasing time, in file order."""
    order = np.argsort(names, kind="stable")  # file order within each symbol
    grouped_names, grouped = names[order], stamps[order]
    same = grouped_names[1:] == grouped_names[:-1]
    bad = same & (grouped[1:] <= grouped[:-1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        before, row = int(order[k]), int(order[k + 1])
        how = "repeats the time of" if grouped[k + 1] == grouped[k] else "is older than"
        raise DataError(
            f"{where.at(row)}: {names[row]}'s time stamp {how} {where.unit} "
            f"{before + where.first_line}; each symbol's rows must be in increasing time"
        )
