"""No client can starve the service (DESIGN.md invariant 8, issue 8 finding 4).

Before the caps, 32 idle SubscribeEvents from a viewer (or 33 idle
StreamMarketData) took every worker thread, and the health check, GetStatus
and every new stream ran into their deadlines. Here long-lived calls are
capped per principal and in total (RESOURCE_EXHAUSTED, reason STREAM_LIMIT),
a slot comes back however its stream ends, health and unary calls keep their
own threads, and connections are capped and closed when dead or idle.

Everything runs against the real server on a loopback port. Stream slots are
given back by the server a moment after the client sees its call end, so a
test that expects a slot to be free again waits for it (`open_when_free`),
boundedly: a slot that never comes back fails the test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.memory_store import InMemoryEventStore
from audit.records import AuditQuery, AuditRecord
from domain.errors import ResourceExhausted, Unavailable
from domain.risk import TradingState
from engines.core import Core
from server.auth import Authenticator, Principal
from server.bootstrap import build_core
from server.event_stream import EventHub
from server.interceptors.chain import CallChain
from server.settings import Settings
from server.stream_limits import (
    ANONYMOUS,
    STREAM_LIMIT,
    Capacity,
    StreamLimiter,
)
from tests.conftest import RunningService, StartService
from tests.support.calls import bearer
from tests.support.market import SESSION, ticks
from tests.support.polling import wait_until
from trading_sdk.client import error_info
from trading_sdk.v1 import events_pb2
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

PEOPLE: dict[str, dict[str, Any]] = {
    "bob": {"token": "bob-token-0123456789ab", "roles": ["viewer"]},
    "dave": {"token": "dave-token-0123456789a", "roles": ["viewer"]},
    "erin": {"token": "erin-token-0123456789a", "roles": ["viewer"]},
    "feeder": {"token": "feeder-token-012345678", "roles": ["feed"]},
}
# A health check or GetStatus answers in milliseconds; a starved one never does.
SHORT_DEADLINE = 2.0
# A backstop on every stream a test opens, far longer than any test here takes.
STREAM_DEADLINE = 60.0
# How long a slot may take to come back after its stream ended.
RELEASE_WITHIN = 5.0
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
GOAWAY, PING = 0x7, 0x6


def token(name: str) -> str:
    return str(PEOPLE[name]["token"])


def tokens_file(folder: Path, people: dict[str, dict[str, Any]]) -> str:
    path = folder / "tokens.json"
    path.write_text(json.dumps(people))
    path.chmod(0o600)  # owner-only, as the service requires of a file of secrets
    return str(path)


def start(start_service: StartService, tmp_path: Path, **overrides: Any) -> RunningService:
    """The service with the principals of PEOPLE and one audit record, so that a
    subscription from seq 1 answers at once: its first event proves it is open."""
    svc = start_service(trading_tokens_file=tokens_file(tmp_path, PEOPLE), **overrides)
    svc.client.deactivate_risk("a first audit record")
    svc.client.activate_risk("and a second")
    assert svc.client.verify_audit().last_seq >= 1
    return svc


class Cancellable(Protocol):
    def cancel(self) -> bool: ...


@dataclass
class Streams:
    """The calls a test opened; all cancelled when it ends, whatever happened."""

    channel: grpc.Channel
    calls: list[Cancellable] = field(default_factory=list)
    idle_feeds: threading.Event = field(default_factory=threading.Event)

    @property
    def stub(self) -> pb_grpc.TradingServiceStub:
        return pb_grpc.TradingServiceStub(self.channel)

    def subscribe(self, name: str) -> Any:
        """Open SubscribeEvents from seq 1 and wait for its first event: the
        call that comes back is open and holds a slot. A refusal raises RpcError."""
        call = self.stub.SubscribeEvents(
            pb.SubscribeEventsRequest(from_seq=1),
            metadata=bearer(token(name)),
            timeout=STREAM_DEADLINE,
        )
        self.calls.append(call)
        next(call)
        return call

    def idle_feed(self, name: str = "feeder") -> grpc.Future[pb.StreamMarketDataResponse]:
        """A StreamMarketData that sends nothing until the test ends."""

        def nothing() -> Iterator[pb.StreamMarketDataRequest]:
            self.idle_feeds.wait(STREAM_DEADLINE)
            yield from ()

        call = self.stub.StreamMarketData.future(
            nothing(), metadata=bearer(token(name)), timeout=STREAM_DEADLINE
        )
        self.calls.append(call)
        return call

    def close(self) -> None:
        self.idle_feeds.set()
        for call in self.calls:
            call.cancel()


@pytest.fixture
def streams(start_service: StartService) -> Iterator[Callable[[RunningService], Streams]]:
    # Asks for start_service so that its streams are closed before the services stop.
    opened: list[Streams] = []

    def make(svc: RunningService) -> Streams:
        channel = grpc.insecure_channel(svc.target)
        opened.append(Streams(channel))
        return opened[-1]

    yield make
    for s in opened:
        s.close()
        s.channel.close()


def refusal(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a STREAM_LIMIT refusal, after checking it is one."""
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    info = error_info(error)
    assert info is not None and info.reason == STREAM_LIMIT, error
    return info


