"""Orders through the Alpaca adapter against the loopback fake of Alpaca
(tests/fakes/alpaca_server.py), next to what the same fake and store cost raw, in
the same run; and the market-data path with an instant and a slow broker.

Three processes, as in production: the fake Alpaca (the broker is remote), the
service (`create_server` on the fake, SQLite audit log, event clock), and this one,
which drives both and times. CLOCK_MONOTONIC (`perf_counter`) is shared by the
processes on Linux, so stamps taken in the service and here compare.

Round trip, `ORDERS` rounds (after `WARM_UP`), each of:

* *raw*: alpaca-py's `TradingClient(raw_data=True).submit_order(MarketOrderRequest)`
  of one share, timed around the call: the POST /v2/orders round trip with request
  building and answer parsing, as the adapter's lanes make it. It goes to a second
  fake in the fake's process (the service would adopt orders it sees placed on its
  own fake by someone else).
* *commit*: one durable commit of one intent, the least the service must do before
  an order may leave: append one OrderUpdated(NEW) record, encoded as the sequencer
  encodes it, to a SqlAlchemyEventStore on SQLite in the same temporary folder (the
  service's store, with its defaults), then `flush()`; timed around both.
* one manual market order of one share through the service (a tick of the symbol
  first, outside the timing, for market hours and fresh data by the event clock),
  waited for until FILLED. The interval held against the target is the service's
  own: a handler subscribed to its sequencer stamps the time at which the approved
  RiskDecisionMade is published, then the order's first OrderUpdated showing the
  broker has it (ACCEPTED, or a fill if one came first: the *ack*) and its FILLED
  one. "decision -> ack" thus spans the intent journaled and made durable
  (`Sequencer.flush`, on the SubmitOrder call's thread once the input is over), the
  hand-off to a REST lane, alpaca-py's POST, and the broker's first answer (the POST's
  reply or the trade_updates "new", whichever comes first) turned into an input,
  journaled and applied; "decision -> fill" ends with the fill applied. The risk
  rules and the gRPC hops are outside it. The same orders are also timed from
  here, from the SubmitOrder call to the ACCEPTED and FILLED events arriving on a
  SubscribeEvents stream (which sends only committed events): shown, not held to
  the target.

The three are interleaved round by round, so that whatever else the machine does
weighs on all alike. Baseline: raw p99 + commit p99; target: decision -> ack p99
at most `TARGET` times it (decision -> fill is held to it too).

Ingest: StreamMarketData ticks/s, measured as bench_stream measures it, on the same
service with the crossover strategy trading (a sine path per symbol with a
session's timestamps: its crossings make orders that risk approves). The path is
cut into segments of one period each, so every segment streams the same prices
from the same state; they are streamed one after another, with the fake answering
at once or with `SLOW_BROKER_S` on every POST /v2/orders (`SEGMENTS`), the service
settled (every order sent, filled and answered) between segments. Each segment is
shown with the orders risk approved while it streamed and the POSTs they made, then
the best and the median of each kind. The sequencer never waits on the network, so
the two should match; the last column is what a slow segment would have given had
the stream waited `SLOW_BROKER_S` per order.

Run it with `.venv/bin/python -m tests.bench --only orders`.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final

from alpaca.trading.client import TradingClient as AlpacaClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from rich.console import Console
from rich.table import Table

from audit.codec import to_new_record
from audit.sql_store import SqlAlchemyEventStore
from domain.events import OrderUpdated
from domain.orders import Order, OrderStateChange, OrderStatus, OrderType, Side
from tests.bench.bench_stream import TOKEN, _measure
from tests.support.market import SESSION_START
from trading_sdk.client import TradingClient
from trading_sdk.v1 import events_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

Out = Callable[[str], None]

ORDERS: Final = 200
WARM_UP: Final = 10
TARGET: Final = 1.2
SYMBOL: Final = "AAPL"
PRICE: Final = 100.0
STRATEGY_SYMBOLS: Final = ("SPY", "QQQ", "IWM")
SLOW_BROKER_S: Final = 0.2
ORDER_ROUTE: Final = "POST /v2/orders"
# The broker latency of each segment: ABBA twice, so that a drift, or whatever comes
# every other segment, weighs on both alike.
SEGMENTS: Final = (0.0, SLOW_BROKER_S, SLOW_BROKER_S, 0.0) * 2
SEGMENT_TICKS: Final = 75_000
"""One period of each symbol's sine: every segment streams the same prices from the
same state (the warm-up is one period too), so only the broker differs."""
WARM_UP_TICKS: Final = SEGMENT_TICKS
INGEST_BATCH: Final = 1000
INGEST_START: Final = SESSION_START + timedelta(minutes=10)  # after the manual orders
TICK_STEP: Final = timedelta(milliseconds=30)  # 675k ticks: 5.6 h of the session
SETTLE_S: Final = 0.01
"""After each round: the service's trailing commit (of the fill) is over."""
WAIT_S: Final = 20.0
"""Only stops a broken run from hanging; nothing waits this long when all is well."""
# Room for a few hundred orders: the rate and repeat limits are by event time, and
# the manual orders come 2 s of event time apart.
RISK_LIMITS: Final = {
    "max_orders_per_window": "100000",
    "max_orders_per_symbol_per_window": "100000",
    "duplicate_window": "1",
}
WORKING: Final = frozenset(
    {
        orders_pb2.ORDER_STATUS_ACCEPTED,
        orders_pb2.ORDER_STATUS_PARTIALLY_FILLED,
        orders_pb2.ORDER_STATUS_FILLED,
    }
)


