"""tradectl's tables (status, risk status, orders, positions, account, ideas, strategies):
the values a person reads, every counter even at zero, plain text without escape
codes when stdout is not a terminal, rows never wrapped there, and `--json` still
exactly the response."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from client import render
from client.cli import main
from tests.client.advisor_samples import IDEA_ID, approved_idea, pending_idea
from tests.client.fake_service import TOKEN, FakeTradingService
from tests.client.risk_samples import halted_by_alice, order, risk_status
from tests.support.tools import REPO
from trading_sdk.v1 import advisor_pb2, orders_pb2
from trading_sdk.v1 import trading_service_pb2 as pb


def tradectl(fake: FakeTradingService, *args: str) -> int:
    return main(["--target", fake.target, "--token", TOKEN, *args])


def rows(text: str) -> list[list[str]]:
    """Each line's words: how a person (or `awk`) reads a column."""
    return [line.split() for line in text.splitlines()]


def status_reply() -> pb.GetStatusResponse:
    return pb.GetStatusResponse(
        components=[
            pb.ComponentHealth(name="audit", healthy=True, detail="sqlite"),
            pb.ComponentHealth(name="broker", healthy=False, detail="stream down for 20s"),
        ],
        trading=halted_by_alice(),
        counters=pb.Counters(market_events=11958, signals=152, rejections=103),
        clock="event",
        now=json_format.Parse('"2013-03-01T20:59:00Z"', pb.GetStatusResponse().now),
        broker="alpaca",
        version="0.1.0",
        advisor=advisor_pb2.AdvisorCounters(analyst="offline", model="offline-rules", analyses=2),
        broker_endpoint="https://api.alpaca.markets",
        broker_account="PA123",
        broker_live=True,
    )