def refused(open_stream: Callable[[], object]) -> error_details_pb2.ErrorInfo:
    with pytest.raises(grpc.RpcError) as raised:
        open_stream()
    return refusal(raised.value)


def open_when_free(open_stream: Callable[[], object]) -> None:
    """Open a stream that must get a slot once the server has taken back the
    slots of streams that already ended."""
    give_up = time.monotonic() + RELEASE_WITHIN
    while True:
        try:
            open_stream()
            return
        except grpc.RpcError as error:
            refusal(error)
            if time.monotonic() > give_up:
                raise AssertionError(f"no slot came back within {RELEASE_WITHIN} s") from error
            time.sleep(0.02)


def assert_still_answering(channel: grpc.Channel) -> None:
    """The health check and GetStatus answer within a short deadline."""
    check = health_pb2_grpc.HealthStub(channel).Check
    response = check(health_pb2.HealthCheckRequest(service=""), timeout=SHORT_DEADLINE)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    status = pb_grpc.TradingServiceStub(channel).GetStatus(
        pb.GetStatusRequest(), metadata=bearer(token("bob")), timeout=SHORT_DEADLINE
    )
    assert status.version


# --- the finding ----------------------------------------------------------------------


def test_idle_streams_past_the_caps_leave_health_status_and_others_answering(
    start_service: StartService, tmp_path: Path, streams: Callable[[RunningService], Streams]
) -> None:
    """The finding, with the default caps: 40 idle SubscribeEvents from one viewer
    and 40 idle StreamMarketData from one feed."""
    svc = start(start_service, tmp_path)
    per_principal = svc.settings.trading_max_streams_per_principal
    s = streams(svc)

    for _ in range(per_principal):
        s.subscribe("bob")
    for _ in range(40 - per_principal):
        info = refused(lambda: s.subscribe("bob"))
        assert info.metadata["limit"] == "per_principal"
        assert info.metadata["principal"] == "bob"

    feeds = [s.idle_feed() for _ in range(40)]
    assert wait_until(lambda: sum(f.done() for f in feeds) == 40 - per_principal)
    time.sleep(0.2)  # the ones let in stay open
    assert sum(f.done() for f in feeds) == 40 - per_principal
    for feed in feeds:
        if feed.done():
            error = feed.exception()
            assert isinstance(error, grpc.RpcError)
            assert refusal(error).metadata["principal"] == "feeder"

    assert_still_answering(s.channel)
    s.subscribe("dave")  # another principal still gets a stream


