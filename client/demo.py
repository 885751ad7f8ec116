"""The whole service end to end: ``python -m client.demo`` (``make demo``).

Starts the server as a child process on a free loopback port (event-time
clock, a throw-away SQLite audit log, strategies on AAPL, IBM, MSFT and GOOG),
waits for its health service to say SERVING, then:

1. activates every registered strategy that is not active yet;
2. subscribes to all events from seq 1 on a background thread, so nothing the
   stream causes is missed however fast the server is;
3. streams the bundled daily bars (``client/data/daily_bars.csv.gz``) through
   StreamMarketData in batches of 500;
4. prints the stream summary, the signals, the risk decisions (every rejected
   rule's ``code: detail``), each order's final state and fills, positions
   and the account;
5. Phase 2, the AI advisor: asks the offline analyst (the server gets no
   OpenAI key) for a portfolio review of the four symbols, prints the analysis and its ideas, and
   approves the first pending idea as the demo's human, printing what came of
   it (risk decision, order). The ideas are judged at the last bar's time; a
   refused approval (FAILED_PRECONDITION) is printed and the demo goes on;
6. prints whether the audit chain verifies;
7. Phase 3: backtests the same bars offline through the same core and writes the
   report (summary, trades, equity curve, pictures, report.html) to
   ``var/backtest-report/``.

Long sections are cut to their first and last lines with a count in between,
so the printout stays a few hundred lines. Exit status: 0 when everything
worked and the server stopped cleanly, 1 otherwise (the server's stderr is
printed when it failed).
"""

from __future__ import annotations

import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, Self

import grpc
from grpc_health.v1 import health_pb2

from client import render
from client.marketdata import DEFAULT_BARS, batches, load_bars, to_market_events
from trading_sdk.client import ServerStream, TradingClient
from trading_sdk.v1 import advisor_pb2, events_pb2, orders_pb2

SYMBOLS: Final = ("AAPL", "IBM", "MSFT", "GOOG")
BACKTEST_REPORT: Final = Path("var/backtest-report")
BATCH_SIZE: Final = 500
READY_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0
# How long to wait for in-flight orders to settle and for the subscription to catch up.
SETTLE_TIMEOUT: Final = 15.0
# Line budgets that keep the printout to a few hundred lines. Signals get few:
# every decision line repeats its signal, confidence included.
SIGNAL_LINES: Final = 30
DECISION_LINES: Final = 200
ORDER_LINES: Final = 100
ALL_EVENT_TYPES: Final = tuple(
    value for value in events_pb2.EventType.values() if value != events_pb2.EVENT_TYPE_UNSPECIFIED
)


class ServerFailed(Exception):
    """The server did not start, or died."""


