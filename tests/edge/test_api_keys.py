"""API keys in the tokens file: stored as digests, several per principal, rotated,
revoked and expired with no restart, through real channels and `tradectl token`."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.cli import main as tradectl
from server.auth import ROLES, Authenticator, Principal
from server.tokens import (
    TokenEntry,
    TokensFileError,
    add_token,
    digest,
    parse_expiry,
    read_tokens_file,
    write_tokens_file,
)
from tests.conftest import TOKEN, RunningService, StartService
from tests.support.calls import bearer, failure_of
from trading_sdk.client import TradingClient

REPO = Path(__file__).resolve().parents[2]


def create_key(
    path: Path, capsys: pytest.CaptureFixture[str], principal: str, roles: str, *extra: str
) -> str:
    """`tradectl token create`, as an operator runs it; returns the printed token."""
    capsys.readouterr()
    status = tradectl(
        ["token", "create", "--file", str(path), "--principal", principal, "--roles", roles, *extra]
    )
    assert status == 0
    return capsys.readouterr().out.strip()


def revoke_key(path: Path, capsys: pytest.CaptureFixture[str], *which: str) -> str:
    capsys.readouterr()
    assert tradectl(["token", "revoke", "--file", str(path), *which]) == 0
    return capsys.readouterr().out


def key_id(token: str) -> str:
    match = re.fullmatch(r"tsk_(k[0-9a-f]{8})_.{43}", token)
    assert match, token
    return match.group(1)


def status_code(target: str, token: str) -> grpc.StatusCode:
    with TradingClient(target, token) as client:
        try:
            client.get_status()
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def alice(keys_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    return create_key(keys_path, capsys, "alice", "operator")


@pytest.fixture
def team(start_service: StartService, keys_path: Path, alice: str) -> RunningService:
    return start_service(trading_tokens_file=str(keys_path))


def test_a_created_key_works_and_only_its_digest_is_stored(
    team: RunningService, keys_path: Path, alice: str
) -> None:
    assert status_code(team.target, alice) == grpc.StatusCode.OK
    text = keys_path.read_text()
    assert alice not in text
    assert alice.rsplit("_", 1)[-1] not in text  # not even the secret part
    assert json.loads(text)["tokens"][0]["sha256"] == digest(alice)
    assert keys_path.stat().st_mode & 0o777 == 0o600
    with TradingClient(team.target, alice) as client:
        client.set_trading_state("halted", reason="drill")
    assert team.client.get_status().trading.changed_by == "alice"


def test_rotation_with_no_gap_and_revocation_at_once(
    team: RunningService, keys_path: Path, alice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    second = create_key(keys_path, capsys, "alice", "operator", "--expires", "30d")
    # The file is read again on the next call: both keys work, no restart.
    assert status_code(team.target, second) == grpc.StatusCode.OK
    assert status_code(team.target, alice) == grpc.StatusCode.OK
    assert f"revoked key {key_id(alice)} of alice" in revoke_key(keys_path, capsys, key_id(alice))
    failure = failure_of(lambda: TradingClient(team.target, alice).get_status())
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert f"key {key_id(alice)}" in failure.details and "revoked" in failure.details
    assert status_code(team.target, second) == grpc.StatusCode.OK
    # The operator key from TRADING_API_KEY is untouched by the file.
    assert status_code(team.target, TOKEN) == grpc.StatusCode.OK


def test_revoking_a_principal_revokes_every_key_it_has(
    team: RunningService, keys_path: Path, alice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    second = create_key(keys_path, capsys, "alice", "viewer")
    bob = create_key(keys_path, capsys, "bob", "viewer")
    revoke_key(keys_path, capsys, "--principal", "alice")
    assert status_code(team.target, alice) == grpc.StatusCode.UNAUTHENTICATED
    assert status_code(team.target, second) == grpc.StatusCode.UNAUTHENTICATED
    assert status_code(team.target, bob) == grpc.StatusCode.OK


def test_an_expired_key_is_refused_and_says_so(team: RunningService, keys_path: Path) -> None:
    entries = read_tokens_file(keys_path, ROLES)
    now = datetime.now(UTC)
    entries, _, token = add_token(entries, "carol", frozenset({"viewer"}), now, now + timedelta(1))
    # Expired since: written as the clock would have it a day later.
    expired = [
        replace(e, expires=now - timedelta(seconds=1)) if e.principal == "carol" else e
        for e in entries
    ]
    write_tokens_file(keys_path, expired)
    failure = failure_of(lambda: TradingClient(team.target, token).get_status())
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in failure.details


def test_a_key_expires_on_the_clock_without_a_file_change(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    start = datetime(2026, 12, 2, 12, tzinfo=UTC)
    entries, _, token = add_token([], "dave", frozenset({"viewer"}), start, start + timedelta(1))
    write_tokens_file(path, entries)
    now = [start]
    auth = Authenticator(tokens_file=path, clock=lambda: now[0])
    assert auth.principal(bearer(token)) == Principal("dave", frozenset({"viewer"}), entries[0].id)
    now[0] = start + timedelta(days=1)
    with pytest.raises(Exception, match="expired"):
        auth.principal(bearer(token))


def test_a_broken_file_refuses_its_keys_until_fixed_but_not_the_operator(
    team: RunningService, keys_path: Path, alice: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = keys_path.read_text()
    keys_path.write_text(good[: len(good) // 2])  # an edit gone wrong
    with caplog.at_level(logging.ERROR):
        assert status_code(team.target, alice) == grpc.StatusCode.UNAUTHENTICATED
    assert "cannot be used; its keys are refused" in caplog.text
    assert status_code(team.target, TOKEN) == grpc.StatusCode.OK
    keys_path.write_text(good)
    assert status_code(team.target, alice) == grpc.StatusCode.OK


def test_the_old_plain_text_format_still_works_with_a_warning(
    start_service: StartService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"erin": {"token": "erin-token-0123456789", "roles": ["viewer"]}}))
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        running = start_service(trading_tokens_file=str(path))
    assert "deprecated" in caplog.text
    assert status_code(running.target, "erin-token-0123456789") == grpc.StatusCode.OK
    # tradectl will not rewrite it (its keys would be silently dropped or kept in plain text).
    assert (
        tradectl(["token", "create", "--file", str(path), "--principal", "x", "--roles", "viewer"])
        == 1
    )


def test_token_list_shows_states_never_tokens(
    keys_path: Path, alice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    revoke_key(keys_path, capsys, key_id(alice))
    second = create_key(keys_path, capsys, "alice", "trader,viewer")
    assert tradectl(["--json", "token", "list", "--file", str(keys_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["id"], k["state"]) for k in listed] == [
        (key_id(alice), "revoked"),
        (key_id(second), "active"),
    ]
    assert listed[1]["roles"] == ["trader", "viewer"]
    assert tradectl(["token", "list", "--file", str(keys_path)]) == 0
    table = capsys.readouterr().out
    assert key_id(second) in table and "revoked" in table
    assert alice not in table and second not in table


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--roles", "king"], "--roles must be"),
        (["--roles", "viewer", "--expires", "yesterday"], "give a duration"),
        (["--roles", "viewer", "--expires", "2020-01-01"], "in the past"),
        (["--roles", "viewer", "--principal", "a b"], "principal"),
    ],
)
def test_token_create_refuses_bad_arguments_and_leaves_the_file(
    keys_path: Path,
    alice: str,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    problem: str,
) -> None:
    before = keys_path.read_bytes()
    principal = [] if "--principal" in arguments else ["--principal", "zed"]
    capsys.readouterr()
    assert tradectl(["token", "create", "--file", str(keys_path), *principal, *arguments]) == 1
    assert problem in capsys.readouterr().err
    assert keys_path.read_bytes() == before


def test_revoking_an_unknown_key_fails_and_names_it(
    keys_path: Path, alice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert tradectl(["token", "revoke", "--file", str(keys_path), "k00000000"]) == 1
    assert "k00000000" in capsys.readouterr().err


@given(st.integers(1, 10_000), st.sampled_from("smhdw"))
def test_a_duration_expiry_is_that_far_ahead(amount: int, unit: str) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_expiry(f"{amount}{unit}", now) - now == timedelta(seconds=amount * seconds)


@given(st.lists(st.sampled_from(sorted(ROLES)), min_size=1, max_size=4), st.integers(1, 6))
def test_every_key_created_authenticates_as_its_principal_and_no_other(
    roles: list[str], count: int
) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    entries: list[TokenEntry] = []
    tokens = []
    for i in range(count):
        entries, entry, token = add_token(entries, f"p{i % 2}", frozenset(roles), now, None)
        tokens.append((token, entry))
    auth = Authenticator({"fixed-operator-token": Principal("operator", ROLES)}, clock=lambda: now)
    auth._file_keys = entries  # as read from a file: the file format is tested above
    for token, entry in tokens:
        assert auth.principal(bearer(token)) == Principal(entry.principal, entry.roles, entry.id)
        with pytest.raises(Exception, match="not valid"):
            auth.principal(bearer(token[:-1] + ("A" if token[-1] != "A" else "B")))


def test_a_bad_tokens_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"format": 2, "tokens": [{"id": "nope"}]}')
    path.chmod(0o600)
    with pytest.raises(TokensFileError, match=r"tokens\[0\]: id"):
        Authenticator(tokens_file=path)


@pytest.fixture
def server_process(
    tmp_path: Path, keys_path: Path, alice: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "TRADING_API_KEY": TOKEN,
        "TRADING_TOKENS_FILE": str(keys_path),
        "TRADING_CLOCK": "event",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "TRADING_ACCESS_LOG": "off",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.main", "--listen", "127.0.0.1:0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while not (found := re.search(r"serving \S+ on [\d.]+:(\d+)", log_path.read_text())):
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    yield proc, f"127.0.0.1:{found.group(1)}"
    proc.kill()
    proc.wait(30)


def test_sighup_reads_the_file_again_even_when_it_looks_unchanged(
    server_process: tuple[subprocess.Popen[bytes], str],
    keys_path: Path,
    alice: str,
) -> None:
    proc, target = server_process
    assert status_code(target, alice) == grpc.StatusCode.OK
    before = keys_path.stat()
    # An in-place edit of the same size (alice's digest replaced), with the old
    # time stamp put back: the file looks unchanged, so only the signal can tell.
    text = keys_path.read_text()
    with keys_path.open("r+") as edited:
        edited.write(text.replace(digest(alice), "0" * 64))
    os.utime(keys_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert keys_path.stat().st_ino == before.st_ino
    assert status_code(target, alice) == grpc.StatusCode.OK  # not noticed yet
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while status_code(target, alice) == grpc.StatusCode.OK:
        assert time.monotonic() < deadline, "SIGHUP did not reload the tokens file"
        time.sleep(0.05)
    assert status_code(target, alice) == grpc.StatusCode.UNAUTHENTICATED
    assert proc.poll() is None  # SIGHUP does not stop the service
