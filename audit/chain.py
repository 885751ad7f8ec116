"""The hash chain: how a row is sealed into the log and how the log is checked.

This module holds what every EventStore shares, so that a row validates and
hashes the same whichever store wrote it.

Every row's hash covers all of its columns and the previous row's hash, so
changing, removing or reordering any committed row breaks the chain from that
row on; `walk` finds the first row where it breaks.

The hashed bytes are UTF-8 of a compact JSON array of the row's metadata,
a newline, then the payload as stored:

    [seq, recorded_at, event_type, caused_by, symbol, order_id, idea_id, prev_hash]\\n<payload>

JSON makes the header unambiguous (strings are quoted and escaped, a missing
key is `null`, not ""), so no two different rows can encode to the same bytes.
`recorded_at` is UTC ISO 8601 with microseconds and "+00:00", e.g.
"2025-01-02T14:30:00.000000+00:00". An outside auditor can recompute every
hash from a dump of the table with these three lines of rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from json.encoder import encode_basestring as _json_string

from audit.records import AuditQuery, AuditRecord, NewRecord, VerifyResult
from domain.errors import InvalidInput

GENESIS = "0" * 64
"""The prev_hash of seq 1."""

MAX_PAYLOAD_BYTES = 1024 * 1024
"""Largest payload accepted, in UTF-8 bytes: an audit row is an event, not a blob."""

MAX_KEY_CHARS = 256
"""Longest event_type, symbol, order_id or idea_id: they are indexed, and PostgreSQL
rejects btree entries past ~2.7 kB at commit time, when the row can no longer be refused."""

_MAX_BIGINT = 2**63 - 1


def utc_iso(at: datetime) -> str:
    """The one textual form of a timestamp used in hashes (and SQLite storage)."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def _json_or_null(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


def record_hash(
    seq: int,
    recorded_at: datetime,
    event_type: str,
    payload: str,
    prev_hash: str,
    *,
    caused_by: int,
    symbol: str | None,
    order_id: str | None,
    idea_id: str | None,
) -> str:
    """SHA-256 hex of the row's canonical encoding (see the module docstring).

    caused_by and the index keys are covered too: otherwise a row could be
    re-attributed to another cause, order or idea without breaking the chain.
    """
    # The bytes json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    # gives, put together by hand: this runs for every appended row, and the
    # generic encoder costs more than the SHA-256 itself.
    header = (
        f"[{seq:d},\"{utc_iso(recorded_at)}\",{_json_string(event_type)},{caused_by:d},"
        f"{_json_or_null(symbol)},{_json_or_null(order_id)},{_json_or_null(idea_id)},"
        f"{_json_string(prev_hash)}]"
    )
    return hashlib.sha256(f"{header}\n{payload}".encode()).hexdigest()


def hash_of(record: AuditRecord) -> str:
    """The hash `record` should carry given its content and prev_hash."""
    return record_hash(
        record.seq, record.recorded_at, record.event_type, record.payload, record.prev_hash,
        caused_by=record.caused_by, symbol=record.symbol, order_id=record.order_id,
        idea_id=record.idea_id,
    )


def to_utc(name: str, at: object) -> datetime:
    """`at` in UTC; InvalidInput if it is not an aware datetime, as a naive one has no
    single instant to store or compare."""
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise InvalidInput(f"audit {name} must be a timezone-aware datetime, got {at!r}")
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"audit {name} {at!r} is out of range in UTC") from None


def check_query(query: AuditQuery) -> None:
    """Raise InvalidInput for a query no store can answer (naive time bounds)."""
    if query.since is not None:
        to_utc("query since", query.since)
    if query.until is not None:
        to_utc("query until", query.until)


def _check_text(name: str, value: object, *, limit: int) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"audit {name} must be a string, got {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            f"audit {name} is not valid UTF-8 text (it contains a lone surrogate)"
        ) from None
    if size > limit:
        raise InvalidInput(f"audit {name} is {size} bytes; the limit is {limit}")
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail at commit.
    if "\x00" in value:
        raise InvalidInput(f"audit {name} contains a NUL character")


def seal(record: NewRecord, seq: int, prev_hash: str) -> AuditRecord:
    """Validate `record` and turn it into the row with number `seq` after `prev_hash`.

    Raises InvalidInput for anything a database would refuse at commit time
    (by then the caller has moved on and the row could only block the log), so
    a row that is sealed is a row that will commit.
    """
    _check_text("payload", record.payload, limit=MAX_PAYLOAD_BYTES)
    _check_text("event_type", record.event_type, limit=MAX_KEY_CHARS)
    if not record.event_type:
        raise InvalidInput("audit event_type must not be empty")
    for name, key in (("symbol", record.symbol), ("order_id", record.order_id),
                      ("idea_id", record.idea_id)):
        if key is not None:
            _check_text(name, key, limit=MAX_KEY_CHARS)
    caused_by = record.caused_by
    if isinstance(caused_by, bool) or not isinstance(caused_by, int) or not (
        0 <= caused_by <= _MAX_BIGINT
    ):
        raise InvalidInput(f"audit caused_by must be an integer in [0, 2**63), got {caused_by!r}")
    at = to_utc("recorded_at", record.recorded_at)
    digest = record_hash(
        seq, at, record.event_type, record.payload, prev_hash, caused_by=caused_by,
        symbol=record.symbol, order_id=record.order_id, idea_id=record.idea_id,
    )
    return AuditRecord(
        seq=seq, recorded_at=at, event_type=record.event_type, caused_by=caused_by,
        payload=record.payload, symbol=record.symbol, order_id=record.order_id,
        idea_id=record.idea_id, prev_hash=prev_hash, hash=digest,
    )


def walk(records: Iterable[AuditRecord], *, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Check a log given oldest first, stopping at the first broken row.

    `anchor` is a (seq, hash) the caller knows was committed (the store's own
    last commit): the chain alone cannot tell that its tail was cut off or
    rewritten wholesale, but a row the store remembers writing must still be there.
    """
    expected_seq = 1
    prev_hash = GENESIS
    checked = 0
    for row in records:
        if row.seq != expected_seq:
            return VerifyResult(False, checked, expected_seq - 1, expected_seq,
                                f"gap: expected seq {expected_seq}, found {row.seq}")
        if row.prev_hash != prev_hash:
            what = "the genesis hash" if row.seq == 1 else f"hash of seq {row.seq - 1}"
            return VerifyResult(False, checked, row.seq - 1, row.seq,
                                f"prev_hash does not match {what}")
        if hash_of(row) != row.hash:
            return VerifyResult(False, checked, row.seq - 1, row.seq,
                                "hash mismatch: row content changed")
        if anchor is not None and row.seq == anchor[0] and row.hash != anchor[1]:
            return VerifyResult(False, checked, row.seq - 1, row.seq,
                                "hash differs from the one this store committed: log rewritten")
        checked += 1
        prev_hash = row.hash
        expected_seq += 1
    last = expected_seq - 1
    if anchor is not None and last < anchor[0]:
        return VerifyResult(False, checked, last, last + 1,
                            f"log ends at seq {last} but this store committed up to seq "
                            f"{anchor[0]}: rows removed")
    return VerifyResult(True, checked, last)
