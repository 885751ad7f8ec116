"""The composition root: settings in, a running service out. Nothing else in the
project reads the environment or opens a database."""

from __future__ import annotations

import heapq
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

import exchange_calendars
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from audit.anchor import AnchorWriter, open_anchor_writer
from audit.codec import record_to_envelope
from audit.records import AuditQuery, EventStore
from brokers.base import Broker
from brokers.paper.adapter import PaperBroker, RecordedFill
from brokers.paper.config import Commission, PaperBrokerConfig
from domain.errors import Unavailable
from domain.events import (
    BrokerReconciled,
    BrokerSwept,
    Envelope,
    IdeaUpdated,
    MarketDataReceived,
    OrderUpdated,
    RiskDecisionMade,
    RiskLimitsChanged,
    ServiceStarted,
    StrategyStateChanged,
    TradingStateChanged,
)
from domain.orders import Order
from domain.risk import RiskDecision, TradingState
from engines.advisor.analyst import Analyst
from engines.advisor.engine import AdvisorConfig, AdvisorEngine
from engines.advisor.offline import OfflineAnalyst
from engines.bus import Sequencer
from engines.clock import clock_from_name, datetime_to_ns
from engines.core import Core
from engines.execution.engine import ExecutionEngine
from engines.market import MarketPrices
from engines.portfolio import Portfolio
from engines.risk.config import load_risk_config
from engines.risk.engine import RiskEngine
from engines.risk.rules import default_rules
from engines.strategy.engine import StrategyEngine
from engines.strategy.ma_crossover import MovingAverageCrossoverStrategy
from engines.strategy.sizing import FractionOfEquitySizer
from server.auth import ROLES, Authenticator, Principal
from server.broker_factory import LEASE_KEY, build_broker
from server.broker_supervisor import BrokerSupervisor, parse_order_timeouts
from server.event_stream import EventHub
from server.interceptors.access_log import AccessLog, open_access_log
from server.interceptors.allow_list import AllowList, parse_networks
from server.interceptors.call import CallObserver
from server.interceptors.chain import CallChain
from server.interceptors.rate_limit import RateLimiter
from server.interceptors.rpc_metrics import RpcMetrics
from server.metrics import ServiceMetrics
from server.servicer import TradingServicer
from server.settings import Settings, parse_host_port
from server.store_outage import StoreOutageGuard
from server.stream_limits import Capacity, ConnectionLimits, StreamLimiter
from server.validation import NS, MarketBatchReader
from trading_sdk.v1 import trading_service_pb2, trading_service_pb2_grpc

if TYPE_CHECKING:
    from audit.lease import Lease

log = logging.getLogger(__name__)

SERVICE_NAME = trading_service_pb2.DESCRIPTOR.services_by_name["TradingService"].full_name
CALENDAR_START = "1990-01-01"


@cache
def load_calendar() -> Any:
    """The NYSE calendar from exchange-calendars, from 1990 to a year ahead (built
    once per process: it takes about a second, and nothing changes it)."""
    return exchange_calendars.get_calendar("XNYS", start=CALENDAR_START)


def open_store(database_url: str) -> EventStore:
    from audit.sql_store import SqlAlchemyEventStore

    return SqlAlchemyEventStore(database_url)


