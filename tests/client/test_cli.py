"""tradectl against the fake service: exit statuses, error lines, output and what it sends."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest

from client import render
from client.cli import ANALYSIS_KINDS, IDEA_DECISIONS, IDEA_STATES, main
from tests.client.advisor_samples import (
    IDEA_ID,
    RATIONALE,
    analysis,
    approved_idea,
    pending_idea,
)
from tests.client.fake_service import TOKEN, FakeTradingService
from trading_sdk.v1 import advisor_pb2, events_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb


def tradectl(fake: FakeTradingService, *args: str) -> int:
    return main(["--target", fake.target, "--token", TOKEN, *args])


def test_not_found_prints_one_error_line_and_exits_2(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.errors["ActivateStrategy"] = (grpc.StatusCode.NOT_FOUND, "no strategy named 'nope'")

    status = tradectl(fake, "strategies", "activate", "nope")

    out, err = capsys.readouterr()
    assert status == 2
    assert err == "error: NOT_FOUND: no strategy named 'nope'\n"
    assert out == ""
    assert fake.calls[0].request == pb.ActivateStrategyRequest(name="nope")


def test_a_service_failure_exits_1(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.errors["GetStatus"] = (grpc.StatusCode.UNAVAILABLE, "audit store unreachable")

    assert tradectl(fake, "status") == 1
    assert capsys.readouterr().err == "error: UNAVAILABLE: audit store unreachable\n"


def test_the_token_and_target_come_from_the_environment(
    fake: FakeTradingService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADING_TARGET", fake.target)
    monkeypatch.setenv("TRADING_API_KEY", "from-env")
    fake.replies["GetStatus"] = [pb.GetStatusResponse(version="1.2.3", clock="event")]

    assert main(["status"]) == 0

    assert fake.calls[0].metadata["authorization"] == "Bearer from-env"
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["version", "1.2.3"] in rows
    assert ["clock", "event"] in rows


def test_a_missing_token_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRADING_API_KEY", raising=False)

    with pytest.raises(SystemExit) as exited:
        main(["status"])

    assert exited.value.code == 2
    assert "no API key" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_output_has_every_field(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    fake.replies["GetAccount"] = [
        pb.GetAccountResponse(account=orders_pb2.Account(cash="1000.50", currency="USD"))
    ]
    args = ["--json", "account"] if where == "before" else ["account", "--json"]

    assert tradectl(fake, *args) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["account"] == {
        "cash": "1000.50",
        "equity": "",
        "buying_power": "",
        "currency": "USD",
    }


def test_orders_history_prints_a_table_and_the_next_page_token(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    order = orders_pb2.Order(
        order_id="o-7",
        symbol="IBM",
        side=orders_pb2.SIDE_SELL,
        quantity="5",
        type=orders_pb2.ORDER_TYPE_MARKET,
        status=orders_pb2.ORDER_STATUS_FILLED,
        filled_quantity="5",
        average_fill_price="120.25",
    )
    fake.replies["ListOrderHistory"] = [
        pb.ListOrderHistoryResponse(orders=[order], next_page_token="next-1")
    ]

    assert tradectl(fake, "orders", "history", "--symbol", "IBM", "--page-size", "1") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ORDER", "SYMBOL", "SIDE"]
    assert lines[2].split()[:8] == ["o-7", "IBM", "SELL", "5", "MARKET", "FILLED", "5", "120.25"]
    assert lines[3] == "more: --page-token next-1"
    assert fake.calls[0].request == pb.ListOrderHistoryRequest(symbol="IBM", page_size=1)


def test_audit_verify_exits_3_and_names_the_first_bad_seq(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["VerifyAudit"] = [
        pb.VerifyAuditResponse(ok=False, checked=12, first_bad_seq=7, reason="hash mismatch")
    ]

    assert tradectl(fake, "audit", "verify") == 3
    assert capsys.readouterr().out == "audit chain BROKEN at seq 7: hash mismatch\n"


def test_audit_verify_exits_0_when_the_chain_holds(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["VerifyAudit"] = [pb.VerifyAuditResponse(ok=True, checked=12, last_seq=12)]

    assert tradectl(fake, "audit", "verify") == 0
    assert "OK: 12 records checked" in capsys.readouterr().out


def test_events_sends_the_filters_and_prints_one_line_per_event(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    decision = risk_pb2.RiskDecision(
        approved=False,
        signal=risk_pb2.TradeSignal(symbol="AAPL", side=orders_pb2.SIDE_BUY, quantity="10"),
        verdicts=[
            risk_pb2.RuleVerdict(
                rule="size",
                passed=False,
                code="POSITION_SIZE_EXCEEDS_LIMIT",
                detail="notional=6200.00 limit=5000.00",
            ),
            risk_pb2.RuleVerdict(rule="hours", passed=True, code="OK"),
        ],
    )
    event = events_pb2.Event(
        seq=8, type=events_pb2.EVENT_TYPE_RISK_DECISION, risk_decision=decision
    )
    fake.replies["SubscribeEvents"] = [pb.SubscribeEventsResponse(event=event)]

    status = tradectl(
        fake,
        "events",
        "--type",
        "risk_decision",
        "--type",
        "ORDER",
        "--symbol",
        "AAPL",
        "--from-seq",
        "5",
    )

    assert status == 0
    assert fake.calls[0].request == pb.SubscribeEventsRequest(
        types=[events_pb2.EVENT_TYPE_RISK_DECISION, events_pb2.EVENT_TYPE_ORDER],
        symbols=["AAPL"],
        from_seq=5,
    )
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("#8 - RISK_DECISION REJECTED BUY 10 AAPL")
    assert line.endswith("-- POSITION_SIZE_EXCEEDS_LIMIT: notional=6200.00 limit=5000.00")


def test_simulate_refuses_a_time_without_offset(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        tradectl(fake, "simulate", "AAPL", "100", "--timestamp", "2004-03-15T20:59:00")

    assert exited.value.code == 2
    assert "no UTC offset" in capsys.readouterr().err
    assert fake.calls == []


def test_stream_sends_the_file_in_batches(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "symbol,timestamp,open,high,low,close,volume\n"
        + "".join(f"IBM,2010-01-0{day}T21:00:00Z,1,2,0.5,{day},10\n" for day in range(4, 9))
    )
    fake.replies["StreamMarketData"] = [pb.StreamMarketDataResponse(events_accepted=5)]

    assert tradectl(fake, "stream", str(path), "--batch-size", "2") == 0

    [call] = fake.calls_to("StreamMarketData")
    assert [
        [e.price for e in r.events]
        for r in call.requests
        if isinstance(r, pb.StreamMarketDataRequest)
    ] == [
        [4.0, 5.0],
        [6.0, 7.0],
        [8.0],
    ]
    assert ["events", "accepted", "5"] in [
        line.split() for line in capsys.readouterr().out.splitlines()
    ]


def test_a_missing_file_is_an_error_line_not_a_traceback(
    fake: FakeTradingService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tradectl(fake, "stream", str(tmp_path / "absent.csv")) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_advisor_analyze_sends_the_symbols_question_and_kind_and_prints_the_ideas(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["Analyze"] = [pb.AnalyzeResponse(analysis=analysis(), ideas=[pending_idea()])]

    status = tradectl(
        fake, "advisor", "analyze", "--symbol", "MSFT", "--symbol", "GOOG", "--question", "Why?"
    )

    assert status == 0
    assert fake.calls[0].request == pb.AnalyzeRequest(
        symbols=["MSFT", "GOOG"],
        question="Why?",
        kind=advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW,
    )
    out = capsys.readouterr().out
    assert out == render.analysis_text(analysis(), [pending_idea()]) + "\n"
    assert f"rationale: {RATIONALE}" in out


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("portfolio", advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW),
        ("market", advisor_pb2.ANALYSIS_KIND_MARKET_CONDITIONS),
        ("education", advisor_pb2.ANALYSIS_KIND_EDUCATION),
    ],
)
def test_advisor_analyze_kind_names_map_to_the_enum(
    fake: FakeTradingService, name: str, kind: advisor_pb2.AnalysisKind.ValueType
) -> None:
    assert tradectl(fake, "advisor", "analyze", "--kind", name) == 0
    assert fake.calls[0].request == pb.AnalyzeRequest(kind=kind)


def test_every_advisor_enum_value_has_a_command_line_name() -> None:
    def named(values: Iterable[int]) -> set[int]:
        return {value for value in values if value != 0}

    assert set(ANALYSIS_KINDS.values()) == named(advisor_pb2.AnalysisKind.values())
    assert set(IDEA_STATES.values()) == named(advisor_pb2.IdeaState.values())
    assert set(IDEA_DECISIONS.values()) == named(advisor_pb2.IdeaDecision.values())


def test_an_unknown_analysis_kind_is_a_usage_error(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        tradectl(fake, "advisor", "analyze", "--kind", "gossip")

    assert exited.value.code == 2
    assert "invalid choice: 'gossip'" in capsys.readouterr().err
    assert fake.calls == []


def test_an_unreachable_analyst_exits_1(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.errors["Analyze"] = (grpc.StatusCode.UNAVAILABLE, "the analyst could not be reached")

    assert tradectl(fake, "advisor", "analyze") == 1
    assert capsys.readouterr().err == "error: UNAVAILABLE: the analyst could not be reached\n"


def test_advisor_analyze_json_has_the_analysis_and_its_ideas(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["Analyze"] = [pb.AnalyzeResponse(analysis=analysis(), ideas=[pending_idea()])]

    assert tradectl(fake, "advisor", "analyze", "--json") == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["analysis"]["analyst"] == "offline"
    assert printed["analysis"]["dropped"] == []
    assert [idea["idea_id"] for idea in printed["ideas"]] == [IDEA_ID]
    assert printed["ideas"][0]["state"] == "IDEA_STATE_PENDING_APPROVAL"


@pytest.mark.parametrize(
    ("args", "state"),
    [
        ([], advisor_pb2.IDEA_STATE_UNSPECIFIED),
        (["--state", "pending"], advisor_pb2.IDEA_STATE_PENDING_APPROVAL),
        (["--state", "approved"], advisor_pb2.IDEA_STATE_APPROVED),
        (["--state", "rejected"], advisor_pb2.IDEA_STATE_REJECTED),
        (["--state", "expired"], advisor_pb2.IDEA_STATE_EXPIRED),
    ],
)
def test_ideas_list_sends_the_state(
    fake: FakeTradingService, args: list[str], state: advisor_pb2.IdeaState.ValueType
) -> None:
    assert tradectl(fake, "ideas", "list", *args) == 0
    assert fake.calls[0].request == pb.ListIdeasRequest(state=state)


def test_ideas_list_prints_a_table_and_the_next_page_token(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["ListIdeas"] = [
        pb.ListIdeasResponse(ideas=[pending_idea(), approved_idea()], next_page_token="next-2")
    ]

    assert tradectl(fake, "ideas", "list", "--page-size", "2") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["IDEA", "SYMBOL", "SIDE"]
    assert lines[2].split()[:7] == [
        IDEA_ID,
        "MSFT",
        "BUY",
        "101",
        "market",
        "0.60",
        "PENDING_APPROVAL",
    ]
    assert lines[3].split()[-1] == "o510"
    assert lines[4] == "more: --page-token next-2"
    assert fake.calls[0].request == pb.ListIdeasRequest(page_size=2)


def test_ideas_show_prints_the_idea_in_full(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetIdea"] = [pb.GetIdeaResponse(idea=approved_idea())]

    assert tradectl(fake, "ideas", "show", IDEA_ID) == 0

    assert fake.calls[0].request == pb.GetIdeaRequest(idea_id=IDEA_ID)
    assert capsys.readouterr().out == render.idea_text(approved_idea()) + "\n"


def test_ideas_show_of_an_unknown_id_exits_2(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.errors["GetIdea"] = (grpc.StatusCode.NOT_FOUND, "no idea with id 'i0'")

    assert tradectl(fake, "ideas", "show", "i0") == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: NOT_FOUND: no idea with id 'i0'\n")


@pytest.mark.parametrize(
    ("verb", "decision"),
    [("approve", advisor_pb2.IDEA_DECISION_APPROVE), ("reject", advisor_pb2.IDEA_DECISION_REJECT)],
)
def test_ideas_approve_and_reject_send_the_decision_and_the_reason(
    fake: FakeTradingService, verb: str, decision: advisor_pb2.IdeaDecision.ValueType
) -> None:
    assert tradectl(fake, "ideas", verb, IDEA_ID, "--reason", "fits the plan") == 0
    assert fake.calls[0].request == pb.DecideIdeaRequest(
        idea_id=IDEA_ID, decision=decision, reason="fits the plan"
    )


def test_ideas_approve_prints_the_risk_decision_and_the_order(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["DecideIdea"] = [pb.DecideIdeaResponse(idea=approved_idea())]

    assert tradectl(fake, "ideas", "approve", IDEA_ID) == 0

    assert fake.calls[0].request == pb.DecideIdeaRequest(
        idea_id=IDEA_ID, decision=advisor_pb2.IDEA_DECISION_APPROVE
    )
    out = capsys.readouterr().out
    assert "APPROVED confidence 0.60 by alice" in out
    assert "  risk decision d509: APPROVED BUY 101 MSFT" in out
    assert "  order o510 BUY 101 MSFT MARKET FILLED filled 101 @ 27.9640" in out


def test_deciding_an_idea_twice_exits_2_with_the_reason(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.errors["DecideIdea"] = (grpc.StatusCode.FAILED_PRECONDITION, "idea is APPROVED already")

    assert tradectl(fake, "ideas", "reject", IDEA_ID) == 2
    assert capsys.readouterr().err == "error: FAILED_PRECONDITION: idea is APPROVED already\n"


def test_events_of_the_advisor_are_filtered_by_name_and_printed_one_line_each(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SubscribeEvents"] = [
        pb.SubscribeEventsResponse(
            event=events_pb2.Event(
                seq=506, type=events_pb2.EVENT_TYPE_ANALYSIS, analysis=analysis()
            )
        ),
        pb.SubscribeEventsResponse(
            event=events_pb2.Event(seq=507, type=events_pb2.EVENT_TYPE_IDEA, idea=pending_idea())
        ),
    ]

    assert tradectl(fake, "events", "--type", "analysis", "--type", "idea") == 0

    assert fake.calls[0].request == pb.SubscribeEventsRequest(
        types=[events_pb2.EVENT_TYPE_ANALYSIS, events_pb2.EVENT_TYPE_IDEA]
    )
    assert capsys.readouterr().out.splitlines() == [
        "#506 - ANALYSIS a506 PORTFOLIO_REVIEW by offline/offline-rules: 1 idea(s), 0 dropped",
        "#507 - IDEA i506.1 BUY 101 MSFT @ market (ref 27.95) PENDING_APPROVAL confidence 0.60",
    ]
