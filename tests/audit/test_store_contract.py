"""What every EventStore must do, checked on the in-memory fake, SQLite and PostgreSQL,
so code unit-tested against the fake behaves the same on a real database."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta, timezone

import pytest

from audit.chain import MAX_PAYLOAD_BYTES
from audit.records import AuditQuery, AuditRecord, EventStore
from domain.errors import InvalidInput, Unavailable
from tests.audit.helpers import T0, record


def seqs(rows: object) -> list[int]:
    return [r.seq for r in rows]  # type: ignore[attr-defined]


def test_append_flush_query_round_trip(store: EventStore) -> None:
    tokyo = timezone(timedelta(hours=9))
    appended = [
        store.append(record(1, at=(T0 + timedelta(microseconds=123_456)).astimezone(tokyo))),
        store.append(record(2, symbol=None, order_id="ord-1", idea_id="idea-1")),
        store.append(record(3, event_type="OrderUpdated")),
    ]
    assert seqs(appended) == [1, 2, 3]
    assert store.last_seq() == 3
    store.flush()
    rows = list(store.query(AuditQuery()))
    assert rows == appended  # every field, the microseconds and non-ASCII text included
    assert all(r.recorded_at.utcoffset() == timedelta(0) for r in rows)
    assert rows[0].recorded_at == T0 + timedelta(microseconds=123_456)
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]


def test_awkward_text_and_shared_times_round_trip(store: EventStore) -> None:
    # Text that COPY and multi-row INSERTs must escape, and times that the sealer's
    # memo formats: the same instant twice, the same second, the next second.
    awkward = [
        "",
        "tab\there",
        "line\nbreak\r",
        "back\\slash",
        "\\N",
        "\\.",
        'quo"te',
        "grüße ✓",
        "\x7f\x01",
        "A" * 256,
    ]
    at = T0 + timedelta(microseconds=999_999)
    times = [
        at,
        at,
        at - timedelta(microseconds=1),
        at + timedelta(microseconds=1),
        at.astimezone(timezone(timedelta(hours=-5))),
        T0,
    ]
    appended = [
        store.append(
            record(
                i, at=times[i % len(times)], symbol=text, order_id=text[::-1], idea_id=text.upper()
            )
        )
        for i, text in enumerate(awkward, start=1)
    ]
    appended.append(
        store.append(
            dataclasses.replace(
                record(len(awkward) + 1), payload='{"a":"\\\\N\\t\\\\."}\n\\.\n\t\\\\'
            )
        )
    )
    store.flush()
    assert list(store.query(AuditQuery())) == appended
    assert store.verify().ok


def test_only_flushed_rows_count_as_committed(store: EventStore) -> None:
    # A fresh store has nothing; after flush everything appended is visible.
    assert list(store.query(AuditQuery())) == []
    for i in range(1, 4):
        store.append(record(i))
    store.flush()
    assert seqs(store.query(AuditQuery())) == [1, 2, 3]
    result = store.verify()
    assert (result.ok, result.checked, result.last_seq) == (True, 3, 3)


def test_verify_on_an_empty_log(store: EventStore) -> None:
    result = store.verify()
    assert (result.ok, result.checked, result.last_seq, result.first_bad_seq) == (True, 0, 0, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"payload": "x" * (MAX_PAYLOAD_BYTES + 1)},
        {"payload": '{"note":"\udc80"}'},
        {"payload": '{"note":"\x00"}'},
        {"symbol": "\ud83d"},
        {"recorded_at": T0.replace(tzinfo=None)},
    ],
)
def test_invalid_record_is_refused_and_consumes_no_seq(
    store: EventStore, bad: dict[str, object]
) -> None:
    store.append(record(1))
    with pytest.raises(InvalidInput):
        store.append(dataclasses.replace(record(2), **bad))  # type: ignore[arg-type]
    assert store.last_seq() == 1
    assert store.append(record(2)).seq == 2
    store.flush()
    assert seqs(store.query(AuditQuery())) == [1, 2]
    assert store.verify().ok


_NEW_YORK = timezone(timedelta(hours=-5))
_FILTER_CASES = {  # name: (query, expected seqs); record i is at T0 + i seconds
    "all": (AuditQuery(), [1, 2, 3, 4, 5, 6, 7, 8]),
    "one type": (AuditQuery(event_types=frozenset({"OrderUpdated"})), [3, 5, 6]),
    "two types": (
        AuditQuery(event_types=frozenset({"OrderUpdated", "SignalGenerated"})),
        [1, 3, 4, 5, 6],
    ),
    "symbol": (AuditQuery(symbol="MSFT"), [4, 5]),
    "order_id": (AuditQuery(order_id="ord-1"), [3, 6]),
    "idea_id": (AuditQuery(idea_id="idea-7"), [2, 8]),
    "seq range, inclusive": (AuditQuery(from_seq=3, to_seq=6), [3, 4, 5, 6]),
    "from seq": (AuditQuery(from_seq=7), [7, 8]),
    "to seq": (AuditQuery(to_seq=2), [1, 2]),
    "empty seq range": (AuditQuery(from_seq=6, to_seq=5), []),
    "[since, until)": (
        AuditQuery(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=6)),
        [3, 4, 5],
    ),
    "same instants, other zones": (
        AuditQuery(
            since=(T0 + timedelta(seconds=3)).astimezone(_NEW_YORK),
            until=(T0 + timedelta(seconds=6)).astimezone(timezone(timedelta(hours=2))),
        ),
        [3, 4, 5],
    ),
    "since, to the microsecond": (AuditQuery(since=T0 + timedelta(seconds=7, microseconds=1)), [8]),
    "combined": (
        AuditQuery(symbol="AAPL", event_types=frozenset({"OrderUpdated"}), from_seq=4),
        [6],
    ),
    "no match": (AuditQuery(symbol="TSLA"), []),
}


def test_query_filters_oldest_first(store: EventStore) -> None:
    layout = [  # (event_type, symbol, order_id, idea_id) of seq 1..8
        ("SignalGenerated", "AAPL", None, None),
        ("RiskDecisionMade", "AAPL", None, "idea-7"),
        ("OrderUpdated", "AAPL", "ord-1", None),
        ("SignalGenerated", "MSFT", None, None),
        ("OrderUpdated", "MSFT", "ord-2", None),
        ("OrderUpdated", "AAPL", "ord-1", None),
        ("OperatorAction", None, None, None),
        ("IdeaDecided", "AAPL", None, "idea-7"),
    ]
    for i, (event_type, symbol, order_id, idea_id) in enumerate(layout, start=1):
        store.append(
            record(i, event_type=event_type, symbol=symbol, order_id=order_id, idea_id=idea_id)
        )
    store.flush()
    got = {name: seqs(store.query(query)) for name, (query, _) in _FILTER_CASES.items()}
    assert got == {name: expected for name, (_, expected) in _FILTER_CASES.items()}


def test_naive_query_times_are_refused(store: EventStore) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        store.query(AuditQuery(since=T0.replace(tzinfo=None)))


def test_commit_listeners_see_every_row_once_in_seq_order(store: EventStore) -> None:
    calls: list[Sequence[AuditRecord]] = []
    second: list[int] = []

    def broken(rows: Sequence[AuditRecord]) -> None:
        raise RuntimeError("listener bug")

    store.add_commit_listener(calls.append)
    store.add_commit_listener(broken)  # a failing listener stops neither the log nor the others
    store.add_commit_listener(lambda rows: second.extend(r.seq for r in rows))
    appended: list[AuditRecord] = []
    for start in range(0, 2500, 500):
        appended += [store.append(record(i)) for i in range(start + 1, start + 501)]
        store.flush()  # listeners have run for everything appended once flush returns
        assert seqs(r for batch in calls for r in batch) == list(range(1, start + 501))
    assert [r for batch in calls for r in batch] == appended
    assert second == list(range(1, 2501))
    assert all(seqs(batch) == sorted(seqs(batch)) for batch in calls)


def test_closed_store_refuses_service(store: EventStore) -> None:
    store.append(record(1))
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(Unavailable, match="closed"):
        store.append(record(2))
    with pytest.raises(Unavailable, match="closed"):
        store.query(AuditQuery())
    with pytest.raises(Unavailable, match="closed"):
        store.verify()
    store.flush()  # nothing is pending: close() committed it
