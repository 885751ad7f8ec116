"""Trading through Alpaca end to end: the real service (create_server, gRPC, the
SDK) with TRADING_BROKER=alpaca, the real alpaca-py, and the fake Alpaca on
loopback ports (tests/fakes/alpaca_server.py).

Each test drives the service as a user does (a market tick, SubmitOrder,
CancelOrder) and the broker as Alpaca would behave (fills, rejections, faults,
outages), then checks what the service shows and what the fake holds: one order
per risk decision, in the state Alpaca says, with every broker report journaled
before the change it caused. Every wait is bounded; nothing is timed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from audit.codec import record_to_envelope
from audit.memory_store import InMemoryEventStore
from audit.records import AuditQuery, AuditRecord
from audit.sql_store import SqlAlchemyEventStore
from engines.replay import replay
from server.bootstrap import build_core
from server.settings import Settings
from tests.alpaca.service import (
    ACCEPTED,
    ACTIVE,
    CANCELLED,
    EXPIRED,
    FILLED,
    HALTED,
    HANG_S,
    LOOKUP_ROUTE,
    PARTIALLY_FILLED,
    PENDING_CANCEL,
    PRICE,
    REJECTED,
    SUBMIT_ROUTE,
    SUBMITTED,
    SYMBOL,
    WAIT_S,
    alpaca_settings,
    assert_broker_inputs_precede_changes,
    audit,
    order,
    payload,
    place,
    priced_fake,
    reasons,
    reconciliations,
    start_on,
    tick,
    trading_state,
    wait_for_order,
)
from tests.conftest import StartService
from tests.fakes.alpaca_server import (
    FakeAlpaca,
    Fault,
    after_accept,
    hang,
    refuse,
    server_error,
)
from tests.support.market import MINUTE, SESSION
from tests.support.polling import wait_for, wait_until
from trading_sdk.client import TradingClient
from trading_sdk.v1 import orders_pb2, risk_pb2

LONG_S = 60.0
"""Longer than any test: a lookup answer held back this long never arrives in time,
and an order whose activation is delayed this long stays silent on the stream."""


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with priced_fake() as alpaca:
        yield alpaca


def resting(fake: FakeAlpaca) -> FakeAlpaca:
    """Orders rest at the fake until the test fills them."""
    fake.auto_fill = False
    return fake


# --- fills ----------------------------------------------------------------------------------


def test_a_market_order_is_filled_and_moves_the_position(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, fake)
    client = running.client
    tick(client)

    placed = place(client, "10")
    filled = wait_for_order(client, placed.order_id, FILLED)

    assert placed.client_order_id.startswith("ts-")
    [at_alpaca] = fake.orders_for(placed.client_order_id)
    assert at_alpaca["status"] == "filled"
    assert filled.broker_order_id == at_alpaca["id"]
    assert Decimal(filled.filled_quantity) == Decimal("10")
    assert Decimal(filled.average_fill_price) == Decimal(PRICE)
    [position] = client.list_positions().positions
    assert (position.symbol, Decimal(position.quantity)) == (SYMBOL, Decimal("10"))
    assert Decimal(position.average_price) == Decimal(PRICE)
    status = client.get_execution_status()
    assert (status.orders_submitted, status.orders_filled, status.open_orders) == (1, 1, 0)
    assert assert_broker_inputs_precede_changes(client) >= 2


def test_partial_fills_then_the_fill_book_each_execution_at_the_exact_average(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10")
    cid = placed.client_order_id
    wait_for_order(client, placed.order_id, ACCEPTED)

    fake.fill(cid, "2", "187.10")
    first = wait_for_order(client, placed.order_id, PARTIALLY_FILLED)
    assert (Decimal(first.filled_quantity), Decimal(first.average_fill_price)) == (
        Decimal("2"),
        Decimal("187.10"),
    )
    fake.fill(cid, "3", "187.20")
    wait_for(
        lambda: Decimal(order(client, placed.order_id).filled_quantity) == 5, "the second fill"
    )
    assert Decimal(order(client, placed.order_id).average_fill_price) == Decimal("187.16")
    fake.fill(cid, "5", "187.40")
    done = wait_for_order(client, placed.order_id, FILLED)

    # (2 * 187.10 + 3 * 187.20 + 5 * 187.40) / 10, exactly, as Alpaca's own average.
    assert Decimal(done.average_fill_price) == Decimal("187.28")
    assert Decimal(done.average_fill_price) == Decimal(fake.order(cid)["filled_avg_price"])
    fills = [(Decimal(c.fill_quantity), Decimal(c.fill_price)) for c in done.history]
    assert [f for f in fills if f[0]] == [
        (Decimal("2"), Decimal("187.10")),
        (Decimal("3"), Decimal("187.20")),
        (Decimal("5"), Decimal("187.40")),
    ]
    [position] = client.list_positions().positions
    assert Decimal(position.quantity) == 10
    assert Decimal(position.average_price) == Decimal("187.28")
    assert_broker_inputs_precede_changes(client)


def test_a_fill_delivered_twice_is_booked_once(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10")
    cid = placed.client_order_id
    wait_for_order(client, placed.order_id, ACCEPTED)

    fake.fill(cid, "4", "187.00")
    fake.repeat_last_event(2)  # the same partial_fill, byte for byte, twice more
    fake.fill(cid, "6", "187.50")
    fake.repeat_last_event()
    done = wait_for_order(client, placed.order_id, FILLED)

    executions = [c.execution_id for c in done.history if c.execution_id]
    assert len(executions) == len(set(executions)) == 2
    assert Decimal(done.filled_quantity) == 10
    assert Decimal(done.average_fill_price) == Decimal("187.30")
    [position] = client.list_positions().positions
    assert Decimal(position.quantity) == 10
    # A repeat changes nothing, so it is not journaled as a report either.
    fill_reports = [
        r for r in audit(client, "BrokerReportReceived") if payload(r)["report"]["execution"]
    ]
    assert len(fill_reports) == 2


# --- rejections -----------------------------------------------------------------------------


def test_an_asynchronous_rejection_rejects_the_order(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10")
    wait_for_order(client, placed.order_id, ACCEPTED)

    fake.reject(placed.client_order_id, "order rejected by the venue")
    done = wait_for_order(client, placed.order_id, REJECTED)

    assert "order rejected by the venue" in reasons(done)[-1]
    assert client.list_positions().positions == []
    assert client.get_execution_status().orders_rejected == 1
    assert_broker_inputs_precede_changes(client)


def test_a_definite_403_rejects_with_alpacas_code_and_message_and_is_never_retried(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, fake, trading_broker_sweep_seconds=0.2)
    client = running.client
    tick(client)
    fake.fail_next(SUBMIT_ROUTE, refuse(403, 40310000, "insufficient buying power"))

    placed = place(client, "10")
    done = wait_for_order(client, placed.order_id, REJECTED)

    assert "40310000" in reasons(done)[-1]
    assert "insufficient buying power" in reasons(done)[-1]
    assert SUBMITTED not in [c.status for c in done.history]  # a definite no, not unresolved
    # Two more sweeps later, still the one refused POST and no order at Alpaca.
    swept = len(reconciliations(client))
    wait_for(lambda: len(reconciliations(client)) >= swept + 2, "two more sweeps")
    assert len(fake.submissions()) == 1
    assert fake.orders_for(placed.client_order_id) == []
    assert order(client, placed.order_id).status == REJECTED
    assert_broker_inputs_precede_changes(client)


# --- cancels --------------------------------------------------------------------------------


def test_a_cancel_is_pending_then_cancelled_by_alpaca(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    fake.auto_cancel = False
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10", limit_price="180.00")
    wait_for_order(client, placed.order_id, ACCEPTED)

    answer = client.cancel_order(placed.order_id)
    assert answer.order.status == PENDING_CANCEL
    fake.wait_for(lambda: fake.order(placed.client_order_id)["status"] == "pending_cancel")
    fake.cancel(placed.client_order_id)
    done = wait_for_order(client, placed.order_id, CANCELLED)

    assert fake.order(placed.client_order_id)["status"] == "canceled"
    assert Decimal(done.filled_quantity) == 0
    assert client.get_execution_status().orders_cancelled == 1
    assert_broker_inputs_precede_changes(client)


def test_a_fill_that_wins_the_race_with_a_cancel_fills_the_order(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    fake.auto_cancel = False  # the cancel stays pending at Alpaca...
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10", limit_price="190.00")
    wait_for_order(client, placed.order_id, ACCEPTED)

    client.cancel_order(placed.order_id)
    fake.wait_for(lambda: fake.order(placed.client_order_id)["status"] == "pending_cancel")
    fake.fill(placed.client_order_id, "10", "187.25")  # ...and the fill comes first
    done = wait_for_order(client, placed.order_id, FILLED)

    assert PENDING_CANCEL in [c.status for c in done.history]
    assert Decimal(done.filled_quantity) == 10
    [position] = client.list_positions().positions
    assert Decimal(position.quantity) == 10
    assert_broker_inputs_precede_changes(client)


def test_a_partial_fill_during_a_pending_cancel_is_kept_when_the_cancel_completes(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    fake.auto_cancel = False
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10", limit_price="190.00")
    wait_for_order(client, placed.order_id, ACCEPTED)

    client.cancel_order(placed.order_id)
    fake.wait_for(lambda: fake.order(placed.client_order_id)["status"] == "pending_cancel")
    fake.fill(placed.client_order_id, "4", "187.25")
    fake.cancel(placed.client_order_id)
    done = wait_for_order(client, placed.order_id, CANCELLED)

    assert Decimal(done.filled_quantity) == 4
    [position] = client.list_positions().positions
    assert Decimal(position.quantity) == 4
    assert_broker_inputs_precede_changes(client)


def test_a_day_order_that_expires_at_alpaca_is_expired(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10", limit_price="180.00")
    wait_for_order(client, placed.order_id, ACCEPTED)

    fake.expire(placed.client_order_id)
    done = wait_for_order(client, placed.order_id, EXPIRED)

    assert "expired" in reasons(done)[-1]
    assert client.list_active_orders().orders == []
    assert_broker_inputs_precede_changes(client)


# --- submits without a clear answer -----------------------------------------------------------


def _check_unresolved(client: TradingClient, order_id: str) -> None:
    """While the order is unresolved: SUBMITTED, counted, and no new order in its symbol."""
    assert order(client, order_id).status == SUBMITTED
    assert client.get_execution_status().unresolved_orders == 1
    tick(client, at=SESSION + 2 * MINUTE)  # past the duplicate-signal window
    second = client.submit_order(SYMBOL, "buy", "1")
    assert not second.decision.approved
    # (Its lookups failing, the broker may count as unhealthy meanwhile and halt too.)
    refused = {v.code for v in second.decision.verdicts if not v.passed}
    assert "ORDER_UNRESOLVED" in refused, refused
    assert refused <= {"ORDER_UNRESOLVED", "BROKER_UNHEALTHY", "RISK_ENGINE_DEACTIVATED"}
    assert order(client, order_id).status == SUBMITTED  # the refusal changed nothing


def _unresolved_then_looked_up(
    start_service: StartService, fake: FakeAlpaca, *faults: Fault
) -> tuple[TradingClient, orders_pb2.Order]:
    """Place an order whose POST meets `faults` while every lookup of it times out;
    check it while unresolved, then let the lookups through. (client, order). The
    order rests at the fake until the test fills it."""
    resting(fake)
    fake.set_latency(LONG_S, LOOKUP_ROUTE)  # no lookup answers in time...
    running = start_on(start_service, fake, trading_broker_lookup_attempts=1000)
    client = running.client
    tick(client)
    fake.fail_next(SUBMIT_ROUTE, *faults)

    placed = place(client, "10")
    wait_for_order(client, placed.order_id, SUBMITTED)
    _check_unresolved(client, placed.order_id)

    fake.set_latency(0, LOOKUP_ROUTE)  # ...until now
    return client, placed


def test_a_submit_whose_answer_never_arrives_is_resolved_by_a_lookup(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    fake.set_activation_delay(LONG_S)  # Alpaca took it, and says nothing on the stream
    client, placed = _unresolved_then_looked_up(start_service, fake, hang(HANG_S))
    cid = placed.client_order_id

    found = wait_for_order(client, placed.order_id, ACCEPTED)
    assert any(r.startswith("lookup:") for r in reasons(found))
    assert client.get_execution_status().unresolved_orders == 0
    fake.fill(cid, "10", PRICE)
    wait_for_order(client, placed.order_id, FILLED)

    assert len(fake.orders_for(cid)) == 1
    assert len(fake.orders()) == 1
    assert len(fake.submissions()) == 1  # looked up, never sent again
    assert_broker_inputs_precede_changes(client)


def test_a_504_after_alpaca_took_the_order_leaves_one_order_resolved_by_a_lookup(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    # The SDK re-POSTs a 504 by itself (after 3 s) and gets "client_order_id must be
    # unique": the order exists although submit_order raised.
    fake.set_activation_delay(LONG_S)
    client, placed = _unresolved_then_looked_up(start_service, fake, after_accept(504))
    cid = placed.client_order_id

    found = wait_for_order(client, placed.order_id, ACCEPTED)
    assert any(r.startswith("lookup:") for r in reasons(found))
    fake.fill(cid, "10", PRICE)
    done = wait_for_order(client, placed.order_id, FILLED)

    assert len(fake.orders_for(cid)) == 1
    assert len(fake.orders()) == 1
    assert len(fake.submissions()) == 2  # the SDK's own retry, refused as a duplicate
    assert any("must be unique" in r for r in reasons(done))
    assert_broker_inputs_precede_changes(client)


def test_a_500_before_alpaca_took_the_order_is_looked_up_then_resent_once(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    client, placed = _unresolved_then_looked_up(start_service, fake, server_error(500))
    cid = placed.client_order_id
    assert fake.orders_for(cid) == []

    wait_for_order(client, placed.order_id, ACCEPTED)  # not found: resent, same id
    fake.fill(cid, "10", PRICE)
    done = wait_for_order(client, placed.order_id, FILLED)

    [at_alpaca] = fake.orders_for(cid)
    assert at_alpaca["status"] == "filled"
    assert len(fake.orders()) == 1
    assert [r.body["client_order_id"] for r in fake.submissions() if r.body] == [cid, cid]
    assert any("http-500" in r for r in reasons(done))
    assert Decimal(done.filled_quantity) == 10
    # What sent it again: a lookup to which Alpaca answered that it has no such order.
    failures = [payload(r)["failure"] for r in audit(client, "BrokerRequestFailed")]
    answers = [(f["request"], f["outcome"]) for f in failures if f["client_order_id"] == cid]
    assert answers[-1] == ("LOOKUP", "NOT_FOUND")
    assert_broker_inputs_precede_changes(client)


def test_a_sweep_during_a_lookup_never_makes_the_service_send_an_order_twice(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    # A 500 (not taken), then a definite 403 for the resubmission. A sweep running
    # while the first lookup is in flight looks the order up too; its "not found"
    # comes after the resubmission was decided, and must not send the order again
    # (that third POST would be taken, after the 403 had rejected the order).
    running = start_on(start_service, fake)
    client = running.client
    tick(client)
    fake.set_latency(0.2, SUBMIT_ROUTE)  # both below the request timeout: slow answers,
    fake.set_latency(0.45, LOOKUP_ROUTE)  # so that the sweep's lookup overlaps the first
    fake.fail_next(SUBMIT_ROUTE, server_error(500), refuse(403, 40310000, "insufficient qty"))

    placed = place(client, "10")
    sweeping = threading.Thread(target=running.service.core.sweep, args=("periodic sweep",))
    sweeping.start()
    done = wait_for_order(client, placed.order_id, REJECTED, FILLED)
    sweeping.join(WAIT_S)
    # A third POST would be queued right behind the second: give it time to arrive.
    wait_until(lambda: len(fake.submissions()) > 2, within=1.0)

    assert done.status == REJECTED
    assert "40310000" in reasons(done)[-1]
    assert fake.orders() == []
    assert len(fake.submissions()) == 2  # the first, and one resubmission
    assert order(client, placed.order_id).status == REJECTED
    failures = [payload(r)["failure"] for r in audit(client, "BrokerRequestFailed")]
    not_found = [f for f in failures if f["outcome"] == "NOT_FOUND"]
    assert len(not_found) >= 1
    assert_broker_inputs_precede_changes(client)


# --- the stream is a hint, REST the truth -----------------------------------------------------


def test_fills_missed_while_the_stream_was_down_are_applied_by_the_sweep(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    placed = place(client, "10", limit_price="190.00")
    cid = placed.client_order_id
    wait_for_order(client, placed.order_id, ACCEPTED)
    swept = len(reconciliations(client))

    fake.refuse_streams(True)
    fake.drop_streams()
    wait_for(lambda: not fake.streams_listening, "the stream to drop")
    fake.fill(cid, "4", "187.00")  # never delivered on the stream...
    fake.fill(cid, "6", "187.50")
    fake.refuse_streams(False)

    done = wait_for_order(client, placed.order_id, FILLED)  # ...but swept from REST
    assert Decimal(done.filled_quantity) == 10
    assert Decimal(done.average_fill_price) == Decimal("187.30")
    assert reasons(done)[-1].startswith("sweep:")
    found = reconciliations(client)[swept:]
    assert any(cid in r["updated"] for r in found), found
    [position] = client.list_positions().positions
    assert Decimal(position.quantity) == 10
    assert_broker_inputs_precede_changes(client)


def test_an_order_filled_while_the_service_was_down_is_booked_at_start_up(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    first = start_on(start_service, resting(fake))
    tick(first.client)
    placed = place(first.client, "10", limit_price="190.00")
    cid = placed.client_order_id
    wait_for_order(first.client, placed.order_id, ACCEPTED)
    first.stop()

    fake.fill(cid, "10", "187.25")  # while nobody listens
    second = start_on(start_service, fake)  # the same audit database
    client = second.client

    done = wait_for_order(client, placed.order_id, FILLED)
    assert done.client_order_id == cid
    # The second start-up reconciliation (the first was the first start's) booked it.
    _, startup = [r for r in reconciliations(client) if r["reason"] == "start-up reconciliation"]
    assert cid in startup["updated"]
    [position] = client.list_positions().positions
    assert Decimal(position.quantity) == 10
    assert len(fake.orders()) == 1
    assert_broker_inputs_precede_changes(client)


def test_an_order_placed_outside_the_service_is_adopted_and_its_fills_move_positions(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, fake)
    client = running.client

    outside = fake.place_external(SYMBOL, "buy", "5", limit_price="186.00")
    wait_for(lambda: client.list_active_orders().orders, "the external order to be adopted")
    [adopted] = client.list_active_orders().orders
    assert adopted.external
    assert adopted.order_id.startswith("x")
    assert adopted.client_order_id == outside["client_order_id"]
    assert adopted.decision_id == ""

    fake.fill(outside["client_order_id"], "5", "186.00")
    wait_for_order(client, adopted.order_id, FILLED)
    [position] = client.list_positions().positions
    assert (position.symbol, Decimal(position.quantity)) == (SYMBOL, Decimal("5"))
    assert_broker_inputs_precede_changes(client)


# --- the broker down, and back -------------------------------------------------------------------


def _causes(client: TradingClient) -> dict[int, risk_pb2.TradingStatus]:
    return {c.cause: c for c in client.get_risk_status().causes}


def test_alpaca_down_halts_trading_as_the_brokers_cause_and_its_return_resumes(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, fake, trading_broker_sweep_seconds=0.2)
    client = running.client

    fake.set_down(True)
    wait_for(lambda: trading_state(client) == HALTED, "the broker's halt")
    trading = client.get_status().trading
    assert (trading.changed_by, trading.cause) == ("system:broker", risk_pb2.TRADING_CAUSE_BROKER)
    assert "the last sweep failed" in trading.reason and "http-503" in trading.reason
    [broker] = [c for c in client.get_status().components if c.name == "broker"]
    assert not broker.healthy
    assert not client.get_execution_status().broker_healthy

    fake.set_down(False)
    wait_for(lambda: trading_state(client) == ACTIVE, "the broker's halt to be lifted")
    assert risk_pb2.TRADING_CAUSE_BROKER not in _causes(client)
    [broker] = [c for c in client.get_status().components if c.name == "broker"]
    assert broker.healthy


def test_an_operators_halt_set_while_alpaca_was_down_stays_when_it_returns(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, fake, trading_broker_sweep_seconds=0.2)
    client = running.client

    fake.set_down(True)
    wait_for(lambda: risk_pb2.TRADING_CAUSE_BROKER in _causes(client), "the broker's halt")
    client.set_trading_state("halted", "investigating the outage")
    fake.set_down(False)
    wait_for(
        lambda: risk_pb2.TRADING_CAUSE_BROKER not in _causes(client),
        "the broker's cause to clear",
    )

    causes = _causes(client)
    assert set(causes) == {risk_pb2.TRADING_CAUSE_OPERATOR}
    assert causes[risk_pb2.TRADING_CAUSE_OPERATOR].state == HALTED
    trading = client.get_status().trading
    assert trading.state == HALTED
    assert trading.reason == "investigating the outage"


# --- what the service says, and what it journaled -----------------------------------------------


def test_get_status_names_the_alpaca_endpoint_and_account_and_says_paper(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, fake)

    status = running.client.get_status()
    assert status.broker == "alpaca"
    assert status.broker_endpoint == fake.base_url
    assert status.broker_account == fake.account_number
    assert not status.broker_live
    [started] = audit(running.client, "ServiceStarted")
    info = payload(started)["broker"]
    assert (info["name"], info["endpoint"], info["account"], info["live"]) == (
        "alpaca",
        fake.base_url,
        fake.account_number,
        False,
    )


def _stored(database_url: str) -> list[AuditRecord]:
    store = SqlAlchemyEventStore(database_url)
    try:
        return list(store.query(AuditQuery()))
    finally:
        store.close()


Row = tuple[Any, ...]


def _live_and_replayed(
    fake: FakeAlpaca, database_url: str, calendar: Any
) -> tuple[list[Row], list[Row]]:
    """The records of the live log, and those a replay of it into a fresh core
    (no broker: every answer comes from the journal) appends: (seq, time, type,
    cause, payload) each."""
    live = _stored(database_url)
    kinds = {r.event_type for r in live}
    assert {"BrokerReportReceived", "BrokerRequestFailed", "BrokerSwept"} & kinds
    store = InMemoryEventStore()
    settings = Settings(**alpaca_settings(fake, database_url="sqlite://"))
    core = build_core(settings, store, calendar, replaying=True)
    replay(core, (record_to_envelope(r) for r in live))
    core.bus.flush()

    def rows(records: list[AuditRecord]) -> list[Row]:
        return [(r.seq, r.recorded_at, r.event_type, r.caused_by, r.payload) for r in records]

    return rows(live), rows(list(store.query(AuditQuery())))


def test_a_replay_of_the_journal_reproduces_the_log_of_a_session_on_alpaca(
    start_service: StartService, fake: FakeAlpaca, tmp_path: Path, calendar: Any
) -> None:
    database_url = f"sqlite:///{tmp_path / 'live.db'}"
    running = start_on(
        start_service, resting(fake), database_url=database_url, trading_broker_sweep_seconds=0.2
    )
    client = running.client
    tick(client)
    # A partial fill then the rest; a refusal; a cancel; a 500 looked up and resent;
    # an external order; a fill missed by the stream and swept; Alpaca down (a halt
    # by the broker, and an operator's) and back; periodic sweeps throughout. One
    # symbol per order, so that no risk limit refuses a later one.
    for symbol in ("MSFT", "IBM", "NVDA"):
        fake.set_price(symbol, PRICE)
        tick(client, symbol)
    first = place(client, "10")
    wait_for_order(client, first.order_id, ACCEPTED)
    fake.fill(first.client_order_id, "3", "187.10")
    fake.fill(first.client_order_id, "7", "187.40")
    wait_for_order(client, first.order_id, FILLED)
    fake.fail_next(SUBMIT_ROUTE, refuse(403, 40310000, "insufficient buying power"))
    wait_for_order(client, place(client, "2", symbol="MSFT").order_id, REJECTED)
    third = place(client, "3", symbol="IBM", limit_price="180.00")
    wait_for_order(client, third.order_id, ACCEPTED)
    client.cancel_order(third.order_id)
    wait_for_order(client, third.order_id, CANCELLED)
    fake.fail_next(SUBMIT_ROUTE, server_error(500))
    fourth = place(client, "4", symbol="NVDA")
    wait_for_order(client, fourth.order_id, ACCEPTED)
    fake.fill(fourth.client_order_id, "4", "187.30")
    wait_for_order(client, fourth.order_id, FILLED)
    outside = fake.place_external(SYMBOL, "sell", "1", limit_price="200.00")
    wait_for(lambda: client.list_active_orders().orders, "the external order")
    fake.refuse_streams(True)
    fake.drop_streams()
    wait_for(lambda: not fake.streams_listening, "the stream to drop")
    fake.fill(outside["client_order_id"], "1", "200.00")
    fake.refuse_streams(False)
    [adopted] = client.list_active_orders().orders
    wait_for_order(client, adopted.order_id, FILLED)
    fake.set_down(True)
    wait_for(lambda: risk_pb2.TRADING_CAUSE_BROKER in _causes(client), "the broker's halt")
    client.set_trading_state("halted", "investigating")
    fake.set_down(False)
    wait_for(lambda: risk_pb2.TRADING_CAUSE_BROKER not in _causes(client), "the broker back")
    client.set_trading_state("active", "resolved")
    running.stop()

    live, replayed = _live_and_replayed(fake, database_url, calendar)

    kinds = {kind for _, _, kind, _, _ in live}
    assert {"BrokerReportReceived", "BrokerRequestFailed", "BrokerSwept"} <= kinds
    assert {"TradingStateChanged", "CancelRequested"} <= kinds
    # Every record, ServiceStarted first: the same seq, time, type, cause and bytes.
    assert replayed == live


def test_a_replay_across_a_restart_reproduces_the_log(
    start_service: StartService, fake: FakeAlpaca, tmp_path: Path, calendar: Any
) -> None:
    database_url = f"sqlite:///{tmp_path / 'live.db'}"
    running = start_on(start_service, resting(fake), database_url=database_url)
    client = running.client
    tick(client)
    first = place(client, "10")
    wait_for_order(client, first.order_id, ACCEPTED)
    fake.fill(first.client_order_id, "10", PRICE)
    wait_for_order(client, first.order_id, FILLED)
    running.stop()
    running = start_on(start_service, fake, database_url=database_url)
    running.stop()

    live, replayed = _live_and_replayed(fake, database_url, calendar)

    assert [kind for _, _, kind, _, _ in live].count("ServiceStarted") == 2
    assert replayed == live


def test_an_order_working_before_a_restart_still_counts_against_the_limits_after_it(
    start_service: StartService, fake: FakeAlpaca
) -> None:
    running = start_on(start_service, resting(fake))
    client = running.client
    tick(client)
    working = place(client, "20", limit_price="190.00")  # 3800 of the 5000 a position may be
    wait_for_order(client, working.order_id, ACCEPTED)
    tick(client, at=SESSION + 2 * MINUTE)
    before = client.check_order(SYMBOL, "buy", "10")
    assert "POSITION_SIZE_EXCEEDS_LIMIT" in {v.code for v in before.verdicts if not v.passed}
    running.stop()

    restarted = start_on(start_service, fake)
    tick(restarted.client, at=SESSION + 4 * MINUTE)
    [still] = restarted.client.list_active_orders().orders
    assert still.order_id == working.order_id
    after = restarted.client.check_order(SYMBOL, "buy", "10")
    assert "POSITION_SIZE_EXCEEDS_LIMIT" in {v.code for v in after.verdicts if not v.passed}