class ServerProcess:
    """The trading server as a child process, with its output in files under `workdir`."""

    def __init__(self, workdir: Path, token: str) -> None:
        self.target = f"127.0.0.1:{_free_port()}"
        self._stderr_path = workdir / "server.stderr"
        env = server_environment(os.environ, workdir, token)
        # Files, not pipes: a chatty server can never block on a pipe nobody reads.
        with (
            (workdir / "server.stdout").open("wb") as stdout,
            self._stderr_path.open("wb") as stderr,
        ):
            self._process = subprocess.Popen(
                [sys.executable, "-m", "server.main", "--listen", self.target],
                env=env,
                stdout=stdout,
                stderr=stderr,
            )

    def wait_until_serving(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll grpc.health.v1 until SERVING; raise ServerFailed if it exits or times out."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            # The method by name rather than through HealthStub, whose type stubs
            # (types-grpcio-health-checking) declare no methods.
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise ServerFailed(f"server exited with status {self._process.returncode}")
                try:
                    answer = check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                        return  # no health service, but something answered on the port
                time.sleep(0.2)
        raise ServerFailed(f"server not serving on {self.target} after {timeout:.0f} s")

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True if it stopped cleanly."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                print(f"server ignored SIGTERM for {timeout:.0f} s; killed", file=sys.stderr)
                return False
        # A server without its own SIGTERM handler dies of the signal: still a clean stop.
        return self._process.returncode in (0, -signal.SIGTERM)

    def stderr_tail(self, lines: int = 40) -> str:
        text = self._stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def server_environment(inherited: Mapping[str, str], workdir: Path, token: str) -> dict[str, str]:
    """The demo server's environment: the caller's, less any OpenAI setting (so the
    advisor is the offline analyst, with no network) and any TLS setting (the demo
    talks plaintext to its own server on loopback), plus the demo's settings."""
    dropped = ("OPENAI_", "TRADING_TLS_")
    return {
        **{k: v for k, v in inherited.items() if not k.upper().startswith(dropped)},
        "TRADING_API_KEY": token,
        "TRADING_CLOCK": "event",
        "DATABASE_URL": f"sqlite:///{workdir / 'demo-audit.db'}",
        "TRADING_STRATEGY_SYMBOLS": ",".join(SYMBOLS),
        "PYTHONUNBUFFERED": "1",
    }


class EventCollector:
    """Drains a subscription on a background thread and hands the events over through a queue.

    Only the main thread touches `events`, so no lock is needed.
    """

    _END: Final = object()

    def __init__(self, stream: ServerStream[events_pb2.Event]) -> None:
        self.events: list[events_pb2.Event] = []
        self._stream = stream
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, name="demo-events", daemon=True)
        self._ended = False

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stream.cancel()
        self._thread.join(STOP_TIMEOUT)

    def _pump(self) -> None:
        try:
            for event in self._stream:
                self._queue.put(event)
        except grpc.RpcError as error:
            self._queue.put(error)
        finally:
            self._queue.put(self._END)

    def collect_until(self, seq: int, timeout: float) -> bool:
        """Take events until one with seq >= `seq` arrives; False if that took too long."""
        deadline = time.monotonic() + timeout
        while not self._ended and (not self.events or self.events[-1].seq < seq):
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if item is self._END:
                self._ended = True
            elif isinstance(item, grpc.RpcError):
                raise item
            elif isinstance(item, events_pb2.Event):
                self.events.append(item)
        return bool(self.events) and self.events[-1].seq >= seq

    def of_kind(self, kind: str) -> list[events_pb2.Event]:
        return [event for event in self.events if event.WhichOneof("body") == kind]


def main() -> int:
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="trading-demo-") as workdir:
        server = ServerProcess(Path(workdir), token)
        failure = ""
        try:
            server.wait_until_serving()
            with TradingClient(server.target, token, tls=False) as client:  # its own server
                run(client)
        except ServerFailed as error:
            failure = str(error)
        except grpc.RpcError as error:
            failure = f"{error.code().name}: {error.details()}"
        finally:
            stopped_cleanly = server.stop()
        if failure or not stopped_cleanly:
            print(f"demo failed: {failure or 'the server did not stop cleanly'}", file=sys.stderr)
            print(f"--- server stderr, last lines ---\n{server.stderr_tail()}", file=sys.stderr)
            return 1
    backtest_phase(BACKTEST_REPORT)
    return 0


def backtest_phase(out: Path) -> None:
    """Phase 3: the same bars backtested offline through the same core, with the
    summary and the report's files (open report.html)."""
    from client.backtest.command import print_files, print_summary
    from client.backtest.data import load_market_data
    from client.backtest.report import write_report
    from client.backtest.runner import run_backtest

    _heading("Phase 3: a backtest of the same bars (tradectl backtest)")
    result = run_backtest(load_market_data(DEFAULT_BARS))
    print_summary(result.summary, result.data.symbol_names, sys.stdout)
    print_files(write_report(result, out), sys.stdout)


