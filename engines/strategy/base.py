"""What a strategy is: pure code from (tick, its own state) to an optional intent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from domain.orders import Side

# A batch's columns: Python sequences (MarketBatch's lists) or numpy arrays
# (columnar input); a strategy that vectorises converts them once per batch.
Prices: TypeAlias = Sequence[float] | npt.NDArray[np.floating[Any]]
Stamps: TypeAlias = Sequence[int] | npt.NDArray[np.integer[Any]]


@dataclass(frozen=True, slots=True)
class SignalIntent:
    """What a strategy wants, before sizing: direction, conviction and why."""

    side: Side
    confidence: float
    rationale: str


class BaseStrategy(ABC):
    """A strategy is stateless between ticks: everything it remembers lives in the
    per-symbol state object the engine hands it (made by `new_state`), so the
    engine can reset, snapshot or replay it, and one instance serves every symbol.

    `process_market_event` is on the hot path: it takes plain scalars rather
    than an event object so that a tick costs no allocation, and it must do O(1)
    work per tick.
    """

    name: str

    @abstractmethod
    def get_required_symbols(self) -> list[str]:
        """The symbols whose ticks this strategy wants."""

    @abstractmethod
    def new_state(self, symbol: str) -> Any:
        """A fresh state object for one symbol."""

    @abstractmethod
    def process_market_event(
        self, symbol: str, price: float, timestamp_ns: int, state: Any
    ) -> SignalIntent | None:
        """Update `state` with one tick; return an intent when the strategy wants to trade."""

    def process_market_events(
        self,
        symbol: str,
        prices: Prices,
        timestamps_ns: Stamps,
        state: Any,
    ) -> list[tuple[int, SignalIntent]]:
        """Run a batch of one symbol's ticks, oldest first; return (position in the
        batch, intent) for each tick that produced one. Override it when a loop
        with local variables, or numpy over the whole batch, beats one call per
        tick (the engine always calls this); the answers must be those of
        `process_market_event` tick by tick, whatever the split into batches.
        Strategies never see the portfolio, so running ahead within a batch is safe."""
        crossings = []
        for k, (price, ts) in enumerate(zip(prices, timestamps_ns, strict=True)):
            intent = self.process_market_event(symbol, price, ts, state)
            if intent is not None:
                crossings.append((k, intent))
        return crossings

    @abstractmethod
    def parameters(self) -> dict[str, str]:
        """The configuration, for ListStrategies and the audit log."""


class StrategyStateStore:
    """Per-(strategy, symbol) state, owned by the engine, handed to the strategy."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], Any] = {}

    def state_for(self, strategy: BaseStrategy, symbol: str) -> Any:
        key = (strategy.name, symbol)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = strategy.new_state(symbol)
        return state
