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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
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


def _header_line(
    seq: int,
    recorded_at: str,
    event_type: str,
    caused_by: int,
    symbol: str | None,
    order_id: str | None,
    idea_id: str | None,
    prev_hash: str,
) -> str:
    """The hashed text up to the payload: the JSON header and the newline.
    `recorded_at` is utc_iso of the row's time."""
    # The bytes json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    # gives, put together by hand: this runs for every appended row, and the
    # generic encoder costs more than the SHA-256 itself.
    return (
        f'[{seq:d},"{recorded_at}",{_json_string(event_type)},{caused_by:d},'
        f"{'null' if symbol is None else _json_string(symbol)},"
        f"{'null' if order_id is None else _json_string(order_id)},"
        f"{'null' if idea_id is None else _json_string(idea_id)},"
        f"{_json_string(prev_hash)}]\n"
    )


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
    header = _header_line(
        seq, utc_iso(recorded_at), event_type, caused_by, symbol, order_id, idea_id, prev_hash
    )
    # One f-string, encoded whole: a row read back from a tampered database may
    # hold a payload that is no string at all, and it must hash (to a mismatch).
    return hashlib.sha256(f"{header}{payload}".encode()).hexdigest()


def hash_of(record: AuditRecord) -> str:
    """The hash `record` should carry given its content and prev_hash."""
    return record_hash(
        record.seq,
        record.recorded_at,
        record.event_type,
        record.payload,
        record.prev_hash,
        caused_by=record.caused_by,
        symbol=record.symbol,
        order_id=record.order_id,
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
    """Raise InvalidInput for a query no store can answer: naive time bounds, or a
    seq bound a database integer cannot hold (PostgreSQL would fail the statement)."""
    for name, seq in (("from_seq", query.from_seq), ("to_seq", query.to_seq)):
        if seq is not None and (
            isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _MAX_BIGINT
        ):
            raise InvalidInput(f"audit query {name} must be an integer in [0, 2**63), got {seq!r}")
    if query.since is not None:
        to_utc("query since", query.since)
    if query.until is not None:
        to_utc("query until", query.until)


def _utf8(name: str, value: object, *, limit: int) -> bytes:
    """`value`'s UTF-8, after checking it is text a database will take."""
    if not isinstance(value, str):
        raise InvalidInput(f"audit {name} must be a string, got {type(value).__name__}")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"audit {name} is not valid UTF-8 text (it contains a lone surrogate)"
        ) from None
    if len(encoded) > limit:
        raise InvalidInput(f"audit {name} is {len(encoded)} bytes; the limit is {limit}")
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail at commit.
    if "\x00" in value:
        raise InvalidInput(f"audit {name} contains a NUL character")
    return encoded


def _check_key(name: str, value: object) -> None:
    """_utf8's checks for an index key, whose UTF-8 is not needed.

    Short ASCII text, the usual key, passes without being encoded: an ASCII
    string's UTF-8 is as long as the string and holds no surrogate.
    """
    if (
        type(value) is not str
        or not value.isascii()
        or len(value) > MAX_KEY_CHARS
        or "\x00" in value
    ):
        _utf8(name, value, limit=MAX_KEY_CHARS)


def seal(record: NewRecord, seq: int, prev_hash: str) -> AuditRecord:
    """Validate `record` and turn it into the row with number `seq` after `prev_hash`.

    Raises InvalidInput for anything a database would refuse at commit time
    (by then the caller has moved on and the row could only block the log), so
    a row that is sealed is a row that will commit.
    """
    return _seal(record, seq, prev_hash, utc_iso)[0]