@pytest.fixture(autouse=True)
def _no_forced_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CI runner may force colour; these tests are about a plain, non-terminal stdout.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_status_shows_the_service_the_trading_state_with_who_and_why_and_each_component(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetStatus"] = [status_reply()]

    assert tradectl(fake, "status") == 0

    out = capsys.readouterr().out
    shown = rows(out)
    for expected in (
        ["version", "0.1.0"],
        ["clock", "event"],
        ["now", "2013-03-01T20:59:00Z"],
        ["broker", "alpaca"],
        ["endpoint", "https://api.alpaca.markets"],
        ["account", "PA123"],
        ["live", "yes:", "real", "money"],
        ["state", "HALTED"],
        ["by", "alice"],
        ["cause", "OPERATOR"],
        ["reason", "broker", "incident"],
        ["audit", "ok", "sqlite"],
        ["broker", "FAILING", "stream", "down", "for", "20s"],
        ["analyst", "offline"],
        ["model", "offline-rules"],
    ):
        assert expected in shown, expected
    assert not out.lstrip().startswith("components:")  # no longer an outline


def test_status_shows_every_counter_even_at_zero(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetStatus"] = [status_reply()]

    assert tradectl(fake, "status") == 0

    shown = rows(capsys.readouterr().out)
    counters = status_reply().counters
    advisor = status_reply().advisor
    for message in (counters, advisor):
        for field in message.DESCRIPTOR.fields:
            value = getattr(message, field.name)
            if isinstance(value, int):
                expected = [*field.name.split("_"), f"{value:,}"]
                assert expected in shown, expected
    assert ["orders", "0"] in shown and ["fills", "0"] in shown
    assert ["ideas", "proposed", "0"] in shown
    assert ["market", "events", "11,958"] in shown


def test_status_of_a_fresh_service_shows_zeros_not_blanks(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tradectl(fake, "status") == 0  # the fake answers an empty GetStatusResponse

    out = capsys.readouterr().out
    shown = rows(out)
    assert ["market", "events", "0"] in shown
    assert ["audit", "events", "0"] in shown
    assert ["analyst", "unavailable", "0"] in shown
    assert "components: none" in out.splitlines()


def test_risk_status_shows_the_limits_and_the_recent_decisions_asked_for(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetRiskStatus"] = [risk_status()]

    assert tradectl(fake, "risk", "status", "--recent", "1") == 0

    shown = rows(capsys.readouterr().out)
    assert ["max_order_quantity", "10000"] in shown
    assert ["-", "APPROVED", "BUY", "5", "IBM", "124.0", "manual:alice", "-"] in shown


def test_orders_active_shows_limit_and_time_in_force_and_says_when_there_are_none(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    limit = order("o9", orders_pb2.SIDE_BUY, "10", orders_pb2.ORDER_STATUS_ACCEPTED)
    limit.type, limit.limit_price = orders_pb2.ORDER_TYPE_LIMIT, "99.50"
    limit.time_in_force = orders_pb2.TIME_IN_FORCE_GTC
    fake.replies["ListActiveOrders"] = [pb.ListActiveOrdersResponse(orders=[limit])]

    assert tradectl(fake, "orders", "active") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ORDER",
        "SYMBOL",
        "SIDE",
        "QTY",
        "TYPE",
        "STATUS",
        "FILLED",
        "AVG",
        "PRICE",
        "LIMIT",
        "TIF",
        "UPDATED",
    ]
    assert lines[2].split() == [
        "o9",
        "IBM",
        "BUY",
        "10",
        "LIMIT",
        "ACCEPTED",
        "0",
        "-",
        "99.50",
        "GTC",
        "-",
    ]

    fake.replies["ListActiveOrders"] = [pb.ListActiveOrdersResponse()]
    assert tradectl(fake, "orders", "active") == 0
    assert capsys.readouterr().out == "no active orders\n"


def test_positions_and_account_are_tables_of_their_values(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["ListPositions"] = [
        pb.ListPositionsResponse(
            positions=[
                orders_pb2.Position(
                    symbol="IBM",
                    quantity="10",
                    average_price="120.00",
                    market_price="118.50",
                    market_value="1185.00",
                    unrealized_pnl="-15.00",
                )
            ]
        )
    ]
    fake.replies["GetAccount"] = [
        pb.GetAccountResponse(account=orders_pb2.Account(cash="98815.00", currency="USD"))
    ]

    assert tradectl(fake, "positions") == 0
    assert rows(capsys.readouterr().out)[2] == [
        "IBM",
        "10",
        "120.00",
        "118.50",
        "1185.00",
        "-15.00",
    ]
    assert tradectl(fake, "account") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Account",
        "cash          98815.00",
        "equity        -",
        "buying power  -",
        "currency      USD",
    ]
    fake.replies["ListPositions"] = [pb.ListPositionsResponse()]
    assert tradectl(fake, "positions") == 0
    assert capsys.readouterr().out == "no positions\n"


def test_ideas_list_without_ideas_says_so_and_still_gives_the_next_page(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["ListIdeas"] = [pb.ListIdeasResponse(next_page_token="p2")]

    assert tradectl(fake, "ideas", "list") == 0
    assert capsys.readouterr().out == "no ideas\nmore: --page-token p2\n"


def test_a_long_cell_is_not_wrapped_when_stdout_is_not_a_terminal(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    parameters = {f"parameter_{k}": "x" * 20 for k in range(12)}  # about 400 characters
    fake.replies["ListStrategies"] = [
        pb.ListStrategiesResponse(
            strategies=[
                pb.Strategy(
                    name="ma_crossover", active=True, symbols=["SPY"], parameters=parameters
                )
            ]
        )
    ]

    assert tradectl(fake, "strategies", "list") == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header, rule, one row: nothing folded onto a next line
    assert lines[2].split()[:4] == ["ma_crossover", "yes", "SPY", "0"]
    assert lines[2].endswith("parameter_9=" + "x" * 20)


def test_a_cell_is_never_read_as_rich_markup(
    fake: FakeTradingService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.replies["GetStatus"] = [
        pb.GetStatusResponse(trading=halted_by_alice("see [bold]ticket[/bold] :warning:"))
    ]

    assert tradectl(fake, "status") == 0
    assert ["reason", "see", "[bold]ticket[/bold]", ":warning:"] in rows(capsys.readouterr().out)


REPLIES: list[tuple[list[str], str, Message]] = [
    (["status"], "GetStatus", status_reply()),
    (["risk", "status", "--recent", "1"], "GetRiskStatus", risk_status()),
    (
        ["orders", "history"],
        "ListOrderHistory",
        pb.ListOrderHistoryResponse(
            orders=[order("o1", orders_pb2.SIDE_SELL, "5", orders_pb2.ORDER_STATUS_FILLED)],
            next_page_token="n",
        ),
    ),
    (
        ["positions"],
        "ListPositions",
        pb.ListPositionsResponse(positions=[orders_pb2.Position(symbol="IBM", quantity="1")]),
    ),
    (["account"], "GetAccount", pb.GetAccountResponse(account=orders_pb2.Account(cash="1"))),
    (
        ["ideas", "list"],
        "ListIdeas",
        pb.ListIdeasResponse(ideas=[pending_idea(), approved_idea()]),
    ),
    (
        ["strategies", "list"],
        "ListStrategies",
        pb.ListStrategiesResponse(strategies=[pb.Strategy(name="s", active=True)]),
    ),
]
IDS = [" ".join(args[:2]) for args, _, _ in REPLIES]


@pytest.mark.parametrize(("args", "method", "reply"), REPLIES, ids=IDS)
def test_json_is_still_exactly_the_response(
    fake: FakeTradingService,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    method: str,
    reply: Message,
) -> None:
    fake.replies[method] = [reply]

    assert tradectl(fake, "--json", *args) == 0

    out = capsys.readouterr().out
    response = json_format.MessageToJson(
        reply,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        indent=2,
    )
    # One JSON document, nothing around it, every field, as the proto names them (a
    # map's keys may come in another order after the wire, so compared as data).
    assert out.startswith("{\n  ") and out.endswith("}\n")
    assert json.loads(out) == json.loads(response)
    assert len(out) == len(response) + 1


@pytest.mark.parametrize(("args", "method", "reply"), REPLIES, ids=IDS)
def test_no_escape_codes_when_stdout_is_not_a_terminal(
    fake: FakeTradingService,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    method: str,
    reply: Message,
) -> None:
    fake.replies[method] = [reply]

    assert tradectl(fake, *args) == 0

    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert all(line == line.rstrip() for line in out.splitlines())  # no padding to a width


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_tables_are_styled() -> None:
    styled = render.to_text(render.status_view(status_reply()), _Terminal())
    plain = render.to_text(render.status_view(status_reply()), io.StringIO())

    assert "\x1b[" in styled
    assert "\x1b" not in plain
    assert "HALTED" in styled and "FAILING" in styled


def test_no_color_keeps_a_terminal_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # https://no-color.org, which rich honours

    text = render.to_text(render.ideas_view([pending_idea()]), _Terminal())

    assert "\x1b[3" not in text  # no colour (bold may remain)
    assert IDEA_ID in text


def test_a_table_into_head_ends_quietly_with_exit_0(fake: FakeTradingService) -> None:
    many = [
        order(f"o{k}", orders_pb2.SIDE_BUY, "1", orders_pb2.ORDER_STATUS_FILLED)
        for k in range(3000)  # a table larger than a pipe holds (64 KiB)
    ]
    fake.replies["ListOrderHistory"] = [pb.ListOrderHistoryResponse(orders=many)]
    tradectl = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "--target", fake.target, "orders", "history"],
        cwd=REPO,
        env={**os.environ, "TRADING_API_KEY": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tradectl.stdout is not None and tradectl.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=tradectl.stdout, stdout=subprocess.PIPE)
    tradectl.stdout.close()  # head holds the only reader: once it exits, the pipe is broken
    first, _ = head.communicate(timeout=60)
    stderr = tradectl.stderr.read().decode()

    assert tradectl.wait(60) == 0, stderr
    assert first.split()[:2] == [b"ORDER", b"SYMBOL"]
    assert stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
