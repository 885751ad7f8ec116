"""`tradectl replay --from URL`: a recorded log is replayed offline through a fresh
core, and the tool says whether every record reproduces, naming the first that
does not. The log is recorded by the real service (paper broker, event clock) on
SQLite and PostgreSQL, then read without being written to."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sqlite3
from array import array
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.batch_codec import decode_batch, encode_batch
from audit.chain import GENESIS, record_hash, walk
from audit.codec import canonical_json
from audit.log_reader import LogReader
from audit.records import AuditQuery, AuditRecord, NewRecord
from audit.sql_store import SqlAlchemyEventStore
from client.audit_replay import add_replay_arguments, run_replay
from domain.risk import TradingState
from server.log_replay import RECORDED, DifferenceKind, LogUnreadable, replay_log
from server.settings import Settings
from tests import pg
from tests.alpaca.service import FILLED, place, priced_fake, start_on, tick, wait_for_order
from tests.audit.helpers import is_postgres, tamper
from tests.conftest import StartService
from tests.core.harness import make_harness
from tests.support.aapl import RISING
from tests.support.databases import postgres_database
from tests.support.market import MINUTE, SESSION_START, batch, minute_ticks, ticks, v_reversal
from trading_sdk.v1 import advisor_pb2

APPROVE = advisor_pb2.IDEA_DECISION_APPROVE
# After SPY's 140 minutes: where AAPL's ticks, and the second run's, are sent.
LATER = SESSION_START + 150 * MINUTE


def event_settings() -> Settings:
    """What the recorded sessions run with (tests.conftest's service: the event clock)."""
    return Settings(trading_clock="event")


def record_session(start_service: StartService, url: str) -> None:
    """A session with every kind of input, and a restart: market data that trades
    (a crossover on SPY), an operator halt and resume, a risk-limit change, an
    analysis whose idea is approved, a resting order cancelled, the kill switch;
    then the service restarts on the same log, resumes and trades QQQ."""
    first = start_service(database_url=url, openai_api_key=None)
    client = first.client
    assert client.stream_market_data([minute_ticks("SPY", v_reversal())]).orders == 1
    client.deactivate_risk("lunch")
    client.activate_risk("back from lunch")
    client.update_risk_limits({"max_order_notional": "20000"}, "tighter")
    client.stream_market_data([ticks("AAPL", RISING, start=LATER)])
    [idea] = client.analyze(["AAPL"]).ideas
    assert client.decide_idea(idea.idea_id, APPROVE, "fits my plan").idea.order.order_id
    resting = client.submit_order("AAPL", "buy", "1", limit_price="185.00")
    assert resting.decision.approved, resting.decision.verdicts
    client.cancel_order(resting.order.order_id)
    assert client.flatten("end of the morning").closing_orders  # the kill switch: SPY, AAPL
    first.stop()

    second = start_service(database_url=url, openai_api_key=None)
    second.client.activate_risk("a new start")
    later = LATER + timedelta(minutes=5)
    assert second.client.stream_market_data([minute_ticks("QQQ", v_reversal(), later)]).orders
    second.stop()


def records(url: str) -> list[AuditRecord]:
    with LogReader(url) as reader:
        return list(reader.query(AuditQuery()))


def of_type(url: str, event_type: str) -> list[AuditRecord]:
    return [r for r in records(url) if r.event_type == event_type]


def rewrite(url: str, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the payload of record `seq` and re-hash the chain from it to the end, as
    someone who can rewrite the table (or a bug) would: the chain verifies again."""
    rows = records(url)
    prev_hash = rows[seq - 2].hash if seq > 1 else GENESIS
    updates = []
    for row in rows[seq - 1 :]:
        payload = row.payload
        if row.seq == seq:
            content = json.loads(payload)
            change(content)
            payload = canonical_json(content)
        digest = record_hash(
            row.seq,
            row.recorded_at,
            row.event_type,
            payload,
            prev_hash,
            caused_by=row.caused_by,
            symbol=row.symbol,
            order_id=row.order_id,
            idea_id=row.idea_id,
        )
        updates.append((row.seq, payload, prev_hash, digest))
        prev_hash = digest
    tamper(url, _update(updates))


def _update(rows: list[tuple[int, str, str, str]]) -> str:
    """One UPDATE setting payload, prev_hash and hash of each (seq, ...) given."""

    def quoted(text: object) -> str:
        return "'" + str(text).replace("'", "''") + "'"

    def case(column: int) -> str:
        whens = " ".join(f"WHEN {row[0]} THEN {quoted(row[column])}" for row in rows)
        return f"CASE seq {whens} END"

    seqs = ", ".join(str(row[0]) for row in rows)
    return (
        f"UPDATE audit_events SET payload = {case(1)}, prev_hash = {case(2)}, "
        f"hash = {case(3)} WHERE seq IN ({seqs})"
    )


def cli(url: str, *extra: str, as_json: bool = False) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="tradectl replay")
    add_replay_arguments(parser)
    out = io.StringIO()
    status = run_replay(parser.parse_args(["--from", url, *extra]), out, as_json)
    return status, out.getvalue()


@pytest.fixture
def event_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the CLI reads its settings from: the sessions' event clock."""
    monkeypatch.setenv("TRADING_CLOCK", "event")


@pytest.fixture
def session(start_service: StartService, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'recorded.db'}"
    record_session(start_service, url)
    return url


# --- a log that reproduces ----------------------------------------------------------------


def test_a_recorded_session_replays_with_every_record_reproduced(
    session: str, calendar: Any
) -> None:
    recorded = records(session)
    progress: list[tuple[str, int, int]] = []

    report = replay_log(
        session, event_settings(), calendar=calendar, progress=lambda *step: progress.append(step)
    )

    assert report.reproduced, report.first_difference
    # Progress is told of both passes, ending where each ends.
    assert progress[-1] == ("replaying", len(recorded), len(recorded))
    assert ("verifying", len(recorded), len(recorded)) in progress
    assert report.chain.ok and report.chain.checked == len(recorded)
    assert report.records == report.records_compared == len(recorded)
    assert report.inputs_replayed == sum(r.caused_by == 0 for r in recorded)
    kinds = {r.event_type for r in recorded}
    assert {
        "ServiceStarted",
        "MarketDataReceived",
        "SignalGenerated",
        "RiskDecisionMade",
        "OrderUpdated",
        "TradingStateChanged",
        "RiskLimitsChanged",
        "AnalysisCompleted",
        "IdeaUpdated",
        "CancelRequested",
    } <= kinds
    # The restart is a segment of its own, replayed by a core rebuilt from the log.
    [restart] = [r.seq for r in of_type(session, "ServiceStarted")][1:]
    assert [(s.first_seq, s.last_seq, s.broker) for s in report.segments] == [
        (1, restart - 1, "paper"),
        (restart, len(recorded), "paper"),
    ]
    assert report.first_difference is None and not report.cut_short
    assert report.settings["TRADING_CLOCK"] == "event"


def test_the_command_says_so_and_exits_0(session: str, event_clock: None) -> None:
    status, text = cli(session)

    assert status == 0
    assert "every record reproduced" in text
    assert "settings  from the environment" in text and "TRADING_CLOCK=event" in text

    status, text = cli(session, as_json=True)
    answer = json.loads(text)
    assert status == 0
    assert answer["reproduced"] is True and answer["exit_status"] == 0
    assert answer["records"] == answer["records_compared"] > 0
    assert answer["first_difference"] is None
    assert answer["settings_source"] == "environment"
    assert len(answer["segments"]) == 2


def test_the_replay_writes_nothing_to_the_recorded_log(session: str, calendar: Any) -> None:
    database = Path(session.removeprefix("sqlite:///"))
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    tables = _sqlite_objects(database)
    files = set(database.parent.iterdir())

    assert replay_log(session, event_settings(), calendar=calendar).reproduced

    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    assert _sqlite_objects(database) == tables
    # No lease, no anchor: at most the (empty) WAL files any reader of the file needs.
    added = set(database.parent.iterdir()) - files
    assert {p.name for p in added} <= {f"{database.name}-wal", f"{database.name}-shm"}
    assert all(p.stat().st_size == 0 for p in added if p.name.endswith("-wal"))


def _sqlite_objects(database: Path) -> list[tuple[str, str]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
    finally:
        connection.close()


# --- a log that does not ---------------------------------------------------------------


def test_an_altered_price_rehashed_is_found_at_the_first_record_it_changes(
    session: str, calendar: Any
) -> None:
    [signal, *_] = of_type(session, "SignalGenerated")
    tick = json.loads(signal.payload)["tick_index"]
    [market] = [r for r in records(session) if r.seq == signal.caused_by]
    assert market.event_type == "MarketDataReceived"

    def dearer(payload: dict[str, Any]) -> None:
        batch = decode_batch(payload["batch"])
        batch.prices[tick] *= 1.01
        payload["batch"]["data"] = encode_batch(batch)

    rewrite(session, market.seq, dearer)
    with LogReader(session) as reader:
        assert _verifies(reader)  # rewritten consistently: the chain alone cannot tell

    report = replay_log(session, event_settings(), calendar=calendar)

    assert not report.reproduced and report.chain.ok
    difference = report.first_difference
    assert difference is not None
    assert (difference.seq, difference.event_type) == (signal.seq, "SignalGenerated")
    assert difference.kind is DifferenceKind.CHANGED
    assert (difference.input_seq, difference.input_type) == (market.seq, "MarketDataReceived")
    assert "payload.signal.reference_price" in {f.path for f in difference.fields}
    assert report.records_compared == signal.seq - 1


def test_an_altered_risk_limit_rehashed_changes_the_decisions_after_it(
    session: str, calendar: Any
) -> None:
    [change] = of_type(session, "RiskLimitsChanged")

    def looser(payload: dict[str, Any]) -> None:
        payload["limits"]["max_order_notional"] = "100"

    rewrite(session, change.seq, looser)

    report = replay_log(session, event_settings(), calendar=calendar)

    difference = report.first_difference
    assert difference is not None and not report.reproduced
    # The next decision (the approved idea's) is refused by the altered limit.
    [decision] = [r for r in of_type(session, "RiskDecisionMade") if r.seq > change.seq][:1]
    assert (difference.seq, difference.event_type) == (decision.seq, "RiskDecisionMade")
    assert any(f.path == "payload.decision.approved" for f in difference.fields)
    assert "rejected" in difference.replayed and "approved" in difference.recorded


def test_an_altered_halt_rehashed_contradicts_the_resume_that_follows(
    session: str, calendar: Any
) -> None:
    halt, resume, *_ = of_type(session, "TradingStateChanged")

    def never_halted(payload: dict[str, Any]) -> None:
        payload["status"]["state"] = TradingState.ACTIVE.value

    rewrite(session, halt.seq, never_halted)

    report = replay_log(session, event_settings(), calendar=calendar)

    difference = report.first_difference
    assert difference is not None
    assert (difference.seq, difference.event_type) == (resume.seq, "TradingStateChanged")
    assert difference.kind is DifferenceKind.INCONSISTENT
    assert [(f.path, f.recorded, f.replayed) for f in difference.fields] == [
        ("payload.previous", "HALTED", "ACTIVE")
    ]


def test_settings_other_than_the_log_was_made_with_are_named_where_the_log_tells(
    session: str, tmp_path: Path, calendar: Any
) -> None:
    limits = tmp_path / "risk.toml"
    limits.write_text("max_orders_per_symbol_per_window = 9\n")
    [change] = of_type(session, "RiskLimitsChanged")
    other = Settings(
        trading_clock="event",
        trading_risk_config=limits,
        trading_strategy_symbols="QQQ",
        paper_starting_cash="50000",
    )

    report = replay_log(session, other, calendar=calendar)

    assert not report.reproduced and report.first_difference is not None
    assert report.settings_source == "given"
    assert report.settings["TRADING_RISK_CONFIG"] == str(limits)
    notes = "\n".join(report.notes)
    assert (
        f"the risk-limit change at seq {change.seq} says the log started with other limits "
        "than TRADING_RISK_CONFIG gives: max_orders_per_symbol_per_window=10 (here 9)"
    ) in notes
    assert "strategy signals on SPY, which TRADING_STRATEGY_SYMBOLS does not list" in notes
    assert "held 100000 in cash: PAPER_STARTING_CASH is 50000" in notes


def test_the_command_names_the_first_difference_and_exits_1(
    session: str, event_clock: None
) -> None:
    [change] = of_type(session, "RiskLimitsChanged")
    rewrite(session, change.seq, lambda p: p["limits"].update(max_order_notional="100"))

    status, text = cli(session)

    assert status == 1
    assert "DIFFERS at seq" in text and "(RiskDecisionMade)" in text
    assert "payload.decision.approved: true -> false" in text

    status, text = cli(session, as_json=True)
    difference = json.loads(text)["first_difference"]
    assert status == 1
    assert difference["event_type"] == "RiskDecisionMade"
    assert difference["kind"] == "changed"


@pytest.mark.parametrize(
    ("change", "kind", "says"),
    [
        (
            lambda p: p.update(order_id="o999"),
            DifferenceKind.REFUSED,
            "refused this recorded input: no order with id 'o999'",
        ),
        (lambda p: p.pop("requested_by"), DifferenceKind.UNDECODABLE, "requested_by"),
    ],
    ids=["refused", "undecodable"],
)
def test_a_recorded_input_the_fresh_core_refuses_or_cannot_read_is_named(
    session: str,
    calendar: Any,
    change: Callable[[dict[str, Any]], None],
    kind: DifferenceKind,
    says: str,
) -> None:
    [cancel, *_] = of_type(session, "CancelRequested")
    rewrite(session, cancel.seq, change)

    report = replay_log(session, event_settings(), calendar=calendar)

    difference = report.first_difference
    assert difference is not None
    assert (difference.seq, difference.event_type, difference.kind) == (
        cancel.seq,
        "CancelRequested",
        kind,
    )
    assert says in difference.detail
    assert report.records_compared == cancel.seq - 1


def test_a_record_altered_without_rehashing_is_reported_as_a_broken_chain_first(
    session: str, calendar: Any, event_clock: None
) -> None:
    [change] = of_type(session, "RiskLimitsChanged")
    altered = change.payload.replace('"20000"', '"100"')
    assert altered != change.payload
    tamper(session, f"UPDATE audit_events SET payload = '{altered}' WHERE seq = {change.seq}")

    report = replay_log(session, event_settings(), calendar=calendar)

    assert not report.chain.ok and not report.reproduced
    assert report.chain.first_bad_seq == change.seq
    assert report.records_compared == 0  # nothing is replayed against a broken log
    status, text = cli(session)
    assert status == 3
    assert "HASH CHAIN BROKEN" in text and f"broken at seq {change.seq}" in text


def test_a_record_the_replay_does_not_produce_is_a_difference_in_count(
    session: str, calendar: Any
) -> None:
    last = records(session)[-1]
    store = SqlAlchemyEventStore(session)  # appended as the service would: the chain holds
    try:  # a second copy of the last record, as an effect of the same cause
        store.append(NewRecord(last.recorded_at, last.event_type, last.caused_by, last.payload))
    finally:
        store.close()

    report = replay_log(session, event_settings(), calendar=calendar)

    difference = report.first_difference
    assert difference is not None and not report.reproduced
    assert difference.kind is DifferenceKind.MISSING
    assert (difference.seq, difference.event_type, difference.count) == (
        last.seq + 1,
        last.event_type,
        1,
    )
    assert report.records_compared == last.seq


def test_a_log_cut_within_an_input_reproduces_and_says_where_it_was_cut(
    session: str, tmp_path: Path, calendar: Any
) -> None:
    # The first run's fill came from the crossover tick: end a copy of the log
    # before the fill, as a crash between two commits of that input would.
    fill = next(r for r in of_type(session, "OrderUpdated") if _status(r) == "FILLED")
    copy = f"sqlite:///{tmp_path / 'cut.db'}"
    _copy(records(session)[: fill.seq - 1], copy)

    report = replay_log(copy, event_settings(), calendar=calendar)

    assert report.reproduced
    [cut] = report.cut_short
    assert cut.last_seq == fill.seq - 1 and cut.records >= 1
    assert cut.input_type == "MarketDataReceived"
    assert any("part way through" in note for note in report.notes)


def _status(record: AuditRecord) -> str:
    return str(json.loads(record.payload)["order"]["status"])


def _copy(rows: list[AuditRecord], url: str) -> None:
    store = SqlAlchemyEventStore(url)
    try:
        for row in rows:
            store.append(
                NewRecord(
                    row.recorded_at,
                    row.event_type,
                    row.caused_by,
                    row.payload,
                    row.symbol,
                    row.order_id,
                    row.idea_id,
                )
            )
    finally:
        store.close()


def test_a_submission_the_store_could_not_make_durable_replays_as_not_sent(
    tmp_path: Path, calendar: Any
) -> None:
    # No start time: the clock moves only with the journaled ticks, as a replay's does.
    harness = make_harness(calendar, start=None)
    core, store = harness.core, harness.store
    store.simulate_outage()  # the crossover's order cannot be made durable: not sent
    core.ingest(batch("SPY", v_reversal()), "stream:feeder", journal_now=True)
    store.end_outage()
    core.bus.flush()
    live = list(store.query(AuditQuery()))
    failed = [r for r in live if r.event_type == "BrokerRequestFailed"]
    assert failed and "NOT_SENT" in failed[0].payload
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    _copy(live, url)

    report = replay_log(url, event_settings(), calendar=calendar)

    assert report.reproduced, report.first_difference
    assert [s.broker for s in report.segments] == [""]  # no ServiceStarted: a core alone


def test_a_session_on_the_wall_clock_replays_on_the_wall_clock(
    start_service: StartService, tmp_path: Path, calendar: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'wall.db'}"
    running = start_service(database_url=url, trading_clock="wall", openai_api_key=None)
    running.client.stream_market_data([minute_ticks("SPY", v_reversal())])
    running.client.deactivate_risk("lunch")
    running.stop()

    assert replay_log(url, Settings(trading_clock="wall"), calendar=calendar).reproduced
    other = replay_log(url, event_settings(), calendar=calendar)
    assert not other.reproduced
    assert any("probably made with TRADING_CLOCK=wall" in note for note in other.notes)


def test_a_session_on_a_real_broker_replays_from_its_recorded_answers(
    start_service: StartService, tmp_path: Path, calendar: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'alpaca.db'}"
    with priced_fake() as fake:
        running = start_on(start_service, fake, database_url=url)
        tick(running.client)
        wait_for_order(running.client, place(running.client, "5").order_id, FILLED)
        running.stop()

    report = replay_log(url, event_settings(), calendar=calendar)

    assert report.reproduced, report.first_difference
    assert [(s.broker, s.replayed_with) for s in report.segments] == [("alpaca", RECORDED)]
    assert {"BrokerReportReceived", "BrokerSwept"} <= {r.event_type for r in records(url)}


# --- a log that cannot be replayed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "malformed"),
        ("mysql://user@host/db", "unsupported"),
        ("sqlite:///{tmp}/missing.db", "does not exist"),
        ("sqlite:///{tmp}", "is not a file"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/none", "cannot read"),
    ],
)
def test_a_log_that_cannot_be_read_exits_2_with_one_line(
    url: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, text = cli(url.format(tmp=tmp_path))

    assert status == 2 and text == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err
    assert "Traceback" not in err
    assert not (tmp_path / "missing.db").exists()  # never created


def test_an_empty_log_or_a_database_without_one_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    SqlAlchemyEventStore(empty).close()  # migrated, no record
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()

    assert cli(empty)[0] == 2
    assert "is empty: nothing to replay" in capsys.readouterr().err
    assert cli(f"sqlite:///{other}")[0] == 2
    assert "has no audit_events table" in capsys.readouterr().err
    with pytest.raises(LogUnreadable, match="empty"):
        replay_log(empty, event_settings())


def test_settings_that_do_not_load_exit_2(
    session: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADING_CLOCK", "sundial")

    assert cli(session)[0] == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TRADING_CLOCK" in err


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_on_postgresql_a_session_reproduces_and_an_altered_input_is_found(
    start_service: StartService, calendar: Any
) -> None:
    with postgres_database("replay_test") as url:
        record_session(start_service, url)
        before = _pg_state(url)

        assert replay_log(url, event_settings(), calendar=calendar).reproduced
        assert _pg_state(url) == before  # read only: not a row, table or lease more

        [change] = of_type(url, "RiskLimitsChanged")
        rewrite(url, change.seq, lambda p: p["limits"].update(max_order_notional="100"))
        report = replay_log(url, event_settings(), calendar=calendar)
        difference = report.first_difference
        assert difference is not None and difference.event_type == "RiskDecisionMade"

        tamper(url, f"UPDATE audit_events SET caused_by = 0 WHERE seq = {difference.seq}")
        assert not replay_log(url, event_settings(), calendar=calendar).chain.ok


@pytest.mark.postgres
def test_on_postgresql_a_database_without_a_log_is_not_given_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with postgres_database("replay_test") as url:
        assert is_postgres(url)
        assert cli(url)[0] == 2
        assert "has no audit_events table" in capsys.readouterr().err
        assert _pg_state(url) == ([], 0)  # no migration ran


def _pg_state(url: str) -> tuple[list[str], int]:
    with pg.connect(url) as connection:
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' ORDER BY table_name"
            )
        ]
        rows = 0
        if "audit_events" in tables:
            count = connection.execute("SELECT count(*) FROM audit_events").fetchone()
            rows = int(str(count[0])) if count else 0
        return tables, rows


# --- helpers ------------------------------------------------------------------------------


def _verifies(reader: LogReader) -> bool:
    return walk(reader.query(AuditQuery())).ok


def test_tradectl_replay_is_wired_and_needs_no_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.cli import main

    missing = tmp_path / "nothing.db"
    monkeypatch.delenv("TRADING_API_KEY", raising=False)
    assert main(["replay", "--from", f"sqlite:///{missing}"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "nothing.db" in error


def _to_format_1(payload: dict[str, Any]) -> None:
    """A market-data record as logs before format 2 held it (audit/batch_codec.py)."""
    batch = decode_batch(payload["batch"])
    payload["batch"] = {
        "symbols": batch.symbols,
        "prices_f64le": base64.b64encode(array("d", batch.prices).tobytes()).decode("ascii"),
        "volumes_f64le": base64.b64encode(array("d", batch.volumes).tobytes()).decode("ascii"),
        "timestamps_ns_i64le": base64.b64encode(array("q", batch.timestamps_ns).tobytes()).decode(
            "ascii"
        ),
    }


def test_a_log_written_before_format_2_still_verifies_and_replays(
    session: str, calendar: Any
) -> None:
    market = [r.seq for r in of_type(session, "MarketDataReceived")]
    for seq in market:
        rewrite(session, seq, _to_format_1)
    assert "prices_f64le" in of_type(session, "MarketDataReceived")[0].payload
    with LogReader(session) as reader:
        assert _verifies(reader)

    report = replay_log(session, event_settings(), calendar=calendar)

    assert report.reproduced, report.first_difference
    assert report.older_format_records == len(market)
    assert report.older_format_from == market[0]
    assert any("format 2" in note for note in report.notes)

    # And an input altered in the old format is still found.
    [signal, *_] = of_type(session, "SignalGenerated")
    tick = json.loads(signal.payload)["tick_index"]

    def dearer(payload: dict[str, Any]) -> None:
        prices = array("d", base64.b64decode(payload["batch"]["prices_f64le"]))
        prices[tick] *= 1.01
        payload["batch"]["prices_f64le"] = base64.b64encode(prices.tobytes()).decode("ascii")

    rewrite(session, signal.caused_by, dearer)
    altered = replay_log(session, event_settings(), calendar=calendar)
    assert not altered.reproduced and altered.first_difference is not None
    assert altered.first_difference.seq >= signal.caused_by
