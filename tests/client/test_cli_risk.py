"""tradectl's risk-gate commands against the fake service: what each sends, prints and exits with.

`risk state`, `risk check`, `risk limits [set]`, `risk flatten`, `risk status` and
`order buy|sell`; `--json` prints the response itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from client.cli import SIDES, TRADING_CAUSES, TRADING_STATES, main
from tests.client.fake_service import TOKEN, FakeTradingService
from tests.client.risk_samples import (
    COLLAR_REFUSAL,
    LIMITS,
    SINCE,
    SIZE_REFUSAL,
    daily_loss_reducing,
    decision,
    halted_by_alice,
    order,
    risk_status,
)
from trading_sdk.v1 import orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

BUY = orders_pb2.SIDE_BUY
SELL = orders_pb2.SIDE_SELL


def tradectl(fake: FakeTradingService, *args: str) -> int:
    return main(["--target", fake.target, "--token", TOKEN, *args])


def test_every_state_cause_and_side_has_a_command_line_name() -> None:
    def named(values: Iterable[int]) -> set[int]:
        return {value for value in values if value != 0}

    assert set(TRADING_STATES.values()) == named(risk_pb2.TradingState.values())
    # The system's causes clear by themselves: the command line sets only these two.
    assert set(TRADING_CAUSES.values()) == {
        risk_pb2.TRADING_CAUSE_OPERATOR,
        risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
    }
    assert set(SIDES.values()) == named(orders_pb2.Side.values())


# --- risk state -------------------------------------------------------------------


def test_risk_state_sends_the_state_and_reason_and_prints_what_changed(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SetTradingState"] = [
        pb.SetTradingStateResponse(
            trading=halted_by_alice(),
            causes=[halted_by_alice(), daily_loss_reducing()],
            changed=True,
            message="OPERATOR set to HALTED; trading is HALTED",
        )
    ]

    assert tradectl(fake, "risk", "state", "halted", "--reason", "broker incident") == 0

    assert fake.calls[0].request == pb.SetTradingStateRequest(
        state=risk_pb2.TRADING_STATE_HALTED, reason="broker incident"
    )
    assert capsys.readouterr().out.splitlines() == [
        "OPERATOR set to HALTED; trading is HALTED",
        f"trading: HALTED by alice since {SINCE} (OPERATOR): broker incident",
        "changed: yes",
        "causes in force:",
        "  CAUSE               STATE     BY                 SINCE                 REASON",
        f"  OPERATOR            HALTED    alice              {SINCE}  broker incident",
        "  DAILY_LOSS_BREAKER  REDUCING  system:daily-loss  2024-03-05T15:00:00Z"
        "  loss=3100.00 floor=97000.00",
    ]


def test_risk_state_prints_the_services_message_when_nothing_changed(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    message = f"already HALTED by alice (OPERATOR) since {SINCE}: broker incident; nothing changed"
    fake.replies["SetTradingState"] = [
        pb.SetTradingStateResponse(
            trading=halted_by_alice(), causes=[halted_by_alice()], message=message
        )
    ]

    assert tradectl(fake, "risk", "state", "halted", "--reason", "again") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == message
    assert lines[2] == "changed: no"


def test_risk_state_active_with_the_breaker_cause_resets_it(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SetTradingState"] = [
        pb.SetTradingStateResponse(
            trading=risk_pb2.TradingStatus(state=risk_pb2.TRADING_STATE_ACTIVE),
            changed=True,
            message="DAILY_LOSS_BREAKER set to ACTIVE; trading is ACTIVE",
        )
    ]

    status = tradectl(
        fake, "risk", "state", "active", "--cause", "daily_loss_breaker", "--reason", "reviewed"
    )

    assert status == 0
    assert fake.calls[0].request == pb.SetTradingStateRequest(
        state=risk_pb2.TRADING_STATE_ACTIVE,
        reason="reviewed",
        cause=risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
    )
    # Before any change the state has no author and no time: just its name.
    assert capsys.readouterr().out.splitlines()[1:] == [
        "trading: ACTIVE",
        "changed: yes",
        "causes in force: none",
    ]


def test_risk_state_json_is_the_response(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SetTradingState"] = [
        pb.SetTradingStateResponse(
            trading=halted_by_alice(), causes=[halted_by_alice()], message="already HALTED"
        )
    ]

    assert tradectl(fake, "risk", "state", "halted", "--reason", "x", "--json") == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["changed"] is False
    assert printed["message"] == "already HALTED"
    assert printed["trading"]["state"] == "TRADING_STATE_HALTED"
    assert [c["cause"] for c in printed["causes"]] == ["TRADING_CAUSE_OPERATOR"]


def test_an_unknown_state_is_a_usage_error(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        tradectl(fake, "risk", "state", "paused")

    assert exited.value.code == 2
    assert "invalid choice: 'paused'" in capsys.readouterr().err
    assert fake.calls == []


# --- risk check ---------------------------------------------------------------------


def test_risk_check_prints_every_verdict_and_exits_0_when_it_would_pass(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["CheckOrder"] = [
        pb.CheckOrderResponse(
            approved=True, verdicts=decision("-", BUY, "5").verdicts, reference_price="124.0"
        )
    ]

    assert tradectl(fake, "risk", "check", "IBM", "buy", "5") == 0

    assert fake.calls[0].request == pb.CheckOrderRequest(symbol="IBM", side=BUY, quantity="5")
    assert capsys.readouterr().out.splitlines() == [
        "RULE                  PASSED  CODE  DETAIL",
        "MarketHoursRule       yes     OK    2024-03-05T15:00:04Z in session",
        "MaxOrderQuantityRule  yes     OK    quantity=5 limit=10000",
        "would be APPROVED at 124.0 (reduces position: no)",
    ]


def test_risk_check_exits_1_and_names_the_refusals_when_it_would_not_pass(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["CheckOrder"] = [
        pb.CheckOrderResponse(
            verdicts=decision("-", SELL, "10", SIZE_REFUSAL, COLLAR_REFUSAL).verdicts,
            reference_price="100.00",
            reduces_position=True,
        )
    ]

    assert tradectl(fake, "risk", "check", "IBM", "sell", "10", "--limit", "100.00") == 1

    assert fake.calls[0].request == pb.CheckOrderRequest(
        symbol="IBM", side=SELL, quantity="10", limit_price="100.00"
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[:3] == ["MaxPositionSizeRule", "no", "POSITION_SIZE_EXCEEDS_LIMIT"]
    assert lines[3].endswith("notional=5040.00 limit=5000.00")
    assert lines[-1] == (
        "would be REJECTED at 100.00 (reduces position: yes):"
        " POSITION_SIZE_EXCEEDS_LIMIT, PRICE_OUTSIDE_COLLAR"
    )


def test_risk_check_json_keeps_the_exit_status(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["CheckOrder"] = [
        pb.CheckOrderResponse(verdicts=decision("-", BUY, "5", SIZE_REFUSAL).verdicts)
    ]

    assert tradectl(fake, "--json", "risk", "check", "IBM", "buy", "5") == 1

    printed = json.loads(capsys.readouterr().out)
    assert printed["approved"] is False
    assert [v["code"] for v in printed["verdicts"] if not v["passed"]] == [
        "POSITION_SIZE_EXCEEDS_LIMIT"
    ]


def test_risk_check_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--token", TOKEN, "risk", "check", "--help"])

    assert exited.value.code == 0
    assert "exit 0 if it would pass, 1 if not" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("quantity", ["ten", "NaN", "Infinity"])
def test_a_quantity_that_is_not_a_finite_number_is_a_usage_error(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str], quantity: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        tradectl(fake, "risk", "check", "IBM", "buy", quantity)

    assert exited.value.code == 2
    assert "QTY" in capsys.readouterr().err
    assert fake.calls == []


# --- risk limits ----------------------------------------------------------------------


def test_risk_limits_prints_every_limit_in_force(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetRiskStatus"] = [risk_status()]

    assert tradectl(fake, "risk", "limits") == 0

    assert fake.calls[0].request == pb.GetRiskStatusRequest()
    assert capsys.readouterr().out.splitlines() == [
        "LIMIT               VALUE",
        "duplicate_window    60",
        "max_order_quantity  10000",
        "min_confidence      0.6",
    ]


def test_risk_limits_json_has_the_limits(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetRiskStatus"] = [risk_status()]

    assert tradectl(fake, "risk", "limits", "--json") == 0

    assert json.loads(capsys.readouterr().out)["limits"] == LIMITS


def test_risk_limits_set_sends_every_pair_and_prints_what_changed(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["UpdateRiskLimits"] = [
        pb.UpdateRiskLimitsResponse(
            limits={**LIMITS, "max_order_quantity": "5000", "duplicate_window": "30"},
            previous=LIMITS,
        )
    ]

    status = tradectl(
        fake,
        "risk",
        "limits",
        "set",
        "max_order_quantity=5000",
        "duplicate_window = 30",
        "min_confidence=0.6",
        "--reason",
        "tighter",
    )

    assert status == 0
    assert fake.calls[0].request == pb.UpdateRiskLimitsRequest(
        limits={"max_order_quantity": "5000", "duplicate_window": "30", "min_confidence": "0.6"},
        reason="tighter",
    )
    assert capsys.readouterr().out.splitlines() == [
        "LIMIT               PREVIOUS  VALUE",
        "duplicate_window    60        30",
        "max_order_quantity  10000     5000",
    ]


def test_risk_limits_set_says_so_when_nothing_changed(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["UpdateRiskLimits"] = [pb.UpdateRiskLimitsResponse(limits=LIMITS, previous=LIMITS)]

    assert tradectl(fake, "risk", "limits", "set", "min_confidence=0.6", "--reason", "x") == 0
    assert capsys.readouterr().out == "no limit changed: every value given was already in force\n"


def test_risk_limits_set_refuses_a_key_given_twice_before_sending(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tradectl(fake, "risk", "limits", "set", "a=1", "a=2", "--reason", "x")

    assert status == 2
    assert capsys.readouterr().err == "error: limit a is given twice\n"
    assert fake.calls == []


@pytest.mark.parametrize("pair", ["max_order_quantity", "=5", "max_order_quantity="])
def test_risk_limits_set_needs_key_equals_value(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str], pair: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        tradectl(fake, "risk", "limits", "set", pair, "--reason", "x")

    assert exited.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert fake.calls == []


# --- risk flatten -----------------------------------------------------------------------


def test_risk_flatten_without_yes_refuses_in_one_line_and_sends_nothing(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tradectl(fake, "risk", "flatten", "--reason", "end of day") == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: flatten cancels every order and closes every position: add --yes to confirm\n"
    )
    assert fake.calls == []


def test_risk_flatten_prints_the_cancelled_orders_the_closing_decisions_and_orders(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    flatten = "flatten:alice"
    fake.replies["Flatten"] = [
        pb.FlattenResponse(
            trading=halted_by_alice("flatten: end of day"),
            cancelled=[
                order(
                    "o13", BUY, "5", orders_pb2.ORDER_STATUS_CANCELLED, orders_pb2.ORDER_TYPE_LIMIT
                )
            ],
            closing_decisions=[
                decision("d20", SELL, "10", source=flatten),
                decision("d22", SELL, "3", COLLAR_REFUSAL, source=flatten),
            ],
            closing_orders=[
                order("o21", SELL, "10", orders_pb2.ORDER_STATUS_FILLED, filled="10", price="123.9")
            ],
        )
    ]

    assert tradectl(fake, "risk", "flatten", "--reason", "end of day", "--yes") == 0

    assert fake.calls[0].request == pb.FlattenRequest(reason="end of day")
    assert capsys.readouterr().out.splitlines() == [
        f"trading: HALTED by alice since {SINCE} (OPERATOR): flatten: end of day",
        "cancelled (1):",
        "  o13 BUY 5 IBM LIMIT CANCELLED filled 0 @ -",
        "closing decisions (2):",
        "  APPROVED SELL 10 IBM @ 124.0 confidence 1.00 from flatten:alice",
        "  REJECTED SELL 3 IBM @ 124.0 confidence 1.00 from flatten:alice -- PRICE_OUTSIDE_COLLAR:"
        " limit_price=100.00 last=124.00 allowed=[117.80, 130.20] price_collar_pct=0.05",
        "closing orders (1):",
        "  o21 SELL 10 IBM MARKET FILLED filled 10 @ 123.9",
    ]


def test_risk_flatten_with_nothing_to_close_says_none(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["Flatten"] = [pb.FlattenResponse(trading=halted_by_alice("flatten"))]

    assert tradectl(fake, "risk", "flatten", "--reason", "drill", "--yes", "--json") == 0
    assert json.loads(capsys.readouterr().out)["closing_orders"] == []

    assert tradectl(fake, "risk", "flatten", "--reason", "drill", "--yes") == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "cancelled: none",
        "closing decisions: none",
        "closing orders: none",
    ]


# --- order buy|sell -------------------------------------------------------------------------


def test_order_buy_sends_a_market_order_and_prints_the_decision_and_the_order(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SubmitOrder"] = [
        pb.SubmitOrderResponse(
            decision=decision("d5", BUY, "5"),
            order=order("o6", BUY, "5", orders_pb2.ORDER_STATUS_FILLED, filled="5", price="124.06"),
        )
    ]

    assert tradectl(fake, "order", "buy", "IBM", "5", "--reason", "by hand") == 0

    assert fake.calls[0].request == pb.SubmitOrderRequest(
        symbol="IBM",
        side=BUY,
        quantity="5",
        type=orders_pb2.ORDER_TYPE_MARKET,
        reason="by hand",
    )
    assert capsys.readouterr().out.splitlines() == [
        "decision d5: APPROVED BUY 5 IBM @ 124.0 confidence 1.00 from manual:alice",
        "order o6 BUY 5 IBM MARKET FILLED filled 5 @ 124.06",
    ]


def test_order_sell_with_a_limit_is_a_limit_order_and_a_refusal_exits_1(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SubmitOrder"] = [
        pb.SubmitOrderResponse(decision=decision("d7", SELL, "3", SIZE_REFUSAL, COLLAR_REFUSAL))
    ]

    assert tradectl(fake, "order", "sell", "IBM", "3", "--limit", "100.00") == 1

    assert fake.calls[0].request == pb.SubmitOrderRequest(
        symbol="IBM",
        side=SELL,
        quantity="3",
        type=orders_pb2.ORDER_TYPE_LIMIT,
        limit_price="100.00",
    )
    assert capsys.readouterr().out.splitlines() == [
        "decision d7: REJECTED SELL 3 IBM @ 124.0 confidence 1.00 from manual:alice",
        "  refused POSITION_SIZE_EXCEEDS_LIMIT: notional=5040.00 limit=5000.00",
        "  refused PRICE_OUTSIDE_COLLAR: limit_price=100.00 last=124.00"
        " allowed=[117.80, 130.20] price_collar_pct=0.05",
        "order: none placed",
    ]


def test_order_json_is_the_response(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["SubmitOrder"] = [
        pb.SubmitOrderResponse(
            decision=decision("d5", BUY, "5"),
            order=order("o6", BUY, "5", orders_pb2.ORDER_STATUS_ACCEPTED),
        )
    ]

    assert tradectl(fake, "--json", "order", "buy", "IBM", "5") == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["decision"]["approved"] is True
    assert printed["order"]["order_id"] == "o6"
    assert printed["order"]["status"] == "ORDER_STATUS_ACCEPTED"


# --- risk status ------------------------------------------------------------------------------


def test_risk_status_shows_the_causes_and_each_rules_counts(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetRiskStatus"] = [risk_status()]

    assert tradectl(fake, "risk", "status", "--recent", "1") == 0

    assert fake.calls[0].request == pb.GetRiskStatusRequest(recent_decisions=1)
    rule = "─"  # under each table's header
    assert capsys.readouterr().out.splitlines() == [
        "Trading",
        "state   HALTED",
        "by      alice",
        f"since   {SINCE}",
        "cause   OPERATOR",
        "reason  broker incident",
        "",
        "Causes in force",
        "CAUSE                STATE      BY                  SINCE                  REASON",
        rule * 102,
        f"OPERATOR             HALTED     alice               {SINCE}   broker incident",
        "DAILY_LOSS_BREAKER   REDUCING   system:daily-loss   2024-03-05T15:00:00Z   "
        "loss=3100.00 floor=97000.00",
        "",
        "decisions since start: 3 approved, 1 rejected",
        "",
        "Rules: counts since start, and (LOG) since the audit log began",
        "RULE                  PASSED   REJECTED   PASSED (LOG)   REJECTED (LOG)   "
        "REDUCING TRADES   PARAMETERS",
        rule * 113,
        "PriceCollarRule            3          1             40                2   "
        "judged            price_collar_pct=0.05",
        "MaxPositionSizeRule        4          0             41                1   "
        "exempt            max_position_pct=0.05",
        "",
        "Limits in force",
        "LIMIT                VALUE",
        rule * 26,
        "duplicate_window     60",
        "max_order_quantity   10000",
        "min_confidence       0.6",
        "",
        "Recent decisions (1)",
        "DECIDED   VERDICT    SIDE   QTY   SYMBOL   PRICE   SOURCE         REFUSED BY",
        rule * 76,
        "-         APPROVED   BUY      5   IBM      124.0   manual:alice   -",
    ]


def test_risk_status_json_has_the_new_fields(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetRiskStatus"] = [risk_status()]

    assert tradectl(fake, "risk", "status", "--json") == 0

    printed = json.loads(capsys.readouterr().out)
    assert [c["cause"] for c in printed["causes"]] == [
        "TRADING_CAUSE_OPERATOR",
        "TRADING_CAUSE_DAILY_LOSS_BREAKER",
    ]
    assert printed["limits"] == LIMITS
    rule = printed["rules"][1]
    assert (rule["passed_total"], rule["rejected_total"], rule["applies_to_reducing"]) == (
        "41",
        "1",
        False,
    )
