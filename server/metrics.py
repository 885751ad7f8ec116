"""The service's Prometheus metrics, on an endpoint of their own (TRADING_METRICS_LISTEN).

Three sources, chosen so that the hot path pays nothing it did not pay before:

* **Read at scrape time** (`_CoreCollector`): the counters and state the engines
  keep anyway (ticks, messages, risk totals, orders submitted, trading state,
  broker and audit health, the advisor's totals), read under the sequencer
  (`bus.reading()`) so that a scrape never sees half an input.
* **Counted from bus events** (`_Flow`): breakdowns nobody kept (signals by source
  and side, rejections by reason code, orders by final status, the two latency
  histograms). The handlers run under the sequencer, so each is O(1), allocates
  nothing per tick and does no I/O; none is subscribed to market data.
* **Told by others**: the interceptor chain's per-RPC observer (`call_started`,
  `call_ended`, `call_refused`) and the SQL audit store's commit timer.

Every metric lives in the instance's own CollectorRegistry, never the global one,
so several services in one process (tests) each export only their own. Label
values come from fixed sets (enums, registered strategies and methods) or are
capped, so cardinality is bounded whatever the traffic; the one exception is
`trading_state_info`, one series whose `changed_by` and `reason` labels change only
when the trading state does (truncated to LABEL_TEXT_LIMIT characters).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from domain.events import Envelope, OrderUpdated, RiskDecisionMade, SignalGenerated
from domain.orders import OrderStatus, Side
from domain.risk import TradingCause, TradingState
from engines.clock import datetime_to_ns
from engines.risk.rules import session_table
from trading_sdk.v1 import trading_service_pb2

if TYPE_CHECKING:
    from audit.records import EventStore
    from engines.core import Core

RPC_KINDS: Final = ("unary", "client_stream", "server_stream", "bidi_stream")
REFUSALS: Final = (
    "not_allowed_ip",
    "unauthenticated",
    "permission_denied",
    "rate_limited",
    "stream_limit",
)
UNKNOWN: Final = "unknown"
OTHER: Final = "other"
SIGNAL_SOURCES: Final = ("strategy", "idea", "manual", "flatten")
FINAL_STATUSES: Final = tuple(s for s in OrderStatus if s.is_terminal)
IDEA_OUTCOMES: Final = ("approved", "rejected", "expired")
MAX_REASON_CODES: Final = 64
"""Distinct risk reason codes kept as label values; more collapse into OTHER (the
codes are constants of the rules, about twenty today: the cap only guards against a
rule that one day puts text in its code)."""
LABEL_TEXT_LIMIT: Final = 80

# Upper bounds in seconds. Tick to order: the engines take microseconds, so what
# shows is the feed's delay and the wait for the sequencer; submit to fill: a
# market order at a real broker takes a fraction of a second, a limit order can
# rest for hours.
TICK_TO_ORDER_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SUBMIT_TO_FILL_BUCKETS: Final = (
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
)  # fmt: skip
COMMIT_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def served_methods() -> frozenset[str]:
    """Every method path the server serves: the trading service, health, reflection."""
    services = (
        trading_service_pb2.DESCRIPTOR.services_by_name["TradingService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    )
    return frozenset(f"/{s.full_name}/{m.name}" for s in services for m in s.methods)


def rpc_labels(method: str, known: frozenset[str]) -> tuple[str, str]:
    """(grpc_service, grpc_method) of a full method path; ("unknown", "unknown") for a
    path the server does not serve, so a client probing random names adds no series."""
    if method not in known:
        return UNKNOWN, UNKNOWN
    service, _, name = method[1:].partition("/")
    return service, name


def market_open(calendar: Any, wall_ns: int) -> bool:
    """Whether `wall_ns` (ns since the epoch, UTC) is inside a regular session of
    `calendar`, exactly as the risk gate's market-hours rule decides it."""
    now = datetime.fromtimestamp(wall_ns / 1e9, UTC)
    bounds = session_table(calendar).get(now.date(), ())
    # (open, close) or (open, break start, break end, close): inside an odd interval.
    return sum(1 for edge in bounds if edge <= now) % 2 == 1


@runtime_checkable
class _Backlogged(Protocol):
    """A store that says how many rows wait for commit, and how many may."""

    @property
    def pending_rows(self) -> int: ...

    @property
    def max_pending(self) -> int: ...


@runtime_checkable
class _Timed(Protocol):
    """A store that reports each commit's rows and duration (the SQL store)."""

    def add_commit_timer(self, timer: Callable[[int, float], None]) -> None: ...


