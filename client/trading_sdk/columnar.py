"""Columnar market data: `StreamMarketDataRequest`s of `SymbolSeries` built from
numpy arrays (`array_requests`) or a pandas DataFrame (`frame_requests`), one
chunk of ticks per message.

Everything is checked and converted when these functions are called, so a
mistake raises here, in the caller's thread, and never in the middle of a
stream; the messages themselves are built lazily, one at a time, when gRPC
pulls the next one. gRPC's flow control is the back-pressure: a busy service
slows the generator down, and only a message or two is in memory at once.

A chunk of rows becomes one message whose series are the chunk's *runs* of
consecutive rows of one symbol, so the message lists exactly the chunk's ticks
in the frame's order: the service turns it into the very batch (and journal
record) the same rows sent as `MarketEvent`s would give. A frame of one symbol,
or one sorted by symbol, gives one series per symbol per message; a frame
interleaving symbols tick by tick gives short series (still exact, just less
compact). A message is also kept under gRPC's default 4 MiB: a chunk of many
short series that would not fit is sent as two or more messages.

pandas is imported only by `frame_requests`, numpy only with this module (the
SDK imports it when a columnar method is first called).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

try:
    import numpy as np
    import numpy.typing as npt
except ModuleNotFoundError as missing:  # an optional dependency of the SDK
    raise ModuleNotFoundError(
        f"columnar market data needs {missing.name}: pip install 'trading-sdk[columnar]'",
        name=missing.name,
    ) from missing

from trading_sdk.client import DEFAULT_CHUNK, MAX_TICKS_PER_MESSAGE
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FRAME_COLUMNS", "array_requests", "frame_requests", "timestamps_ns"]

FRAME_COLUMNS: Final = ("symbol", "timestamp", "price", "volume")
"""The columns `frame_requests` reads, matched case-insensitively."""

# A message stays under gRPC's default limit (4 MiB), with room for the rest of it.
_MESSAGE_BYTES: Final = 4 * 1024 * 1024 - 64 * 1024
# At most, per tick: a varint time (10 bytes), a price and a volume (8 each).
_TICK_BYTES: Final = 26
# At most, per series: its own tag and length, the symbol's, and three arrays'.
_SERIES_BYTES: Final = 4 * 6

Times = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def timestamps_ns(values: npt.ArrayLike, what: str = "timestamps") -> Times:
    """Integer nanoseconds since the Unix epoch (UTC) from integers (taken as they
    are) or datetime64 of any unit (naive, read as UTC); NaT becomes 0, which the
    service reads as "no timestamp". Raises TypeError for anything else (floats
    would lose nanoseconds) and ValueError for a time nanoseconds cannot hold."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind == "M":
        missing = np.isnat(array)
        nanos = array.astype("datetime64[ns]")
        # numpy wraps around silently on overflow: a round trip tells.
        if not np.array_equal(nanos[~missing].astype(array.dtype), array[~missing]):
            raise ValueError(
                f"{what} holds a time that nanoseconds since the epoch cannot "
                "(years 1678 to 2262, at most nanosecond precision)"
            )
        return np.where(missing, 0, nanos.view(np.int64))
    if array.dtype.kind == "i" or (
        array.dtype.kind == "u" and int(array.max()) <= np.iinfo(np.int64).max
    ):
        return array.astype(np.int64)
    raise TypeError(
        f"{what} must be integer nanoseconds since the epoch or datetime64, got dtype "
        f"{array.dtype} (convert text or datetime objects with pandas.to_datetime(..., utc=True))"
    )


def _floats(values: npt.ArrayLike, what: str) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    return array


def _chunk_size(chunk: int) -> int:
    if not 1 <= chunk <= MAX_TICKS_PER_MESSAGE:
        raise ValueError(
            f"chunk must be 1 to {MAX_TICKS_PER_MESSAGE} ticks (the most one message may "
            f"carry), got {chunk}"
        )
    return chunk


