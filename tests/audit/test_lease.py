"""The trading lease: one instance trades an account at a time, on SQLite and PostgreSQL.

`store_url` (tests/audit/conftest.py) runs a test on a SQLite file under tmp_path
and on a fresh PostgreSQL database; `pg_url` on PostgreSQL alone.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from audit.lease import (
    APPLICATION_NAME,
    LEASE_FILE_MODE,
    Lease,
    LeaseHeld,
    acquire_lease,
    default_holder,
    lease_file,
)
from audit.sql_store import StoreConfigError
from domain.errors import PreconditionFailed, Unavailable
from tests import pg
from tests.support.polling import wait_until
from tests.support.tools import REPO

KEY = "alpaca:PA1234"

# A second instance in a process of its own: takes the lease, says its epoch, waits.
_HOLDER_SCRIPT = """
import json, sys, time
from audit.lease import acquire_lease
lease = acquire_lease(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"epoch": lease.epoch}), flush=True)
time.sleep(600)
"""


@pytest.fixture
def leases() -> Iterator[list[Lease]]:
    """Leases to release after the test (before its database is dropped)."""
    taken: list[Lease] = []
    yield taken
    for lease in taken:
        lease.release()


def _acquire(leases: list[Lease], url: str, holder: str, key: str = KEY) -> Lease:
    lease = acquire_lease(url, key, holder)
    leases.append(lease)
    return lease


def _refusal(url: str, holder: str, key: str = KEY) -> LeaseHeld:
    with pytest.raises(LeaseHeld) as caught:
        acquire_lease(url, key, holder)
    return caught.value


def test_a_second_instance_is_refused_naming_the_first(store_url: str, leases: list[Lease]) -> None:
    first = _acquire(leases, store_url, "host-a:101:one")
    assert (first.key, first.holder, first.still_held()) == (KEY, "host-a:101:one", True)
    refused = _refusal(store_url, "host-b:202:two")
    assert refused.holder == "host-a:101:one"
    assert refused.key == KEY and refused.epoch == first.epoch and refused.since is not None
    message = str(refused)
    assert "\n" not in message
    assert message.startswith(f"trading lease {KEY!r} on ")
    assert "held by 'host-a:101:one' since " in message
    assert f"(epoch {first.epoch})" in message
    assert "stop that instance" in message
    assert first.still_held()  # being asked for does not disturb the holder


def test_after_release_the_next_holder_gets_a_larger_epoch(
    store_url: str, leases: list[Lease]
) -> None:
    first = _acquire(leases, store_url, "host-a:101:one")
    first.release()
    assert not first.still_held()
    first.release()  # idempotent
    second = _acquire(leases, store_url, "host-b:202:two")
    assert second.epoch > first.epoch
    second.release()
    third = _acquire(leases, store_url, "host-a:303:three")
    assert third.epoch > second.epoch
    assert _refusal(store_url, "host-c:1:x").holder == "host-a:303:three"


def test_different_keys_do_not_conflict(store_url: str, leases: list[Lease]) -> None:
    paper = _acquire(leases, store_url, "host-a:1:a", key="paper")
    live = _acquire(leases, store_url, "host-b:2:b", key=KEY)
    assert paper.still_held() and live.still_held()
    assert _refusal(store_url, "host-c:3:c", key="paper").holder == "host-a:1:a"
    assert _refusal(store_url, "host-c:3:c", key=KEY).holder == "host-b:2:b"


def test_instances_starting_together_get_one_lease_per_key(
    store_url: str, leases: list[Lease]
) -> None:
    # On a database no lease has been taken on yet, so they also race to set it up.
    starting = threading.Barrier(8)

    def start(i: int) -> Lease | LeaseHeld:
        starting.wait()
        try:
            return acquire_lease(store_url, f"account-{i % 2}", f"host-{i}:{i}:x")
        except LeaseHeld as refused:
            return refused

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(start, range(8)))
    won = [o for o in outcomes if not isinstance(o, LeaseHeld)]
    leases.extend(won)
    assert sorted(lease.key for lease in won) == ["account-0", "account-1"]
    holders = {lease.key: lease.holder for lease in won}
    for refused in (o for o in outcomes if isinstance(o, LeaseHeld)):
        assert refused.holder in (holders[refused.key], "unknown")


def test_a_killed_holder_does_not_block_the_next_one(store_url: str, leases: list[Lease]) -> None:
    before = _acquire(leases, store_url, "host-a:1:before")
    before.release()
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER_SCRIPT, store_url, KEY, "host-k:9:killed"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the holder process did not take the lease: {child.communicate()[1]}"
        killed_epoch = json.loads(line)["epoch"]
        assert killed_epoch > before.epoch
        assert _refusal(store_url, "host-b:2:next").holder == "host-k:9:killed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    # PostgreSQL ends the dead client's session (and drops its lock) a moment later.
    taken: list[Lease] = []

    def take() -> bool:
        try:
            taken.append(_acquire(leases, store_url, "host-b:2:next"))
        except LeaseHeld:
            return False
        return True

    assert wait_until(take, within=10), "the lease stayed held after its holder was killed"
    assert taken[0].epoch > killed_epoch


@pytest.mark.postgres
def test_the_refusal_names_the_database_without_its_secrets(
    pg_url: str, leases: list[Lease]
) -> None:
    # Trust auth ignores the password, so the URL still works with one in it.
    url = make_url(pg_url).set(password="s3cret", query={"sslpassword": "t0ken"})
    with_secrets = url.render_as_string(hide_password=False)
    _acquire(leases, with_secrets, "host-a:1:a")
    refused = _refusal(with_secrets, "host-b:2:b")
    message = str(refused)
    assert "s3cret" not in message and "t0ken" not in message and "\n" not in message
    assert refused.database == (
        f"postgresql+psycopg://postgres:***@127.0.0.1:5432/{url.database}?sslpassword=***"
    )
    assert refused.database in message


def test_the_sqlite_lease_file_is_private_and_records_the_holder(
    tmp_path: Path, leases: list[Lease]
) -> None:
    database = tmp_path / "var" / "audit.db"  # the folder does not exist yet
    lease = _acquire(leases, f"sqlite:///{database}", "host-a:1:a")
    path = lease_file(database, KEY)
    assert path.parent == database.parent and path.name.endswith(".lease")
    assert stat.S_IMODE(path.stat().st_mode) == LEASE_FILE_MODE == 0o600
    record = json.loads(path.read_text())
    assert record["key"] == KEY and record["holder"] == "host-a:1:a"
    assert record["epoch"] == lease.epoch == 1
    assert record["acquired_at"].endswith("+00:00")
    lease.release()
    assert path.exists()  # it keeps the last epoch for the next holder


def test_a_lease_file_others_could_read_is_made_private(
    tmp_path: Path, leases: list[Lease]
) -> None:
    database = tmp_path / "audit.db"
    path = lease_file(database, KEY)
    path.write_text(json.dumps({"epoch": 41}))
    path.chmod(0o644)
    lease = _acquire(leases, f"sqlite:///{database}", "host-a:1:a")
    assert lease.epoch == 42
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_lease_file_that_lost_its_epoch_is_refused_not_restarted(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    lease_file(database, KEY).write_text("not json")
    with pytest.raises(PreconditionFailed, match="does not say its last epoch") as caught:
        acquire_lease(f"sqlite:///{database}", KEY, "host-a:1:a")
    assert not isinstance(caught.value, LeaseHeld)
    # The lock went with the refusal: a repaired file can be leased at once.
    lease_file(database, KEY).write_text(json.dumps({"epoch": 7}))
    lease = acquire_lease(f"sqlite:///{database}", KEY, "host-a:1:a")
    assert lease.epoch == 8
    lease.release()


def test_keys_that_look_alike_have_lease_files_of_their_own(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    assert lease_file(database, "alpaca:PA1") != lease_file(database, "alpaca_PA1")
    assert lease_file(database, "../../etc/x").parent == tmp_path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_has_a_no_op_lease(url: str) -> None:
    first = acquire_lease(url, KEY, "host-a:1:a")
    second = acquire_lease(url, KEY, "host-b:2:b")  # nothing to share, nothing to refuse
    assert first.epoch == second.epoch == 1 and first.still_held()
    first.release()
    first.release()
    assert not first.still_held()


@pytest.mark.postgres
def test_a_lease_whose_connection_is_cut_is_no_longer_held(
    pg_url: str, leases: list[Lease]
) -> None:
    lease = _acquire(leases, pg_url, "host-a:1:a")
    with pg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = %s",
            (make_url(pg_url).database, APPLICATION_NAME),
        )
    assert not lease.still_held()
    assert not lease.still_held()
    lease.release()  # after a loss, too
    nxt = _acquire(leases, pg_url, "host-b:2:b")
    assert nxt.epoch > lease.epoch  # its writes can be told from the lost holder's


@pytest.mark.postgres
def test_the_postgres_lease_row_names_holder_and_epoch(pg_url: str, leases: list[Lease]) -> None:
    _acquire(leases, pg_url, "host-a:1:a").release()
    _acquire(leases, pg_url, "host-b:2:b")
    with pg.connect(pg_url) as connection:
        row = connection.execute(
            "SELECT holder, epoch FROM trading_lease WHERE key = %s", (KEY,)
        ).fetchone()
    assert row == ("host-b:2:b", 2)


def test_an_unreachable_database_is_unavailable_with_the_url_redacted() -> None:
    with pytest.raises(Unavailable) as caught:
        acquire_lease("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x", KEY, "host-a:1:a")
    message = str(caught.value)
    assert message.startswith("trading lease unavailable: cannot take it on ")
    assert "127.0.0.1:1" in message and "s3cret" not in message and "\n" not in message


def test_a_bad_url_key_or_holder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="unsupported DATABASE_URL scheme"):
        acquire_lease("mysql://u@h/db", KEY, "host-a:1:a")
    with pytest.raises(ValueError, match="lease key"):
        acquire_lease(f"sqlite:///{tmp_path / 'a.db'}", "", "host-a:1:a")
    with pytest.raises(ValueError, match="lease holder"):
        acquire_lease(f"sqlite:///{tmp_path / 'a.db'}", KEY, "two\nlines")


def test_the_default_holder_is_host_pid_and_instance() -> None:
    host, pid, instance = default_holder("abc").rsplit(":", 2)
    assert host and pid == str(os.getpid()) and instance == "abc"
    assert default_holder() != default_holder()  # a fresh instance id each time
