"""The human-readable text that tradectl and the demo print."""

from __future__ import annotations

import io

from client import render
from tests.client.advisor_samples import RATIONALE, analysis, approved_idea, pending_idea, stamp
from trading_sdk.v1 import audit_pb2, events_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb


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


def test_an_idea_event_reads_side_quantity_symbol_state_and_confidence() -> None:
    event = events_pb2.Event(
        seq=507,
        time=stamp("2013-03-01T20:59:00+00:00"),
        type=events_pb2.EVENT_TYPE_IDEA,
        idea=pending_idea(),
    )

    assert render.event_line(event) == (
        "#507 2013-03-01T20:59:00Z IDEA i506.1 BUY 101 MSFT @ market (ref 27.95)"
        " PENDING_APPROVAL confidence 0.60"
    )


def test_a_decided_idea_with_a_limit_price_names_the_price_and_who_decided() -> None:
    idea = approved_idea()
    idea.limit_price = "28.00"

    assert render.idea_line(idea) == (
        "i506.1 BUY 101 MSFT @ 28.00 APPROVED confidence 0.60 by alice"
    )


def test_an_analysis_event_reads_kind_analyst_model_and_counts() -> None:
    event = events_pb2.Event(
        seq=506, type=events_pb2.EVENT_TYPE_ANALYSIS, analysis=analysis("unknown symbol XYZ")
    )

    assert render.event_line(event) == (
        "#506 - ANALYSIS a506 PORTFOLIO_REVIEW by offline/offline-rules: 1 idea(s), 1 dropped"
    )


def test_idea_text_gives_the_rationale_the_risks_and_what_the_approval_led_to() -> None:
    assert render.idea_text(approved_idea()).splitlines() == [
        "i506.1 BUY 101 MSFT @ market (ref 27.95) APPROVED confidence 0.60 by alice",
        "  notional 2822.95, created 2013-03-01T20:59:00Z, expires 2013-03-01T21:14:00Z",
        f"  rationale: {RATIONALE}",
        "  risks:",
        "    - the trend may reverse",
        "    - a single-stock position is concentrated risk",
        "  decided at 2013-03-01T21:00:00Z: fits the plan",
        "  risk decision d509: APPROVED BUY 101 MSFT @ 27.95 confidence 0.60 from idea:i506.1",
        "  order o510 BUY 101 MSFT MARKET FILLED filled 101 @ 27.9640",
    ]


def test_a_pending_idea_has_no_outcome_yet() -> None:
    assert render.idea_outcome(pending_idea()) == []


def test_analysis_text_has_the_text_warnings_dropped_parts_and_ideas_in_order() -> None:
    text = render.analysis_text(analysis("size beyond the limit"), [pending_idea()])

    assert text.splitlines() == [
        "analysis a506 PORTFOLIO_REVIEW by offline/offline-rules: 1 idea(s), 1 dropped",
        "  at 2013-03-01T20:59:00Z, prompt offline_rules_v1, symbols MSFT,GOOG",
        "",
        "MSFT: trend up.",
        "Cash is 95.8% of equity.",
        "",
        "warnings:",
        "  - Not financial advice.",
        "",
        "dropped:",
        "  - size beyond the limit",
        "",
        "ideas (1):",
        *render.idea_text(pending_idea()).splitlines(),
    ]


def test_analysis_text_shows_the_question_and_leaves_out_empty_sections() -> None:
    asked = analysis()
    asked.question = "Is MSFT too risky?"
    del asked.warnings[:]

    lines = render.analysis_text(asked).splitlines()

    assert lines[2] == "  question: Is MSFT too risky?"
    assert "warnings:" not in lines
    assert "dropped:" not in lines
    assert not any(line.startswith("ideas") for line in lines)


def test_ideas_table_has_one_row_per_idea() -> None:
    text = render.to_text(render.ideas_view([pending_idea(), approved_idea()]), io.StringIO())
    lines = text.splitlines()

    assert lines[0].split() == [
        "IDEA",
        "SYMBOL",
        "SIDE",
        "QTY",
        "PRICE",
        "CONFIDENCE",
        "STATE",
        "EXPIRES",
        "ORDER",
    ]
    assert set(lines[1]) == {"─"}  # the header's rule
    assert lines[2].split() == [
        "i506.1",
        "MSFT",
        "BUY",
        "101",
        "market",
        "0.60",
        "PENDING_APPROVAL",
        "2013-03-01T21:14:00Z",
        "-",
    ]
    assert lines[3].split()[6:] == ["APPROVED", "2013-03-01T21:14:00Z", "o510"]


def test_trading_line_leaves_out_what_is_not_known() -> None:
    fresh = risk_pb2.TradingStatus(state=risk_pb2.TRADING_STATE_ACTIVE)
    reducing = risk_pb2.TradingStatus(
        state=risk_pb2.TRADING_STATE_REDUCING,
        changed_by="system:daily-loss",
        changed_at=stamp("2024-03-05T15:00:00+00:00"),
        cause=risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
    )

    assert render.trading_line(fresh) == "ACTIVE"
    assert render.trading_line(reducing) == (
        "REDUCING by system:daily-loss since 2024-03-05T15:00:00Z (DAILY_LOSS_BREAKER)"
    )
    assert render.causes_text([]) == "causes in force: none"


def test_limits_update_text_lists_only_the_limits_that_changed() -> None:
    response = pb.UpdateRiskLimitsResponse(
        limits={"a": "1", "b": "5", "new": "7"}, previous={"a": "1", "b": "2"}
    )

    assert render.limits_update_text(response).splitlines() == [
        "LIMIT  PREVIOUS  VALUE",
        "b      2         5",
        "new    -         7",
    ]
