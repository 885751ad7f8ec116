"""Hostile ranges and leaks at the edge (issue 8, findings 6 and 7).

Finding 6: a Timestamp or a seq from a client outside what the service can hold
(a Timestamp outside 0001-01-01..9999-12-31 or with nanos outside [0, 1e9); a
seq past 2**63-1, which no BIGINT holds) is INVALID_ARGUMENT with a message and
changes nothing; it never reaches a database (it was UNKNOWN on SQLite and
UNAVAILABLE "bigint out of range" on PostgreSQL while the store was healthy).
The regressions run on SQLite and PostgreSQL, and generated requests check the
class: every answer is OK or INVALID_ARGUMENT, exactly as the request's domain says.

Finding 7: a database password holding '@', ':' or '/' never shows in a log line or
an error; the SQLite audit files are owner-only; a tokens file others can read is
refused; two authorization headers are refused.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from audit.records import AuditQuery
from audit.sql_store import SqlAlchemyEventStore, StoreConfigError, redact_url
from domain.errors import InvalidInput, Unavailable
from server.auth import ROLES
from server.tokens import read_tokens_file
from server.translate import MAX_SEQ, MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS
from tests.audit.helpers import record
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import bearer, failure_of
from tests.support.market import ticks
from tests.support.state import snapshot
from trading_sdk.v1 import trading_service_pb2 as pb
from trading_sdk.v1 import trading_service_pb2_grpc as pb_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
# A live stream accepted by the server sends nothing until an event happens: it is
# given this long to refuse the request, and a deadline after that means accepted.
ACCEPTED_WITHIN_S = 0.3


@pytest.fixture
def running(start_service: StartService, database_url: str) -> RunningService:
    """The default service on SQLite and on PostgreSQL, with a few records in its log."""
    svc = start_service(database_url=database_url)
    svc.client.stream_market_data([ticks("SPY", [500.0, 501.0, 502.0])])
    return svc


@pytest.fixture
def stub(running: RunningService) -> Iterator[pb_grpc.TradingServiceStub]:
    with grpc.insecure_channel(running.target) as channel:
        yield pb_grpc.TradingServiceStub(channel)


def _query(stub: pb_grpc.TradingServiceStub, request: pb.QueryAuditRequest) -> Callable[[], object]:
    return lambda: list(stub.QueryAudit(request, metadata=bearer(), timeout=10))


def _subscribe(
    stub: pb_grpc.TradingServiceStub, request: pb.SubscribeEventsRequest
) -> Callable[[], object]:
    return lambda: list(stub.SubscribeEvents(request, metadata=bearer(), timeout=10))


# --- finding 6: the exact reproductions ----------------------------------------------

REFUSED_QUERIES = [
    pytest.param(
        pb.QueryAuditRequest(until=Timestamp(seconds=1, nanos=1_000_000_000)),
        "until.nanos must be from 0 to 999999999, got 1000000000",
        id="until-nanos-1e9",
    ),
    pytest.param(
        pb.QueryAuditRequest(since=Timestamp(seconds=253402300800)),
        "since.seconds must be from -62135596800 (0001-01-01T00:00:00Z) to 253402300799",
        id="since-year-10000",
    ),
    pytest.param(
        pb.QueryAuditRequest(since=Timestamp(seconds=-62135596801)),
        "since.seconds must be from",
        id="since-before-year-1",
    ),
    pytest.param(
        pb.QueryAuditRequest(since=Timestamp(seconds=0, nanos=-1)),
        "since.nanos must be from 0 to 999999999, got -1",
        id="since-negative-nanos",
    ),
    pytest.param(
        pb.QueryAuditRequest(from_seq=2**63),
        f"from_seq must be from 0 to {MAX_SEQ}",
        id="from-seq-2^63",
    ),
    pytest.param(
        pb.QueryAuditRequest(to_seq=2**63),
        f"to_seq must be from 0 to {MAX_SEQ}",
        id="to-seq-2^63",
    ),
    pytest.param(
        pb.QueryAuditRequest(from_seq=2**64 - 1, to_seq=2**64 - 1),
        "from_seq must be from 0",
        id="both-seqs-2^64-1",
    ),
]


@pytest.mark.parametrize(("request_", "message"), REFUSED_QUERIES)
def test_query_audit_refuses_what_no_timestamp_or_seq_can_be(
    running: RunningService,
    stub: pb_grpc.TradingServiceStub,
    request_: pb.QueryAuditRequest,
    message: str,
) -> None:
    before = snapshot(running.client)
    failure = failure_of(_query(stub, request_))
    assert failure.code == INVALID, failure
    assert message in failure.details
    assert snapshot(running.client) == before


@pytest.mark.parametrize("from_seq", [2**63, 2**64 - 1])
def test_subscribe_events_refuses_a_from_seq_past_any_seq(
    running: RunningService, stub: pb_grpc.TradingServiceStub, from_seq: int
) -> None:
    before = snapshot(running.client)
    failure = failure_of(_subscribe(stub, pb.SubscribeEventsRequest(from_seq=from_seq)))
    assert (failure.code, failure.details) == (
        INVALID,
        f"from_seq must be from 0 to {MAX_SEQ} (2**63-1, the largest seq there can be), "
        f"got {from_seq}",
    )
    assert snapshot(running.client) == before


def test_the_largest_seq_and_the_widest_time_range_are_answered(
    running: RunningService, stub: pb_grpc.TradingServiceStub
) -> None:
    """The edges of the domain are accepted: a range past the end of the log is empty."""
    last = running.client.verify_audit().last_seq
    assert list(stub.QueryAudit(pb.QueryAuditRequest(from_seq=MAX_SEQ), metadata=bearer())) == []
    everything = pb.QueryAuditRequest(
        to_seq=MAX_SEQ,
        since=Timestamp(seconds=MIN_TIMESTAMP_SECONDS),
        until=Timestamp(seconds=MAX_TIMESTAMP_SECONDS, nanos=999_999_999),
    )
    records = list(stub.QueryAudit(everything, metadata=bearer(), timeout=10))
    assert [r.record.seq for r in records] == list(range(1, last + 1))


# --- finding 6: the class, by generated requests ------------------------------------

SEQS = st.one_of(
    st.sampled_from([0, 1, 2, MAX_SEQ - 1, MAX_SEQ, MAX_SEQ + 1, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
SECONDS = st.one_of(
    st.sampled_from(
        [
            MIN_TIMESTAMP_SECONDS - 1,
            MIN_TIMESTAMP_SECONDS,
            0,
            1_700_000_000,
            MAX_TIMESTAMP_SECONDS,
            MAX_TIMESTAMP_SECONDS + 1,
        ]
    ),
    st.integers(-(2**63), 2**63 - 1),
)
NANOS = st.one_of(
    st.sampled_from([-1, 0, 999, 999_999_999, 1_000_000_000]), st.integers(-(2**31), 2**31 - 1)
)
TIMESTAMPS = st.none() | st.builds(Timestamp, seconds=SECONDS, nanos=NANOS)
GENERATED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_time(ts: Timestamp | None) -> bool:
    return ts is None or (
        MIN_TIMESTAMP_SECONDS <= ts.seconds <= MAX_TIMESTAMP_SECONDS
        and 0 <= ts.nanos < 1_000_000_000
    )


def _query_is_valid(
    from_seq: int, to_seq: int, since: Timestamp | None, until: Timestamp | None
) -> bool:
    if from_seq > MAX_SEQ or to_seq > MAX_SEQ or (to_seq and from_seq > to_seq):
        return False
    if not (_valid_time(since) and _valid_time(until)):
        return False
    if since is not None and until is not None:
        # The service keeps microseconds: finer nanos are dropped before comparing.
        return (since.seconds, since.nanos // 1000) < (until.seconds, until.nanos // 1000)
    return True


@GENERATED
@given(from_seq=SEQS, to_seq=SEQS, since=TIMESTAMPS, until=TIMESTAMPS)
def test_query_audit_answers_ok_or_invalid_argument_whatever_the_range(
    stub: pb_grpc.TradingServiceStub,
    from_seq: int,
    to_seq: int,
    since: Timestamp | None,
    until: Timestamp | None,
) -> None:
    request = pb.QueryAuditRequest(from_seq=from_seq, to_seq=to_seq)
    if since is not None:
        request.since.CopyFrom(since)
    if until is not None:
        request.until.CopyFrom(until)
    try:
        records = list(stub.QueryAudit(request, metadata=bearer(), timeout=10))
    except grpc.RpcError as exc:
        assert exc.code() == INVALID, (exc.code(), exc.details())
        assert exc.details()
        assert not _query_is_valid(from_seq, to_seq, since, until), exc.details()
        return
    assert _query_is_valid(from_seq, to_seq, since, until)
    seqs = [r.record.seq for r in records]
    assert all(s >= from_seq and (not to_seq or s <= to_seq) for s in seqs)


@settings(GENERATED, max_examples=12)  # an accepted subscription costs ACCEPTED_WITHIN_S
@given(from_seq=SEQS)
def test_subscribe_events_answers_ok_or_invalid_argument_whatever_the_seq(
    stub: pb_grpc.TradingServiceStub, from_seq: int
) -> None:
    valid = from_seq <= MAX_SEQ
    stream = stub.SubscribeEvents(
        pb.SubscribeEventsRequest(from_seq=from_seq),
        metadata=bearer(),
        timeout=ACCEPTED_WITHIN_S if valid else 10,
    )
    try:
        for response in stream:
            assert response.event.seq >= from_seq
    except grpc.RpcError as exc:
        # An accepted subscription stays open until its deadline.
        expected = grpc.StatusCode.DEADLINE_EXCEEDED if valid else INVALID
        assert exc.code() == expected, (exc.code(), exc.details())


# --- finding 7: a password never leaks ----------------------------------------------

SECRET_URLS = [
    ("postgresql+psycopg://postgres:ab@cdSECRET@db.example:5432/trading", "ab@cdSECRET"),
    ("postgresql+psycopg://postgres:se:cr:et@db.example/trading", "se:cr:et"),
    ("postgresql+psycopg://postgres:se/cr/et@db.example/trading", "se/cr/et"),
    ("postgresql+psycopg://postgres:s@e:c/r@e?t#x@db.example/trading", "s@e:c/r@e?t#x"),
    ("postgresql+psycopg://postgres:@@@@db.example/trading", "@@@"),
    ("postgres:s3cr@t@db.example/trading", "s3cr@t"),  # no scheme separator at all
    ("postgresql+psycopg://app@db.example/trading?password=hun:ter@2/x", "hun:ter@2/x"),
    ("postgresql+psycopg://app:pw1secret@db/x?sslpassword=other2secret&sslmode=require", "secret"),
]


@pytest.mark.parametrize(("url", "secret"), SECRET_URLS)
def test_redacted_urls_never_show_the_password(url: str, secret: str) -> None:
    shown = redact_url(url)
    assert secret not in shown
    assert "***" in shown
    assert "db" in shown  # the host stays readable


@settings(max_examples=200, deadline=None)
@given(password=st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1))
def test_no_password_survives_redaction(password: str) -> None:
    expected = "postgresql+psycopg://alice:***@db.example.com:5432/trading"
    assume(password not in expected)
    url = f"postgresql+psycopg://alice:{password}@db.example.com:5432/trading"
    assert redact_url(url) == expected
    in_query = f"postgresql+psycopg://alice@db.example.com/trading?password={password}&x=1"
    assume("&" not in password and password not in "alice@db.example.com/trading?password=***&x=1")
    assert password not in redact_url(in_query)


def test_an_unencoded_at_in_the_password_is_refused_without_showing_it() -> None:
    with pytest.raises(StoreConfigError) as caught:
        SqlAlchemyEventStore("postgresql+psycopg://postgres:ab@cdSECRET@127.0.0.1:1/x")
    message = str(caught.value)
    assert "cdSECRET" not in message and "ab@" not in message
    assert "percent-encode it ('@' as %40" in message


@pytest.mark.parametrize("password", ["se:cr/et", "s3cr%40t", "p/w:x?y"])
def test_an_unreachable_database_is_named_without_its_password(password: str) -> None:
    with pytest.raises(Unavailable) as caught:
        SqlAlchemyEventStore(
            f"postgresql+psycopg://postgres:{password}@127.0.0.1:1/x", connect_timeout_s=1
        )
    assert password not in str(caught.value)
    assert "postgres:***@127.0.0.1:1/x" in str(caught.value)


# --- finding 7: the SQLite audit files are owner-only --------------------------------


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_audit_files_are_created_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "var" / "audit.db"
    with _umask(0o022):  # what would make them world-readable
        store = SqlAlchemyEventStore(f"sqlite:///{database}")
        try:
            store.append(record(1))
            store.flush()
            assert store.sqlite_path == database
            files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            store.close()


def test_existing_world_readable_audit_files_are_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "audit.db"
    SqlAlchemyEventStore(f"sqlite:///{database}").close()
    database.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="audit.sql_store"):
        store = SqlAlchemyEventStore(f"sqlite:///{database}")
    try:
        store.append(record(1))
        store.flush()
        assert _mode(database) == 0o600
        assert _mode(Path(f"{database}-wal")) == 0o600
    finally:
        store.close()
    assert "was mode 644 (others could read it); now 600" in caplog.text


# --- finding 7: the tokens file and the authorization header ------------------------

TOKENS = '{"alice": {"token": "alice-token-0123456789", "roles": ["operator"]}}'


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        (0o644, "is mode 644: others can read the tokens"),
        (0o604, "is mode 604: others can read the tokens"),
        (0o602, "is mode 602: others can change the tokens"),
        (0o660, "is mode 660: its group can change the tokens"),
    ],
)
def test_a_tokens_file_others_can_read_or_change_is_refused(
    tmp_path: Path, mode: int, problem: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(TOKENS)
    path.chmod(mode)
    with pytest.raises(ValueError, match=problem) as refused:
        read_tokens_file(path, ROLES)
    assert f"chmod 600 {path}" in str(refused.value)
    assert "TRADING_TOKENS_FILE_ALLOW_INSECURE" in str(refused.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_an_owner_only_or_group_readable_tokens_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(TOKENS)
    path.chmod(mode)
    assert [e.principal for e in read_tokens_file(path, ROLES)] == ["alice"]


def test_an_insecure_tokens_file_is_accepted_loudly_when_explicitly_allowed(
    tmp_path: Path, start_service: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(TOKENS)
    path.chmod(0o644)
    with pytest.raises(ValueError, match="others can read the tokens"):
        start_service(trading_tokens_file=str(path))
    with caplog.at_level(logging.WARNING, logger="server.auth"):
        running = start_service(
            trading_tokens_file=str(path), trading_tokens_file_allow_insecure=True
        )
    assert running.client.get_status().version
    assert "accepted because TRADING_TOKENS_FILE_ALLOW_INSECURE is set" in caplog.text


@pytest.mark.parametrize(
    "second", [f"Bearer {TOKEN}", "Bearer not-the-token", "Basic dXNlcjpwYXNz"]
)
def test_two_authorization_headers_are_refused(svc: RunningService, second: str) -> None:
    before = snapshot(svc.client)
    with grpc.insecure_channel(svc.target) as channel:
        stub = pb_grpc.TradingServiceStub(channel)
        metadata = (("authorization", f"Bearer {TOKEN}"), ("authorization", second))
        for headers in (metadata, metadata[::-1]):
            failure = failure_of(
                lambda h=headers: stub.DeactivateRisk(  # type: ignore[misc]
                    pb.DeactivateRiskRequest(reason="x"), metadata=h, timeout=10
                )
            )
            assert (failure.code, failure.details) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "2 'authorization' metadata entries were sent; "
                "send exactly one 'authorization: Bearer <token>'",
            )
    assert snapshot(svc.client) == before


def test_a_sqlite_path_with_an_at_sign_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a@b' / 'audit.db'}"
    assert redact_url(url) == url  # a file path with '@' holds no password
    assert make_url(url).database == str(tmp_path / "a@b" / "audit.db")


@pytest.mark.parametrize("bounds", [{"from_seq": 2**63}, {"to_seq": -1}, {"from_seq": True}])
def test_the_store_itself_refuses_a_seq_no_bigint_holds(
    tmp_path: Path, bounds: dict[str, int]
) -> None:
    store = SqlAlchemyEventStore(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        with pytest.raises(InvalidInput, match="must be an integer in \\[0, 2\\*\\*63\\)"):
            store.query(AuditQuery(**bounds))  # type: ignore[arg-type]
    finally:
        store.close()
