"""When the database goes away the store fails closed and loses nothing.

PostgreSQL is put behind tests.tcp_proxy.TcpProxy so the test can cut the
network under a live store, the way a database restart or a partition would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from audit.memory_store import InMemoryEventStore
from audit.records import AuditQuery, AuditRecord
from audit.sql_store import SqlAlchemyEventStore
from domain.errors import Unavailable
from tests import pg
from tests.audit.helpers import OpenStore, record
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(pg.HOST, pg.PORT) as running:
        yield running


class Watcher:
    """Collects what a store tells its listeners."""

    def __init__(self, store: SqlAlchemyEventStore | InMemoryEventStore) -> None:
        self.health: list[tuple[bool, str]] = []
        self.committed: list[int] = []
        store.add_health_listener(lambda ok, reason: self.health.append((ok, reason)))
        store.add_commit_listener(self._rows)

    def _rows(self, rows: Sequence[AuditRecord]) -> None:
        self.committed.extend(r.seq for r in rows)


def _seqs(store: SqlAlchemyEventStore) -> list[int]:
    return [r.seq for r in store.query(AuditQuery())]


@pytest.mark.postgres
def test_outage_fails_closed_then_commits_the_backlog_in_order(
    pg_url: str, open_store: OpenStore, proxy: TcpProxy
) -> None:
    store = open_store(pg.with_port(pg_url, proxy.port))
    watcher = Watcher(store)
    for i in range(1, 4):
        store.append(record(i))
    store.flush()

    proxy.cut()
    for i in range(4, 7):
        store.append(record(i))  # appends never wait for the database
    with pytest.raises(Unavailable, match=r"^audit store unavailable: "):
        store.flush()
    assert not store.healthy
    assert [ok for ok, _ in watcher.health] == [False]
    assert watcher.health[0][1]  # says why
    store.append(record(7))
    with pytest.raises(Unavailable):
        store.flush()  # still down: fails again, promptly, and still loses nothing

    proxy.restore()
    store.flush()
    assert store.healthy
    assert watcher.health[-1] == (True, "")
    assert [ok for ok, _ in watcher.health] == [False, True]
    assert _seqs(store) == list(range(1, 8))
    assert watcher.committed == list(range(1, 8))
    assert store.verify().ok
    store.close()
    assert open_store(pg_url).last_seq() == 7


@pytest.mark.postgres
def test_commit_whose_reply_is_lost_is_neither_repeated_nor_skipped(
    pg_url: str, open_store: OpenStore, proxy: TcpProxy
) -> None:
    store = open_store(pg.with_port(pg_url, proxy.port))
    watcher = Watcher(store)
    store.append(record(1))
    store.flush()

    # The next COMMIT reaches PostgreSQL and takes effect; its reply never arrives.
    proxy.cut_before_reply_to(b"COMMIT")
    for i in range(2, 5):
        store.append(record(i))
    with pytest.raises(Unavailable):
        store.flush()
    with pg.connect(pg_url) as direct:
        row = direct.execute("SELECT max(seq) FROM audit_events").fetchone()
    assert row == (4,)  # the rows did commit

    proxy.restore()
    store.flush()  # recognises its own rows instead of failing on duplicate keys
    store.append(record(5))
    store.flush()
    assert _seqs(store) == [1, 2, 3, 4, 5]
    assert watcher.committed == [1, 2, 3, 4, 5]
    assert store.healthy
    assert store.verify().ok


@pytest.mark.postgres
def test_a_full_backlog_has_no_room_and_empties_when_the_database_returns(
    pg_url: str, open_store: OpenStore, proxy: TcpProxy
) -> None:
    """The backlog's cap is what `room()` says; the sequencer admits no input past
    it, while rows an admitted input appends are never refused (it runs whole)."""
    store = open_store(pg.with_port(pg_url, proxy.port), max_pending=5)
    proxy.cut()
    for i in range(1, 6):
        store.append(record(i))
    assert store.room() == 0
    assert store.append(record(6)).seq == 6  # what an admitted input publishes fits
    assert store.room() == -1

    proxy.restore()
    store.flush()
    assert store.room() == 5
    assert _seqs(store) == [1, 2, 3, 4, 5, 6]


@pytest.mark.postgres
def test_close_during_an_outage_says_what_was_left(pg_url: str, proxy: TcpProxy) -> None:
    store = SqlAlchemyEventStore(pg.with_port(pg_url, proxy.port), flush_timeout_s=0.5)
    store.append(record(1))
    store.flush()
    proxy.cut()
    store.append(record(2))
    store.append(record(3))
    with pytest.raises(Unavailable, match="closed with 2 appended rows not committed"):
        store.close()


def test_the_fake_plays_an_outage_the_same_way() -> None:
    store = InMemoryEventStore()
    watcher = Watcher(store)
    store.append(record(1))
    store.flush()
    store.simulate_outage("database restarting")
    store.append(record(2))
    with pytest.raises(Unavailable, match="audit store unavailable: database restarting"):
        store.flush()
    assert not store.healthy
    store.end_outage()
    store.flush()
    assert watcher.health == [(False, "database restarting"), (True, "")]
    assert watcher.committed == [1, 2]
    assert store.verify().ok