def build_core(
    settings: Settings,
    store: EventStore,
    calendar: Any,
    broker: Broker | None = None,
    *,
    replaying: bool = False,
    paper_config: PaperBrokerConfig | None = None,
) -> Core:
    """The deterministic core on `store`, with the paper broker unless one is given,
    its broker started. `replaying`: a core that reads its broker's answers from
    the journal it is fed (a log made with a real broker) and never sends
    anything (engines/replay.py); no broker is ever given to it.
    `paper_config`: the simulator's habits (tests), starting cash and slippage
    from the settings."""
    recorded = _recorded(store)
    bus = Sequencer(store, clock_from_name(settings.trading_clock))
    prices = MarketPrices()
    paper: PaperBroker | None = None
    if broker is None and not replaying:
        config = replace(
            paper_config or PaperBrokerConfig(),
            starting_cash=settings.paper_starting_cash,
            slippage_bps=settings.paper_slippage_bps,
            commission=Commission(
                settings.paper_commission_per_share,
                settings.paper_commission_bps,
                settings.paper_commission_minimum,
            ),
        )
        paper = broker = PaperBroker(prices.last_price, config, fills=_recorded_fills(recorded))
    # The account starts where the simulator starts (a real broker's comes from the
    # start-up sweep); then a restart takes back every fill and sweep the log holds
    # (`_restore`), so the core's view is the same as before the restart, and the
    # same as a replay's that runs through it.
    portfolio = Portfolio(prices, cash=settings.paper_starting_cash if paper else Decimal(0))
    execution = ExecutionEngine(
        bus,
        None if replaying else broker,
        portfolio,
        lookup_attempts=settings.trading_broker_lookup_attempts,
    )
    bus.subscribe(OrderUpdated, portfolio.on_order_updated)
    strategy = MovingAverageCrossoverStrategy(
        symbols=settings.trading_strategy_symbols,
        short_period=settings.trading_strategy_short_period,
        long_period=settings.trading_strategy_long_period,
    )
    strategies = StrategyEngine(
        bus, prices, FractionOfEquitySizer(portfolio, settings.trading_sizing_fraction), [strategy]
    )
    risk = RiskEngine(
        bus,
        portfolio,
        prices,
        default_rules(calendar),
        load_risk_config(settings.trading_risk_config),
        place=execution.place,
    )
    advisor = AdvisorEngine(
        bus, prices, portfolio, risk, strategies, build_analyst(settings), advisor_config(settings)
    )
    core = Core(bus, prices, portfolio, strategies, risk, execution, advisor)
    _resume_clock(bus, store)
    _restore(core, recorded)
    _restore_feed_sequences(bus, store)
    risk.restore_counts(_recorded_decisions(store))
    if not replaying:
        execution.start()
    return core


def build_analyst(settings: Settings) -> Analyst:
    """OpenAI when OPENAI_API_KEY is set; the offline rule-based analyst otherwise."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    if not key:
        return OfflineAnalyst()
    # Imported only when asked for: the SDK takes about a second to import, which
    # every start-up and every backtest would otherwise pay.
    from engines.advisor.openai_analyst import openai_analyst

    return openai_analyst(
        key,
        settings.openai_base_url,
        settings.openai_model,
        settings.openai_timeout_seconds,
        settings.openai_max_retries,
    )


def advisor_config(settings: Settings) -> AdvisorConfig:
    return AdvisorConfig(
        idea_ttl=timedelta(seconds=settings.advisor_idea_ttl_seconds),
        price_band_pct=settings.advisor_price_band_pct,
    )


def _resume_clock(bus: Sequencer, store: EventStore) -> None:
    """Time never runs backwards across a restart: the event clock starts where the
    log ends (the wall clock ignores this), not at the epoch. The end of the log is
    its last record or the last tick journaled, whichever is later; ticks are
    looked for among the last thousand records only, to keep start-up quick."""
    last = store.last_seq()
    for record in store.query(AuditQuery(from_seq=max(1, last - 1000))):
        bus.clock.observe(datetime_to_ns(record.recorded_at))
        if record.event_type == "MarketDataReceived":
            event = record_to_envelope(record).event
            assert isinstance(event, MarketDataReceived)
            bus.clock.observe(max(event.batch.timestamps_ns))


def _recorded(store: EventStore) -> list[Envelope]:
    """The events a restart takes back, oldest first: operator decisions (trading
    state, strategy activation), orders, and the advisor's ideas with the risk
    decisions they led to."""
    kinds = {
        "TradingStateChanged",
        "StrategyStateChanged",
        "OrderUpdated",
        "IdeaUpdated",
        "RiskLimitsChanged",
        "ServiceStarted",
        "BrokerSwept",
        "BrokerReconciled",
    }
    ideas_decided = AuditQuery(event_types=frozenset({"RiskDecisionMade"}))
    records = heapq.merge(
        store.query(AuditQuery(event_types=frozenset(kinds))),
        (r for r in store.query(ideas_decided) if r.idea_id is not None),
        key=lambda r: r.seq,
    )
    return [record_to_envelope(record) for record in records]


def _recorded_decisions(store: EventStore) -> Iterator[RiskDecision]:
    """Every risk decision in the log, so the rules' counts cover all of it."""
    for record in store.query(AuditQuery(event_types=frozenset({"RiskDecisionMade"}))):
        event = record_to_envelope(record).event
        assert isinstance(event, RiskDecisionMade)
        yield event.decision


