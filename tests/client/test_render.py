"""The human-readable text that tradectl and the demo print."""

from __future__ import annotations

from trading.v1 import audit_pb2, orders_pb2
from trading.v1 import trading_service_pb2 as pb

from client import render


def test_outline_nests_messages_and_lists_and_marks_empty_ones() -> None:
    status = pb.GetStatusResponse(
        components=[pb.ComponentHealth(name="risk", healthy=True, detail="ok")],
        counters=pb.Counters(),
        version="1.0",
    )

    assert render.outline(status).splitlines() == [
        "components:",
        "  - name: risk",
        "    healthy: true",
        "    detail: ok",
        "counters: (empty)",
        "version: 1.0",
    ]


def test_label_drops_the_enum_prefix_and_survives_unknown_values() -> None:
    order = orders_pb2.Order(status=orders_pb2.ORDER_STATUS_PARTIALLY_FILLED)
    assert render.label(order, "status") == "PARTIALLY_FILLED"

    order.status = orders_pb2.OrderStatus.ValueType(99)  # a value from a newer contract
    assert render.label(order, "status") == "99"


def test_fill_lines_list_only_the_fills() -> None:
    order = orders_pb2.Order(
        history=[
            orders_pb2.OrderStateChange(status=orders_pb2.ORDER_STATUS_ACCEPTED, fill_quantity="0"),
            orders_pb2.OrderStateChange(
                status=orders_pb2.ORDER_STATUS_FILLED, fill_quantity="28", fill_price="141.48"
            ),
        ]
    )

    assert render.fill_lines(order) == ["- 28 @ 141.48"]


def test_audit_line_cuts_a_long_payload_and_says_how_long_it_was() -> None:
    record = audit_pb2.AuditRecord(seq=3, event_type="MarketDataReceived", payload_json="x" * 500)

    line = render.audit_line(record, payload_chars=10)

    assert line == "#3 - MarketDataReceived xxxxxxxxxx... (500 chars)"