class _Flow:
    """Breakdowns counted from bus events. Every handler runs under the sequencer:
    O(1), no I/O. The counts are read back under the sequencer too (a scrape)."""

    def __init__(self, core: Core, registry: CollectorRegistry) -> None:
        self._prices = core.prices
        self._strategies = frozenset(s.name for s in core.strategies.list())
        self.signals: dict[tuple[str, str, str], int] = {
            ("strategy", name, side.value): 0 for name in self._strategies for side in Side
        }
        self.rejection_codes: dict[str, int] = {}
        self.finished: dict[str, int] = {s.value: 0 for s in FINAL_STATUSES}
        # The approved strategy decision whose order is about to be recorded, with the
        # time of the tick that caused its signal (the order follows depth first,
        # within the same input, so one slot is enough).
        self._placing: tuple[str, int] | None = None
        self.tick_to_order = Histogram(
            "trading_tick_to_order_seconds",
            "From the market event that made a strategy signal to its order's intent being "
            "recorded, in the core's clock (0 under the event clock)",
            buckets=TICK_TO_ORDER_BUCKETS,
            registry=registry,
        )
        self.submit_to_fill = Histogram(
            "trading_submit_to_fill_seconds",
            "From an order's intent being recorded (it is sent as soon as it is durable) to "
            "its last fill, in the core's clock; orders placed outside the service excluded",
            buckets=SUBMIT_TO_FILL_BUCKETS,
            registry=registry,
        )
        core.bus.subscribe(SignalGenerated, self.on_signal)
        core.bus.subscribe(RiskDecisionMade, self.on_decision)
        core.bus.subscribe(OrderUpdated, self.on_order)

    def on_signal(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, SignalGenerated)
        kind, _, name = event.signal.source.partition(":")
        if kind == "strategy":
            strategy = name if name in self._strategies else OTHER
        else:
            # An idea's id, a person's or a flatten's principal: not labels.
            kind, strategy = (kind if kind in SIGNAL_SOURCES else OTHER), ""
        key = (kind, strategy, event.signal.side.value)
        self.signals[key] = self.signals.get(key, 0) + 1

    def on_decision(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, RiskDecisionMade)
        decision = event.decision
        if decision.approved:
            signal = decision.signal
            if signal.source.startswith("strategy:"):
                # Brought up to the very tick of the crossing before the signal was sized.
                tick_ns = self._prices.last_ns.get(signal.symbol, 0)
                self._placing = (decision.decision_id, tick_ns) if tick_ns > 0 else None
            return
        codes = self.rejection_codes
        for verdict in decision.verdicts:
            if not verdict.passed:
                code = verdict.code
                if code not in codes and len(codes) >= MAX_REASON_CODES:
                    code = OTHER
                codes[code] = codes.get(code, 0) + 1

    def on_order(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, OrderUpdated)
        order = event.order
        status = order.status
        if status is OrderStatus.NEW and len(order.history) == 1:
            placing, self._placing = self._placing, None
            if placing is not None and placing[0] == order.decision_id:
                waited = datetime_to_ns(order.created_at) - placing[1]
                self.tick_to_order.observe(max(0, waited) / 1e9)
        elif status.is_terminal:
            # A terminal status has no way out: each order is counted once, here.
            self.finished[status.value] += 1
            if status is OrderStatus.FILLED and not order.external:
                took = datetime_to_ns(order.history[-1].at) - datetime_to_ns(order.created_at)
                self.submit_to_fill.observe(max(0, took) / 1e9)


def _text(value: str) -> str:
    """Free text fit for a label: one line, at most LABEL_TEXT_LIMIT characters."""
    return " ".join(value.split())[:LABEL_TEXT_LIMIT]


