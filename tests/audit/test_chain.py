"""The hash chain on its own: what a hash covers, what seal refuses, what walk finds."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.chain import (
    GENESIS,
    MAX_PAYLOAD_BYTES,
    Sealer,
    hash_of,
    record_hash,
    seal,
    utc_iso,
    walk,
)
from audit.records import AuditRecord, NewRecord
from domain.errors import InvalidInput
from tests.audit.helpers import T0, record


def chain(n: int) -> list[AuditRecord]:
    rows: list[AuditRecord] = []
    for i in range(1, n + 1):
        rows.append(seal(record(i), i, rows[-1].hash if rows else GENESIS))
    return rows


def test_hash_is_sha256_of_the_documented_encoding() -> None:
    expected = hashlib.sha256(
        b'[7,"2025-03-03T14:30:00.000000+00:00","X",3,"AAPL",null,null,"'
        + GENESIS.encode()
        + b'"]\n{"a":1}'
    ).hexdigest()
    got = record_hash(
        7, T0, "X", '{"a":1}', GENESIS, caused_by=3, symbol="AAPL", order_id=None, idea_id=None
    )
    assert got == expected


def test_seal_hashes_the_documented_encoding() -> None:
    at = datetime(2025, 3, 3, 9, 30, 0, 250, tzinfo=timezone(timedelta(hours=-5)))
    new = NewRecord(at, 'Ördér"X', 9, '{"note":"grüße ✓"}', symbol="A\tB", idea_id="i-1")
    expected = hashlib.sha256(
        (
            '[4,"2025-03-03T14:30:00.000250+00:00","Ördér\\"X",9,"A\\tB",null,"i-1","'
            + "f" * 64
            + '"]\n{"note":"grüße ✓"}'
        ).encode()
    ).hexdigest()
    assert seal(new, 4, "f" * 64).hash == expected
    assert Sealer().seal(new, 4, "f" * 64) == (
        seal(new, 4, "f" * 64),
        "2025-03-03T14:30:00.000250+00:00",
    )


def test_sealer_gives_what_seal_gives_whatever_times_follow() -> None:
    # The sealer remembers the last time it formatted and that time's second.
    near_end = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    times = [
        T0,
        T0,
        T0 + timedelta(microseconds=999_999),
        T0 + timedelta(seconds=1),
        T0 + timedelta(microseconds=7),
        T0.astimezone(timezone(timedelta(hours=9))),
        T0 - timedelta(microseconds=1),
        datetime(1, 1, 1, tzinfo=UTC),
        near_end,
        near_end - timedelta(microseconds=5),
        near_end,
        T0,
    ]
    sealer = Sealer()
    prev = GENESIS
    for seq, at in enumerate(times, start=1):
        row, recorded_at = sealer.seal(record(seq, at=at), seq, prev)
        assert row == seal(record(seq, at=at), seq, prev)
        assert recorded_at == utc_iso(at)
        prev = row.hash
    assert walk(chain(3)).ok


def test_same_instant_in_another_zone_hashes_the_same() -> None:
    new_york = timezone(timedelta(hours=-5))
    here, there = (
        record_hash(
            1, at, "X", "{}", GENESIS, caused_by=0, symbol=None, order_id=None, idea_id=None
        )
        for at in (T0, T0.astimezone(new_york))
    )
    assert here == there


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"recorded_at": T0 + timedelta(microseconds=1)},
        {"event_type": "Y"},
        {"caused_by": 1},
        {"symbol": "MSFT"},
        {"symbol": ""},
        {"order_id": "o-1"},
        {"idea_id": "i-1"},
        {"payload": '{"a":2}'},
        {"prev_hash": "f" * 64},
    ],
)
def test_every_column_is_covered(change: dict[str, object]) -> None:
    row = seal(NewRecord(T0, "X", 0, '{"a":1}', symbol=None), 1, GENESIS)
    assert hash_of(row._replace(**change)) != row.hash  # type: ignore[arg-type]


def test_seal_normalises_time_to_utc() -> None:
    at = datetime(2025, 3, 3, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    row = seal(record(1, at=at), 1, GENESIS)
    assert row.recorded_at == at
    assert row.recorded_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"payload": "x" * (MAX_PAYLOAD_BYTES + 1)}, "payload is 1048577 bytes"),
        ({"payload": "é" * (MAX_PAYLOAD_BYTES // 2 + 1)}, "limit is 1048576"),  # bytes, not chars
        ({"payload": '{"a":"\ud800"}'}, "payload is not valid UTF-8"),
        ({"payload": b"{}"}, "payload must be a string"),
        ({"payload": '{"a":"\x00"}'}, "NUL"),
        ({"event_type": ""}, "event_type must not be empty"),
        ({"symbol": "A" * 257}, "symbol is 257 bytes"),
        ({"order_id": "\udcff"}, "order_id is not valid UTF-8"),
        ({"caused_by": -1}, "caused_by"),
        ({"caused_by": 2**63}, "caused_by"),
        ({"caused_by": True}, "caused_by"),
        ({"recorded_at": datetime(2025, 3, 3)}, "timezone-aware"),
    ],
)
def test_seal_refuses_what_a_database_would_refuse(change: dict[str, object], message: str) -> None:
    bad = dataclasses.replace(record(1), **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=message):
        seal(bad, 1, GENESIS)


def test_payload_of_exactly_the_limit_is_accepted() -> None:
    row = seal(dataclasses.replace(record(1), payload="x" * MAX_PAYLOAD_BYTES), 1, GENESIS)
    assert len(row.payload) == MAX_PAYLOAD_BYTES


def test_walk_accepts_a_good_chain() -> None:
    rows = chain(5)
    assert walk(rows).ok
    assert walk(rows) == walk(rows, anchor=(5, rows[-1].hash))
    assert walk([]).ok and walk([]).last_seq == 0


@pytest.mark.parametrize(
    ("mutate", "bad_seq", "reason"),
    [
        (
            lambda rows: rows.__setitem__(2, rows[2]._replace(payload="{}")),
            3,
            "hash mismatch: row content changed",
        ),
        (lambda rows: rows.__delitem__(2), 3, "gap: expected seq 3, found 4"),
        (lambda rows: rows.__delitem__(0), 1, "gap: expected seq 1, found 2"),
        (
            lambda rows: rows.__setitem__(0, rows[0]._replace(prev_hash="1" * 64)),
            1,
            "prev_hash does not match the genesis hash",
        ),
    ],
)
def test_walk_reports_the_first_bad_row(mutate: object, bad_seq: int, reason: str) -> None:
    rows = chain(5)
    mutate(rows)  # type: ignore[operator]
    result = walk(rows)
    assert (result.ok, result.first_bad_seq, result.reason) == (False, bad_seq, reason)
    assert result.last_seq == bad_seq - 1 == result.checked


def test_walk_sees_a_row_rewritten_with_a_fresh_hash_at_the_next_row() -> None:
    rows = chain(5)
    forged = rows[2]._replace(payload="{}")
    rows[2] = forged._replace(hash=hash_of(forged))
    result = walk(rows)
    assert (result.first_bad_seq, result.reason) == (4, "prev_hash does not match hash of seq 3")


def test_walk_with_anchor_sees_a_cut_tail_and_a_rewritten_one() -> None:
    rows = chain(5)
    cut = walk(rows[:3], anchor=(5, rows[-1].hash))
    assert (cut.ok, cut.first_bad_seq) == (False, 4)
    assert "ends at seq 3" in cut.reason
    rewritten = [*rows[:4], seal(record(99), 5, rows[3].hash)]
    result = walk(rewritten, anchor=(5, rows[-1].hash))
    assert (result.ok, result.first_bad_seq) == (False, 5)