def _restore_feed_sequences(bus: Sequencer, store: EventStore) -> None:
    """The last message sequence accepted per feed id, from every market-data record,
    so a feed resending after a restart has what was already accepted dropped. Only
    the feed fields of each payload are read (its ticks are not decoded); a record
    of a chunked message that continues is skipped: the message counts once its last
    record is journaled."""
    for record in store.query(AuditQuery(event_types=frozenset({"MarketDataReceived"}))):
        if '"feed_id":""' in record.payload:  # canonical JSON: no feed named
            continue
        fields = json.loads(record.payload)
        sequences = fields.get("message_sequences")
        if fields.get("feed_id") and sequences and not fields.get("continues"):
            bus.restore_feed(fields["feed_id"], max(sequences))


def _recorded_fills(recorded: list[Envelope]) -> list[RecordedFill]:
    return [
        RecordedFill(
            o.client_order_id,
            o.symbol,
            o.side,
            change.fill_quantity,
            change.fill_price,
            change.fill_fee,
        )
        for e in recorded
        if isinstance(e.event, OrderUpdated)
        and (change := (o := e.event.order).history[-1]).fill_quantity
    ]


def _restore(core: Core, recorded: list[Envelope]) -> None:
    """Hand the recorded events to the engines that keep their state (nothing is
    re-journaled): the orders to execution, and every order change and applied
    sweep to the portfolio, in order, as it saw them live (its fills, its orders
    in flight, the broker's positions and cash at each sweep)."""
    orders: dict[str, tuple[Order, int]] = {}
    swept: dict[int, BrokerSwept] = {}
    for envelope in recorded:
        match envelope.event:
            case TradingStateChanged():
                core.risk.on_trading_state_changed(envelope)
            case RiskLimitsChanged():
                core.risk.on_limits_changed(envelope)
            case StrategyStateChanged():
                core.strategies.on_strategy_state_changed(envelope)
            case IdeaUpdated():
                core.advisor.on_idea_updated(envelope)
            case RiskDecisionMade():
                core.advisor.on_risk_decision(envelope)
            case OrderUpdated(order=order):
                core.advisor.on_order_updated(envelope)
                core.portfolio.on_order_updated(envelope)
                orders[order.order_id] = (order, envelope.seq)
            case ServiceStarted():
                core.execution.on_service_started(envelope)
            case BrokerSwept() as taken:
                swept[envelope.seq] = taken
            case BrokerReconciled(reconciliation=found):
                applied = swept.pop(envelope.caused_by, None)
                if applied is not None and found.positions_applied:
                    snapshot = applied.snapshot
                    core.portfolio.reconcile(snapshot.account, snapshot.positions)
    core.execution.restore(list(orders.values()))