# --- the fake Alpaca, in a process of its own -------------------------------------------


def _run_fakes(conn: Connection) -> None:
    """Serve two FakeAlpaca, "service" (the service trades on it) and "raw" (raw
    alpaca-py calls, which the service would otherwise adopt as orders placed outside
    it); answer `(instance, method, args)` calls on them until a None."""
    from tests.fakes.alpaca_server import FakeAlpaca

    with FakeAlpaca() as service, FakeAlpaca() as raw:
        fakes = {"service": service, "raw": raw}
        conn.send({n: (f.base_url, f.stream_url, f.key_id, f.secret_key) for n, f in fakes.items()})
        while (call := conn.recv()) is not None:
            which, name, args = call
            fake = fakes[which]
            try:
                if name == "submissions":
                    conn.send(len(fake.submissions()))
                else:
                    conn.send(getattr(fake, name)(*args))
            except Exception as exc:
                conn.send(RuntimeError(f"fake {which}.{name}{args}: {exc!r}"))
    conn.send(None)


@dataclass
class _Fake:
    """This process's handle on one fake in the fakes' process."""

    conn: Connection
    which: str
    base_url: str
    stream_url: str
    key_id: str
    secret_key: str

    def call(self, name: str, *args: Any) -> Any:
        self.conn.send((self.which, name, args))
        if not self.conn.poll(WAIT_S):
            raise RuntimeError(f"the fake did not answer {name} within {WAIT_S:g} s")
        answer = self.conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer


@contextmanager
def _fakes() -> Iterator[tuple[_Fake, _Fake]]:
    """(the service's fake, the raw calls' fake), both in one process of their own."""
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_run_fakes, args=(theirs,), daemon=True)
    proc.start()
    try:
        if not ours.poll(WAIT_S * 2):
            raise RuntimeError("the fake Alpaca did not start")
        urls = ours.recv()
        service, raw = (_Fake(ours, name, *urls[name]) for name in ("service", "raw"))
        for fake in (service, raw):
            for symbol in (SYMBOL, *STRATEGY_SYMBOLS):
                fake.call("set_price", symbol, str(PRICE))
        yield service, raw
    finally:
        with contextlib.suppress(OSError):
            ours.send(None)
            ours.poll(5)
        _end(proc)


def _end(proc: BaseProcess) -> None:
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


# --- the service, in a process of its own ------------------------------------------------


@dataclass
class _Marks:
    """perf_counter_ns stamps taken on the sequencer's thread, as events are published."""

    decisions: list[tuple[str, int]] = field(default_factory=list)  # approved only
    orders: list[tuple[str, str, int]] = field(default_factory=list)  # decision, status


