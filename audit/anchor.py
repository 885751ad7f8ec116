"""Anchors: the audit log's head, published where the database cannot rewrite it.

The hash chain shows that a row changed only as long as its head is known:
whoever can rewrite the table can also recompute every hash after the row they
changed, and the chain is self-consistent again. So the head (seq and hash) is
published: every `every_records` committed records, and at most
`every_seconds` after a record is committed, a line is appended to an anchor
file and logged at INFO (a log shipped elsewhere is a second copy).

The file holds JSON lines, one anchor each, signed with HMAC-SHA256:

    {"at":"2025-03-03T14:30:00.123456+00:00","hash":"<64 hex>","mac":"<64 hex>","seq":1234,"v":1}

`mac` is the HMAC-SHA256, under the anchor key, of the UTF-8 of the same object
without `mac`, with sorted keys and no spaces:
`{"at":"...","hash":"...","seq":1234,"v":1}`. `at` is the wall-clock time the
anchor was written. The file is created 0600 and only ever appended to.

Checking (`AnchorLog.check`, from VerifyAudit): every line must be an anchor
signed with the key and anchor a greater seq than the line before; the row at
the last anchor's seq must carry the anchored hash. Each row's hash covers every
row before it, so that confirms the whole log up to that seq. When it does not
match, the earlier anchors are bisected for the last one that still does: the
log was rewritten after that one's seq. A line that is not JSON (a write cut
short by a crash) is ignored, and said so.

Writing (`AnchorWriter`): fed by the store's commit listener, so only committed
rows are anchored. At start it checks the log against the last anchor before it
anchors anything: a log that contradicts its anchors is never anchored again by
this process (an ERROR is logged; VerifyAudit reports it). So every anchor in a
file agrees with those before it, which is what makes the bisection sound.

What it does not cover: rows committed after the last anchor are protected only
by the chain (at most `every_seconds` of them, plus whatever the process wrote
after its last anchor if it was killed); a key kept next to the file protects
only against someone who can rewrite the database but not read that folder.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from audit.records import AuditQuery, AuditRecord, EventStore

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_MODE = 0o600
_TAIL_BYTES = 4096  # far more than one line
MIN_KEY_BYTES = 16
AUTO, OFF = "auto", "off"
NO_ANCHOR_FILE = "not anchored: no anchor file is configured (TRADING_ANCHOR_FILE)"

RowHash = Callable[[int], "str | None"]
"""The hash of the row with this seq in the log, or None when there is no such row."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """One verified line of an anchor file."""

    seq: int
    hash: str
    at: datetime
    mac: str
    line: int  # 1-based line number in the file


@dataclass(frozen=True, slots=True)
class AnchorFile:
    """What an anchor file holds: its good anchors in file order, and what is wrong
    with the rest (`problems` fail a check, `notes` do not)."""

    exists: bool
    anchors: tuple[Anchor, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnchorReport:
    """The log checked against its anchors.

    `ok`: there is at least one anchor and everything agrees (the log is confirmed
    up to `anchored_seq`). `failed`: something contradicts the log (`bad_seq` is then
    the first seq not confirmed by an anchor) or the anchor file was tampered with
    (`bad_seq` 0: the file is what is wrong).
    Neither: not anchored (yet); `reason` says why.
    """

    ok: bool = False
    failed: bool = False
    anchored_seq: int = 0
    anchored_at: datetime | None = None
    bad_seq: int = 0
    reason: str = ""


def _signed_text(seq: int, digest: str, at: str) -> bytes:
    body = {"at": at, "hash": digest, "seq": seq, "v": FORMAT_VERSION}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class AnchorLog:
    """Reads, appends to and checks one anchor file signed with `key`."""

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"TRADING_ANCHOR_KEY must be at least {MIN_KEY_BYTES} bytes long")
        self.path = path
        self._key = key

    def _mac(self, text: bytes) -> str:
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()

    # --- writing ---------------------------------------------------------------

    def append(self, seq: int, digest: str, at: datetime) -> tuple[Anchor, str] | None:
        """Append the anchor of (seq, digest) and make it durable: the anchor and its
        line, or None when the file already ends with an anchor of this seq or a later
        one (another writer got there first: lines stay in seq order)."""
        at_text = at.astimezone(UTC).isoformat(timespec="microseconds")
        mac = self._mac(_signed_text(seq, digest, at_text))
        line = json.dumps(
            {"at": at_text, "hash": digest, "mac": mac, "seq": seq, "v": FORMAT_VERSION},
            sort_keys=True,
            separators=(",", ":"),
        )
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, min(size, _TAIL_BYTES), max(0, size - _TAIL_BYTES))
            lines = tail.split(b"\n")
            # The last complete line; one cut short by a crash (no newline) stays where
            # it is, and the new line starts afresh after it.
            last = self._verified_line(lines[-2]) if len(lines) > 1 else None
            if last is not None and last.seq >= seq:
                return None
            torn = size > 0 and not tail.endswith(b"\n")
            os.write(fd, ("\n" if torn else "").encode() + line.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return Anchor(seq, digest, at, mac, 0), line

    def _verified_line(self, raw: bytes) -> Anchor | None:
        try:
            entry = json.loads(raw)
        except ValueError:
            return None
        return self._verified(entry, 0)[0]

    # --- reading ---------------------------------------------------------------

    def read(self) -> AnchorFile:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return AnchorFile(exists=False)
        except OSError as exc:
            return AnchorFile(True, problems=(f"cannot read {self.path}: {exc.strerror}",))
        anchors: list[Anchor] = []
        problems: list[str] = []
        notes: list[str] = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                notes.append(f"line {number} is not an anchor (a write cut short?), ignored")
                continue
            anchor, problem = self._verified(entry, number)
            if anchor is None:
                problems.append(f"line {number} {problem}")
            elif anchors and anchor.seq <= anchors[-1].seq:
                problems.append(
                    f"line {number} anchors seq {anchor.seq}, not after seq "
                    f"{anchors[-1].seq} of line {anchors[-1].line}: lines reordered or replayed"
                )
            else:
                anchors.append(anchor)
        return AnchorFile(True, tuple(anchors), tuple(problems), tuple(notes))

    def _verified(self, entry: object, number: int) -> tuple[Anchor | None, str]:
        if not isinstance(entry, dict) or set(entry) != {"at", "hash", "mac", "seq", "v"}:
            return None, "is not an anchor line"
        seq, digest, at, mac = entry["seq"], entry["hash"], entry["at"], entry["mac"]
        if entry["v"] != FORMAT_VERSION:
            return None, f"has format version {entry['v']!r}, not {FORMAT_VERSION}"
        if not (
            type(seq) is int
            and seq > 0
            and isinstance(digest, str)
            and isinstance(at, str)
            and isinstance(mac, str)
        ):
            return None, "is not an anchor line"
        expected = self._mac(_signed_text(seq, digest, at))
        if not hmac.compare_digest(expected, mac):
            return None, (
                f"(seq {seq}) has a signature that does not verify: forged, or signed "
                "with another TRADING_ANCHOR_KEY"
            )
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            return None, "has a malformed time"
        return Anchor(seq, digest, when, mac, number), ""

    # --- checking --------------------------------------------------------------

    def check(self, row_hash: RowHash, *, written: Anchor | None = None) -> AnchorReport:
        """The log (seen through `row_hash`) against this file. `written`: the last
        anchor this process appended, which the file must still hold."""
        found = self.read()
        notes = "; ".join(found.notes)
        if written is not None and all(a.mac != written.mac for a in found.anchors):
            return AnchorReport(
                failed=True,
                reason=(
                    f"the anchor file {self.path} no longer holds the anchor of seq "
                    f"{written.seq} this service wrote at {written.at.isoformat()}: "
                    "it was truncated, replaced or removed"
                ),
            )
        if not found.anchors:
            if found.problems:
                return AnchorReport(
                    failed=True, reason=f"anchor file {self.path}: {found.problems[0]}"
                )
            where = "does not exist yet" if not found.exists else "holds no anchor yet"
            return AnchorReport(reason=_joined(f"not anchored: {self.path} {where}", notes))
        anchors = found.anchors
        last = anchors[-1]
        if row_hash(last.seq) == last.hash:
            if found.problems:
                extra = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
                return AnchorReport(
                    failed=True,
                    anchored_seq=last.seq,
                    anchored_at=last.at,
                    reason=f"anchor file {self.path}: {found.problems[0]}{extra}",
                )
            return AnchorReport(
                ok=True,
                anchored_seq=last.seq,
                anchored_at=last.at,
                reason=_joined(
                    f"anchored up to seq {last.seq} at {last.at.isoformat()} ({self.path})", notes
                ),
            )
        # The anchors agree with each other (see the module docstring), so the ones
        # the log still matches come first: bisect for the last of them.
        lo, hi = 0, len(anchors) - 1  # anchors[hi] does not match
        while lo < hi:
            mid = (lo + hi) // 2
            if row_hash(anchors[mid].seq) == anchors[mid].hash:
                lo = mid + 1
            else:
                hi = mid
        first_bad = anchors[hi]
        good = anchors[hi - 1] if hi > 0 else None
        start = good.seq + 1 if good is not None else 1
        actual = row_hash(first_bad.seq)
        what = "has no row" if actual is None else "has another hash"
        since = (
            f"the anchor of seq {good.seq} still matches"
            if good is not None
            else "no anchor matches"
        )
        return AnchorReport(
            failed=True,
            anchored_seq=good.seq if good is not None else 0,
            anchored_at=good.at if good is not None else None,
            bad_seq=start,
            reason=(
                f"the log contradicts its anchors: it {what} at seq {first_bad.seq}, anchored "
                f"at {first_bad.at.isoformat()}; it was rewritten or cut at a seq from {start} "
                f"to {first_bad.seq} ({since})"
            ),
        )


def _joined(text: str, notes: str) -> str:
    return f"{text}; {notes}" if notes else text


def row_hash_in(store: EventStore) -> RowHash:
    """`RowHash` over an event store's committed rows."""

    def row_hash(seq: int) -> str | None:
        rows = list(store.query(AuditQuery(from_seq=seq, to_seq=seq)))
        return rows[0].hash if rows else None

    return row_hash


