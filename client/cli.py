"""tradectl: the trading service from the command line.

    tradectl [--target HOST:PORT] [--token KEY] [--json] COMMAND ...

`--target` defaults to $TRADING_TARGET or 127.0.0.1:50051, `--token` to
$TRADING_API_KEY. Output is tables and lines for people (rich: styled on a
terminal, plain text elsewhere, render.py); `--json` (before or after the
command) prints each response as JSON, one object per line for streams.

Exit status: 0 success; 1 the service failed (UNAVAILABLE, DEADLINE_EXCEEDED,
INTERNAL, ... from a service that was reached); 2 the request was refused as
given (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, UNAUTHENTICATED,
PERMISSION_DENIED, ...) or the command line was wrong; 3 `audit verify` found
the hash chain broken; 4 the service could not be reached (nothing listens at
the target, its name does not resolve, or no connection was made before the
deadline); 130 interrupted. `risk check` and `order buy|sell` exit 1 when the
risk gate would refuse (or refused) the order. An RPC error prints
``error: <CODE>: <details>`` on stderr, never a traceback; an unreachable
service prints one line naming the address instead. A reader that closes the
output early (``tradectl audit query | head -1``) ends the command quietly,
with 0.

`backtest` (client/backtest/) and `replay` (client/audit_replay.py) run the
core offline, on a data file and on a recorded audit log; they need no service
and no token. `replay` exits 1 when the log does not reproduce, 3 when its hash
chain is broken.

`feed alpaca` (client/alpaca_feed.py) forwards Alpaca's live bars into the
service; `data alpaca` (client/alpaca_history.py) downloads historical bars into
the file format `stream` reads, and needs no token. Both read the ALPACA_*
variables the service reads.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, TextIO, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import RenderableType

from client import alpaca_feed, alpaca_history, render, token_command
from client.audit_replay import add_replay_arguments, run_replay
from client.backtest.command import add_backtest_arguments, run_backtest_command
from client.marketdata import DEFAULT_BARS, batches, read_market_file
from client.streaming import refused_where, stream_progress, stream_warnings
from trading_sdk.client import DEFAULT_TARGET, TIMES_IN_FORCE, AuditFilters, TradingClient
from trading_sdk.retries import retry_options
from trading_sdk.tls import open_channel, resolve_tls
from trading_sdk.v1 import advisor_pb2, events_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_REFUSED: Final = 2
# `risk check` and `order`: the risk gate would refuse, or refused, the order.
EXIT_GATE_REFUSED: Final = 1
EXIT_AUDIT_BROKEN: Final = 3
# No connection to the service at all: nothing listening, unknown name, no handshake in time.
EXIT_UNREACHABLE: Final = 4
EXIT_INTERRUPTED: Final = 130

# Codes that mean "this request, as given, will not succeed": fix the command, not the service.
REFUSED_CODES: Final = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)

_M = TypeVar("_M", bound=Message)

Handler = Callable[[TradingClient, argparse.Namespace, "Printer"], int]


class Printer:
    """Writes responses as text or as JSON, per --json."""

    def __init__(self, as_json: bool, out: TextIO) -> None:
        self._as_json = as_json
        self._out = out

    def show(self, message: _M, text: Callable[[_M], RenderableType]) -> None:
        """A whole response: indented JSON, or `text(message)`: a string, or a rich
        table (styled on a terminal, plain text elsewhere: render.to_text)."""
        if self._as_json:
            self._write(_json(message, indent=2))
        else:
            self._write(render.to_text(text(message), self._out))

    def each(self, messages: Iterable[_M], text: Callable[[_M], str]) -> None:
        """Stream items as they arrive: one JSON object or one text line each."""
        for message in messages:
            if self._as_json:
                self._write(_json(message, indent=None))
            else:
                self._write(text(message))

    def _write(self, text: str) -> None:
        # Flushed per item: `tradectl events | grep ...` should see events as they happen.
        print(text, file=self._out, flush=True)


def _json(message: Message, indent: int | None) -> str:
    # Scripts reading --json output get every field, zero values included, named as in the proto.
    return json_format.MessageToJson(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        indent=indent,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one tradectl command; returns the exit status (see the module doc)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    printer = Printer(args.json, sys.stdout)
    if not getattr(args, "needs_service", True):  # `data alpaca`: no token, no channel
        try:
            status = int(args.handler(None, args, printer))
            sys.stdout.flush()
            return status
        except BrokenPipeError:  # `tradectl backtest ... | head -3`
            _discard_stdout()
            return EXIT_OK
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    if not args.token:
        parser.error("no API key: pass --token or set TRADING_API_KEY")
    handler: Handler = args.handler
    try:
        tls = resolve_tls(args.tls, args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    except ValueError as error:  # names the file or variable
        parser.error(str(error))
    channel = open_channel(args.target, tls, retry_options())
    try:
        with channel:  # the client's: TradingClient leaves a channel it is given open
            client = TradingClient(args.target, args.token, timeout=args.timeout, channel=channel)
            status = handler(client, args, printer)
        sys.stdout.flush()  # a reader gone shows up here, not at interpreter exit
        return status
    except BrokenPipeError:  # before OSError: `tradectl audit query | head -1`
        _discard_stdout()
        return EXIT_OK
    except grpc.RpcError as error:
        if _unreachable(error, args.target, args.timeout):
            print(unreachable_line(error, args.target, args.timeout), file=sys.stderr)
            return EXIT_UNREACHABLE
        code = error.code()
        print(f"error: {code.name}: {error.details() or ''}", file=sys.stderr)
        return EXIT_REFUSED if code in REFUSED_CODES else EXIT_FAILED
    except (OSError, ValueError) as error:  # a market-data file that is missing or malformed
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# What gRPC's client side says when it made no connection at all (refused, unknown
# name, unroutable, no HTTP/2 handshake in time): the service was never reached.
_NO_CONNECTION: Final = (
    "failed to connect to all addresses",
    "connection refused",
    "failed to connect to remote host",
    "errors resolving",
    "dns resolution failed",
    "name resolution",
    "no route to host",
    "network is unreachable",
)


def _unreachable(error: grpc.RpcError, target: str, timeout: float) -> bool:
    """True when the call failed because no connection to the service was made."""
    code = error.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        details = (error.details() or "").lower()
        return any(marker in details for marker in _NO_CONNECTION)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        # The same status for a slow service and for one never reached: ask TCP.
        return not _accepts_connections(target, min(1.0, max(timeout, 0.1)))
    return False


def unreachable_line(error: grpc.RpcError, target: str, timeout: float) -> str:
    """The one line for a service never reached: where, why, and what to do; never
    gRPC's own text, which is written for gRPC's developers."""
    details = (error.details() or "").lower()
    if "handshake failed" in details or "certificate" in details:
        # Something answers there, but TLS did not agree: starting it will not help.
        return (
            f"error: no TLS connection to the trading service at {target} (the handshake "
            "failed): check --tls, --tls-ca and --tls-server-name against how it serves"
        )
    if "socket closed" in details or "connection reset" in details:
        # Something took the connection and dropped it at once: most often a TLS
        # server met by a plaintext client, or mutual TLS without a certificate.
        return (
            f"error: the trading service at {target} closed the connection at once: if it "
            "serves TLS, give --tls or --tls-ca (and --tls-cert/--tls-key for client "
            "certificates)"
        )
    if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
        why = f"no connection within {timeout:g}s"
    elif "connection refused" in details:
        why = "connection refused"
    elif any(m in details for m in ("errors resolving", "dns resolution", "name resolution")):
        why = "the name does not resolve"
    elif "no route to host" in details or "network is unreachable" in details:
        why = "no route to it"
    else:
        why = "no connection"
    return (
        f"error: cannot reach the trading service at {target} ({why}): start it with "
        "'make run', or point --target (or TRADING_TARGET) at it"
    )


def _accepts_connections(target: str, timeout: float) -> bool:
    """Whether `target` (host:port, [v6]:port, dns:///host:port) takes a TCP
    connection within `timeout`; True when the target is not of that form."""
    address = target
    for scheme in ("dns:", "ipv4:", "ipv6:"):
        address = address.removeprefix(scheme)
    address = address.removeprefix("///")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "/" in address:
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _discard_stdout() -> None:
    """The reader of stdout has gone: point stdout at /dev/null, so that the flush at
    exit does not fail again (the recipe in Python's signal module docs, SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (replaced, or closed)
        pass


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; defaults come from the environment when this is called."""
    parser = argparse.ArgumentParser(
        prog="tradectl",
        description="Drive the trading service.",
        epilog="Exit status: 0 ok, 1 service failure (and for `risk check` and `order`: "
        "the risk gate refuses), 2 refused request or bad usage, 3 broken audit chain, "
        "4 service not reachable.",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("TRADING_TARGET", DEFAULT_TARGET),
        help="host:port of the service (env TRADING_TARGET, default %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TRADING_API_KEY", ""),
        help="API key sent as a bearer token (env TRADING_API_KEY)",
    )
    # TLS (client/trading_sdk/tls.py): an option left out is read from its variable there.
    parser.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="connect over TLS, trusting the default roots unless --tls-ca (env TRADING_TLS=yes)",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="CA certificate(s) to trust; implies --tls (env TRADING_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="client certificate for mutual TLS, with --tls-key (env TRADING_TLS_CLIENT_CERT)",
    )
    parser.add_argument(
        "--tls-key", metavar="PEM", help="its private key (env TRADING_TLS_CLIENT_KEY)"
    )
    parser.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="name to check in the server's certificate instead of the target's host "
        "(env TRADING_TLS_SERVER_NAME)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per call (default %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print responses as JSON")
    # Accept --json after the command too; SUPPRESS keeps it from undoing a --json given before.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    command(
        commands,
        "status",
        _unary(lambda c, a: c.get_status(), render.status_view),
        "health, trading state and counters",
    )

    strategies = group("strategies", "list, activate or deactivate strategies")
    command(
        strategies,
        "list",
        _unary(lambda c, a: c.list_strategies(), lambda r: render.strategies_view(r.strategies)),
        "registered strategies",
    )
    command(
        strategies,
        "activate",
        _unary(lambda c, a: c.activate_strategy(a.name), _one_strategy),
        "activate a strategy",
    ).add_argument("name")
    command(
        strategies,
        "deactivate",
        _unary(lambda c, a: c.deactivate_strategy(a.name), _one_strategy),
        "deactivate a strategy",
    ).add_argument("name")

    risk = group("risk", "the risk gate")
    command(
        risk,
        "status",
        _unary(lambda c, a: c.get_risk_status(a.recent), render.risk_status_view),
        "trading state and causes in force, each rule's counts, recent decisions",
    ).add_argument(
        "--recent", type=int, default=0, metavar="N", help="include the last N decisions"
    )
    command(
        risk,
        "activate",
        _unary(lambda c, a: c.activate_risk(a.reason), lambda r: render.trading_view(r.trading)),
        "resume trading",
    ).add_argument("--reason", default="")
    command(
        risk,
        "deactivate",
        _unary(lambda c, a: c.deactivate_risk(a.reason), lambda r: render.trading_view(r.trading)),
        "halt trading: every new signal is rejected",
    ).add_argument("--reason", required=True, help="recorded in the audit log")
    state = command(
        risk,
        "state",
        _unary(_set_trading_state, render.trading_state_text),
        "set the operator's trading state (reducing: only trades that cut a position pass;"
        " halted: every new signal is rejected), or reset the daily loss breaker",
    )
    state.add_argument("state", choices=tuple(TRADING_STATES))
    state.add_argument(
        "--reason", default="", help="recorded in the audit log; required for reducing and halted"
    )
    state.add_argument(
        "--cause",
        choices=tuple(TRADING_CAUSES),
        help="whose setting: operator (default), or daily_loss_breaker with active to reset it",
    )
    check = command(
        risk,
        "check",
        _order_check,
        "dry run: every rule's verdict on an order, with no side effect"
        " (exit 0 if it would pass, 1 if not)",
    )
    check.add_argument("symbol")
    check.add_argument("side", choices=tuple(SIDES))
    check.add_argument("quantity", type=_decimal, metavar="QTY")
    check.add_argument("--limit", type=_decimal, metavar="PRICE", help="a limit order's price")
    limits = command(
        risk,
        "limits",
        _unary(lambda c, a: c.get_risk_status(), lambda r: render.limits_table(r.limits)),
        "the risk limits in force; `limits set KEY=VALUE ...` changes some",
    )
    limits_set = command(
        limits.add_subparsers(dest="limits_action", metavar="ACTION"),
        "set",
        _unary(_update_risk_limits, render.limits_update_text),
        "change risk limits, all or none (durations in seconds, booleans true/false)",
    )
    limits_set.add_argument("limits", nargs="+", type=_key_value, metavar="KEY=VALUE")
    limits_set.add_argument("--reason", required=True, help="recorded in the audit log")
    flatten = command(
        risk,
        "flatten",
        _flatten,
        "the kill switch: halt, cancel every working order, close every position (needs --yes)",
    )
    flatten.add_argument("--reason", required=True, help="recorded in the audit log")
    flatten.add_argument("--yes", action="store_true", help="confirm: this closes every position")

    order = group("order", "place an order by hand, through the risk gate")
    for verb in SIDES:
        placing = command(
            order,
            verb,
            _submit_order,
            f"{verb} at market, or at --limit PRICE (exit 1 if the risk gate refuses it)",
        )
        placing.add_argument("symbol")
        placing.add_argument("quantity", type=_decimal, metavar="QTY", nargs="?")
        placing.add_argument(
            "--notional",
            type=_decimal,
            metavar="AMOUNT",
            help="instead of QTY: a market DAY order for this much money",
        )
        placing.add_argument("--limit", type=_decimal, metavar="PRICE", help="a limit price")
        placing.add_argument(
            "--tif",
            choices=sorted(TIMES_IN_FORCE),
            help="time in force (default: day)",
        )
        placing.add_argument("--reason", default="", help="recorded in the audit log")
        placing.set_defaults(side=verb)

    orders = group("orders", "open and past orders")
    for listing in (
        command(
            orders,
            "active",
            _unary(
                lambda c, a: c.list_active_orders(a.symbol, a.page_size, a.page_token),
                lambda r: render.orders_view(r.orders, r.next_page_token, "active orders"),
            ),
            "open orders",
        ),
        command(
            orders,
            "history",
            _unary(
                lambda c, a: c.list_order_history(a.symbol, a.page_size, a.page_token),
                lambda r: render.orders_view(r.orders, r.next_page_token),
            ),
            "all orders, oldest first",
        ),
    ):
        listing.add_argument("--symbol", default="")
        listing.add_argument("--page-size", type=int, default=0)
        listing.add_argument("--page-token", default="")
    command(
        orders,
        "cancel",
        _unary(lambda c, a: c.cancel_order(a.order_id), lambda r: render.order_line(r.order)),
        "cancel an open order",
    ).add_argument("order_id")

    command(
        commands,
        "account",
        _unary(lambda c, a: c.get_account(), lambda r: render.account_view(r.account)),
        "cash, equity and buying power",
    )
    command(
        commands,
        "positions",
        _unary(lambda c, a: c.list_positions(), lambda r: render.positions_view(r.positions)),
        "net positions",
    )

    events = command(commands, "events", _events, "follow live events (Ctrl-C to stop)")
    events.add_argument(
        "--type",
        dest="types",
        action="append",
        type=_event_type,
        default=[],
        metavar="TYPE",
        help=f"only this type (repeatable): {', '.join(_EVENT_TYPES)}",
    )
    events.add_argument("--symbol", dest="symbols", action="append", default=[])
    events.add_argument("--from-seq", type=int, default=0, help="replay from this audit seq first")

    audit = group("audit", "the audit log")
    command(audit, "verify", _audit_verify, "verify the hash chain (exit 3 if broken)")
    query = command(audit, "query", _audit_query, "print audit records (--json: in full)")
    query.add_argument("--from-seq", type=int, default=0)
    query.add_argument("--to-seq", type=int, default=0)
    query.add_argument("--since", type=_aware_datetime, help="ISO 8601 with a UTC offset")
    query.add_argument("--until", type=_aware_datetime, help="ISO 8601 with a UTC offset")
    query.add_argument(
        "--type", dest="event_types", action="append", default=[], help="e.g. RiskDecisionMade"
    )
    query.add_argument("--symbol", default="")
    query.add_argument("--order-id", default="")
    query.add_argument("--idea-id", default="")

    simulate = command(
        commands, "simulate", _unary(_simulate, _simulation_text), "send one market event"
    )
    simulate.add_argument("symbol")
    simulate.add_argument("price", type=float)
    simulate.add_argument("--volume", type=float)
    simulate.add_argument(
        "--timestamp", type=_aware_datetime, help="ISO 8601 with a UTC offset (default: now)"
    )

    advisor = group("advisor", "the AI advisor (it never trades by itself)")
    analyze = command(
        advisor,
        "analyze",
        _unary(_analyze, lambda r: render.analysis_text(r.analysis, r.ideas)),
        "an analysis with risk warnings, and trade ideas pending approval",
    )
    analyze.add_argument(
        "--symbol", dest="symbols", action="append", default=[], help="of interest (repeatable)"
    )
    analyze.add_argument("--question", default="")
    analyze.add_argument("--kind", choices=tuple(ANALYSIS_KINDS), default="portfolio")

    ideas = group("ideas", "trade ideas: list, show, approve or reject")
    idea_list = command(ideas, "list", _unary(_list_ideas, _ideas_page), "ideas, oldest first")
    idea_list.add_argument("--state", choices=tuple(IDEA_STATES), help="only ideas in this state")
    idea_list.add_argument("--page-size", type=int, default=0)
    idea_list.add_argument("--page-token", default="")
    command(
        ideas,
        "show",
        _unary(lambda c, a: c.get_idea(a.idea_id), _one_idea),
        "one idea in full",
    ).add_argument("idea_id")
    for verb, help_text in (
        ("approve", "approve a pending idea: it goes to the risk gate as a signal"),
        ("reject", "reject a pending idea"),
    ):
        decide = command(ideas, verb, _unary(_decide_idea, _one_idea), help_text)
        decide.add_argument("idea_id")
        decide.add_argument("--reason", default="", help="recorded with the decision")
        decide.set_defaults(decision=IDEA_DECISIONS[verb])

    stream = command(
        commands, "stream", _stream, "stream a market-data file (CSV or Parquet), exactly once"
    )
    stream.epilog = STREAM_FILE_FORMAT
    stream.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the format's lines
    stream.add_argument(
        "file", nargs="?", type=Path, default=DEFAULT_BARS, help="default: the bundled daily bars"
    )
    stream.add_argument("--batch-size", type=int, default=STREAM_BATCH_SIZE)
    stream.add_argument("--symbol", dest="symbols", action="append", help="only this symbol")
    stream.add_argument(
        "--columns",
        default="",
        metavar="COLUMN=NAME,...",
        help="the file's names for the columns: timestamp=Date,symbol=Ticker,price=Close",
    )
    stream.add_argument(
        "--timezone", help="the zone of time stamps without an offset (America/New_York, ...)"
    )
    stream.add_argument(
        "--feed-id",
        default="",
        help="the feed's name: the service drops a message of it already accepted, so a "
        "resend is exactly once (default: tradectl:<file name>, with the symbols and a "
        "batch size other than the default; give a new one to stream the same file again)",
    )
    stream.add_argument(
        "--tries",
        type=int,
        default=STREAM_TRIES,
        help="on UNAVAILABLE, resend the whole file, with the same feed id and message "
        "numbers, up to this many tries in all, with backoff (default %(default)s)",
    )

    feed = group("feed", "live market data into the service")
    alpaca_feed.add_arguments(
        command(
            feed,
            "alpaca",
            alpaca_feed.run_command,
            "forward Alpaca's live 1Min bars of the active strategies' symbols, exactly once "
            "(needs ALPACA_API_KEY and ALPACA_SECRET_KEY; Ctrl-C to stop)",
        )
    )
    data = group("data", "market-data files for `tradectl stream`")
    alpaca_history.add_arguments(
        command(
            data,
            "alpaca",
            alpaca_history.run_command,
            "download Alpaca's historical bars into a file `tradectl stream` reads "
            "(needs ALPACA_API_KEY and ALPACA_SECRET_KEY, not the service)",
        )
    )
    backtest = command(
        commands,
        "backtest",
        _backtest,
        "run the service's core over a CSV or Parquet file, offline, and report on it "
        "(no service needed); a range for --short or --long runs a grid",
    )
    add_backtest_arguments(backtest)
    backtest.set_defaults(needs_service=False)
    tokens = group("token", "the service's API keys in the tokens file (no service needed)")
    for name, handler, add_arguments, help_text in (
        ("create", _token_create, token_command.add_create_arguments, "create a key, shown once"),
        ("list", _token_list, token_command.add_file_argument, "list the keys (never the tokens)"),
        ("revoke", _token_revoke, token_command.add_revoke_arguments, "revoke a key at once"),
    ):
        sub = command(tokens, name, handler, help_text)
        add_arguments(sub)
        sub.set_defaults(needs_service=False)
    replay = command(
        commands,
        "replay",
        _replay,
        "check offline that a recorded audit log reproduces: its inputs through a fresh "
        "core, record by record, naming the first that differs (no service needed)",
    )
    add_replay_arguments(replay)
    replay.set_defaults(needs_service=False)
    return parser


def _replay(_client: object, args: argparse.Namespace, _out: Printer) -> int:
    return run_replay(args, sys.stdout, args.json)


def _backtest(_client: object, args: argparse.Namespace, _out: Printer) -> int:
    return run_backtest_command(args, sys.stdout, args.json)


def _token_create(_client: object, args: argparse.Namespace, _out: Printer) -> int:
    return token_command.run_create(args, sys.stdout, args.json)


def _token_list(_client: object, args: argparse.Namespace, _out: Printer) -> int:
    return token_command.run_list(args, sys.stdout, args.json)


def _token_revoke(_client: object, args: argparse.Namespace, _out: Printer) -> int:
    return token_command.run_revoke(args, sys.stdout, args.json)


# --- argument types -------------------------------------------------------

_EVENT_TYPES: Final = {
    name.removeprefix("EVENT_TYPE_").lower(): value
    for name, value in events_pb2.EventType.items()
    if value != events_pb2.EVENT_TYPE_UNSPECIFIED
}


# The command line's names for the advisor's enums, all in one place.
ANALYSIS_KINDS: Final = {
    "portfolio": advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW,
    "market": advisor_pb2.ANALYSIS_KIND_MARKET_CONDITIONS,
    "education": advisor_pb2.ANALYSIS_KIND_EDUCATION,
}
IDEA_STATES: Final = {
    "pending": advisor_pb2.IDEA_STATE_PENDING_APPROVAL,
    "approved": advisor_pb2.IDEA_STATE_APPROVED,
    "rejected": advisor_pb2.IDEA_STATE_REJECTED,
    "expired": advisor_pb2.IDEA_STATE_EXPIRED,
}
IDEA_DECISIONS: Final = {
    "approve": advisor_pb2.IDEA_DECISION_APPROVE,
    "reject": advisor_pb2.IDEA_DECISION_REJECT,
}


# The command line's names for the risk gate's enums.
TRADING_STATES: Final = {
    "active": risk_pb2.TRADING_STATE_ACTIVE,
    "reducing": risk_pb2.TRADING_STATE_REDUCING,
    "halted": risk_pb2.TRADING_STATE_HALTED,
}
TRADING_CAUSES: Final = {
    "operator": risk_pb2.TRADING_CAUSE_OPERATOR,
    "daily_loss_breaker": risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
}
SIDES: Final = {"buy": orders_pb2.SIDE_BUY, "sell": orders_pb2.SIDE_SELL}


def _decimal(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not number.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return number


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _event_type(text: str) -> events_pb2.EventType.ValueType:
    key = text.lower().removeprefix("event_type_").replace("-", "_")
    if key not in _EVENT_TYPES:
        raise argparse.ArgumentTypeError(f"unknown event type {text!r}")
    return _EVENT_TYPES[key]


def _aware_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +00:00")
    return moment


# --- commands -------------------------------------------------------------


def _unary(
    call: Callable[[TradingClient, argparse.Namespace], _M],
    text: Callable[[_M], RenderableType],
) -> Handler:
    """A command that makes one call and shows its response."""

    def handle(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
        out.show(call(client, args), text)
        return EXIT_OK

    return handle


def _one_strategy(
    response: pb.ActivateStrategyResponse | pb.DeactivateStrategyResponse,
) -> RenderableType:
    return render.strategies_view([response.strategy])


def _events(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    with client.subscribe_events(args.types, args.symbols, args.from_seq) as stream:
        out.each(stream, render.event_line)
    return EXIT_OK


def _audit_verify(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    response = client.verify_audit()
    out.show(response, _verification_text)
    return EXIT_OK if response.ok else EXIT_AUDIT_BROKEN


def _verification_text(response: pb.VerifyAuditResponse) -> str:
    # anchor_reason: how far back the log is confirmed by its anchors, or why it is not.
    anchors = response.anchor_reason
    if response.ok:
        text = f"audit chain OK: {response.checked} records checked, last seq {response.last_seq}"
        return f"{text}; {anchors}" if anchors else text
    where = f" at seq {response.first_bad_seq}" if response.first_bad_seq else ""
    text = f"audit chain BROKEN{where}: {response.reason}"
    return f"{text} (anchors: {anchors})" if anchors and anchors != response.reason else text


def _audit_query(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    filters: AuditFilters = {
        "from_seq": args.from_seq,
        "to_seq": args.to_seq,
        "event_types": args.event_types,
        "symbol": args.symbol,
        "order_id": args.order_id,
        "idea_id": args.idea_id,
    }
    if args.since is not None:
        filters["since"] = args.since
    if args.until is not None:
        filters["until"] = args.until
    with client.query_audit(**filters) as records:
        out.each(records, render.audit_line)
    return EXIT_OK


def _simulate(client: TradingClient, args: argparse.Namespace) -> pb.SimulateMarketEventResponse:
    return client.simulate_market_event(args.symbol, args.price, args.volume, args.timestamp)


def _simulation_text(response: pb.SimulateMarketEventResponse) -> str:
    lines = [f"seq {response.seq}"]
    lines += (f"signal   {render.signal_line(s)}" for s in response.signals)
    lines += (f"decision {render.decision_line(d)}" for d in response.decisions)
    lines += (f"order    {render.order_line(o)}" for o in response.orders)
    return "\n".join(lines)


def _set_trading_state(
    client: TradingClient, args: argparse.Namespace
) -> pb.SetTradingStateResponse:
    cause = TRADING_CAUSES[args.cause] if args.cause else None
    return client.set_trading_state(TRADING_STATES[args.state], args.reason, cause=cause)


def _order_check(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    response = client.check_order(
        args.symbol, SIDES[args.side], args.quantity, limit_price=args.limit
    )
    out.show(response, render.order_check_text)
    return EXIT_OK if response.approved else EXIT_GATE_REFUSED


def _update_risk_limits(
    client: TradingClient, args: argparse.Namespace
) -> pb.UpdateRiskLimitsResponse:
    limits: dict[str, str] = {}
    for key, value in args.limits:
        if key in limits:
            raise ValueError(f"limit {key} is given twice")
        limits[key] = value
    return client.update_risk_limits(limits, args.reason)


def _flatten(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    if not args.yes:
        print(
            "error: flatten cancels every order and closes every position: add --yes to confirm",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    out.show(client.flatten(args.reason), render.flatten_text)
    return EXIT_OK


def _submit_order(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    # Neither or both of QTY and --notional: the service says so (INVALID_ARGUMENT).
    response = client.submit_order(
        args.symbol,
        SIDES[args.side],
        args.quantity,
        limit_price=args.limit,
        reason=args.reason,
        time_in_force=args.tif,
        notional=args.notional,
    )
    out.show(response, render.order_submission_text)
    return EXIT_OK if response.decision.approved else EXIT_GATE_REFUSED


def _analyze(client: TradingClient, args: argparse.Namespace) -> pb.AnalyzeResponse:
    return client.analyze(args.symbols, args.question, ANALYSIS_KINDS[args.kind])


def _list_ideas(client: TradingClient, args: argparse.Namespace) -> pb.ListIdeasResponse:
    state = IDEA_STATES[args.state] if args.state else advisor_pb2.IDEA_STATE_UNSPECIFIED
    return client.list_ideas(state, args.page_size, args.page_token)


def _ideas_page(response: pb.ListIdeasResponse) -> RenderableType:
    return render.ideas_view(response.ideas, response.next_page_token)


def _one_idea(response: pb.GetIdeaResponse | pb.DecideIdeaResponse) -> str:
    return render.idea_text(response.idea)


def _decide_idea(client: TradingClient, args: argparse.Namespace) -> pb.DecideIdeaResponse:
    return client.decide_idea(args.idea_id, args.decision, args.reason)


STREAM_BATCH_SIZE: Final = 500
STREAM_TRIES: Final = 5
# Seconds before the first resend after UNAVAILABLE; doubled after each one.
STREAM_BACKOFF_SECONDS = 0.5


STREAM_FILE_FORMAT: Final = """\
The file: CSV (plain or gzip) or Parquet, a row a tick, as `tradectl data alpaca`
writes it:

  symbol,timestamp,open,high,low,close,volume
  AAPL,2004-03-15T20:59:00Z,13.2341,13.4014,12.9631,13.0002,7453200

Columns, by name in any letter case (others are ignored):
  symbol     the ticker (or: ticker); without one, the file holds one symbol,
             named by the file (SPY.csv)
  timestamp  when the bar ends (or: date, datetime, time): ISO 8601 with an
             offset (Z, +00:00); a date alone is a daily bar, stamped a minute
             before that session's NYSE close; no offset needs --timezone
  price      the price traded at, the bar's close (or: close)
  volume     optional, 0 when absent
--columns maps other names: --columns timestamp=Date,symbol=Ticker,price=Close

Each symbol's rows go forward in time; the ticks are sent merged in time order
(equal times by symbol), --batch-size a message. An error names the file's line
(the header is line 1), a tick the service refuses too. Before sending, it warns
when no active strategy watches the file's symbols and when the service runs on
the wall clock but the bars are history (start it with TRADING_CLOCK=event).
"""


def _stream(client: TradingClient, args: argparse.Namespace, out: Printer) -> int:
    """Stream the file as a named feed; on UNAVAILABLE resend all of it with the same
    feed id and numbers (the service drops what it already accepted), with backoff.
    Warns first when the stream could not trade; a refused tick is named by its line."""
    from client.backtest.data import parse_columns

    if args.tries < 1:
        raise ValueError(f"--tries must be at least 1, got {args.tries}")
    data = read_market_file(
        args.file,
        columns=parse_columns(args.columns),
        symbols=args.symbols,
        timezone=args.timezone,
    )
    batches(data.events, args.batch_size)  # a bad --batch-size fails before anything is sent
    feed_id = args.feed_id or default_feed_id(args.file, args.symbols, args.batch_size)
    service = _service_state(client, args)
    if service is not None:
        for warning in stream_warnings(*service, data):
            print(warning, file=sys.stderr, flush=True)
    delay = STREAM_BACKOFF_SECONDS
    started = time.monotonic()
    status = service[0] if service is not None else None
    with stream_progress(client, status, len(data.events)) as counted:
        for attempt in range(1, args.tries + 1):
            try:
                summary = client.stream_market_data(
                    counted(batches(data.events, args.batch_size)), feed_id=feed_id
                )
            except grpc.RpcError as error:
                where = refused_where(error, data, args.batch_size)
                if where is not None:
                    print(
                        f"error: {where}: refused by the service: "
                        f"{error.code().name}: {error.details() or ''}",
                        file=sys.stderr,
                    )
                    return EXIT_REFUSED
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == args.tries:
                    raise
                print(
                    f"warning: UNAVAILABLE: {error.details() or ''}\n"
                    f"resending {args.file.name} from the start as feed {feed_id!r} in "
                    f"{delay:g}s (try {attempt + 1} of {args.tries}); what was accepted is "
                    "dropped",
                    file=sys.stderr,
                    flush=True,
                )
                _pause(delay)
                delay *= 2
                continue
            break
        else:
            raise AssertionError("unreachable: the last try returns, raises or breaks")
    seconds = time.monotonic() - started
    out.show(
        summary,
        lambda s: render.stream_view(
            s, source=str(args.file), feed_id=feed_id, seconds=seconds, tries=attempt
        ),
    )
    return EXIT_OK


def _service_state(
    client: TradingClient, args: argparse.Namespace
) -> tuple[pb.GetStatusResponse, list[pb.Strategy]] | None:
    """The status and strategies the stream's warnings and progress bar need, or None
    when the service does not tell this principal (they are advice: it still streams).
    A service never reached stops the command here, before five tries of the stream."""
    try:
        return client.get_status(), list(client.list_strategies().strategies)
    except grpc.RpcError as error:
        if _unreachable(error, args.target, args.timeout):
            raise
        return None


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def default_feed_id(path: Path, symbols: Sequence[str] | None, batch_size: int) -> str:
    """tradectl:<file name>, plus [SYMBOLS] when filtered and /<size> for a batch size
    other than the default: message k of one feed must always hold the same ticks.
    Cut to the service's 128 characters with a digest of the whole."""
    name = f"tradectl:{path.name}"
    if symbols:
        name += f"[{','.join(sorted({s.upper() for s in symbols}))}]"
    if batch_size != STREAM_BATCH_SIZE:
        name += f"/{batch_size}"
    if len(name) > 128:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        name = f"{name[:111]}~{digest}"
    return name


if __name__ == "__main__":
    sys.exit(main())
