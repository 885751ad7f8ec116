"""The Prometheus endpoint (server/metrics.py): a real service with
TRADING_METRICS_LISTEN on port 0, a known scenario driven through the SDK, and
/metrics scraped over HTTP and checked value by value; the latency histograms on
the core with a clock the test moves; the per-RPC labels' bound."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.paper.adapter import PaperBroker
from domain.events import SignalGenerated
from domain.orders import ManualOrder, OrderStatus, OrderType, Side
from domain.signals import TradeSignal
from engines.clock import datetime_to_ns
from server.bootstrap import load_calendar
from server.metrics import REFUSALS, ServiceMetrics, market_open, rpc_labels, served_methods
from server.settings import Settings, parse_host_port
from tests.conftest import RunningService, StartService
from tests.core.harness import make_harness
from tests.ops.conftest import metrics_port as _port
from tests.ops.prom import Scrape, parse, scrape
from tests.support.aapl import RISING, SYMBOL
from tests.support.calls import failure_of
from tests.support.market import SESSION_START, minute_ticks, sideways, ticks, v_reversal
from tests.support.polling import wait_for
from trading_sdk.client import TradingClient
from trading_sdk.v1 import advisor_pb2

GET_STATUS = {"grpc_service": "trading.v1.TradingService", "grpc_method": "GetStatus"}
STREAM = {"grpc_service": "trading.v1.TradingService", "grpc_method": "StreamMarketData"}
NS = 1_000_000_000
_M = timedelta(minutes=1)


def _round_trip() -> list[float]:
    """SPY: a fall then a rise (the crossover buys), then a fall (it sells what it holds)."""
    up = v_reversal() + v_reversal(down=0, up=0)
    return up + [round(up[-1] * (1 - 0.006) ** k, 4) for k in range(1, 90)]


def test_a_scrape_after_a_known_scenario_counts_what_happened(monitored: RunningService) -> None:
    client, port = monitored.client, _port(monitored)
    before = scrape(port)

    # Day 1: SPY buys and sells (two messages); day 2: QQQ's noise is refused for
    # confidence; then trading is halted and IWM's crossing on day 3 is refused.
    spy = _round_trip()
    first = client.stream_market_data(
        [minute_ticks("SPY", spy[:200]), minute_ticks("SPY", spy[200:], SESSION_START + 200 * _M)]
    )
    day2, day3 = SESSION_START + timedelta(days=1), SESSION_START + timedelta(days=2)
    noise = client.stream_market_data([minute_ticks("QQQ", sideways(), day2)])
    client.deactivate_risk("metrics scenario")
    iwm = v_reversal()
    halted = client.stream_market_data([minute_ticks("IWM", iwm, day3)])
    manual = client.submit_order("SPY", "buy", 1)
    assert first.orders == 2 and noise.orders == 0 and noise.signals > 0
    assert (halted.signals, halted.orders) == (1, 0)
    assert not manual.decision.approved
    statuses = 5
    for _ in range(statuses):
        client.get_status()
    with TradingClient(monitored.target, "not-the-token") as stranger:
        refused = failure_of(stranger.get_status)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED

    after = scrape(port)
    # Ingestion: every tick and message sent.
    assert after.value("trading_market_ticks_total") == len(spy) + len(sideways()) + len(iwm)
    assert after.value("trading_market_messages_total") == 4
    last_tick = datetime_to_ns(day3 + (len(iwm) - 1) * _M) / NS
    assert after.value("trading_last_tick_timestamp_seconds") == last_tick
    # Signals by source, strategy and side.
    strategy = {"source": "strategy", "strategy": "ma_crossover"}
    assert after.value("trading_signals_total", side="BUY", **strategy) == 1 + noise.signals + 1
    assert after.value("trading_signals_total", side="SELL", **strategy) == 1
    assert after.value("trading_signals_total", source="manual", strategy="", side="BUY") == 1
    # Risk decisions by outcome, and by reason code exactly as the gate recorded them.
    assert after.value("trading_risk_decisions_total", outcome="approved") == 2
    assert after.value("trading_risk_decisions_total", outcome="rejected") == noise.signals + 2
    recorded = client.get_risk_status(recent_decisions=1000).recent_decisions
    codes = Counter(v.code for d in recorded for v in d.verdicts if not v.passed)
    assert codes["CONFIDENCE_BELOW_MINIMUM"] == noise.signals
    assert codes["RISK_ENGINE_DEACTIVATED"] == 2  # IWM's signal and the manual order
    exported = {
        s.labels["code"]: s.value for s in after.select("trading_risk_rejection_reasons_total")
    }
    assert exported == codes
    # Orders: both filled, in the core's clock no time from tick to order or to fill
    # (the event clock, and the paper broker fills a market order within the input).
    finished = {s.labels["status"]: s.value for s in after.select("trading_orders_finished_total")}
    assert finished == {"FILLED": 2, "CANCELLED": 0, "REJECTED": 0, "EXPIRED": 0}
    assert after.value("trading_orders_submitted_total") == 2
    assert after.value("trading_orders_open") == 0
    for histogram in ("trading_tick_to_order_seconds", "trading_submit_to_fill_seconds"):
        assert after.value(f"{histogram}_count") == 2
        assert after.value(f"{histogram}_sum") == 0
    # The trading state after the halt, and who set it and why.
    assert after.value("trading_state") == 2
    assert after.value("trading_state_cause", cause="OPERATOR") == 2
    assert after.value("trading_state_cause", cause="BROKER") == 0
    [info] = after.select("trading_state_change_info")
    assert info.labels == {
        "state": "HALTED",
        "cause": "OPERATOR",
        "changed_by": "operator",
        "reason": "metrics scenario",
    }
    assert before.value("trading_state") == 0
    # The paper broker, healthy.
    for name in ("trading_broker_up", "trading_broker_stream_connected", "trading_broker_healthy"):
        assert after.value(name, broker="paper") == 1
    # RPCs: the GetStatus calls made here, one refused, the three streams.
    handled_ok = after.value("grpc_server_handled_total", grpc_code="OK", **GET_STATUS)
    assert handled_ok - before.total("grpc_server_handled_total", grpc_code="OK", **GET_STATUS) == (
        statuses
    )
    assert after.value("grpc_server_handled_total", grpc_code="UNAUTHENTICATED", **GET_STATUS) == 1
    assert after.value("trading_rpc_refused_total", reason="unauthenticated") == 1
    assert after.value("trading_rpc_refused_total", reason="rate_limited") == 0
    assert after.value("grpc_server_started_total", grpc_type="unary", **GET_STATUS) == (
        after.total("grpc_server_handled_total", **GET_STATUS)
    )
    assert after.value("grpc_server_handling_seconds_count", grpc_type="unary", **GET_STATUS) == (
        after.total("grpc_server_handled_total", **GET_STATUS)
    )
    assert (
        after.value(
            "grpc_server_handled_total", grpc_type="client_stream", grpc_code="OK", **STREAM
        )
        == 3
    )
    # The market is open by wall time exactly when the calendar says so.
    assert after.value("trading_market_open") in _open_around_now()


def test_the_audit_store_reports_its_commits_backlog_and_health(
    monitored: RunningService,
) -> None:
    monitored.client.stream_market_data([minute_ticks("SPY", v_reversal())])
    monitored.client.deactivate_risk("flushes the log")  # an operator action is durable
    last_seq = monitored.client.verify_audit().last_seq
    port = _port(monitored)
    scrapes: list[Scrape] = []

    def committed() -> bool:
        # Every row appended so far committed (a background sweep may append more).
        now = scrape(port)
        scrapes.append(now)
        appended = now.value("trading_audit_last_seq")
        return now.value("trading_audit_committed_rows_total") == appended >= last_seq

    wait_for(committed, "every audit row of this run committed")
    after = scrapes[-1]
    assert after.value("trading_audit_healthy") == 1
    assert after.value("trading_audit_backlog_rows") == 0
    assert after.value("trading_audit_backlog_limit_rows") == 100_000
    commits = after.value("trading_audit_commit_seconds_count")
    # Group commit: usually far fewer transactions than rows.
    assert 1 <= commits <= after.value("trading_audit_last_seq")
    assert after.value("trading_audit_commit_seconds_sum") > 0


def test_the_advisor_counts_ideas_proposed_approved_and_rejected(
    start_service: StartService,
) -> None:
    running = start_service(openai_api_key=None, trading_metrics_listen="127.0.0.1:0")
    client = running.client
    client.stream_market_data([ticks(SYMBOL, RISING)])
    first = client.analyze([SYMBOL]).ideas[0].idea_id
    second = client.analyze([SYMBOL]).ideas[0].idea_id
    approved = client.decide_idea(first, advisor_pb2.IDEA_DECISION_APPROVE, "ok").idea
    client.decide_idea(second, advisor_pb2.IDEA_DECISION_REJECT, "one is enough")
    assert approved.risk_decision.approved

    after = scrape(_port(running))

    assert after.value("trading_advisor_analyses_total") == 2
    assert after.value("trading_advisor_ideas_proposed_total") == 2
    outcomes = {
        s.labels["outcome"]: s.value for s in after.select("trading_advisor_ideas_finished_total")
    }
    assert outcomes == {"approved": 1, "rejected": 1, "expired": 0}
    assert after.value("trading_signals_total", source="idea", strategy="", side="BUY") == 1
    assert after.value("trading_orders_finished_total", status="FILLED") == 1
    status = client.get_status().advisor
    assert (status.ideas_proposed, status.ideas_approved, status.ideas_rejected) == (2, 1, 1)


def test_metrics_are_off_by_default_and_stop_frees_the_port(
    start_service: StartService, monitored: RunningService, tmp_path: Path
) -> None:
    plain = start_service(database_url=f"sqlite:///{tmp_path / 'plain.db'}")
    assert plain.service.metrics is None and plain.service.metrics_port is None
    assert Settings().trading_metrics_listen is None

    port = _port(monitored)
    scrape(port)
    monitored.stop()

    assert monitored.service.metrics_port is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_two_services_in_one_process_export_only_their_own(
    start_service: StartService, monitored: RunningService, tmp_path: Path
) -> None:
    other = start_service(
        trading_metrics_listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'other.db'}"
    )
    monitored.client.stream_market_data([minute_ticks("SPY", v_reversal())])

    assert scrape(_port(monitored)).value("trading_market_ticks_total") == len(v_reversal())
    assert scrape(_port(other)).value("trading_market_ticks_total") == 0


# --- the latency histograms, with a clock the test moves ---------------------------


def test_tick_to_order_and_submit_to_fill_measure_the_core_clock(calendar: Any) -> None:
    harness = make_harness(calendar)
    core = harness.core
    metrics = ServiceMetrics(core, harness.store, calendar)
    signal = TradeSignal(
        "t1", "strategy:ma_crossover", "SPY", Side.BUY, Decimal(10), Decimal(100), 0.9, "test",
        core.bus.clock.now(),
    )  # fmt: skip

    def crossing_two_seconds_ago() -> None:
        core.prices.last["SPY"] = 100.0
        core.prices.last_ns["SPY"] = core.bus.clock.now_ns() - 2 * NS
        core.bus.publish(SignalGenerated(signal))

    core.bus.process(crossing_two_seconds_ago)  # a market order: filled within the input
    limit = ManualOrder("SPY", Side.BUY, Decimal(5), OrderType.LIMIT, Decimal(99))
    decision, order = core.submit_order(limit, "alice")
    assert decision.approved and order is not None and order.status is OrderStatus.ACCEPTED
    harness.at(SESSION_START + timedelta(seconds=30))
    broker = core.execution._broker
    assert isinstance(broker, PaperBroker)
    broker.fill_resting(order.client_order_id)

    exported = parse(metrics.exposition().decode())

    assert exported.value("trading_tick_to_order_seconds_count") == 1  # the manual order: not
    assert exported.value("trading_tick_to_order_seconds_sum") == 2.0
    assert exported.value("trading_tick_to_order_seconds_bucket", le="1.0") == 0
    assert exported.value("trading_tick_to_order_seconds_bucket", le="2.5") == 1
    assert exported.value("trading_submit_to_fill_seconds_count") == 2
    assert exported.value("trading_submit_to_fill_seconds_sum") == 30.0
    assert exported.value("trading_submit_to_fill_seconds_bucket", le="0.01") == 1
    assert exported.value("trading_submit_to_fill_seconds_bucket", le="30.0") == 2
    assert exported.value("trading_orders_finished_total", status="FILLED") == 2
    assert exported.value("trading_signals_total", source="manual", strategy="", side="BUY") == 1


# --- bounded labels ----------------------------------------------------------------


@given(st.text(max_size=80), st.text(max_size=20))
def test_any_method_or_kind_maps_to_a_bounded_label_set(method: str, kind: str) -> None:
    metrics = _bare_metrics()
    known = served_methods()
    metrics.call_started(method, kind)
    metrics.call_ended(method, kind, grpc.StatusCode.UNIMPLEMENTED, 0.001)

    service, name = rpc_labels(method, known)
    allowed = {rpc_labels(m, known) for m in known} | {("unknown", "unknown")}
    assert (service, name) in allowed
    assert (service, name) != ("unknown", "unknown") or method not in known
    exported = parse(metrics.exposition().decode())
    for sample in exported.select("grpc_server_handled_total"):
        assert (sample.labels["grpc_service"], sample.labels["grpc_method"]) in allowed
        assert sample.labels["grpc_type"] in {
            "unary", "client_stream", "server_stream", "bidi_stream", "unknown"
        }  # fmt: skip


def test_the_conventional_rpc_names_and_labels() -> None:
    harness = make_harness(load_calendar())
    metrics = ServiceMetrics(harness.core, harness.store, load_calendar())
    path = "/trading.v1.TradingService/StreamMarketData"
    metrics.call_started(path, "client_stream")
    metrics.call_ended(path, "client_stream", grpc.StatusCode.INVALID_ARGUMENT, 0.3)
    metrics.call_started("/no.Such/Method", "bidi_stream")
    metrics.call_ended("/no.Such/Method", "bidi_stream", grpc.StatusCode.UNIMPLEMENTED, 0.0)
    for reason in (*REFUSALS, "made up"):
        metrics.call_refused(reason)

    exported = parse(metrics.exposition().decode())

    stream = {"grpc_type": "client_stream", **STREAM}
    assert exported.value("grpc_server_started_total", **stream) == 1
    assert exported.value("grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **stream) == 1
    assert exported.value("grpc_server_handling_seconds_sum", **stream) == 0.3
    assert exported.value("grpc_server_handling_seconds_bucket", le="0.25", **stream) == 0
    assert exported.value("grpc_server_handling_seconds_bucket", le="0.5", **stream) == 1
    unknown = {"grpc_service": "unknown", "grpc_method": "unknown"}
    assert exported.value("grpc_server_handled_total", grpc_code="UNIMPLEMENTED", **unknown) == 1
    refused = {s.labels["reason"]: s.value for s in exported.select("trading_rpc_refused_total")}
    assert refused == dict.fromkeys(REFUSALS, 1.0) | {"other": 1.0}


# --- the market's hours and the setting ----------------------------------------------


def test_the_market_is_open_inside_a_regular_session_only(calendar: Any) -> None:
    def at(text: str) -> bool:
        return market_open(calendar, datetime_to_ns(datetime.fromisoformat(text)))

    assert at("2024-03-05T15:00:00+00:00")  # a Tuesday, 10:00 in New York
    assert not at("2024-03-05T14:29:59+00:00")  # before the 09:30 open
    assert not at("2024-03-05T21:00:00+00:00")  # the close
    assert not at("2024-03-09T15:00:00+00:00")  # a Saturday
    assert not at("2024-12-25T15:00:00+00:00")  # Christmas
    assert at("2024-11-29T17:59:00+00:00") and not at("2024-11-29T18:00:00+00:00")  # early close


def test_the_listen_setting_is_host_and_port() -> None:
    assert parse_host_port("127.0.0.1:9464", "X") == ("127.0.0.1", 9464)
    assert parse_host_port(" [::1]:0", "X") == ("::1", 0)
    assert Settings(trading_metrics_listen="off").trading_metrics_listen is None
    for bad in ("9464", "host:", ":9464", "host:99999", "host:port"):
        with pytest.raises(ValueError, match="TRADING_METRICS_LISTEN"):
            Settings(trading_metrics_listen=bad)


def _open_around_now() -> set[float]:
    """What trading_market_open may read at a scrape just made (both values if the
    session opened or closed in the second before)."""
    now = time.time_ns()
    return {float(market_open(load_calendar(), t)) for t in (now - NS, now)}


@cache
def _bare_metrics() -> ServiceMetrics:
    """Metrics of a core nobody feeds, for the per-RPC counters alone (one for every
    example: what they accumulate is checked as a whole)."""
    harness = make_harness(load_calendar())
    return ServiceMetrics(harness.core, harness.store, load_calendar())
