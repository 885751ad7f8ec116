"""The strategy engine: runs every tick of a journaled batch through the active
strategies for its symbol, sizes their intents and publishes `SignalGenerated`.

This loop is the hot path. Per batch it does one dict write per symbol (last
price and tick time; per tick, in C, when symbols are mixed), one dict lookup
per symbol (who wants it) and, for each interested strategy, one call; no
allocation, logging, Decimal or I/O per tick unless a strategy asks to trade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.errors import NotFound
from domain.events import Envelope, SignalGenerated, StrategyStateChanged
from domain.market import MarketBatch
from domain.signals import TradeSignal
from engines.bus import Sequencer, TickLocator
from engines.market import MarketPrices
from engines.strategy.base import BaseStrategy, SignalIntent, StrategyStateStore
from engines.strategy.sizing import FractionOfEquitySizer


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    name: str
    active: bool
    symbols: list[str]
    parameters: dict[str, str]
    signals: int


class StrategyEngine:
    def __init__(
        self,
        bus: Sequencer,
        prices: MarketPrices,
        sizer: FractionOfEquitySizer,
        strategies: list[BaseStrategy],
    ) -> None:
        self._bus = bus
        self._prices = prices
        self._sizer = sizer
        self._states = StrategyStateStore()
        self._strategies = {s.name: s for s in strategies}
        self._active = set(self._strategies)
        self._signals = dict.fromkeys(self._strategies, 0)
        self._routes: dict[str, list[tuple[BaseStrategy, Any]]] = {}
        self._rebuild_routes()
        bus.subscribe(StrategyStateChanged, self.on_strategy_state_changed)

    # --- operator commands (run inside the sequencer) -----------------------------

    def set_active(self, name: str, active: bool, changed_by: str) -> StrategyInfo:
        if name not in self._strategies:
            known = ", ".join(sorted(self._strategies)) or "none"
            raise NotFound(f"no strategy named {name!r} (registered: {known})")
        if (name in self._active) != active:
            self._bus.publish(StrategyStateChanged(name, active, changed_by))
        return self.info(name)

    def on_strategy_state_changed(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, StrategyStateChanged)
        if event.active:
            self._active.add(event.name)
        else:
            self._active.discard(event.name)
        self._rebuild_routes()

    def info(self, name: str) -> StrategyInfo:
        s = self._strategies[name]
        return StrategyInfo(
            name,
            name in self._active,
            s.get_required_symbols(),
            s.parameters(),
            self._signals[name],
        )

    def list(self) -> list[StrategyInfo]:
        return [self.info(name) for name in sorted(self._strategies)]

    def _rebuild_routes(self) -> None:
        routes: dict[str, list[tuple[BaseStrategy, Any]]] = {}
        for name in sorted(self._active):
            strategy = self._strategies[name]
            for symbol in strategy.get_required_symbols():
                routes.setdefault(symbol, []).append(
                    (strategy, self._states.state_for(strategy, symbol))
                )
        self._routes = routes

    # --- the hot path ----------------------------------------------------------------

    def on_market_data(self, batch: MarketBatch, locate: TickLocator) -> None:
        """Two passes, same result as tick-by-tick:

        1. each strategy runs over its symbol's ticks in one call (strategies never
           see the portfolio, so they may run ahead within the batch);
        2. the crossings are replayed in tick order: last prices are brought up to
           the crossing's tick, the clock is moved to its time, and the signal is
           sized and published, so sizing and risk see the world as of that tick.

        The sequencer journaled (or staged) the batch before this runs; `locate`
        names the journal record of a tick, journaling staged ticks first.
        """
        symbols, prices, stamps = batch.symbols, batch.prices, batch.timestamps_ns
        self._bus.clock.observe(stamps[0])
        crossings: list[tuple[int, int, BaseStrategy, str, SignalIntent]] = []
        distinct = set(symbols)
        for symbol in sorted(distinct.intersection(self._routes)):
            if len(distinct) == 1:
                positions: list[int] | range = range(len(symbols))
                own_prices: Sequence[float] = prices
                own_stamps: Sequence[int] = stamps
            else:
                positions = [k for k, s in enumerate(symbols) if s == symbol]
                own_prices = [prices[k] for k in positions]
                own_stamps = [stamps[k] for k in positions]
            for rank, (strategy, state) in enumerate(self._routes[symbol]):
                for k, intent in strategy.process_market_events(
                    symbol, own_prices, own_stamps, state
                ):
                    crossings.append((positions[k], rank, strategy, symbol, intent))
        only = symbols[0] if len(distinct) == 1 else None
        done = 0
        for index, _rank, strategy, symbol, intent in sorted(crossings, key=_tick_order):
            self._bring_up(batch, only, done, index + 1)
            done = index + 1
            self._bus.clock.observe(stamps[index])
            record_seq, tick_index = locate(index)
            self._emit(strategy, intent, symbol, prices[index], record_seq, tick_index)
        if done < len(symbols):
            self._bring_up(batch, only, done, len(symbols))
        self._bus.clock.observe(stamps[-1])

    def _bring_up(self, batch: MarketBatch, only: str | None, start: int, end: int) -> None:
        """Last prices and tick times as of tick `end - 1`, from tick `start` on: one
        write per dict when the batch has `only` one symbol, else one (C-level)
        update over the ticks in between."""
        prices, stamps = batch.prices, batch.timestamps_ns
        if only is not None:
            self._prices.last[only] = prices[end - 1]
            self._prices.last_ns[only] = stamps[end - 1]
            return
        symbols = batch.symbols[start:end]
        self._prices.last.update(zip(symbols, prices[start:end], strict=True))
        self._prices.last_ns.update(zip(symbols, stamps[start:end], strict=True))

    def _emit(
        self,
        strategy: BaseStrategy,
        intent: SignalIntent,
        symbol: str,
        price: float,
        journal_seq: int,
        tick_index: int,
    ) -> None:
        reference = Decimal(repr(price))
        allow_short = bool(getattr(strategy, "allow_short", False))
        quantity = self._sizer.quantity(symbol, intent.side, reference, allow_short)
        if quantity <= 0:
            return  # long-only and flat: a sell signal has nothing to sell
        self._signals[strategy.name] += 1
        signal = TradeSignal(
            signal_id=f"s{journal_seq}.{tick_index}.{strategy.name}",
            source=f"strategy:{strategy.name}",
            symbol=symbol,
            side=intent.side,
            quantity=quantity,
            reference_price=reference,
            confidence=intent.confidence,
            rationale=intent.rationale,
            created_at=self._bus.clock.now(),
        )
        self._bus.publish(SignalGenerated(signal, tick_index), caused_by=journal_seq)


def _tick_order(crossing: tuple[int, int, BaseStrategy, str, SignalIntent]) -> tuple[int, int]:
    return crossing[0], crossing[1]