@dataclass
class Service:
    """A running service: the gRPC server and what it was built from."""

    server: grpc.Server
    port: int
    core: Core
    store: EventStore
    hub: EventHub
    health: health.HealthServicer
    outage_guard: StoreOutageGuard
    auth: Authenticator
    anchors: AnchorWriter | None = None
    supervisor: BrokerSupervisor | None = None
    lease: Lease | None = None
    access_log: AccessLog | None = None
    metrics: ServiceMetrics | None = None  # TRADING_METRICS_LISTEN; serving from create_server

    @property
    def metrics_port(self) -> int | None:
        """The port of the Prometheus endpoint; None when it is off."""
        return self.metrics.port if self.metrics is not None else None

    def stop(self, grace: float | None = 2.0) -> None:
        """Shut down in order. Health says NOT_SERVING for every service first (and
        stays so), subscriptions end, and the server takes no new call; calls in
        flight get `grace` seconds to finish (a stream its current message, and its
        summary if the client ends it), then are cancelled (None: at once). Then what
        the core still holds is journaled and the audit store commits every queued
        row and closes, and the anchors publish the final head. Raises Unavailable
        if the store had to leave rows uncommitted."""
        self.health.enter_graceful_shutdown()
        self.hub.close()
        started = time.monotonic()
        self.server.stop(grace).wait()
        took = time.monotonic() - started
        if grace is not None and grace > 0:
            if took < grace:
                log.info("shutdown: every call finished (%.2f s)", took)
            else:
                log.warning("shutdown: grace of %g s over, calls still open were cancelled", grace)
        if self.metrics is not None:
            self.metrics.close()  # before the store closes: a scrape reads it
        self.outage_guard.close()
        if self.supervisor is not None:
            self.supervisor.close()
        self.core.execution.close()
        try:
            # Waits for an input still running on a cancelled call's thread, and
            # journals market data the sequencer has staged but not yet appended.
            self.core.bus.flush()
        except Unavailable as exc:
            log.error("shutdown: cannot flush the audit log: %s", exc)
        self.store.close()
        if self.anchors is not None:
            self.anchors.close()  # the head, as the store was closed with it
        if self.lease is not None:
            self.lease.release()
        log.info("shutdown: audit log flushed and closed at seq %d", self.store.last_seq())
        if self.access_log is not None:
            self.access_log.close()