class _CoreCollector:
    """Reads the engines' own counters and state when Prometheus scrapes."""

    def __init__(
        self,
        core: Core,
        store: EventStore,
        flow: _Flow,
        calendar: Any,
        wall_ns: Callable[[], int],
    ) -> None:
        self._core = core
        self._store = store
        self._flow = flow
        self._calendar = calendar
        self._wall_ns = wall_ns

    def collect(self) -> Iterator[Metric]:
        core, flow = self._core, self._flow
        # Copied under the sequencer, then turned into families without it.
        with core.bus.reading():
            ticks, messages = core.stats.market_events, core.stats.market_messages
            last_tick_ns = max(core.prices.last_ns.values(), default=0)
            strategies = [(s.name, s.active) for s in core.strategies.list()]
            risk = core.risk
            approvals, rejections = risk.stats.approvals, risk.stats.rejections
            trading = risk.trading
            causes = {cause: status.state for cause, status in risk.causes.items()}
            execution = core.execution
            submitted = execution.stats.submitted
            open_orders = len(execution.orders(open_only=True))
            health = execution.broker_health()  # the adapter's own view: no I/O
            broker = execution.broker_info()
            advisor = core.advisor.counters()
            signals = dict(flow.signals)
            codes = dict(flow.rejection_codes)
            finished = dict(flow.finished)

        yield _counter("trading_market_ticks", "Market ticks accepted by the core", ticks)
        yield _counter(
            "trading_market_messages", "Market-data messages accepted by the core", messages
        )
        last_tick = GaugeMetricFamily(
            "trading_last_tick_timestamp_seconds",
            "Timestamp of the newest market tick accepted (no sample before the first)",
        )
        if last_tick_ns:
            last_tick.add_metric([], last_tick_ns / 1e9)
        yield last_tick
        yield GaugeMetricFamily(
            "trading_market_open",
            "1 while the exchange calendar has a regular session open by wall time, else 0",
            value=float(market_open(self._calendar, self._wall_ns())),
        )

        family = CounterMetricFamily(
            "trading_signals",
            "Trade signals, by source (strategy, idea, manual, flatten), strategy and side",
            labels=["source", "strategy", "side"],
        )
        for (source, strategy, side), n in sorted(signals.items()):
            family.add_metric([source, strategy, side], n)
        yield family
        active = GaugeMetricFamily(
            "trading_strategy_active", "1 while the strategy is active", labels=["strategy"]
        )
        for name, on in strategies:
            active.add_metric([name], float(on))
        yield active

        family = CounterMetricFamily(
            "trading_risk_decisions", "Risk gate decisions, by outcome", labels=["outcome"]
        )
        family.add_metric(["approved"], approvals)
        family.add_metric(["rejected"], rejections)
        yield family
        family = CounterMetricFamily(
            "trading_risk_rejection_reasons",
            "Failing rule verdicts of rejected decisions, by reason code (a decision refused "
            "by two rules counts once under each code)",
            labels=["code"],
        )
        for code, n in sorted(codes.items()):
            family.add_metric([code], n)
        yield family
        yield GaugeMetricFamily(
            "trading_state",
            "Effective trading state: 0 ACTIVE, 1 REDUCING (only reducing trades), 2 HALTED",
            value=trading.state.strictness,
        )
        per_cause = GaugeMetricFamily(
            "trading_state_cause",
            "Each cause's own setting: 0 ACTIVE (cleared), 1 REDUCING, 2 HALTED",
            labels=["cause"],
        )
        for cause in TradingCause:
            per_cause.add_metric([cause.value], causes.get(cause, TradingState.ACTIVE).strictness)
        yield per_cause
        info = InfoMetricFamily(
            "trading_state_change",
            "The change that set the effective trading state: who, why (truncated), which cause",
        )
        info.add_metric(
            [],
            {
                "state": trading.state.value,
                "cause": trading.cause.value,
                "changed_by": _text(trading.changed_by),
                "reason": _text(trading.reason),
            },
        )
        yield info

        yield _counter(
            "trading_orders_submitted", "Orders handed to the broker (resubmissions too)", submitted
        )
        family = CounterMetricFamily(
            "trading_orders_finished",
            "Orders that reached a final status, by that status (fill rate: FILLED over all)",
            labels=["status"],
        )
        for status, n in finished.items():
            family.add_metric([status], n)
        yield family
        yield GaugeMetricFamily("trading_orders_open", "Orders not yet final", value=open_orders)

        name = broker.name
        for metric, doc, value in (
            ("trading_broker_up", "1 while the broker answers requests", health.reachable),
            (
                "trading_broker_stream_connected",
                "1 while the broker's event stream is connected (1 for one without a stream)",
                health.stream_connected,
            ),
            (
                "trading_broker_healthy",
                "1 while the broker answers, its stream is up and no order is stuck unresolved",
                health.healthy,
            ),
        ):
            gauge = GaugeMetricFamily(metric, doc, labels=["broker"])
            gauge.add_metric([name], float(value))
            yield gauge
        yield InfoMetricFamily(
            "trading_broker",
            "The broker the service trades on",
            value={
                "broker": name,
                "endpoint": _text(broker.endpoint),
                "live": str(broker.live).lower(),
            },
        )

        store = self._store
        yield GaugeMetricFamily(
            "trading_audit_healthy",
            "1 while the audit store commits; 0 halts trading",
            value=float(store.healthy),
        )
        yield GaugeMetricFamily(
            "trading_audit_last_seq",
            "Seq of the last audit record appended",
            value=store.last_seq(),
        )
        if isinstance(store, _Backlogged):
            yield GaugeMetricFamily(
                "trading_audit_backlog_rows",
                "Audit rows appended and not yet committed",
                value=store.pending_rows,
            )
            yield GaugeMetricFamily(
                "trading_audit_backlog_limit_rows",
                "Backlog at which new inputs are refused (AUDIT_BACKLOG_FULL)",
                value=store.max_pending,
            )

        yield _counter(
            "trading_advisor_analyses", "Analyses the advisor answered", advisor.analyses
        )
        yield _counter(
            "trading_advisor_ideas_proposed", "Trade ideas proposed for approval", advisor.proposed
        )
        family = CounterMetricFamily(
            "trading_advisor_ideas_finished",
            "Trade ideas decided or expired, by outcome (approval rate: approved over all)",
            labels=["outcome"],
        )
        for outcome, n in zip(
            IDEA_OUTCOMES, (advisor.approved, advisor.rejected, advisor.expired), strict=True
        ):
            family.add_metric([outcome], n)
        yield family
        yield _counter(
            "trading_advisor_ideas_dropped",
            "Ideas the analyst wrote that failed validation and were never proposed",
            advisor.dropped,
        )
        yield _counter(
            "trading_advisor_unavailable",
            "Analyses refused because the analyst (the AI model) could not be reached",
            advisor.unavailable,
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class ServiceMetrics:
    """The Prometheus metrics of one service, its registry and its HTTP endpoint.

    Also the interceptor chain's counter of RPCs (server/interceptors/rpc_metrics.py
    hands it each call): the grpc_server_* names and labels of go-grpc-prometheus."""

    def __init__(
        self,
        core: Core,
        store: EventStore,
        calendar: Any,
        *,
        methods: Iterable[str] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.registry = CollectorRegistry()
        self._methods = frozenset(methods) if methods is not None else served_methods()
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self._started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server",
            labels,
            registry=self.registry,
        )
        self._handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code",
            [*labels, "grpc_code"],
            registry=self.registry,
        )
        # go-grpc-prometheus's default buckets: Prometheus's own defaults.
        self._handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its final status on the server",
            labels,
            registry=self.registry,
        )
        self._refused = Counter(
            "trading_rpc_refused_total",
            "RPCs the interceptor chain refused before the service saw them, by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in (*REFUSALS, OTHER):
            self._refused.labels(reason)  # every reason exported from the start, at 0
        self._commit = Histogram(
            "trading_audit_commit_seconds",
            "Duration of each audit-store transaction that committed (connecting included)",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self._committed_rows = Counter(
            "trading_audit_committed_rows_total",
            "Audit rows committed to the database",
            registry=self.registry,
        )
        if isinstance(store, _Timed):
            store.add_commit_timer(self._on_commit)
        with core.bus.reading():  # subscribed between inputs, never during one
            flow = _Flow(core, self.registry)
        self.registry.register(_CoreCollector(core, store, flow, calendar, wall_ns))

    # --- the interceptor chain's observer (any thread) -------------------------------

    def call_started(self, method: str, kind: str) -> None:
        service, name = rpc_labels(method, self._methods)
        self._started.labels(_kind(kind), service, name).inc()

    def call_ended(self, method: str, kind: str, code: grpc.StatusCode, duration_s: float) -> None:
        service, name = rpc_labels(method, self._methods)
        kind = _kind(kind)
        self._handled.labels(kind, service, name, code.name).inc()
        self._handling.labels(kind, service, name).observe(max(0.0, duration_s))

    def call_refused(self, reason: str) -> None:
        self._refused.labels(reason if reason in REFUSALS else OTHER).inc()

    # --- the audit store's commit timer (its writer thread) ----------------------------

    def _on_commit(self, rows: int, seconds: float) -> None:
        self._commit.observe(seconds)
        self._committed_rows.inc(rows)

    # --- the endpoint --------------------------------------------------------------------

    def serve(self, host: str, port: int) -> int:
        """Serve GET /metrics on host:port (0: a free port) from a daemon thread; the
        port bound. OSError if it cannot bind."""
        if self._http is not None:
            raise RuntimeError("the metrics endpoint is already serving")
        self._http = start_http_server(port, host, registry=self.registry)
        return self._http[0].server_port

    @property
    def port(self) -> int | None:
        """The port the endpoint is bound to; None when it is not serving."""
        return self._http[0].server_port if self._http is not None else None

    def exposition(self) -> bytes:
        """What a scrape would get now, in the text format."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop the endpoint (idempotent): answers in flight finish, the port is freed."""
        http, self._http = self._http, None
        if http is not None:
            server, thread = http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _kind(kind: str) -> str:
    return kind if kind in RPC_KINDS else UNKNOWN
