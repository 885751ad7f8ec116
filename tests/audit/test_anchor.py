"""Anchors: the log's head published, signed, outside the database (audit/anchor.py).

The hash chain alone cannot see a table rewritten by someone who recomputes every
hash after the row they changed. The anchors can: the row at an anchored seq must
still carry the anchored hash. These tests rewrite the log that way (behind the
append-only triggers, as a database owner could) and check that VerifyAudit names
where the rewrite is, that a forged or removed anchor is reported, and that without
an anchor file verify says the log is not anchored. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from audit.anchor import NO_ANCHOR_FILE, AnchorLog, AnchorWriter, row_hash_in
from audit.chain import hash_of
from audit.records import AuditQuery, AuditRecord
from audit.sql_store import SqlAlchemyEventStore
from client.cli import _verification_text
from tests.audit.helpers import OpenStore, record, tamper
from tests.conftest import RunningService, StartService
from tests.support.market import crossover_prices, ticks
from tests.support.polling import wait_until
from trading_sdk.v1 import trading_service_pb2 as pb

KEY = b"test-anchor-key-0123456789"


def rewrite_from(url: str, seq: int) -> None:
    """Change row `seq` (its caused_by) and recompute every later prev_hash and hash:
    the rewritten chain is self-consistent, so walking it finds nothing."""
    reader = SqlAlchemyEventStore(url)
    try:
        rows = list(reader.query(AuditQuery(from_seq=seq)))
    finally:
        reader.close()
    prev = rows[0].prev_hash
    forged: list[AuditRecord] = []
    for row in rows:
        if row.seq == seq:
            row = row._replace(caused_by=row.caused_by + 1)
        row = row._replace(prev_hash=prev)
        row = row._replace(hash=hash_of(row))
        prev = row.hash
        forged.append(row)

    def case(column: str) -> str:
        whens = " ".join(f"WHEN {r.seq} THEN {getattr(r, column)!r}" for r in forged)
        return f"{column} = CASE seq {whens} END"

    tamper(
        url,
        f"UPDATE audit_events SET {case('caused_by')}, {case('prev_hash')}, {case('hash')}"
        f" WHERE seq >= {seq}",
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _writer(store: SqlAlchemyEventStore, path: Path, **options: float) -> AnchorWriter:
    writer = AnchorWriter(AnchorLog(path, KEY), store, **options)  # type: ignore[arg-type]
    writer.start()
    return writer


# --- the writer and the file ----------------------------------------------------------


def test_every_commit_is_anchored_with_a_signed_line(
    store_url: str, open_store: OpenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.anchors"
    store = open_store(store_url)
    writer = _writer(store, path, every_records=1)
    sealed = []
    with caplog.at_level(logging.INFO, logger="audit.anchor"):
        for i in range(1, 6):
            sealed.append(store.append(record(i)))
            store.flush()

    lines = _lines(path)
    assert [(line["seq"], line["hash"]) for line in lines] == [(r.seq, r.hash) for r in sealed]
    assert set(lines[0]) == {"at", "hash", "mac", "seq", "v"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert caplog.text.count("audit anchor {") == 5
    report = writer.check()
    assert (report.ok, report.failed, report.anchored_seq) == (True, False, 5)
    assert report.reason.startswith("anchored up to seq 5 at ")


def test_a_quiet_log_is_anchored_within_every_seconds(
    store_url: str, open_store: OpenStore, tmp_path: Path
) -> None:
    path = tmp_path / "audit.anchors"
    store = open_store(store_url)
    _writer(store, path, every_records=1000, every_seconds=0.05)
    store.append(record(1))
    store.append(record(2))
    store.flush()
    wait_until(path.exists, within=10)
    assert [line["seq"] for line in _lines(path)] == [2]


def test_restarting_anchors_the_head_once_and_keeps_lines_in_seq_order(
    tmp_path: Path, open_store: OpenStore
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    path = tmp_path / "audit.anchors"
    store = open_store(url)
    for i in range(1, 4):
        store.append(record(i))
    store.close()  # nothing was listening: the head is not anchored yet

    _writer(open_store(url), path)
    _writer(open_store(url), path)  # the same head again: no second line
    assert [line["seq"] for line in _lines(path)] == [3]
    # Another writer already anchored a later seq: an older head is not appended after it.
    assert AnchorLog(path, KEY).append(2, "0" * 64, record(1).recorded_at) is None


def test_a_line_cut_short_by_a_crash_is_ignored(
    store_url: str, open_store: OpenStore, tmp_path: Path
) -> None:
    path = tmp_path / "audit.anchors"
    store = open_store(store_url)
    writer = _writer(store, path, every_records=1)
    store.append(record(1))
    store.flush()
    with path.open("a") as f:
        f.write('{"at":"2025-03-03T14:3')  # no newline: the process died mid-write
    assert writer.check().ok
    store.append(record(2))
    store.flush()

    report = writer.check()
    assert (report.ok, report.anchored_seq) == (True, 2)
    assert "line 2 is not an anchor (a write cut short?), ignored" in report.reason


# --- what the anchors catch ------------------------------------------------------------


def test_a_self_consistent_rewrite_is_caught_and_located_by_the_anchors(
    store_url: str, open_store: OpenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.anchors"
    store = open_store(store_url)
    _writer(store, path, every_records=1)
    for i in range(1, 7):
        store.append(record(i))
        store.flush()
    store.close()

    rewrite_from(store_url, 3)
    reopened = open_store(store_url)
    assert reopened.verify().ok  # the chain alone sees nothing
    report = AnchorLog(path, KEY).check(row_hash_in(reopened))
    assert (report.ok, report.failed, report.bad_seq, report.anchored_seq) == (False, True, 3, 2)
    assert report.reason == (
        "the log contradicts its anchors: it has another hash at seq 3, anchored at "
        f"{_lines(path)[2]['at']}; it was rewritten or cut at a seq from 3 to 3 "
        "(the anchor of seq 2 still matches)"
    )

    # A writer started on the rewritten log never anchors it.
    with caplog.at_level(logging.ERROR, logger="audit.anchor"):
        _writer(reopened, path, every_records=1)
    reopened.append(record(7))
    reopened.flush()
    assert [line["seq"] for line in _lines(path)] == [1, 2, 3, 4, 5, 6]
    assert "the audit log contradicts anchor seq 6" in caplog.text


def _anchored(start_service: StartService, database_url: str, anchors: Path) -> RunningService:
    return start_service(
        database_url=database_url,
        trading_anchor_file=str(anchors),
        trading_anchor_key=KEY.decode(),
        trading_anchor_every_records=1,
    )


def test_verify_audit_names_a_rewrite_the_chain_cannot_see(
    start_service: StartService, database_url: str, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors.jsonl"
    running = _anchored(start_service, database_url, anchors)
    running.client.deactivate_risk("before the rally")  # each is committed, and anchored
    running.client.activate_risk("ready")
    running.client.stream_market_data([ticks("SPY", crossover_prices())])
    verdict = running.client.verify_audit()
    assert (verdict.ok, verdict.anchor_ok, verdict.anchored_seq) == (True, True, verdict.last_seq)
    assert verdict.HasField("anchored_at")
    [signal] = running.client.query_audit(event_types=["SignalGenerated"])
    running.stop()

    rewrite_from(database_url, signal.seq)
    seqs = [int(str(line["seq"])) for line in _lines(anchors)]
    good = max(s for s in seqs if s < signal.seq)
    first_bad = min(s for s in seqs if s >= signal.seq)

    verdict = _anchored(start_service, database_url, anchors).client.verify_audit()
    assert verdict.checked == verdict.last_seq  # the chain itself holds
    assert (verdict.ok, verdict.anchor_ok, verdict.first_bad_seq) == (False, False, good + 1)
    assert f"rewritten or cut at a seq from {good + 1} to {first_bad}" in verdict.reason
    assert verdict.anchor_reason == verdict.reason
    assert verdict.anchored_seq == good
    text = _verification_text(verdict)
    assert text.startswith(f"audit chain BROKEN at seq {good + 1}: the log contradicts")


def test_a_forged_anchor_line_is_reported(start_service: StartService, tmp_path: Path) -> None:
    # The default on SQLite: anchors next to the audit file, the key beside them.
    running = start_service(trading_anchor_every_records=1)
    running.client.stream_market_data([ticks("SPY", crossover_prices()[:5])])
    path = tmp_path / "audit.db.anchors"
    key_file = tmp_path / "audit.db.anchors.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert running.client.verify_audit().anchor_ok

    last = _lines(path)[-1]
    forged = {**last, "seq": int(str(last["seq"])) + 100}  # a later head, the old signature
    with path.open("a") as f:
        f.write(json.dumps(forged) + "\n")
    verdict = running.client.verify_audit()
    assert (verdict.ok, verdict.anchor_ok) == (False, False)
    number = len(_lines(path))
    assert (
        f"line {number} (seq {forged['seq']}) has a signature that does not verify: "
        "forged, or signed with another TRADING_ANCHOR_KEY"
    ) in verdict.anchor_reason
    assert verdict.reason == verdict.anchor_reason
    assert (verdict.first_bad_seq, verdict.anchored_seq) == (0, last["seq"])


def test_an_anchor_signed_with_another_key_is_reported(
    store_url: str, open_store: OpenStore, tmp_path: Path
) -> None:
    path = tmp_path / "audit.anchors"
    store = open_store(store_url)
    writer = _writer(store, path, every_records=1)
    row = store.append(record(1))
    store.flush()
    later = store.append(record(2))
    AnchorLog(path, b"somebody-else's-key-0123").append(later.seq, later.hash, row.recorded_at)

    report = writer.check()
    assert report.failed and not report.ok
    assert "line 2 (seq 2) has a signature that does not verify" in report.reason


def test_a_removed_anchor_file_is_reported(start_service: StartService, tmp_path: Path) -> None:
    running = start_service(trading_anchor_every_records=1)
    running.client.stream_market_data([ticks("SPY", crossover_prices()[:5])])
    (tmp_path / "audit.db.anchors").unlink()

    verdict = running.client.verify_audit()
    assert (verdict.ok, verdict.anchor_ok) == (False, False)
    assert "no longer holds the anchor of seq" in verdict.reason
    assert "truncated, replaced or removed" in verdict.reason
    assert verdict.first_bad_seq == 0  # the file is what is wrong, not a row
    assert _verification_text(verdict).startswith("audit chain BROKEN: the anchor file ")


def test_without_an_anchor_file_verify_says_not_anchored(start_service: StartService) -> None:
    running = start_service(trading_anchor_file="off")
    running.client.stream_market_data([ticks("SPY", crossover_prices()[:5])])

    verdict = running.client.verify_audit()
    assert (verdict.ok, verdict.anchor_ok, verdict.anchored_seq) == (True, False, 0)
    assert not verdict.HasField("anchored_at")
    assert verdict.anchor_reason == NO_ANCHOR_FILE
    assert _verification_text(verdict).endswith(f"; {NO_ANCHOR_FILE}")


@pytest.mark.postgres
def test_postgres_is_not_anchored_unless_a_file_is_given(
    pg_url: str, start_service: StartService
) -> None:
    verdict = start_service(database_url=pg_url).client.verify_audit()
    assert (verdict.ok, verdict.anchor_ok, verdict.anchor_reason) == (True, False, NO_ANCHOR_FILE)


def test_an_anchor_file_not_written_yet_is_not_anchored(
    store_url: str, open_store: OpenStore, tmp_path: Path
) -> None:
    writer = _writer(open_store(store_url), tmp_path / "audit.anchors")
    report = writer.check()
    assert (report.ok, report.failed, report.anchored_seq) == (False, False, 0)
    assert report.reason == f"not anchored: {tmp_path / 'audit.anchors'} does not exist yet"


def test_the_cli_prints_how_far_back_the_log_is_anchored() -> None:
    verdict = pb.VerifyAuditResponse(
        ok=True,
        checked=12,
        last_seq=12,
        anchored_seq=10,
        anchor_ok=True,
        anchor_reason="anchored up to seq 10 at 2025-03-03T14:30:00+00:00 (audit.db.anchors)",
    )
    assert _verification_text(verdict) == (
        "audit chain OK: 12 records checked, last seq 12; "
        "anchored up to seq 10 at 2025-03-03T14:30:00+00:00 (audit.db.anchors)"
    )