def _serve(
    ports: Queue[int],
    stop: Event,
    marks: Queue[_Marks],
    fake: tuple[str, str, str, str],
    db: str,
) -> None:
    from domain.events import Envelope, OrderUpdated, RiskDecisionMade
    from server.bootstrap import create_server
    from server.settings import Settings

    base_url, stream_url, key_id, secret_key = fake
    settings = Settings(
        trading_broker="alpaca",
        alpaca_api_key=key_id,
        alpaca_secret_key=secret_key,
        alpaca_base_url=base_url,
        alpaca_stream_url=stream_url,
        database_url=f"sqlite:///{db}",
        # As in production (one line per call), but beside the database, not in the figures.
        trading_access_log=f"{db}.access.log",
        trading_clock="event",
        trading_strategy_symbols=list(STRATEGY_SYMBOLS),
    )
    service = create_server(settings, "127.0.0.1:0", token=TOKEN)
    seen = _Marks()

    def decided(envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, RiskDecisionMade)
        if event.decision.approved:
            seen.decisions.append((event.decision.decision_id, time.perf_counter_ns()))

    def updated(envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, OrderUpdated)
        order = event.order
        seen.orders.append((order.decision_id, order.status.value, time.perf_counter_ns()))

    service.core.bus.subscribe(RiskDecisionMade, decided)
    service.core.bus.subscribe(OrderUpdated, updated)
    service.server.start()
    ports.put(service.port)
    stop.wait()
    marks.put(seen)
    service.stop(0)


@dataclass
class _Service:
    port: int
    client: TradingClient
    collect: Callable[[], _Marks]


@contextmanager
def _service(fake: _Fake, db: str) -> Iterator[_Service]:
    """The service on the fake, trading (ACTIVE, its trade_updates stream listening),
    with room in its risk limits. `collect()` stops it and returns its marks."""
    ctx = mp.get_context("spawn")
    ports: Queue[int] = ctx.Queue()
    marks: Queue[_Marks] = ctx.Queue()
    stop = ctx.Event()
    where = (fake.base_url, fake.stream_url, fake.key_id, fake.secret_key)
    proc = ctx.Process(target=_serve, args=(ports, stop, marks, where, db), daemon=True)
    proc.start()
    client: TradingClient | None = None
    try:
        port = _port(ports, proc)
        client = TradingClient(f"127.0.0.1:{port}", TOKEN)
        ready = client
        _wait(lambda: ready.get_execution_status().stream_connected, "the broker stream")
        _wait(
            lambda: ready.get_status().trading.state == risk_pb2.TRADING_STATE_ACTIVE,
            "trading to be ACTIVE",
        )
        client.update_risk_limits(RISK_LIMITS, reason="bench: room for a few hundred orders")

        def collect() -> _Marks:
            stop.set()
            found: _Marks = marks.get(timeout=WAIT_S)
            return found

        yield _Service(port, client, collect)
    finally:
        if client is not None:
            client.close()
        stop.set()
        _end(proc)


def _port(ports: Queue[int], proc: BaseProcess) -> int:
    give_up = time.monotonic() + WAIT_S * 3
    while True:
        try:
            return ports.get(timeout=0.5)
        except queue.Empty:
            if not proc.is_alive() or time.monotonic() > give_up:
                raise RuntimeError(
                    f"the service did not start (exit code {proc.exitcode})"
                ) from None