def test_the_caps_per_principal_and_in_total(
    start_service: StartService, tmp_path: Path, streams: Callable[[RunningService], Streams]
) -> None:
    svc = start(
        start_service,
        tmp_path,
        trading_max_streams=6,
        trading_max_streams_per_principal=4,
        trading_unary_workers=2,  # a tight reserve is still enough
    )
    s = streams(svc)
    bobs = [s.subscribe("bob") for _ in range(4)]

    at_own_cap = refused(lambda: s.subscribe("bob"))
    assert dict(at_own_cap.metadata) == {
        "limit": "per_principal",
        "principal": "bob",
        "method": "SubscribeEvents",
        "open_streams": "4",
        "max_streams": "4",
    }
    with pytest.raises(grpc.RpcError) as raised:
        s.subscribe("bob")
    assert "TRADING_MAX_STREAMS_PER_PRINCIPAL=4" in (raised.value.details() or "")
    assert "bob already has 4" in (raised.value.details() or "")

    s.subscribe("dave")  # bob at his cap does not keep dave out
    s.subscribe("dave")
    over_total = refused(lambda: s.subscribe("erin"))
    assert over_total.metadata["limit"] == "total"
    assert over_total.metadata["open_streams"] == "6"
    with pytest.raises(grpc.RpcError) as raised:
        s.subscribe("dave")
    assert "TRADING_MAX_STREAMS=6" in (raised.value.details() or "")

    # Every long-lived method counts: a server stream of the log, a client stream.
    audit = s.stub.QueryAudit(pb.QueryAuditRequest(), metadata=bearer(token("dave")), timeout=10)
    assert refusal(_error_of(lambda: list(audit))).metadata["method"] == "QueryAudit"
    assert refusal(_error_of(lambda: s.idle_feed().result())).metadata["limit"] == "total"

    assert_still_answering(s.channel)

    bobs[0].cancel()  # a slot comes back: erin gets in, and the total holds again
    open_when_free(lambda: s.subscribe("erin"))
    refused(lambda: s.subscribe("erin"))


