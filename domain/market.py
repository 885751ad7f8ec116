"""Market data as the core sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarketBatch:
    """A batch of ticks or bars, stored column by column.

    Columns rather than one object per tick keep the hot path free of per-tick
    allocations: the edge builds four lists, the strategy engine zips them.
    `timestamps_ns` holds nanoseconds since the Unix epoch (UTC); 0 means the
    sender gave no timestamp and the tick is stamped with the core's clock.
    """

    symbols: list[str]
    prices: list[float]
    volumes: list[float]
    timestamps_ns: list[int]

    def __len__(self) -> int:
        return len(self.symbols)