def run(client: TradingClient) -> None:
    """The demo proper, against a running service."""
    status = client.get_status()
    print(f"service {status.version or '?'}: broker {status.broker}, clock {status.clock}")

    _heading("Strategies")
    for strategy in client.list_strategies().strategies:
        if not strategy.active:
            client.activate_strategy(strategy.name)
    print(render.strategies_table(client.list_strategies().strategies))

    events = to_market_events(load_bars(symbols=SYMBOLS))
    with EventCollector(client.subscribe_events(ALL_EVENT_TYPES, from_seq=1)) as collector:
        _heading(f"Streaming {len(events)} daily bars in batches of {BATCH_SIZE}")
        print(render.outline(client.stream_market_data(batches(events, BATCH_SIZE))))
        _wait_for_open_orders(client, SETTLE_TIMEOUT)
        last_seq = client.verify_audit().last_seq
        if not collector.collect_until(last_seq, SETTLE_TIMEOUT):
            print(f"(the event stream did not reach seq {last_seq}; showing what arrived)")

    signals = collector.of_kind("signal")
    _heading(f"Signals ({len(signals)})")
    _print_capped([f"{_date(e)} {render.signal_line(e.signal)}" for e in signals], SIGNAL_LINES)

    decisions = collector.of_kind("risk_decision")
    _heading(f"Risk decisions ({len(decisions)})")
    lines = [f"{_date(e)} {render.decision_line(e.risk_decision)}" for e in decisions]
    _print_capped(lines, DECISION_LINES)
    _print_tally(decisions)

    orders = list(_all_orders(client))
    _heading(f"Orders ({len(orders)}), final state")
    _print_capped(list(_order_lines(orders)), ORDER_LINES)
    print(" ".join(f"{k}={v}" for k, v in sorted(Counter(_statuses(orders)).items())))

    _heading("Positions")
    print(render.positions_table(client.list_positions().positions))
    _heading("Account")
    print(render.outline(client.get_account().account))

    advisor_phase(client)

    _heading("Audit log")
    verdict = client.verify_audit()
    chain = "verifies" if verdict.ok else f"BROKEN at seq {verdict.first_bad_seq}: {verdict.reason}"
    print(f"{verdict.checked} events checked, last seq {verdict.last_seq}; the hash chain {chain}")


def advisor_phase(client: TradingClient) -> None:
    """Phase 2: a portfolio review by the offline analyst, and one idea approved by a person."""
    _heading("Phase 2: AI advisor, portfolio review")
    # The demo's symbols as those of interest: left empty, only the one held would be looked at.
    review = client.analyze(SYMBOLS, kind=advisor_pb2.ANALYSIS_KIND_PORTFOLIO_REVIEW)
    print(render.analysis_text(review.analysis, review.ideas))
    pending = [i for i in review.ideas if i.state == advisor_pb2.IDEA_STATE_PENDING_APPROVAL]
    if not pending:
        print("(no idea pending approval)")
        return
    idea = pending[0]
    _heading(f"Phase 2: the demo's human approves idea {idea.idea_id}")
    try:
        decided = client.decide_idea(
            idea.idea_id, advisor_pb2.IDEA_DECISION_APPROVE, "approved by the demo"
        ).idea
    except grpc.RpcError as error:
        print(f"approval refused: {error.code().name}: {error.details()}")
        return
    print("\n".join([render.idea_line(decided), *(f"  {o}" for o in render.idea_outcome(decided))]))


def _wait_for_open_orders(client: TradingClient, timeout: float) -> None:
    # Fills may trail the stream; an order still open after `timeout` is shown as it is.
    deadline = time.monotonic() + timeout
    while client.list_active_orders().orders and time.monotonic() < deadline:
        time.sleep(0.2)


def _all_orders(client: TradingClient) -> Iterator[orders_pb2.Order]:
    token = ""
    while True:
        page = client.list_order_history(page_size=1000, page_token=token)
        yield from page.orders
        token = page.next_page_token
        if not token:
            return


def _order_lines(orders: Sequence[orders_pb2.Order]) -> Iterator[str]:
    for order in orders:
        yield render.order_line(order)
        for fill in render.fill_lines(order):
            yield f"    fill {fill}"


def _statuses(orders: Sequence[orders_pb2.Order]) -> Iterator[str]:
    return (render.label(order, "status") for order in orders)


def _print_tally(decisions: Sequence[events_pb2.Event]) -> None:
    approved = sum(1 for e in decisions if e.risk_decision.approved)
    codes = Counter(
        verdict.code
        for e in decisions
        for verdict in e.risk_decision.verdicts
        if not verdict.passed
    )
    print(f"approved {approved}, rejected {len(decisions) - approved}")
    for code, count in codes.most_common():
        print(f"  {count:5d} x {code}")


def _print_capped(lines: Sequence[str], limit: int) -> None:
    """All lines, or the first and last ones around a count of those left out."""
    if len(lines) <= limit:
        head, tail = list(lines), []
    else:
        tail_size = limit // 4
        head, tail = list(lines[: limit - tail_size]), list(lines[-tail_size:])
        head.append(f"... {len(lines) - limit} more ...")
    print("\n".join([*head, *tail]) if lines else "(none)")


def _heading(title: str) -> None:
    print(f"\n== {title} ==")


def _date(event: events_pb2.Event) -> str:
    return render.when(event.time)[:10]


def _free_port() -> int:
    # Bind to port 0 and let go: a small race with other processes, fine for a demo.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())