def array_requests(
    symbol: str,
    timestamps: npt.ArrayLike,
    prices: npt.ArrayLike,
    volumes: npt.ArrayLike | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[pb.StreamMarketDataRequest]:
    """Messages of one `SymbolSeries` each, `chunk` ticks at a time, from arrays of
    equal length: times (see `timestamps_ns`), prices and volumes (None: no
    volumes, which the service reads as 0)."""
    size = _chunk_size(chunk)
    times = timestamps_ns(timestamps, "timestamps_ns")
    values = _floats(prices, "prices")
    amounts = None if volumes is None else _floats(volumes, "volumes")
    lengths = {"timestamps_ns": len(times), "prices": len(values)}
    if amounts is not None:
        lengths["volumes"] = len(amounts)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise ValueError(f"the arrays must have one value per tick, got {shown}")
    return _array_messages(symbol, times, values, amounts, size)


def _array_messages(
    symbol: str, times: Times, prices: Floats, volumes: Floats | None, size: int
) -> Iterator[pb.StreamMarketDataRequest]:
    for start in range(0, len(times), size):
        end = start + size
        yield pb.StreamMarketDataRequest(
            series=[_series(symbol, times, prices, volumes, start, end)]
        )


def _series(
    symbol: str, times: Times, prices: Floats, volumes: Floats | None, start: int, end: int
) -> market_pb2.SymbolSeries:
    series = market_pb2.SymbolSeries(
        symbol=symbol, timestamps_ns=times[start:end], prices=prices[start:end]
    )
    if volumes is not None:
        series.volumes.extend(volumes[start:end])
    return series


def frame_requests(
    frame: pd.DataFrame,
    *,
    columns: Mapping[str, Hashable] | None = None,
    symbol: str | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[pb.StreamMarketDataRequest]:
    """Messages of the frame's rows, in the frame's order, `chunk` rows at a time
    (the module docstring says how a chunk becomes series).

    Columns, found by name in any letter case (`columns` maps a role to another
    column, e.g. ``{"price": "Close"}``):

    * ``symbol``: the ticker; or, for a frame of one symbol, pass `symbol`;
    * ``timestamp``: datetime64 (tz-aware, converted to UTC; naive, read as
      UTC) or integer nanoseconds since the epoch; without such a column, a
      DatetimeIndex; NaT means no timestamp (the service's "now", refused under
      its event clock);
    * ``price``: numbers; a missing one (NaN) is refused by the service, which
      names it;
    * ``volume``: numbers, optional (without the column every volume is 0).

    Under the service's event clock each symbol's rows must be in time order.
    """
    import pandas as pd

    size = _chunk_size(chunk)
    found = _frame_columns(frame, columns or {})
    if symbol is not None and found["symbol"] is not None:
        raise ValueError(
            f"the frame has a symbol column ({found['symbol']!r}) and symbol={symbol!r} "
            "was given too: pass one"
        )
    if found["price"] is None:
        raise ValueError(_missing("price", frame))
    if found["timestamp"] is not None:
        times = _frame_times(pd, frame[found["timestamp"]], "the timestamp column")
    elif isinstance(frame.index, pd.DatetimeIndex):
        times = _frame_times(pd, frame.index, "the frame's DatetimeIndex")
    else:
        raise ValueError(_missing("timestamp", frame) + ", and its index is no DatetimeIndex")
    if symbol is not None:
        codes = np.zeros(len(frame), dtype=np.int64)
        names = [symbol]
    elif found["symbol"] is not None:
        codes_found, uniques = pd.factorize(frame[found["symbol"]])
        codes = np.asarray(codes_found, dtype=np.int64)
        # A missing symbol (code -1) is sent empty, and the service names it.
        names = [str(name) for name in uniques] + [""]
    else:
        raise ValueError(_missing("symbol", frame) + "; for a frame of one symbol pass symbol=")
    prices = _frame_floats(frame[found["price"]])
    volumes = None if found["volume"] is None else _frame_floats(frame[found["volume"]])
    return _frame_messages(names, codes, times, prices, volumes, size)


def _frame_columns(frame: pd.DataFrame, columns: Mapping[str, Hashable]) -> dict[str, Any]:
    """The frame's column for each role in FRAME_COLUMNS, or None."""
    unknown = set(columns) - set(FRAME_COLUMNS)
    if unknown:
        raise ValueError(
            f"columns names {sorted(unknown)}: the roles are {', '.join(FRAME_COLUMNS)}"
        )
    by_name: dict[str, list[Hashable]] = {}
    for label in frame.columns:
        by_name.setdefault(str(label).lower(), []).append(label)
    found: dict[str, Any] = {}
    for role in FRAME_COLUMNS:
        if role in columns:
            if columns[role] not in frame.columns:
                raise ValueError(f"columns maps {role} to {columns[role]!r}: no such column")
            found[role] = columns[role]
            continue
        matches = by_name.get(role, [])
        if len(matches) > 1:
            raise ValueError(
                f"the frame has {len(matches)} columns named {role} in some letter case "
                f"({matches}): say which with columns={{{role!r}: ...}}"
            )
        found[role] = matches[0] if matches else None
    return found


def _missing(role: str, frame: pd.DataFrame) -> str:
    return (
        f"the frame has no {role} column (columns: {list(frame.columns)}); name it with "
        f"columns={{{role!r}: ...}}"
    )


def _frame_times(pd: Any, values: Any, what: str) -> Times:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        # tz_convert(None): to UTC, then naive.
        values = values.dt.tz_convert(None) if hasattr(values, "dt") else values.tz_convert(None)
    return timestamps_ns(values.to_numpy(), what)


def _frame_floats(values: Any) -> Floats:
    # A nullable column's NA becomes NaN, which the service refuses by name.
    array: Floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return array


def _frame_messages(
    names: list[str],
    codes: npt.NDArray[np.int64],
    times: Times,
    prices: Floats,
    volumes: Floats | None,
    size: int,
) -> Iterator[pb.StreamMarketDataRequest]:
    for start in range(0, len(codes), size):
        end = min(start + size, len(codes))
        changes = np.flatnonzero(np.diff(codes[start:end])) + start + 1
        series: list[market_pb2.SymbolSeries] = []
        budget = _MESSAGE_BYTES
        for low, high in pairwise([start, *changes.tolist(), end]):
            name = names[codes[low]]
            cost = _SERIES_BYTES + len(name.encode("utf-8", "replace")) + _TICK_BYTES * (high - low)
            if series and cost > budget:
                yield pb.StreamMarketDataRequest(series=series)
                series, budget = [], _MESSAGE_BYTES
            series.append(_series(name, times, prices, volumes, low, high))
            budget -= cost
        yield pb.StreamMarketDataRequest(series=series)