def _wait(condition: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > give_up:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- the round trip, with its baseline, order by order ----------------------------------------


class _RawSubmits:
    """alpaca-py's TradingClient on the raw fake, as the adapter's lanes make it."""

    def __init__(self, fake: _Fake) -> None:
        self._client = AlpacaClient(
            fake.key_id, fake.secret_key, raw_data=True, url_override=fake.base_url
        )

    def timed(self, i: int) -> float:
        """Seconds for one submit_order of a one-share market order."""
        request = MarketOrderRequest(
            symbol=SYMBOL,
            qty=1,
            side=OrderSide.BUY if i % 2 == 0 else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=f"bench-raw-{i}",
        )
        started = time.perf_counter()
        self._client.submit_order(request)
        return time.perf_counter() - started


class _Commits:
    """One intent (an OrderUpdated(NEW) record, encoded as the sequencer encodes it)
    appended to the service's kind of store, then flushed."""

    def __init__(self, folder: Path) -> None:
        self._store = SqlAlchemyEventStore(f"sqlite:///{folder / 'commit.db'}")

    def timed(self, i: int) -> float:
        """Seconds for append + flush."""
        now = SESSION_START + timedelta(seconds=2 * i)
        order = Order(
            order_id=f"o{3 * i + 2}",
            client_order_id=f"ts-0123456789ab-d{3 * i + 1}",
            decision_id=f"d{3 * i + 1}",
            symbol=SYMBOL,
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            quantity=Decimal(1),
            order_type=OrderType.MARKET,
            limit_price=None,
            status=OrderStatus.NEW,
            filled_quantity=Decimal(0),
            average_fill_price=Decimal(0),
            created_at=now,
            updated_at=now,
            history=(OrderStateChange(OrderStatus.NEW, now, "intent recorded"),),
        )
        record = to_new_record(now, 3 * i + 1, OrderUpdated(order))
        started = time.perf_counter()
        self._store.append(record)
        self._store.flush()
        return time.perf_counter() - started

    def close(self) -> None:
        self._store.close()


@dataclass
class _Rounds:
    raw: list[float]  # seconds per alpaca-py submit_order
    commit: list[float]  # seconds per append + flush of one intent
    # Per service order: decision id, and (this process's perf_counter) when the
    # SubmitOrder call began and the ACCEPTED and FILLED events arrived.
    placed: list[tuple[str, float, float, float]]


def _round_trips(service: _Service, raw_fake: _Fake, folder: Path) -> _Rounds:
    """`WARM_UP + ORDERS` rounds of one raw submit, one commit and one order through
    the service, waited for until filled (the warm-up's left out)."""
    raw_submits, commits = _RawSubmits(raw_fake), _Commits(folder)
    rounds = _Rounds([], [], [])
    arrivals: queue.Queue[tuple[float, str, int]] = queue.Queue()
    client = service.client
    events = client.subscribe_events(types=[events_pb2.EVENT_TYPE_ORDER])

    def read() -> None:
        for event in events:
            arrivals.put((time.perf_counter(), event.order.order_id, event.order.status))

    reader = threading.Thread(target=read, name="bench-order-events", daemon=True)
    reader.start()
    try:
        for i in range(WARM_UP + ORDERS):
            raw = raw_submits.timed(i)
            commit = commits.timed(i)
            client.simulate_market_event(
                SYMBOL, PRICE, 100.0, SESSION_START + timedelta(seconds=2 * i)
            )
            sent = time.perf_counter()
            answer = client.submit_order(SYMBOL, "buy" if i % 2 == 0 else "sell", "1")
            if not answer.HasField("order"):
                raise RuntimeError(f"risk refused the bench's order {i}: {answer.decision}")
            ack, fill = _await_fill(arrivals, answer.order.order_id)
            if i >= WARM_UP:
                rounds.raw.append(raw)
                rounds.commit.append(commit)
                rounds.placed.append((answer.order.decision_id, sent, ack, fill))
            time.sleep(SETTLE_S)
    finally:
        events.cancel()
        commits.close()
        reader.join(5)
    return rounds


def _await_fill(
    arrivals: queue.Queue[tuple[float, str, int]], order_id: str
) -> tuple[float, float]:
    """When the order's first ACCEPTED (or fill) event arrived, and its FILLED one."""
    give_up = time.monotonic() + WAIT_S
    ack: float | None = None
    while True:
        try:
            at, seen, status = arrivals.get(timeout=max(0.0, give_up - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"order {order_id} not filled within {WAIT_S:g} s") from None
        if seen != order_id or status not in WORKING:
            continue
        if ack is None:
            ack = at
        if status == orders_pb2.ORDER_STATUS_FILLED:
            return ack, at


@dataclass
class _Trips:
    """Seconds per order, from the service's marks and this process's stamps."""

    ack: list[float]
    fill: list[float]
    client_ack: list[float]
    client_fill: list[float]


def _trips(rounds: _Rounds, marks: _Marks) -> _Trips:
    decided = dict(marks.decisions)
    acked: dict[str, int] = {}
    filled: dict[str, int] = {}
    for decision_id, status, ns in marks.orders:
        if status in ("ACCEPTED", "PARTIALLY_FILLED", "FILLED"):
            acked.setdefault(decision_id, ns)
        if status == "FILLED":
            filled[decision_id] = ns
    ids = [decision_id for decision_id, *_ in rounds.placed]
    return _Trips(
        ack=[(acked[d] - decided[d]) / 1e9 for d in ids],
        fill=[(filled[d] - decided[d]) / 1e9 for d in ids],
        client_ack=[ack - sent for _, sent, ack, _ in rounds.placed],
        client_fill=[fill - sent for _, sent, _, fill in rounds.placed],
    )


# --- ingest with an instant and a slow broker -----------------------------------------------


def _ingest_path() -> list[list[pb.StreamMarketDataRequest]]:
    """The warm-up's messages, then each segment's: one sine path per symbol, a tick
    every TICK_STEP of the session. The crossover strategy buys on the upward
    crossings and sells on the downward ones, with confidence enough to pass risk."""
    start_ns = int(INGEST_START.timestamp()) * 1_000_000_000
    period = SEGMENT_TICKS // len(STRATEGY_SYMBOLS)  # of a symbol's own ticks
    step_ns = TICK_STEP // timedelta(microseconds=1) * 1000
    messages = []
    total = WARM_UP_TICKS + SEGMENT_TICKS * len(SEGMENTS)
    for first in range(0, total, INGEST_BATCH):
        request = pb.StreamMarketDataRequest()
        for i in range(first, min(first + INGEST_BATCH, total)):
            k = i // len(STRATEGY_SYMBOLS)  # the tick's index in its own symbol
            event = request.events.add(
                symbol=STRATEGY_SYMBOLS[i % len(STRATEGY_SYMBOLS)],
                price=PRICE + 3.0 * math.sin(2 * math.pi * k / period),
                volume=100.0,
            )
            event.timestamp.seconds, event.timestamp.nanos = divmod(
                start_ns + i * step_ns, 1_000_000_000
            )
        messages.append(request)
    warm = WARM_UP_TICKS // INGEST_BATCH
    per = SEGMENT_TICKS // INGEST_BATCH
    return [messages[:warm]] + [
        messages[warm + n * per : warm + (n + 1) * per] for n in range(len(SEGMENTS))
    ]


@dataclass
class _Segment:
    latency_s: float
    ticks_per_s: float
    started_ns: int
    ended_ns: int
    posted: int  # POST /v2/orders the segment's orders made

    def approved(self, marks: _Marks) -> int:
        """Orders risk approved while the segment streamed."""
        return sum(1 for _, ns in marks.decisions if self.started_ns <= ns <= self.ended_ns)


def _ingest(
    service: _Service, fake: _Fake, path: list[list[pb.StreamMarketDataRequest]]
) -> list[_Segment]:
    warm_up, *segments = path
    _measure(service.port, warm_up)
    _settle(service.client, fake, 0.0)
    measured = []
    for latency_s, messages in zip(SEGMENTS, segments, strict=True):
        fake.call("set_latency", latency_s, ORDER_ROUTE)
        posts = fake.call("submissions")
        started = time.perf_counter_ns()
        rate = _measure(service.port, messages)
        ended = time.perf_counter_ns()
        _settle(service.client, fake, latency_s)
        posted = fake.call("submissions") - posts
        measured.append(_Segment(latency_s, rate, started, ended, posted))
    fake.call("set_latency", 0.0, ORDER_ROUTE)
    return measured


def _settle(client: TradingClient, fake: _Fake, latency_s: float) -> None:
    """Until every order the service sent has reached the fake and is filled, and the
    replies to the POSTs (`latency_s` late) are in."""

    def settled() -> bool:
        status = client.get_execution_status()
        return bool(status.open_orders == 0 and status.orders_submitted == fake.call("submissions"))

    _wait(settled, "the service's orders to be sent and filled")
    time.sleep(latency_s + 0.05)


# --- the report ---------------------------------------------------------------------------------


def _p(times: list[float], q: int) -> float:
    """The q-th percentile, in milliseconds."""
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1] * 1e3


def _render(table: Table) -> str:
    console = Console(width=120, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(table)
    return captured.get().rstrip()


def _round_trip_table(rounds: _Rounds, trips: _Trips) -> Table:
    baseline = _p(rounds.raw, 99) + _p(rounds.commit, 99)
    table = Table(title=f"Order round trip through the Alpaca adapter: {ORDERS} market orders")
    table.add_column("interval")
    for name in ("p50 ms", "p99 ms", "p99 / baseline", f"target <= {TARGET}"):
        table.add_column(name, justify="right")
    for name, times in (
        ("raw: alpaca-py submit_order (POST round trip)", rounds.raw),
        ("commit: one intent appended + flushed", rounds.commit),
    ):
        table.add_row(name, f"{_p(times, 50):.2f}", f"{_p(times, 99):.2f}", "", "")
    table.add_row(
        "baseline: raw p99 + commit p99", "", f"{baseline:.2f}", "1.00", "", end_section=True
    )
    for name, times, held in (
        ("service: decision -> broker ack applied", trips.ack, True),
        ("service: decision -> fill applied", trips.fill, True),
        ("client: SubmitOrder -> ACCEPTED event", trips.client_ack, False),
        ("client: SubmitOrder -> FILLED event", trips.client_fill, False),
    ):
        ratio = _p(times, 99) / baseline
        verdict = ("met" if ratio <= TARGET else "MISSED") if held else ""
        table.add_row(name, f"{_p(times, 50):.2f}", f"{_p(times, 99):.2f}", f"{ratio:.2f}", verdict)
    return table


def _ingest_table(segments: list[_Segment], marks: _Marks) -> tuple[Table, str]:
    table = Table(
        title=f"StreamMarketData with the crossover strategy trading: {SEGMENT_TICKS:,} ticks"
        f" a segment, {INGEST_BATCH} a message"
    )
    table.add_column("segment")
    for name in ("broker", "ticks/s", "orders approved", "POSTs", "had it waited per POST"):
        table.add_column(name, justify="right")
    rates: dict[float, list[float]] = {}
    for n, segment in enumerate(segments, start=1):
        orders = segment.approved(marks)
        slow = segment.latency_s > 0
        stalled = SEGMENT_TICKS / (SEGMENT_TICKS / segment.ticks_per_s + orders * segment.latency_s)
        table.add_row(
            str(n),
            f"{segment.latency_s * 1e3:.0f} ms a POST" if slow else "instant",
            f"{segment.ticks_per_s:,.0f}",
            str(orders),
            str(segment.posted),
            f"{stalled:,.0f}" if slow else "",
        )
        rates.setdefault(segment.latency_s, []).append(segment.ticks_per_s)
    fast, slow_rates = rates[0.0], rates[SLOW_BROKER_S]
    summary = (
        f"ticks/s with a {SLOW_BROKER_S * 1e3:.0f} ms broker / with an instant one:"
        f" best {max(slow_rates):,.0f} / {max(fast):,.0f} = {max(slow_rates) / max(fast):.2f},"
        f" median {statistics.median(slow_rates):,.0f} / {statistics.median(fast):,.0f}"
        f" = {statistics.median(slow_rates) / statistics.median(fast):.2f}"
        " (1.00: the broker's latency does not reach the market-data path)"
    )
    return table, summary


def run(out: Out = print) -> None:
    path = _ingest_path()
    with tempfile.TemporaryDirectory(prefix="bench_orders_") as tmp, _fakes() as fakes:
        folder = Path(tmp)
        service_fake, raw_fake = fakes
        with _service(service_fake, str(folder / "audit.db")) as service:
            rounds = _round_trips(service, raw_fake, folder)
            segments = _ingest(service, service_fake, path)
            marks = service.collect()
    out(_render(_round_trip_table(rounds, _trips(rounds, marks))))
    table, summary = _ingest_table(segments, marks)
    out(_render(table))
    out(summary)


if __name__ == "__main__":
    run()
