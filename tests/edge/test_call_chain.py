"""The interceptor chain through real channels: the IP allow-list before
authentication, per-principal rate limits with the retry delay, the access log
(every field, no secret), unknown methods, and a bug answered INTERNAL."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import given
from hypothesis import strategies as st

from server.auth import ROLES, Authenticator, Principal
from server.interceptors.allow_list import AllowList, parse_networks, peer_address
from server.interceptors.chain import CallChain
from server.interceptors.rate_limit import RateLimiter
from server.stream_limits import Capacity, StreamLimiter
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import bearer, failure_of
from tests.support.market import minute_ticks, v_reversal
from trading_sdk.client import TradingClient, error_info

SECRET_REASON = "reason-that-must-not-leak-7f3a"


def access_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def retry_delay_seconds(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            seconds: float = info.retry_delay.ToTimedelta().total_seconds()
            return seconds
    raise AssertionError("no RetryInfo in the error details")


# --- the allow-list ---------------------------------------------------------------


def test_a_peer_outside_the_allow_list_is_refused_before_authentication(
    start_service: StartService, tmp_path: Path
) -> None:
    log_path = tmp_path / "access.log"
    running = start_service(
        trading_allowed_clients="10.0.0.0/8, 192.168.0.0/16", trading_access_log=str(log_path)
    )
    for token in (TOKEN, "not-a-token"):
        client = TradingClient(running.target, token)
        failure = failure_of(client.get_status)
        client.close()
        # Not UNAUTHENTICATED for the bad token: from here nothing about tokens is learnt.
        assert failure.code == grpc.StatusCode.PERMISSION_DENIED
        assert "not allowed" in failure.details and "TRADING_ALLOWED_CLIENTS" in failure.details
        info = error_info(failure.error)
        assert info is not None and info.reason == "CLIENT_NOT_ALLOWED"
    with grpc.insecure_channel(running.target) as channel:  # health too: it is the network
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    lines = access_lines(log_path)
    assert [line["refused"] for line in lines] == ["not_allowed_ip"] * 3
    assert all(line["principal"] is None for line in lines)


def test_a_peer_inside_the_allow_list_is_served(start_service: StartService) -> None:
    running = start_service(trading_allowed_clients="10.0.0.0/8,127.0.0.1")
    assert running.client.get_status().version


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_the_allow_list_reads_ipv6_peers() -> None:
    auth = Authenticator({TOKEN: Principal("operator", ROLES)})
    chain = CallChain(
        auth,
        StreamLimiter(Capacity(4, 2, 2)),
        allow_list=AllowList(parse_networks("::1/128")),
    )
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[chain])
    health_pb2_grpc.add_HealthServicer_to_server(_Healthy(), server)
    port = server.add_insecure_port("[::1]:0")
    server.start()
    try:
        with grpc.insecure_channel(f"[::1]:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)


class _Healthy(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


NETWORKS_V4 = st.builds(
    lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
    st.ip_addresses(v=4),
    st.integers(0, 32),
)
NETWORKS_V6 = st.builds(
    lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
    st.ip_addresses(v=6),
    st.integers(0, 128),
)


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(1, 65535),
    st.lists(st.one_of(NETWORKS_V4, NETWORKS_V6), min_size=1, max_size=4),
)
def test_the_allow_list_admits_exactly_the_listed_networks(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> None:
    peer = f"ipv4:{address}:{port}" if address.version == 4 else f"ipv6:[{address}]:{port}"
    assert peer_address(peer) == (
        address.ipv4_mapped
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped
        else address
    )
    allow_list = AllowList(parse_networks(",".join(str(n) for n in networks)))
    expected = any(peer_address(peer) in n for n in networks)
    try:
        allow_list.check(peer)
        admitted = True
    except Exception:
        admitted = False
    assert admitted == expected


@pytest.mark.parametrize("peer", ["", "ipv4:", "ipv4:not-an-ip:1", "ipv6:[zz::1]:1", "dns:x:1"])
def test_a_peer_whose_address_cannot_be_read_is_refused(peer: str) -> None:
    with pytest.raises(Exception, match="not allowed"):
        AllowList(parse_networks("0.0.0.0/0, ::/0")).check(peer)


@pytest.mark.parametrize("text", ["", "10.0.0.0/33", "localhost", "10.0.0.0/8,,bad"])
def test_a_bad_allow_list_is_refused_at_start(text: str) -> None:
    with pytest.raises(ValueError, match="TRADING_ALLOWED_CLIENTS"):
        parse_networks(text)


# --- rate limits ------------------------------------------------------------------


def test_a_principal_over_its_rate_is_told_when_to_retry(start_service: StartService) -> None:
    running = start_service(trading_rate_limit_per_second=5, trading_rate_limit_burst=3)
    for _ in range(3):
        running.client.get_status()
    failure = failure_of(running.client.get_status)
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit" in failure.details
    info = error_info(failure.error)
    assert info is not None and info.reason == "RATE_LIMITED"
    delay = retry_delay_seconds(failure.error)
    assert 0 < delay <= 0.2 + 1e-9  # one call's worth at 5 a second
    assert int(info.metadata["retry_after_ms"]) == max(1, round(delay * 1000))
    time.sleep(delay)
    assert running.client.get_status().version  # waiting as told is enough


def test_rate_limits_are_per_principal(start_service: StartService, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"v": {"token": "viewer-token-0123456789", "roles": ["viewer"]}}))
    path.chmod(0o600)
    running = start_service(
        trading_tokens_file=str(path), trading_rate_limit_per_second=0.5, trading_rate_limit_burst=2
    )
    for _ in range(2):
        running.client.get_status()
    assert failure_of(running.client.get_status).code == grpc.StatusCode.RESOURCE_EXHAUSTED
    with TradingClient(running.target, "viewer-token-0123456789") as viewer:
        assert viewer.get_status().version  # another principal's bucket is full


@given(st.lists(st.floats(0, 0.5), min_size=1, max_size=200), st.integers(1, 10), st.floats(1, 50))
def test_no_window_admits_more_than_the_burst_plus_the_rate(
    gaps: list[float], burst: int, rate: float
) -> None:
    now = [0.0]
    limiter = RateLimiter(rate, burst, clock=lambda: now[0])
    admitted: list[float] = []
    for gap in gaps:
        now[0] += gap
        try:
            limiter.take("p")
        except Exception as exc:
            assert exc.retry_after_seconds > 0  # type: ignore[attr-defined]
        else:
            admitted.append(now[0])
    for i, start in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t - start <= 1.0]
        assert len(in_window) <= burst + rate * 1.0 + 1e-9


def test_idle_principals_are_forgotten() -> None:
    now = [0.0]
    limiter = RateLimiter(100, 10, clock=lambda: now[0])
    for i in range(5000):
        now[0] += 0.2  # each principal is idle long enough to refill before the sweep
        limiter.take(f"p{i}")
    assert limiter.tracked() < 1100


# --- the access log ---------------------------------------------------------------


@pytest.fixture
def logged(start_service: StartService, tmp_path: Path) -> Iterator[tuple[RunningService, Path]]:
    path = tmp_path / "access.log"
    yield start_service(trading_access_log=str(path)), path


def test_every_call_has_one_line_with_every_field_and_no_secret(
    logged: tuple[RunningService, Path],
) -> None:
    running, path = logged
    client = running.client
    client.get_status()
    client.set_trading_state("halted", reason=SECRET_REASON)
    client.stream_market_data([minute_ticks("SPY", v_reversal(40))])
    failure_of(lambda: TradingClient(running.target, "wrong-token-0123456789").get_status())
    failure_of(lambda: client.cancel_order("o-does-not-exist"))
    lines = access_lines(path)
    fields = {
        "time",
        "principal",
        "key_id",
        "peer",
        "method",
        "known",
        "kind",
        "code",
        "duration_ms",
        "request_bytes",
        "refused",
    }
    assert [set(line) for line in lines] == [fields] * 5
    status, halt, stream, bad_token, cancel = lines
    assert status["method"] == "/trading.v1.TradingService/GetStatus"
    assert (status["principal"], status["code"], status["kind"]) == ("operator", "OK", "unary")
    assert status["peer"].startswith("ipv4:127.0.0.1:")
    assert halt["request_bytes"] > len(SECRET_REASON)
    assert (stream["kind"], stream["code"]) == ("client_stream", "OK")
    assert stream["request_bytes"] > 40 * 10
    assert (bad_token["code"], bad_token["refused"], bad_token["principal"]) == (
        "UNAUTHENTICATED",
        "unauthenticated",
        None,
    )
    assert (cancel["code"], cancel["refused"]) == ("NOT_FOUND", None)
    assert all(line["duration_ms"] >= 0 for line in lines)
    text = path.read_text()
    for secret in (TOKEN, "wrong-token-0123456789", "Bearer", SECRET_REASON):
        assert secret not in text


def test_a_refused_role_is_logged_as_permission_denied(
    start_service: StartService, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"v": {"token": "viewer-token-0123456789", "roles": ["viewer"]}}))
    tokens.chmod(0o600)
    log_path = tmp_path / "access.log"
    running = start_service(trading_tokens_file=str(tokens), trading_access_log=str(log_path))
    with TradingClient(running.target, "viewer-token-0123456789") as viewer:
        failure = failure_of(lambda: viewer.set_trading_state("halted", reason="x"))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(failure.error)
    assert info is not None and info.reason == "ROLE_NOT_ALLOWED"
    (line,) = access_lines(log_path)
    assert (line["principal"], line["refused"], line["code"]) == (
        "v",
        "permission_denied",
        "PERMISSION_DENIED",
    )
    assert line["key_id"]  # which key, never the key


def test_an_unknown_method_is_unimplemented_and_logged(logged: tuple[RunningService, Path]) -> None:
    running, path = logged
    with grpc.insecure_channel(running.target) as channel:
        probe: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/trading.v1.TradingService/DropTables"
        )
        with pytest.raises(grpc.RpcError) as refused:
            probe(b"", metadata=bearer())
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    (line,) = access_lines(path)
    assert (line["method"], line["known"], line["code"]) == (
        "/trading.v1.TradingService/DropTables",
        False,
        "UNIMPLEMENTED",
    )


def test_a_cancelled_stream_is_logged_once_as_cancelled(
    logged: tuple[RunningService, Path],
) -> None:
    running, path = logged
    stream = running.client.subscribe_events()
    time.sleep(0.2)
    stream.cancel()
    deadline = time.monotonic() + 5
    while not path.read_text().strip():
        assert time.monotonic() < deadline, "the cancelled stream was never logged"
        time.sleep(0.05)
    time.sleep(0.3)  # a second line would come now
    (line,) = access_lines(path)
    assert (line["kind"], line["code"]) == ("server_stream", "CANCELLED")


def test_access_log_off_writes_nothing(
    start_service: StartService, capfd: pytest.CaptureFixture[str]
) -> None:
    running = start_service(trading_access_log="off")
    running.client.get_status()
    assert '"method"' not in capfd.readouterr().err


# --- a bug is INTERNAL, logged, and says nothing of the internals ---------------------


class _Broken(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise KeyError("secret internal detail")


def test_an_unexpected_exception_is_internal_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = Authenticator({TOKEN: Principal("operator", ROLES)})
    server = grpc.server(
        futures.ThreadPoolExecutor(2),
        interceptors=[CallChain(auth, StreamLimiter(Capacity(4, 2, 2)))],
    )
    health_pb2_grpc.add_HealthServicer_to_server(_Broken(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with (
            caplog.at_level(logging.ERROR),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            pytest.raises(grpc.RpcError) as failed,
        ):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        server.stop(0)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in (failed.value.details() or "")
    assert "secret internal detail" in caplog.text and "Traceback" in caplog.text