@dataclass(eq=False)
class AnchorWriter:
    """Publishes the head of `store`'s log to `anchors`: after `every_records`
    committed records, or `every_seconds` after the first record not yet anchored.
    `start()` checks the log against the last anchor, anchors the head and listens
    for commits; `close()` anchors what is left."""

    anchors: AnchorLog
    store: EventStore
    every_records: int = 10_000
    every_seconds: float = 60.0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _head: tuple[int, str] | None = field(default=None, init=False)  # committed, not anchored
    _unanchored: int = field(default=0, init=False)
    _anchored_seq: int = field(default=0, init=False)
    _written: Anchor | None = field(default=None, init=False)
    _timer: threading.Timer | None = field(default=None, init=False)
    _stopped: str = field(default="", init=False)  # why no more anchors are written

    def start(self) -> None:
        found = self.anchors.read()
        row_hash = row_hash_in(self.store)
        if found.anchors:
            last = found.anchors[-1]
            self._anchored_seq = last.seq
            if row_hash(last.seq) != last.hash:
                self._stopped = (
                    f"the audit log contradicts anchor seq {last.seq} of {self.anchors.path} "
                    f"(written {last.at.isoformat()}): rows were rewritten or removed. "
                    "Not anchoring it; VerifyAudit reports the damage"
                )
                log.error("%s", self._stopped)
                return
        self.store.add_commit_listener(self._on_commit)
        head = self.store.last_seq()
        if head > self._anchored_seq:
            digest = row_hash(head)
            if digest is not None:
                with self._lock:
                    self._head = (head, digest)
                    self._write()

    def _on_commit(self, rows: Sequence[AuditRecord]) -> None:
        with self._lock:
            if self._stopped or not rows:
                return
            self._head = (rows[-1].seq, rows[-1].hash)
            self._unanchored += len(rows)
            if self._unanchored >= self.every_records:
                self._write()
            elif self._timer is None:
                self._timer = threading.Timer(self.every_seconds, self._on_timer)
                self._timer.name = "audit-anchor"
                self._timer.daemon = True
                self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            self._write()

    def _write(self) -> None:
        """Anchor the head, if it is not anchored yet. Under _lock."""
        if self._head is None or self._stopped:
            return
        seq, digest = self._head
        if seq <= self._anchored_seq:
            return
        try:
            appended = self.anchors.append(seq, digest, datetime.now(UTC))
        except OSError as exc:
            # The log itself is fine; the next anchor tries again.
            log.error("cannot write audit anchor to %s: %s", self.anchors.path, exc)
            return
        if appended is None:
            self._head = None
            return
        anchor, line = appended
        log.info("audit anchor %s", line)
        self._written = anchor
        self._anchored_seq = seq
        self._head = None
        self._unanchored = 0

    def check(self) -> AnchorReport:
        """The log checked against the anchor file (for VerifyAudit)."""
        written = self._written  # before reading the file, which then holds it
        return self.anchors.check(row_hash_in(self.store), written=written)

    def close(self) -> None:
        """Anchor the last committed row and stop; call after the store has flushed."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write()
            self._stopped = self._stopped or "closed"


def load_or_create_key(path: Path) -> bytes:
    """The anchor key kept in `path`; a new random one (0600) if there is none."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path.read_bytes().strip()
    try:
        os.write(fd, secrets.token_hex(32).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning(
        "TRADING_ANCHOR_KEY is not set: audit anchors are signed with a new key kept in %s; "
        "set TRADING_ANCHOR_KEY (from a secret store) so the key is not next to the file",
        path,
    )
    return path.read_bytes().strip()


def anchor_path(setting: str, store: EventStore) -> Path | None:
    """Where anchors go: TRADING_ANCHOR_FILE, or for 'auto' next to a SQLite store's
    file (none for any other store); None for 'off'."""
    value = setting.strip()
    if value.lower() == OFF or not value:
        return None
    if value.lower() != AUTO:
        return Path(value)
    database = getattr(store, "sqlite_path", None)
    return database.with_name(database.name + ".anchors") if database is not None else None


def open_anchor_writer(
    setting: str,
    key: str | None,
    store: EventStore,
    *,
    every_records: int,
    every_seconds: float,
) -> AnchorWriter | None:
    """The started AnchorWriter the settings ask for, or None when anchoring is off."""
    path = anchor_path(setting, store)
    if path is None:
        return None
    secret = key.encode() if key else load_or_create_key(path.with_name(path.name + ".key"))
    writer = AnchorWriter(AnchorLog(path, secret), store, every_records, every_seconds)
    writer.start()
    return writer
