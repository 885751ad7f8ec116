"""Run a backtest: the service's own core, in this process, over a data file.

The core is built by the composition root the server uses (`build_core`), under
the event clock, with the paper broker (slippage and commission as configured),
the real risk gate with its configured limits (TRADING_RISK_CONFIG, or the file
given), the crossover with the periods given, and an audit log: in memory unless
a database is named, which must then be empty (the backtest's log is its own; it
never writes into a service's). The data goes in as the service's market-data
messages of `batch_size` ticks, so what is journaled, decided and filled is what
the service would do with the same messages; the report is then computed from
what the log recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from audit.memory_store import InMemoryEventStore
from audit.records import EventStore, VerifyResult
from brokers.paper.config import Commission
from client.backtest.curve import EquityCurve, equity_curve
from client.backtest.data import MarketData
from client.backtest.metrics import Summary, summarise
from client.backtest.trades import Fill, RoundTrip, round_trips
from domain.events import Envelope, OrderUpdated, RiskDecisionMade, SignalGenerated
from domain.market import MarketBatch
from domain.orders import Side
from engines.clock import datetime_to_ns

Progress = Callable[[int, int], None]
"""Called with (ticks done, ticks in all) after each message."""

SOURCE = "backtest"


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    short_period: int = 20
    long_period: int = 50
    starting_cash: Decimal = Decimal(100_000)
    slippage_bps: Decimal = Decimal(5)
    commission: Commission = field(default_factory=Commission)
    sizing_fraction: Decimal | None = None
    """The share of equity one entry buys; None: the service's setting."""
    risk_config: Path | None = None
    """A TOML file of risk limits; None: the service's (TRADING_RISK_CONFIG, or defaults)."""
    database_url: str | None = None
    """Where the audit log goes; None: in memory. Must be an empty database."""
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.short_period < self.long_period:
            raise ValueError(
                f"need 1 <= short < long periods, not {self.short_period}/{self.long_period}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, not {self.batch_size}")
        if not self.starting_cash > 0:
            raise ValueError(f"starting cash must be above 0, not {self.starting_cash}")

    def describe(self) -> dict[str, str]:
        return {
            "short_period": str(self.short_period),
            "long_period": str(self.long_period),
            "starting_cash": str(self.starting_cash),
            "slippage_bps": str(self.slippage_bps),
            "commission_per_share": str(self.commission.per_share),
            "commission_bps": str(self.commission.bps),
            "commission_minimum": str(self.commission.minimum),
            "sizing_fraction": "service default"
            if self.sizing_fraction is None
            else str(self.sizing_fraction),
            "risk_config": str(self.risk_config or "service default"),
            "audit_log": self.database_url or "in memory",
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """A strategy signal and the risk gate's verdict on it."""

    at_ns: int
    symbol: str
    side: Side
    price: Decimal
    approved: bool
    codes: tuple[str, ...]  # the failing rules' codes when refused


@dataclass(frozen=True, slots=True)
class BacktestResult:
    config: BacktestConfig
    data: MarketData
    fills: list[Fill]
    decisions: list[Decision]
    trades: list[RoundTrip]
    curve: EquityCurve
    summary: Summary
    audit: VerifyResult
    core_equity: Decimal
    """The core's own equity at the end (the curve's last point recomputes it)."""


def run_backtest(
    data: MarketData,
    config: BacktestConfig | None = None,
    *,
    progress: Progress | None = None,
    calendar: Any = None,
) -> BacktestResult:
    """Run `data` through a fresh core and report on what it did."""
    config = config or BacktestConfig()
    store = _open_store(config.database_url)
    try:
        core = _build(config, data, store, calendar)
        signals, decisions, fills = _run(core, data, config.batch_size, progress)
        core_equity = core.portfolio.equity()
        audit = store.verify()
    finally:
        store.close()
    curve = equity_curve(data, fills, config.starting_cash)
    marks = {s: Decimal(repr(float(data.of(s)[1][-1]))) for s in data.symbol_names}
    trips = round_trips(fills, marks)
    refused = (d.codes for d in decisions if not d.approved)
    summary = summarise(curve, fills, trips, signals, refused, config.starting_cash)
    return BacktestResult(config, data, fills, decisions, trips, curve, summary, audit, core_equity)


def _open_store(database_url: str | None) -> EventStore:
    if database_url is None:
        return InMemoryEventStore()
    from audit.sql_store import SqlAlchemyEventStore

    store = SqlAlchemyEventStore(database_url)
    if store.last_seq():
        store.close()
        raise ValueError(
            f"{database_url} already holds an audit log: a backtest writes one of its own, "
            "into an empty database"
        )
    return store


def _build(config: BacktestConfig, data: MarketData, store: EventStore, calendar: Any) -> Any:
    from server.bootstrap import build_core, load_calendar
    from server.settings import Settings

    update: dict[str, Any] = {
        "trading_clock": "event",
        "trading_broker": "paper",
        "trading_strategy_symbols": data.symbol_names,
        "trading_strategy_short_period": config.short_period,
        "trading_strategy_long_period": config.long_period,
        "paper_starting_cash": config.starting_cash,
        "paper_slippage_bps": config.slippage_bps,
        "paper_commission_per_share": config.commission.per_share,
        "paper_commission_bps": config.commission.bps,
        "paper_commission_minimum": config.commission.minimum,
    }
    if config.risk_config is not None:
        update["trading_risk_config"] = config.risk_config
    if config.sizing_fraction is not None:
        update["trading_sizing_fraction"] = config.sizing_fraction
    settings = Settings().model_copy(update=update)
    return build_core(settings, store, calendar if calendar is not None else load_calendar())


def _run(
    core: Any, data: MarketData, batch_size: int, progress: Progress | None
) -> tuple[int, list[Decision], list[Fill]]:
    signals = 0
    decisions: list[Decision] = []
    fills: list[Fill] = []
    total = len(data)
    for start in range(0, total, batch_size):
        end = min(start + batch_size, total)
        batch = MarketBatch(
            data.symbols[start:end].tolist(),
            data.prices[start:end].tolist(),
            data.volumes[start:end].tolist(),
            data.timestamps_ns[start:end].tolist(),
        )
        signals += _collect(core.ingest(batch, SOURCE), decisions, fills)
        if progress is not None:
            progress(end, total)
    signals += _collect(core.bus.process(lambda: None)[1], decisions, fills)  # journal the rest
    core.bus.flush()
    return signals, decisions, fills


def _collect(caused: Iterable[Envelope], decisions: list[Decision], fills: list[Fill]) -> int:
    """Add what `caused` holds to `decisions` and `fills`; return its signals."""
    signals = 0
    for envelope in caused:
        match envelope.event:
            case SignalGenerated():
                signals += 1
            case RiskDecisionMade(decision=d):
                s = d.signal
                codes = tuple(v.code for v in d.rejections)
                at = datetime_to_ns(envelope.at)
                decisions.append(
                    Decision(at, s.symbol, s.side, s.reference_price, d.approved, codes)
                )
            case OrderUpdated(order=o) if (change := o.history[-1]).fill_quantity:
                fills.append(
                    Fill(
                        datetime_to_ns(envelope.at),
                        o.symbol,
                        o.side,
                        change.fill_quantity,
                        change.fill_price,
                        change.fill_fee,
                        o.order_id,
                    )
                )
    return signals