def create_server(
    settings: Settings,
    address: str,
    *,
    token: str | None,
    store: EventStore | None = None,
    calendar: Any = None,
) -> Service:
    """Build everything and bind `address` (port 0 picks a free one), over TLS when the
    settings give a certificate (server/tls.py); not started yet.
    `token` is the operator's (TRADING_API_KEY); TRADING_TOKENS_FILE may add others."""
    # A bad tokens file stops the start, before anything is opened.
    auth = Authenticator(
        {token: Principal("operator", ROLES, "operator")} if token else {},
        tokens_file=settings.trading_tokens_file,
        allow_insecure=settings.trading_tokens_file_allow_insecure,
    )
    # Imported here, not with the module: a backtest builds the core from this module
    # (build_core) and needs neither SQL, the lease nor TLS, which cost a third of
    # `tradectl backtest`'s start.
    from audit.lease import acquire_lease, default_holder
    from server.tls import server_transport

    # So do unusable TLS files and plaintext on a non-loopback address (server/tls.py).
    transport = server_transport(settings, address)
    order_timeouts = parse_order_timeouts(settings.trading_order_timeouts)
    broker = build_broker(settings)  # BrokerConfigError: the service does not start
    lease: Lease | None = None
    if store is None:
        # Before the log is opened: a second instance never touches it.
        lease = acquire_lease(settings.database_url, LEASE_KEY, default_holder())
        store = open_store(settings.database_url)
    anchors = open_anchor_writer(
        settings.trading_anchor_file,
        settings.trading_anchor_key.get_secret_value() if settings.trading_anchor_key else None,
        store,
        every_records=settings.trading_anchor_every_records,
        every_seconds=settings.trading_anchor_every_seconds,
    )
    calendar = calendar if calendar is not None else load_calendar()
    core = build_core(settings, store, calendar, broker)
    # Counting from here on, so the start-up sweep's order updates count too.
    metrics = ServiceMetrics(core, store, calendar) if settings.trading_metrics_listen else None
    if lease is not None:
        start_trading(core, lease.epoch, lease.holder)
    else:
        start_trading(core, 0, default_holder())
    supervisor = BrokerSupervisor(
        core,
        sweep_every_s=settings.trading_broker_sweep_seconds,
        order_timeouts=order_timeouts,
        lease=lease,
    )
    supervisor.check()  # the start-up reconciliation: halted (and retried) if it cannot run
    hub = EventHub(store)
    reader = MarketBatchReader(
        require_timestamp=settings.trading_clock == "event",
        max_future_skew_ns=settings.max_future_skew_seconds * NS,
    )
    # Capacity for everyone (DESIGN.md invariant 8): see server/stream_limits.py.
    capacity = Capacity(
        settings.trading_max_streams,
        settings.trading_max_streams_per_principal,
        settings.trading_unary_workers,
    )
    connections = ConnectionLimits(
        max_connections=settings.trading_max_connections,
        keepalive_time_s=settings.trading_keepalive_time_seconds,
        keepalive_timeout_s=settings.trading_keepalive_timeout_seconds,
        idle_s=settings.trading_connection_idle_seconds,
        handshake_timeout_s=settings.trading_handshake_timeout_seconds,
        max_message_bytes=settings.trading_max_message_bytes,
    )
    access_log_logger = open_access_log(settings.trading_access_log)
    access_log = AccessLog(access_log_logger) if access_log_logger is not None else None
    observers: list[CallObserver] = [access_log] if access_log is not None else []
    if metrics is not None:
        observers.append(RpcMetrics(metrics))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=capacity.worker_threads, thread_name_prefix="rpc"),
        interceptors=[_call_chain(settings, auth, StreamLimiter(capacity), observers)],
        options=connections.grpc_options(),
        maximum_concurrent_rpcs=capacity.max_concurrent_rpcs,
    )
    trading_service_pb2_grpc.add_TradingServiceServicer_to_server(
        TradingServicer(core, store, hub, auth, reader, anchors), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    _report_health(core, health_servicer)
    guard = StoreOutageGuard(core, store)
    port = transport.bind(server, address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    if metrics is not None and settings.trading_metrics_listen:
        host, wanted = parse_host_port(settings.trading_metrics_listen, "TRADING_METRICS_LISTEN")
        log.info("metrics: Prometheus endpoint on %s port %d", host, metrics.serve(host, wanted))
    supervisor.start()
    return Service(
        server,
        port,
        core,
        store,
        hub,
        health_servicer,
        guard,
        auth,
        anchors,
        supervisor,
        lease,
        access_log,
        metrics,
    )


def _call_chain(
    settings: Settings,
    auth: Authenticator,
    streams: StreamLimiter,
    observers: list[CallObserver],
) -> CallChain:
    allowed = settings.trading_allowed_clients
    rate = settings.trading_rate_limit_per_second
    return CallChain(
        auth,
        streams,
        allow_list=AllowList(parse_networks(allowed)) if allowed else None,
        rate_limit=RateLimiter(rate, settings.trading_rate_limit_burst) if rate > 0 else None,
        observers=observers,
    )


def start_trading(core: Core, lease_epoch: int = 0, instance: str = "") -> None:
    """Journal that the service started on this log (creating the log's id on its
    first start), and say loudly, once, what it trades on."""
    execution = core.execution
    info = execution.broker_info()
    log_id = execution.log_id or secrets.token_hex(6)

    def started() -> None:
        core.bus.publish(ServiceStarted(log_id, info, instance, lease_epoch))

    core.bus.process(started)
    try:
        core.bus.flush()  # the start is on record before anything is served
    except Unavailable as exc:  # the store's guard halts trading until it is back
        log.error("start-up: the audit store does not commit: %s", exc)
    kind = "LIVE (real money)" if info.live else "paper"
    log.warning(
        "TRADING ON %s: broker %s, account %s, endpoint %s (log %s, lease epoch %d)",
        kind.upper(),
        info.name,
        info.account or "?",
        info.endpoint,
        log_id,
        lease_epoch,
    )


def _report_health(core: Core, health_servicer: health.HealthServicer) -> None:
    """The process is SERVING while up; the trading service is NOT_SERVING while halted."""
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    health_servicer.set("", serving)

    def update(_: Envelope | None = None) -> None:
        state = not_serving if core.risk.state is TradingState.HALTED else serving
        health_servicer.set(SERVICE_NAME, state)

    core.bus.subscribe(TradingStateChanged, update)
    update()


def resolve_token(settings: Settings) -> str | None:
    """TRADING_API_KEY; else none if a tokens file names the principals; else a fresh
    token printed once so the operator can use it."""
    if settings.trading_api_key is not None and settings.trading_api_key.get_secret_value():
        return settings.trading_api_key.get_secret_value()
    if settings.trading_tokens_file is not None:
        return None
    token = secrets.token_urlsafe(32)
    print(
        f"TRADING_API_KEY is not set; this run's token is:\n  {token}\n"
        "Send it as 'authorization: Bearer <token>'.",
        file=sys.stderr,
        flush=True,
    )
    return token