def _error_of(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_streams_without_a_token_share_one_allowance(
    start_service: StartService, tmp_path: Path, streams: Callable[[RunningService], Streams]
) -> None:
    """Health Watch holds a thread like any stream; open to all, it is capped
    under one anonymous principal, which cannot crowd out a named one."""
    svc = start(start_service, tmp_path, trading_max_streams=3, trading_max_streams_per_principal=1)
    s = streams(svc)
    watch = health_pb2_grpc.HealthStub(s.channel).Watch

    def open_watch() -> None:
        call = watch(health_pb2.HealthCheckRequest(service=""), timeout=STREAM_DEADLINE)
        s.calls.append(call)
        assert next(call).status == health_pb2.HealthCheckResponse.SERVING

    open_watch()
    assert refused(open_watch).metadata["principal"] == ANONYMOUS
    s.subscribe("bob")
    assert_still_answering(s.channel)


# --- slots come back however a stream ends ---------------------------------------------------


def _cancelled(s: Streams, svc: RunningService) -> None:
    s.subscribe("bob").cancel()


def _deadline(s: Streams, svc: RunningService) -> None:
    call = s.stub.SubscribeEvents(
        pb.SubscribeEventsRequest(), metadata=bearer(token("bob")), timeout=0.3
    )
    assert _error_of(lambda: list(call)).code() == grpc.StatusCode.DEADLINE_EXCEEDED


def _bad_request(s: Streams, svc: RunningService) -> None:
    call = s.stub.SubscribeEvents(
        pb.SubscribeEventsRequest(types=[events_pb2.EventType.ValueType(999)]),
        metadata=bearer(token("bob")),
        timeout=10,
    )
    assert _error_of(lambda: list(call)).code() == grpc.StatusCode.INVALID_ARGUMENT


def _audit_read_to_the_end(s: Streams, svc: RunningService) -> None:
    records = list(
        s.stub.QueryAudit(pb.QueryAuditRequest(), metadata=bearer(token("bob")), timeout=10)
    )
    assert records


def _feed_completed(s: Streams, svc: RunningService) -> None:
    batch = pb.StreamMarketDataRequest(events=ticks("SPY", [100.0, 100.5], SESSION))
    reply = s.stub.StreamMarketData(iter([batch]), metadata=bearer(token("bob")), timeout=10)
    assert reply.events_accepted == 2


def _feed_refused_a_message(s: Streams, svc: RunningService) -> None:
    bad = pb.StreamMarketDataRequest(events=ticks("SPY", [-1.0], SESSION))
    error = _error_of(
        lambda: s.stub.StreamMarketData(iter([bad]), metadata=bearer(token("bob")), timeout=10)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def _feed_message_too_large(s: Streams, svc: RunningService) -> None:
    limit = svc.settings.trading_max_message_bytes
    huge = pb.StreamMarketDataRequest(events=ticks("SPY", [100.0] * (limit // 20 + 1), SESSION))
    assert huge.ByteSize() > limit
    error = _error_of(
        lambda: s.stub.StreamMarketData(iter([huge]), metadata=bearer(token("bob")), timeout=10)
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")


def _client_gone(s: Streams, svc: RunningService) -> None:
    with grpc.insecure_channel(svc.target) as other:
        gone = Streams(other)
        gone.subscribe("bob")
    # leaving the block closed the channel and so the connection, mid-stream


ENDINGS: dict[str, Callable[[Streams, RunningService], None]] = {
    "cancelled": _cancelled,
    "deadline": _deadline,
    "error in the servicer": _bad_request,
    "server stream completed": _audit_read_to_the_end,
    "client stream completed": _feed_completed,
    "client stream refused a message": _feed_refused_a_message,
    "message over max_receive_message_length": _feed_message_too_large,
    "client gone": _client_gone,
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_a_slot_comes_back_however_its_stream_ends(
    start_service: StartService,
    tmp_path: Path,
    streams: Callable[[RunningService], Streams],
    ending: Callable[[Streams, RunningService], None],
) -> None:
    """One stream at a time in the whole service: a slot that did not come back
    would keep the next one out for good."""
    people = {**PEOPLE, "bob": {"token": token("bob"), "roles": ["viewer", "feed"]}}
    svc = start_service(
        trading_tokens_file=tokens_file(tmp_path, people),
        trading_max_streams=1,
        trading_max_streams_per_principal=1,
        trading_max_message_bytes=64 * 1024,
    )
    svc.client.deactivate_risk("a first audit record")
    svc.client.activate_risk("and a second")
    s = streams(svc)
    ending(s, svc)
    open_when_free(lambda: s.subscribe("dave"))


# --- connections --------------------------------------------------------------------------


def raw_connection(port: int, *, speak_http2: bool = True) -> socket.socket:
    """A TCP connection to the server that completes the client's side of the
    HTTP/2 handshake (or stays silent) and then answers nothing, pings included."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if speak_http2:
        sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
    return sock


def frames_until_closed(sock: socket.socket, within: float) -> list[int] | None:
    """The HTTP/2 frame types the server sent until it closed the connection,
    or None if it was still open after `within` seconds."""
    sock.settimeout(0.05)
    give_up = time.monotonic() + within
    buffer, types = b"", list[int]()
    while time.monotonic() < give_up:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return types
        if not data:
            return types
        buffer += data
        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
            types.append(buffer[3])
            buffer = buffer[9 + int.from_bytes(buffer[:3], "big") :]
    return None


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_connections_past_the_cap_are_closed_at_once(
    start_service: StartService, sockets: list[socket.socket]
) -> None:
    svc = start_service(trading_max_connections=3)
    svc.client.get_status()  # the fixture's client holds one connection
    sockets += [raw_connection(svc.service.port) for _ in range(2)]
    time.sleep(0.2)
    assert all(frames_until_closed(sock, 0.1) is None for sock in sockets)

    sockets.append(raw_connection(svc.service.port))
    assert frames_until_closed(sockets[-1], 5.0) is not None
    separate = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
    with grpc.insecure_channel(svc.target, options=separate) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        error = _error_of(lambda: check(health_pb2.HealthCheckRequest(), timeout=SHORT_DEADLINE))
        assert error.code() == grpc.StatusCode.UNAVAILABLE

    sockets[0].close()  # a place comes free
    with grpc.insecure_channel(svc.target, options=separate) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        assert wait_until(lambda: _answers(check), within=RELEASE_WITHIN)


def _answers(check: Any) -> bool:
    try:
        check(health_pb2.HealthCheckRequest(), timeout=SHORT_DEADLINE)
    except grpc.RpcError:
        return False
    return True


def test_a_socket_that_never_speaks_http2_is_closed_after_the_handshake_timeout(
    start_service: StartService, sockets: list[socket.socket]
) -> None:
    svc = start_service(trading_handshake_timeout_seconds=0.3)
    sockets.append(raw_connection(svc.service.port, speak_http2=False))
    assert frames_until_closed(sockets[-1], 5.0) is not None


def test_a_peer_that_leaves_pings_unanswered_is_closed(
    start_service: StartService, sockets: list[socket.socket]
) -> None:
    svc = start_service(trading_keepalive_time_seconds=0.2, trading_keepalive_timeout_seconds=0.3)
    sockets.append(raw_connection(svc.service.port))
    frames = frames_until_closed(sockets[-1], 5.0)
    assert frames is not None and PING in frames and GOAWAY in frames


def test_an_idle_connection_is_sent_goaway(
    start_service: StartService, sockets: list[socket.socket]
) -> None:
    svc = start_service(trading_connection_idle_seconds=0.3)  # pings keep their 30 s default
    sockets.append(raw_connection(svc.service.port))
    frames = frames_until_closed(sockets[-1], 5.0)
    assert frames is not None and GOAWAY in frames
    assert PING not in frames[: frames.index(GOAWAY)]  # idle, not a keepalive failure


def test_a_quiet_stream_from_a_live_client_stays_open(
    start_service: StartService, tmp_path: Path, streams: Callable[[RunningService], Streams]
) -> None:
    """Pinged every 0.2 s and idle-timed at 0.3 s, a SubscribeEvents that hears
    nothing for 2.5 s is still open: the client answers the pings (each within
    the 1 s allowed), and a connection with a call is not idle."""
    svc = start(
        start_service,
        tmp_path,
        trading_keepalive_time_seconds=0.2,
        trading_keepalive_timeout_seconds=1.0,
        trading_connection_idle_seconds=0.3,
    )
    s = streams(svc)
    call = s.stub.SubscribeEvents(
        pb.SubscribeEventsRequest(types=[events_pb2.EVENT_TYPE_TRADING_STATE]),
        metadata=bearer(token("bob")),
        timeout=STREAM_DEADLINE,
    )
    s.calls.append(call)
    time.sleep(2.5)
    svc.client.deactivate_risk("news for the quiet subscriber")
    event = next(call).event
    assert event.type == events_pb2.EVENT_TYPE_TRADING_STATE


class FreezingProxy:
    """Forwards a loopback port to the server until `freeze()`, after which it
    keeps every socket open and forwards nothing: to the server, the client's
    host has vanished without closing its connection."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._frozen = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self._target))
                self._sockets += [client, upstream]
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self._frozen.is_set():
                    sink.sendall(data)

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_vanished_client_stops_holding_its_stream_slot(
    start_service: StartService, tmp_path: Path, streams: Callable[[RunningService], Streams]
) -> None:
    svc = start(
        start_service,
        tmp_path,
        trading_max_streams_per_principal=1,
        trading_keepalive_time_seconds=0.2,
        trading_keepalive_timeout_seconds=1.0,
    )
    proxy = FreezingProxy(svc.service.port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as far:
            held = Streams(far).subscribe("bob")  # (a dropped call object cancels itself)
            time.sleep(1.5)  # quiet, but alive: still holding the slot
            s = streams(svc)
            refused(lambda: s.subscribe("bob"))
            proxy.freeze()
            open_when_free(lambda: s.subscribe("bob"))
            held.cancel()
    finally:
        proxy.close()


# --- the count invariant, under generated interleavings -------------------------------------

TEST_PRINCIPALS = ("ann", "ben", "cat")
WAIT_SERVICE = "test.Streams"


def _wait_for_cancel(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    """A stream that says hello, then holds its slot until the call ends."""
    yield b"hello"
    while context.is_active():
        time.sleep(0.01)


@dataclass
class LimitedServer:
    limiter: StreamLimiter
    port: int


@pytest.fixture(scope="module")
def limited_server() -> Iterator[LimitedServer]:
    """A real grpc server with the service's interceptors around a stream that
    waits, and the limiter in reach so that counts can be checked exactly."""
    auth = Authenticator(
        {
            f"{name}-token-0123456789ab": Principal(name, frozenset({"operator"}))
            for name in TEST_PRINCIPALS
        }
    )
    limiter = StreamLimiter(Capacity(max_streams=4, max_streams_per_principal=2, unary_workers=2))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[CallChain(auth, limiter)],
    )
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(
        _wait_for_cancel
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(WAIT_SERVICE, {"Wait": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield LimitedServer(limiter, port)
    server.stop(0)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(TEST_PRINCIPALS)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=7)),
    ),
    max_size=14,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_random_opens_and_cancels_keep_the_count_within_the_caps(
    limited_server: LimitedServer, ops: list[tuple[str, Any]]
) -> None:
    limiter = limited_server.limiter
    open_calls: list[tuple[str, Any]] = []
    with grpc.insecure_channel(f"127.0.0.1:{limited_server.port}") as channel:
        wait: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            f"/{WAIT_SERVICE}/Wait"
        )
        try:
            for op, arg in ops:
                if op == "open":
                    mine = sum(name == arg for name, _ in open_calls)
                    expected = (
                        "per_principal" if mine >= 2 else "total" if len(open_calls) >= 4 else None
                    )
                    call = wait(b"", metadata=bearer(f"{arg}-token-0123456789ab"), timeout=60)
                    try:
                        assert next(call) == b"hello"
                    except grpc.RpcError as error:
                        assert expected is not None, f"{arg} refused with {mine} open"
                        assert refusal(error).metadata["limit"] == expected
                    else:
                        assert expected is None, f"{arg} let in over the {expected} cap"
                        open_calls.append((arg, call))
                elif open_calls:
                    _, call = open_calls.pop(arg % len(open_calls))
                    call.cancel()
                    # Wait for the server to take the slot back, so the next open is exact.
                    assert wait_until(
                        lambda: limiter.open_streams() == len(open_calls), RELEASE_WITHIN
                    )
                assert limiter.open_streams() == len(open_calls) <= 4
                for name in TEST_PRINCIPALS:
                    mine = sum(n == name for n, _ in open_calls)
                    assert limiter.open_streams(name) == mine <= 2
        finally:
            for _, call in open_calls:
                call.cancel()
            assert wait_until(lambda: limiter.open_streams() == 0, RELEASE_WITHIN)


@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("open"), st.sampled_from(TEST_PRINCIPALS)),
            st.tuples(st.just("release"), st.integers(min_value=0, max_value=30)),
            st.tuples(st.just("release twice"), st.integers(min_value=0, max_value=30)),
        ),
        max_size=60,
    ),
    caps=st.tuples(st.integers(1, 6), st.integers(1, 6)),
)
def test_the_limiter_refuses_exactly_when_over_a_cap(
    ops: list[tuple[str, Any]], caps: tuple[int, int]
) -> None:
    """The limiter alone, many more interleavings: released twice counts once."""
    total_cap, per_cap = caps
    limiter = StreamLimiter(Capacity(total_cap, per_cap, unary_workers=1))
    held: list[Any] = []
    for op, arg in ops:
        if op == "open":
            mine = sum(slot.principal == arg for slot in held)
            expected = (
                "per_principal" if mine >= per_cap else "total" if len(held) >= total_cap else None
            )
            try:
                held.append(limiter.acquire(arg, "Wait"))
            except ResourceExhausted as exc:
                assert expected is not None and exc.metadata["limit"] == expected
                assert exc.reason == STREAM_LIMIT
            else:
                assert expected is None
        elif held:
            slot = held.pop(arg % len(held))
            slot.release()
            if op == "release twice":
                slot.release()
        assert limiter.open_streams() == len(held) <= total_cap
        for name in TEST_PRINCIPALS:
            assert limiter.open_streams(name) == sum(s.principal == name for s in held) <= per_cap


# --- what a subscriber holds --------------------------------------------------------------------


class CountingStore(InMemoryEventStore):
    """The in-memory store, counting the reads of the log that are open now:
    on the SQL store each one holds a pooled connection and a snapshot."""

    open_reads = 0

    def query(self, query: AuditQuery) -> Iterator[AuditRecord]:
        rows = super().query(query)

        def counted() -> Iterator[AuditRecord]:
            self.open_reads += 1
            try:
                yield from rows
            finally:
                self.open_reads -= 1

        return counted()


@dataclass
class Log:
    store: CountingStore
    core: Core

    def add(self, n: int) -> None:
        """n committed TradingStateChanged records."""
        for i in range(n):
            # Always the other state: setting the one in force records nothing.
            halted = self.core.risk.state is TradingState.HALTED
            state = TradingState.ACTIVE if halted else TradingState.HALTED
            self.core.set_trading_state(state, "test", f"record {i}")
        self.core.bus.flush()


@pytest.fixture
def log(calendar: Any) -> Log:
    store = CountingStore()
    return Log(store, build_core(Settings(trading_clock="event"), store, calendar))


def test_a_subscriber_slow_to_read_its_replay_holds_no_read_of_the_log(log: Log) -> None:
    log.add(30)
    hub = EventHub(log.store, read_chunk_rows=10)
    events = hub.subscribe(frozenset(), frozenset(), 1, lambda: True)
    seqs = [next(events).seq]
    assert log.store.open_reads == 0  # a client that stops reading here pins nothing
    seqs += [next(events).seq for _ in range(14)]
    assert log.store.open_reads == 0
    log.add(10)  # committed mid-replay: heard live, delivered once, in order
    seqs += [next(events).seq for _ in range(log.store.last_seq() - 15)]
    assert seqs == list(range(1, log.store.last_seq() + 1))
    assert log.store.open_reads == 0
    hub.close()
    assert list(events) == []


def test_a_subscriber_that_falls_behind_is_dropped_with_what_it_had(log: Log) -> None:
    log.add(1)
    hub = EventHub(log.store, max_queued_events=3)
    events = hub.subscribe(frozenset(), frozenset(), 1, lambda: True)
    assert next(events).seq == 1  # replayed, and now registered for live events
    log.add(5)
    assert [next(events).seq for _ in range(3)] == [2, 3, 4]
    with pytest.raises(Unavailable, match="resubscribe with from_seq"):
        next(events)
    assert hub.subscribers() == 0


def test_an_event_over_the_byte_budget_still_reaches_an_idle_subscriber(log: Log) -> None:
    log.add(1)
    hub = EventHub(log.store, max_queued_bytes=1)
    events = hub.subscribe(frozenset(), frozenset(), 1, lambda: True)
    next(events)
    log.add(2)
    assert next(events).seq == 2  # taken though larger than the budget: nothing else waited
    with pytest.raises(Unavailable):
        next(events)  # the second had to wait behind it, over the budget


def test_closing_the_hub_never_waits_for_a_subscriber_that_does_not_read(log: Log) -> None:
    log.add(1)
    hub = EventHub(log.store, max_queued_events=3)
    events = hub.subscribe(frozenset(), frozenset(), 1, lambda: True)
    next(events)
    log.add(10)  # its queue is full and it reads nothing
    began = time.monotonic()
    hub.close()
    assert time.monotonic() - began < 1.0
    assert [e.seq for e in events] == [2, 3, 4]  # what waited, then a clean end
    with pytest.raises(Unavailable, match="shutting down"):
        next(hub.subscribe(frozenset(), frozenset(), 0, lambda: True))


def test_a_cancelled_subscriber_is_let_go_at_once(
    start_service: StartService, tmp_path: Path, streams: Callable[[RunningService], Streams]
) -> None:
    svc = start(start_service, tmp_path)
    hub = svc.service.hub
    s = streams(svc)
    call = s.subscribe("bob")
    assert hub.subscribers() == 1
    call.cancel()
    # It polls its call every POLL_SECONDS; the margin is for a loaded machine.
    assert wait_until(lambda: hub.subscribers() == 0, within=2.0)
