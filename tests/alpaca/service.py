"""The real service trading through the fake Alpaca (tests/fakes/alpaca_server.py),
with the real alpaca-py: what the end-to-end tests of tests/alpaca share.

`priced_fake()` is the fake every test starts from, `alpaca_settings(fake)` the
settings that point `create_server` at it, and `start_on(start_service, fake)`
starts the service on them and waits for its start-up reconciliation, its
trade_updates stream and the sweep that follows its connection. `tick` sends
the market event the risk gate needs (market hours and fresh data, by the
core's event clock); `place` submits a manual order; `wait_for_order` polls an
order's status through the SDK; `assert_broker_inputs_precede_changes` checks
the audit log's causes. Every wait is bounded (tests/support/polling.py);
nothing is timed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

from tests.conftest import RunningService, StartService
from tests.fakes.alpaca_server import FakeAlpaca
from tests.support.market import SESSION
from tests.support.polling import wait_for
from trading_sdk.client import TradingClient
from trading_sdk.v1 import audit_pb2, orders_pb2, risk_pb2

REQUEST_TIMEOUT_S: Final = 0.5
"""Each REST request to the fake times out after this long (a hang is longer)."""
HANG_S: Final = 3.0
"""A hung answer: well past the request timeout (the fake's close cuts it short)."""
WAIT_S: Final = 20.0
"""Only stops a broken run from hanging; nothing is timed."""
SYMBOL: Final = "AAPL"
PRICE: Final = "187.25"
LOOKUP_ROUTE: Final = "GET /v2/orders:by_client_order_id"
SUBMIT_ROUTE: Final = "POST /v2/orders"

FILLED: Final = orders_pb2.ORDER_STATUS_FILLED
PARTIALLY_FILLED: Final = orders_pb2.ORDER_STATUS_PARTIALLY_FILLED
ACCEPTED: Final = orders_pb2.ORDER_STATUS_ACCEPTED
SUBMITTED: Final = orders_pb2.ORDER_STATUS_SUBMITTED
REJECTED: Final = orders_pb2.ORDER_STATUS_REJECTED
CANCELLED: Final = orders_pb2.ORDER_STATUS_CANCELLED
EXPIRED: Final = orders_pb2.ORDER_STATUS_EXPIRED
PENDING_CANCEL: Final = orders_pb2.ORDER_STATUS_PENDING_CANCEL
TERMINAL: Final = (FILLED, REJECTED, CANCELLED, EXPIRED)
ACTIVE: Final = risk_pb2.TRADING_STATE_ACTIVE
HALTED: Final = risk_pb2.TRADING_STATE_HALTED

# The inputs an order's change may be caused by: its risk decision (the intent), a
# cancel request, and the broker's answers, each journaled before it is applied.
BROKER_INPUTS: Final = frozenset({"BrokerReportReceived", "BrokerRequestFailed", "BrokerSwept"})
ORDER_CAUSES: Final = BROKER_INPUTS | {"RiskDecisionMade", "CancelRequested"}


@contextmanager
def priced_fake() -> Iterator[FakeAlpaca]:
    """A fake Alpaca on loopback ports that fills market orders of SYMBOL at PRICE."""
    with FakeAlpaca() as fake:
        fake.set_price(SYMBOL, PRICE)
        yield fake


def alpaca_settings(fake: FakeAlpaca, **overrides: Any) -> dict[str, Any]:
    """Settings that make the service trade on `fake` through alpaca-py."""
    values: dict[str, Any] = {
        "trading_broker": "alpaca",
        "alpaca_api_key": fake.key_id,
        "alpaca_secret_key": fake.secret_key,
        "alpaca_base_url": fake.base_url,
        "alpaca_stream_url": fake.stream_url,
        "alpaca_request_timeout_seconds": REQUEST_TIMEOUT_S,
    }
    values.update(overrides)
    return values


def start_on(
    start_service: StartService, fake: FakeAlpaca, *, ready: bool = True, **overrides: Any
) -> RunningService:
    """The service on `fake`; `ready`: once its stream listens and it trades (ACTIVE:
    the start-up reconciliation has run)."""
    running = start_service(**alpaca_settings(fake, **overrides))
    if ready:
        client = running.client
        execution = running.service.core.execution
        # The stream's connection asks for a sweep (a gap); it is waited for too, so
        # that no sweep but the periodic one runs while a test drives an order.
        # Twice in a row: the stream says it is up a moment before it asks.
        settled = [False]

        def connected_and_swept() -> bool:
            now = client.get_execution_status().stream_connected and not execution.gap_reason
            before, settled[0] = settled[0], now
            return before and now

        wait_for(connected_and_swept, "the trade_updates stream and its sweep", WAIT_S)
        wait_for(lambda: trading_state(client) == ACTIVE, "trading to be ACTIVE", WAIT_S)
    return running


def trading_state(client: TradingClient) -> int:
    state: int = client.get_status().trading.state
    return state


def tick(
    client: TradingClient, symbol: str = SYMBOL, price: str = PRICE, at: datetime = SESSION
) -> None:
    """One market event: the core's clock at a session time, and a fresh price."""
    client.simulate_market_event(symbol, float(price), 100.0, at)


def place(
    client: TradingClient,
    quantity: str = "10",
    *,
    symbol: str = SYMBOL,
    limit_price: str | None = None,
) -> orders_pb2.Order:
    """A manual buy through the risk gate; the order its approval made."""
    answer = client.submit_order(symbol, "buy", quantity, limit_price=limit_price)
    assert answer.decision.approved, f"the risk gate refused: {answer.decision.verdicts}"
    return answer.order


def order(client: TradingClient, order_id: str) -> orders_pb2.Order:
    """The order as the service shows it now."""
    token = ""
    while True:
        page = client.list_order_history(page_size=1000, page_token=token)
        for found in page.orders:
            if found.order_id == order_id:
                return found
        if not page.next_page_token:
            raise AssertionError(f"the service has no order {order_id}")
        token = page.next_page_token


def wait_for_order(
    client: TradingClient, order_id: str, *statuses: int, within: float = WAIT_S
) -> orders_pb2.Order:
    """Until the order is in one of `statuses`; the order then."""
    names = " or ".join(orders_pb2.OrderStatus.Name(s) for s in statuses)  # type: ignore[arg-type]
    wait_for(lambda: order(client, order_id).status in statuses, f"{order_id} {names}", within)
    return order(client, order_id)


def reasons(found: orders_pb2.Order) -> list[str]:
    """The reason of each step of the order's history, oldest first."""
    return [change.reason for change in found.history]


def audit(client: TradingClient, *event_types: str) -> list[audit_pb2.AuditRecord]:
    """The audit records (of these types, or all), in seq order, up to everything
    the service has journaled (VerifyAudit commits what it holds first: reports
    from the broker's threads are journaled without a caller waiting on them)."""
    assert client.verify_audit().ok, "the audit chain does not verify"
    if event_types:
        return list(client.query_audit(event_types=event_types))
    return list(client.query_audit())


def payload(record: audit_pb2.AuditRecord) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(record.payload_json)
    return loaded


def reconciliations(client: TradingClient) -> list[dict[str, Any]]:
    """What each sweep found (the BrokerReconciled records), oldest first."""
    return [payload(r)["reconciliation"] for r in audit(client, "BrokerReconciled")]


def assert_broker_inputs_precede_changes(client: TradingClient) -> int:
    """Every order change in the audit log is caused by an input journaled before
    it: the intent by its risk decision, a pending cancel by its request, and every
    other change by the broker's report, failure or sweep that justified it (for
    one of these orders). Returns how many changes the broker caused."""
    records = audit(client)
    by_seq = {r.seq: r for r in records}
    caused_by_broker = 0
    for record in records:
        if record.event_type != "OrderUpdated":
            continue
        changed = payload(record)["order"]
        cause = by_seq.get(record.caused_by)
        assert cause is not None, f"order change {record.seq} names no cause"
        assert cause.seq < record.seq, f"order change {record.seq} precedes its cause"
        assert cause.event_type in ORDER_CAUSES, f"{record.seq} caused by {cause.event_type}"
        if cause.event_type == "BrokerReportReceived":
            reported = payload(cause)["report"]["order"]["client_order_id"]
            assert reported == changed["client_order_id"], f"{record.seq}: another order"
        elif cause.event_type == "BrokerRequestFailed":
            failed = payload(cause)["failure"]["client_order_id"]
            assert failed == changed["client_order_id"], f"{record.seq}: another order"
        elif cause.event_type == "BrokerSwept":
            swept = payload(cause)["snapshot"]["orders"]
            assert changed["client_order_id"] in {o["client_order_id"] for o in swept}
        caused_by_broker += cause.event_type in BROKER_INPUTS
    return caused_by_broker