def _seal(
    record: NewRecord, seq: int, prev_hash: str, format_time: Callable[[datetime], str]
) -> tuple[AuditRecord, str]:
    """seal(), and the row's recorded_at as format_time (utc_iso or a memo of it) gives it."""
    payload = record.payload
    encoded = _utf8("payload", payload, limit=MAX_PAYLOAD_BYTES)
    event_type = record.event_type
    _check_key("event_type", event_type)
    if not event_type:
        raise InvalidInput("audit event_type must not be empty")
    symbol, order_id, idea_id = record.symbol, record.order_id, record.idea_id
    if symbol is not None:
        _check_key("symbol", symbol)
    if order_id is not None:
        _check_key("order_id", order_id)
    if idea_id is not None:
        _check_key("idea_id", idea_id)
    caused_by = record.caused_by
    if (
        isinstance(caused_by, bool)
        or not isinstance(caused_by, int)
        or not (0 <= caused_by <= _MAX_BIGINT)
    ):
        raise InvalidInput(f"audit caused_by must be an integer in [0, 2**63), got {caused_by!r}")
    at = record.recorded_at
    if type(at) is not datetime or at.tzinfo is not UTC:
        at = to_utc("recorded_at", at)
    # A datetime subclass might format itself its own way: no memo for it.
    iso = format_time(at) if type(at) is datetime else utc_iso(at)
    # The payload's UTF-8 is at hand from the size check (and valid, unlike the
    # text record_hash may be given): no need to encode it again.
    header = _header_line(seq, iso, event_type, caused_by, symbol, order_id, idea_id, prev_hash)
    digest = hashlib.sha256(header.encode() + encoded).hexdigest()
    # Positional, in field order: keywords cost twice as much.
    return AuditRecord(
        seq, at, event_type, caused_by, payload, symbol, order_id, idea_id, prev_hash, digest
    ), iso


_MICROSECOND = timedelta(microseconds=1)
_ONE_SECOND = timedelta(seconds=1)
_NO_SECOND = datetime.min.replace(tzinfo=UTC)


class Sealer:
    """`seal` for a store that seals row after row. It also gives each row's
    recorded_at as the hash has it (utc_iso), for a store that keeps that text.

    It remembers the last time it formatted, as datetime.isoformat costs about
    a third of sealing: rows that share a time (one input often yields several
    events) format it once, and rows within the same second only format their
    microseconds. One per store; not thread-safe.
    """

    __slots__ = ("_at", "_iso", "_second_end", "_second_start", "_second_text")

    def __init__(self) -> None:
        self._at: datetime | None = None
        self._iso = ""
        # _second_text is utc_iso up to the microseconds ("YYYY-MM-DDTHH:MM:SS.")
        # of every time in [_second_start, _second_end); an empty range at first.
        self._second_start = self._second_end = _NO_SECOND
        self._second_text = ""

    def seal(self, record: NewRecord, seq: int, prev_hash: str) -> tuple[AuditRecord, str]:
        """`seal(record, seq, prev_hash)`, and the row's recorded_at as utc_iso gives it."""
        return _seal(record, seq, prev_hash, self._utc_iso)

    def _utc_iso(self, at: datetime) -> str:
        """utc_iso(at), for `at` a datetime (not a subclass) in UTC."""
        if at == self._at:
            return self._iso
        if self._second_start <= at < self._second_end:
            # str(1_000_000 + µs)[1:] is f"{µs:06d}" at a third of the cost.
            iso = f"{self._second_text}{str(1_000_000 + at.microsecond)[1:]}+00:00"
        else:
            iso = at.isoformat(timespec="microseconds")
            self._second_text = iso[: len("YYYY-MM-DDTHH:MM:SS.")]
            self._second_start = at - _MICROSECOND * at.microsecond
            try:
                self._second_end = self._second_start + _ONE_SECOND
            except OverflowError:  # the last second of year 9999: no memo
                self._second_end = self._second_start
        self._at = at
        self._iso = iso
        return iso


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
            return VerifyResult(
                False,
                checked,
                expected_seq - 1,
                expected_seq,
                f"gap: expected seq {expected_seq}, found {row.seq}",
            )
        if row.prev_hash != prev_hash:
            what = "the genesis hash" if row.seq == 1 else f"hash of seq {row.seq - 1}"
            return VerifyResult(
                False, checked, row.seq - 1, row.seq, f"prev_hash does not match {what}"
            )
        if hash_of(row) != row.hash:
            return VerifyResult(
                False, checked, row.seq - 1, row.seq, "hash mismatch: row content changed"
            )
        if anchor is not None and row.seq == anchor[0] and row.hash != anchor[1]:
            return VerifyResult(
                False,
                checked,
                row.seq - 1,
                row.seq,
                "hash differs from the one this store committed: log rewritten",
            )
        checked += 1
        prev_hash = row.hash
        expected_seq += 1
    last = expected_seq - 1
    if anchor is not None and last < anchor[0]:
        return VerifyResult(
            False,
            checked,
            last,
            last + 1,
            f"log ends at seq {last} but this store committed up to seq {anchor[0]}: rows removed",
        )
    return VerifyResult(True, checked, last)
