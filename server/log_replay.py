"""Replaying a recorded audit log offline, to say whether every record reproduces.

`replay_log(url)` is DESIGN.md's determinism invariant as a tool. It opens the
recorded log read-only (audit.log_reader: nothing is migrated, appended or
leased), walks its hash chain, then feeds its inputs (engines.replay) to a fresh
core whose store is its own, and compares each record the core appends with the
recorded one: seq, type, every column, the payload's bytes and the hash. The
answer, a `ReplayReport`, names the first record that differs, decoded for a
person (audit.record_diff), and the input whose effects it is among.

Restarts. A `ServiceStarted` input after the first record is a restart: live,
the service was rebuilt from the log as it was then (orders, fills, trading
states, limits and ideas came back; strategy windows and the paper broker's
resting orders did not). So the log is replayed in segments, one per start, each
by a core built exactly so, from the recorded records before it; segment by
segment as the core simulator checks it (tests/sim).

Brokers. A segment whose `ServiceStarted` names the paper simulator is replayed
with the same simulator, whose answers are part of the inputs that asked; any
other broker's by a core with no broker that reads the broker's answers from the
journal (`build_core(replaying=True)`). A segment with no `ServiceStarted` (a
log written by a core without the server) is replayed with recorded answers if
it holds broker answers that came as inputs, with the simulator otherwise.

Settings. The log does not record the settings that shape the core (the
strategy's symbols and periods, the clock, the paper account and fees, the risk
limits file, the advisor's idea lifetime and price band): they are taken from
the environment as the server takes them (or given), and named in the report.
Risk-limit changes and trading-state changes are inputs, replayed from the log;
each says what it replaced, so a replay whose limits or state before one differ
from the log's (other settings, or an altered record) is reported there.

What the log alone cannot reproduce, and how it is handled:

* An audit-store outage: a submission whose intent could not be made durable was
  not sent (`BrokerRequestFailed`, NOT_SENT, "audit-store"). The replay's store
  fails the same flush, so the replay does what the service did.
* A crash or a forced exit can end a log (or a segment, before a restart) part
  way through the records one input caused: the replay then produces more than
  the log holds. That is reported (`cut_short`), not counted as a difference:
  the records that are there all reproduced, and a log cut after an input is
  indistinguishable from one cut within it. Only anchors (`tradectl audit
  verify`) tell a log cut short from a log whose tail was removed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from pydantic import ValidationError

from audit.chain import GENESIS, Sealer, walk
from audit.codec import decode_event, record_to_envelope
from audit.log_reader import LogReader
from audit.record_diff import FieldDifference, field_differences, summary
from audit.records import (
    AuditQuery,
    AuditRecord,
    CommitListener,
    HealthListener,
    NewRecord,
    VerifyResult,
)
from brokers.paper.adapter import PaperBroker
from domain.broker import BrokerInfo, Outcome, RequestKind
from domain.errors import DomainError, Unavailable
from domain.events import (
    BrokerRequestFailed,
    BrokerSwept,
    DomainEvent,
    Envelope,
    RiskLimitsChanged,
    ServiceStarted,
    TradingStateChanged,
)
from engines.core import Core
from engines.replay import replay
from engines.risk.config import load_risk_config
from server.bootstrap import build_core, load_calendar
from server.settings import Settings

CORE_SETTINGS: Final = (
    "trading_clock",
    "trading_strategy_symbols",
    "trading_strategy_short_period",
    "trading_strategy_long_period",
    "paper_starting_cash",
    "paper_slippage_bps",
    "paper_commission_per_share",
    "paper_commission_bps",
    "paper_commission_minimum",
    "trading_risk_config",
    "trading_broker_lookup_attempts",
    "advisor_idea_ttl_seconds",
    "advisor_price_band_pct",
)
"""The settings `build_core` shapes the core with; none of them is in the log."""

PAPER: Final = "paper simulator"
RECORDED: Final = "recorded broker answers"

# The inputs a real broker's answers arrive as (a paper simulator answers inside
# the input that asked, so its answers have a cause).
_BROKER_ANSWERS = frozenset({"BrokerReportReceived", "BrokerRequestFailed"})
_NOT_SENT_CODE = "audit-store"  # engines.execution: the intent could not be made durable
_PROGRESS_EVERY = 200  # records between two calls of `progress`

Progress = Callable[[str, int, int], None]
"""Called as progress(phase, done, total): phase "verifying" (the chain) or
"replaying" (records compared), `total` the records in the log."""


class LogUnreadable(Exception):
    """The log cannot be replayed at all: a bad URL, no database or file, no
    audit table, an empty log, settings that do not load. One line."""


class DifferenceKind(str, Enum):
    CHANGED = "changed"
    """The log and the replay both have the seq; the records differ."""
    MISSING = "missing"
    """The log has records from this seq on that the replay did not produce."""
    EXTRA = "extra"
    """The replay produced records from this seq on that the log does not have."""
    REFUSED = "refused"
    """The fresh core refused, or failed on, this recorded input."""
    UNDECODABLE = "undecodable"
    """This recorded record's payload is not an event this code can read."""
    INCONSISTENT = "inconsistent"
    """This recorded input says what it replaced, and the replay had something else."""


@dataclass(frozen=True, slots=True)
class Difference:
    """The first record that does not reproduce. `recorded` and `replayed` are one-line
    summaries of each side ("" where a side has none); `fields` what differs, field by
    field (`more_fields` beyond those listed); `input_seq`/`input_type` the recorded
    input whose effects it is among; `count` the records missing or extra."""

    seq: int
    event_type: str
    kind: DifferenceKind
    detail: str
    recorded: str = ""
    replayed: str = ""
    fields: tuple[FieldDifference, ...] = ()
    more_fields: int = 0
    input_seq: int = 0
    input_type: str = ""
    count: int = 0


@dataclass(frozen=True, slots=True)
class Segment:
    """Records `first_seq`..`last_seq`, from one start of the service to the next.
    `broker`: as its ServiceStarted names it ("" when there is none)."""

    first_seq: int
    last_seq: int
    broker: str
    replayed_with: str


@dataclass(frozen=True, slots=True)
class CutShort:
    """The log (or a segment, before a restart) ends at `last_seq`, part way through
    what the input at `input_seq` caused: the replay produced `records` more."""

    last_seq: int
    input_seq: int
    input_type: str
    records: int


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What `replay_log` found. `records`: rows in the log; `records_compared`: rows
    compared with the replay's (all of them when it reproduces); `inputs_replayed`:
    inputs fed to the fresh core; `settings`: the core-shaping settings used, by
    environment variable name, and where they came from."""

    source: str
    chain: VerifyResult
    records: int
    records_compared: int = 0
    inputs_replayed: int = 0
    segments: tuple[Segment, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)
    settings_source: str = "environment"
    first_difference: Difference | None = None
    cut_short: tuple[CutShort, ...] = ()
    older_format_records: int = 0
    older_format_from: int | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def reproduced(self) -> bool:
        """The chain holds and every record of the log reproduced."""
        return (
            self.chain.ok
            and self.first_difference is None
            and self.records_compared == self.records
        )


def replay_log(
    database_url: str,
    settings: Settings | None = None,
    *,
    progress: Progress | None = None,
    calendar: Any = None,
) -> ReplayReport:
    """Replay the audit log at `database_url` through a fresh core and compare.

    `settings`: what shapes the core; None reads them from the environment, as the
    server does. `calendar`: the market calendar (loaded when None). Raises
    LogUnreadable when there is nothing to replay; a log that does not reproduce is
    a report, not an error. Never writes to the recorded log.
    """
    started = time.monotonic()
    source = "given" if settings is not None else "environment"
    chosen = settings if settings is not None else _settings_from_environment()
    # Analyses are replayed from the log: no model is ever asked.
    chosen = chosen.model_copy(update={"openai_api_key": None})
    try:
        reader = LogReader(database_url)
    except DomainError as exc:
        raise LogUnreadable(str(exc)) from None
    try:
        with reader:
            last = reader.last_seq()
            if last == 0:
                raise LogUnreadable(
                    f"the audit log in {reader.shown_url} is empty: nothing to replay"
                )
            survey = _survey(reader, last, progress)
            report = ReplayReport(
                source=reader.shown_url,
                chain=survey.chain,
                records=last,
                settings=_shown_settings(chosen),
                settings_source=source,
            )
            if not survey.chain.ok:
                return dataclasses.replace(report, seconds=time.monotonic() - started)
            run = _Replay(reader, chosen, calendar, survey, progress)
            report = run.report(report)
    except Unavailable as exc:  # the database went away while it was read
        raise LogUnreadable(str(exc)) from None
    notes = (*_notes(report, survey, chosen), *report.notes)
    return dataclasses.replace(report, notes=notes, seconds=time.monotonic() - started)


def _settings_from_environment() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise LogUnreadable(f"the settings in the environment do not load: {problems}") from None


def _shown_settings(settings: Settings) -> dict[str, str]:
    shown = {}
    for name in CORE_SETTINGS:
        if name not in Settings.model_fields:
            continue
        value = getattr(settings, name)
        if isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        elif value is None:
            text = "(unset)"
        else:
            text = str(value)
        shown[name.upper()] = text
    return shown


# --- the first pass: the chain, and what the replay needs to know ahead -----------------


@dataclass
class _Survey:
    chain: VerifyResult
    first: AuditRecord | None = None
    # Where each start of the service begins a segment, with the broker it names.
    starts: dict[int, BrokerInfo | None] = field(default_factory=dict)
    # Segment starts whose segment holds broker answers that came as inputs.
    answered_from_outside: set[int] = field(default_factory=set)
    # Flushes that failed live: the store's last seq at the time -> the failure.
    not_sent: dict[int, str] = field(default_factory=dict)
    # What the log says of the settings it was made with, for the report's notes:
    # the limits the first change replaced, the cash of a sweep before any order,
    # the symbols the strategy signalled on.
    first_limits: tuple[int, dict[str, str]] | None = None
    first_cash: tuple[int, Decimal] | None = None
    orders_seen: bool = False
    strategy_symbols: set[str] = field(default_factory=set)


def _survey(reader: LogReader, last: int, progress: Progress | None) -> _Survey:
    """Walk the chain (as VerifyAudit does) and note the segments on the way."""
    survey = _Survey(chain=VerifyResult(True, 0, 0))
    segment = 1
    survey.starts[1] = None
    last_read = 0

    def reading() -> Iterator[AuditRecord]:
        nonlocal segment, last_read
        for row in reader.query(AuditQuery(to_seq=last)):
            last_read = row.seq
            if survey.first is None:
                survey.first = row
            if row.event_type == "ServiceStarted" and row.caused_by == 0:
                segment = row.seq
                survey.starts[segment] = _broker_of(row)
            elif row.event_type in _BROKER_ANSWERS and row.caused_by == 0:
                survey.answered_from_outside.add(segment)
            if row.event_type == "BrokerRequestFailed" and row.caused_by:
                failed = _not_sent(row)
                if failed is not None:
                    survey.not_sent[row.seq - 1] = failed
            _settings_evidence(survey, row)
            if progress is not None and row.seq % _PROGRESS_EVERY == 0:
                progress("verifying", row.seq, last)
            yield row

    try:
        survey.chain = walk(reading())
    except (ValueError, TypeError) as exc:
        # A row a tamperer left unreadable (e.g. a recorded_at that is no time).
        survey.chain = VerifyResult(
            False,
            last_read,
            last_read,
            last_read + 1,
            f"row after seq {last_read} cannot be read: {exc}",
        )
    if progress is not None:
        progress("verifying", survey.chain.checked, last)
    return survey


def _settings_evidence(survey: _Survey, row: AuditRecord) -> None:
    match row.event_type:
        case "SignalGenerated" if row.symbol and '"source":"strategy:' in row.payload:
            survey.strategy_symbols.add(row.symbol)
        case "RiskLimitsChanged" if survey.first_limits is None:
            event = _decoded(row)
            if isinstance(event, RiskLimitsChanged):
                survey.first_limits = (row.seq, dict(event.previous))
        case "OrderUpdated":
            survey.orders_seen = True
        case "BrokerSwept" if survey.first_cash is None and not survey.orders_seen:
            event = _decoded(row)
            if isinstance(event, BrokerSwept):
                survey.first_cash = (row.seq, event.snapshot.account.cash)


def _decoded(row: AuditRecord) -> DomainEvent | None:
    try:
        return decode_event(row.event_type, row.payload)
    except Exception:  # reported as undecodable when the replay reaches it
        return None


def _broker_of(row: AuditRecord) -> BrokerInfo | None:
    event = _decoded(row)
    return event.broker if isinstance(event, ServiceStarted) else None


def _not_sent(row: AuditRecord) -> str | None:
    """The store's message, when `row` says a submission was not sent because the
    store could not make its intent durable (an in-process broker's, inside the input)."""
    event = _decoded(row)
    if not isinstance(event, BrokerRequestFailed):
        return None
    failure = event.failure
    if (
        failure.request is RequestKind.SUBMIT
        and failure.outcome is Outcome.NOT_SENT
        and failure.code == _NOT_SENT_CODE
    ):
        return failure.message
    return None


# --- the second pass: the replay ---------------------------------------------------------


class _Found(Exception):
    def __init__(self, difference: Difference) -> None:
        super().__init__(difference.detail)
        self.difference = difference


class _Replay:
    def __init__(
        self,
        reader: LogReader,
        settings: Settings,
        calendar: Any,
        survey: _Survey,
        progress: Progress | None,
    ) -> None:
        self._reader = reader
        self._settings = settings
        self._calendar = calendar
        self._survey = survey
        self._progress = progress
        self._total = survey.chain.last_seq
        self.compared = 0
        self.inputs = 0
        self.cut_short: list[CutShort] = []
        self.older_format = 0  # market-data records in format 1, compared decoded
        self.older_format_from: int | None = None
        self.segments: list[Segment] = []

    def report(self, report: ReplayReport) -> ReplayReport:
        if self._calendar is None:
            self._calendar = load_calendar()
        starts = sorted(self._survey.starts)
        ends = [s - 1 for s in starts[1:]] + [self._total]
        difference = None
        for first, last in zip(starts, ends, strict=True):
            broker = self._survey.starts[first]
            with_paper = (
                broker.name == PaperBroker.name
                if broker is not None
                else first not in self._survey.answered_from_outside
            )
            self.segments.append(
                Segment(
                    first, last, broker.name if broker else "", PAPER if with_paper else RECORDED
                )
            )
            difference = self._segment(first, last, with_paper)
            if difference is not None:
                break
        if self._progress is not None:
            self._progress("replaying", self.compared, self._total)
        return dataclasses.replace(
            report,
            records_compared=self.compared,
            inputs_replayed=self.inputs,
            segments=tuple(self.segments),
            first_difference=difference,
            cut_short=tuple(self.cut_short),
            older_format_records=self.older_format,
            older_format_from=self.older_format_from,
        )

    def _core(self, store: _ReplayStore, first: int, with_paper: bool) -> Core:
        try:
            return build_core(self._settings, store, self._calendar, replaying=not with_paper)
        except Exception as exc:
            if first == 1:  # nothing recorded is read yet: it is the settings
                raise LogUnreadable(f"cannot build a core from the settings: {exc}") from None
            record = self._reader.record(first)
            raise _Found(
                Difference(
                    first,
                    record.event_type if record else "",
                    DifferenceKind.REFUSED,
                    f"the restart at seq {first} cannot be rebuilt from the log before it: "
                    f"{_error_text(exc)}",
                )
            ) from None

    def _segment(self, first: int, last: int, with_paper: bool) -> Difference | None:
        reader = self._reader
        head = reader.record(first)
        assert head is not None  # the chain walked it
        store = _ReplayStore(reader, first - 1, head.prev_hash, self._survey.not_sent)
        try:
            core = self._core(store, first, with_paper)
        except _Found as stop:
            return stop.difference
        produced = store.appended
        expected: deque[AuditRecord] = deque()
        last_input: AuditRecord | None = None
        records = reader.query(AuditQuery(from_seq=first, to_seq=last))

        def compare() -> Difference | None:
            while produced and expected:
                got, want = produced.popleft(), expected.popleft()
                if got != want and not self._same_in_older_format(want, got):
                    return self._changed(want, got)
                self.compared += 1
                if self._progress is not None and self.compared % _PROGRESS_EVERY == 0:
                    self._progress("replaying", self.compared, self._total)
            return None

        def feed() -> Iterator[Envelope]:
            nonlocal last_input
            for record in records:
                found = compare()
                if found is not None:
                    raise _Found(found)
                expected.append(record)
                try:
                    envelope = record_to_envelope(record)
                except Exception as exc:
                    raise _Found(self._undecodable(record, exc)) from None
                if record.caused_by == 0:
                    self.inputs += 1
                    last_input = record
                    found = self._contradiction(core, record, envelope)
                    if found is not None:
                        raise _Found(found)
                yield envelope

        try:
            replay(core, feed())
        except _Found as stop:
            return stop.difference
        except Unavailable:  # reading the recorded log failed: not the replay's finding
            raise
        except Exception as exc:  # the fresh core refused a recorded input, or failed
            earlier = compare()
            if earlier is not None:
                return earlier
            assert last_input is not None  # nothing is refused before the first input
            return self._refused(last_input, exc)
        finally:
            records.close()
            core.execution.close()
        found = compare()
        if found is not None:
            return found
        if expected:
            return self._missing(list(expected))
        if produced:
            assert last_input is not None
            if all(record.caused_by for record in produced):
                self.cut_short.append(
                    CutShort(last, last_input.seq, last_input.event_type, len(produced))
                )
                return None
            return self._extra(list(produced))
        return None

    def _same_in_older_format(self, want: AuditRecord, got: AuditRecord) -> bool:
        """A record of a log written before market data was journaled in format 2
        (audit/batch_codec.py): the replay writes the same batch in format 2, so its
        bytes, and from there every hash, differ. The same record is then one whose
        columns are equal but for the payload and hashes, and whose payload is either
        equal or, for such a market-data record, decodes to the same event."""
        if got._replace(payload=want.payload, prev_hash=want.prev_hash, hash=want.hash) != want:
            return False
        if got.payload == want.payload:
            return self.older_format_from is not None  # only the hashes differ
        if want.event_type != "MarketDataReceived" or not _batch_format_1(want.payload):
            return False
        try:
            same = decode_event(want.event_type, want.payload) == decode_event(
                got.event_type, got.payload
            )
        except ValueError:
            return False
        if same:
            self.older_format += 1
            if self.older_format_from is None:
                self.older_format_from = want.seq
        return same

    # --- what a difference says --------------------------------------------------------

    def _root(self, record: AuditRecord) -> AuditRecord:
        """The recorded input whose effects `record` is among (itself if an input)."""
        steps = 0
        while record.caused_by and steps < 10_000:
            parent = self._reader.record(record.caused_by)
            if parent is None or parent.seq >= record.seq:
                break
            record, steps = parent, steps + 1
        return record

    def _with_root(self, difference: Difference, record: AuditRecord) -> Difference:
        root = self._root(record)
        return dataclasses.replace(difference, input_seq=root.seq, input_type=root.event_type)

    def _changed(self, want: AuditRecord, got: AuditRecord) -> Difference:
        fields, count = field_differences(want, got)
        if want.event_type != got.event_type:
            detail = f"the replay produced {got.event_type} where the log has {want.event_type}"
        else:
            detail = f"{count} field(s) differ"
        return self._with_root(
            Difference(
                want.seq,
                want.event_type,
                DifferenceKind.CHANGED,
                detail,
                summary(want),
                summary(got),
                tuple(fields),
                count - len(fields),
            ),
            want,
        )

    def _missing(self, left: list[AuditRecord]) -> Difference:
        head = left[0]
        return self._with_root(
            Difference(
                head.seq,
                head.event_type,
                DifferenceKind.MISSING,
                f"the log has {len(left)} record(s) (seq {head.seq} to {left[-1].seq}) "
                "that the replay did not produce",
                recorded=summary(head),
                count=len(left),
            ),
            head,
        )

    def _extra(self, left: list[AuditRecord]) -> Difference:
        head = left[0]
        return Difference(
            head.seq,
            head.event_type,
            DifferenceKind.EXTRA,
            f"the replay produced {len(left)} record(s) from seq {head.seq} on "
            "that the log does not have",
            replayed=summary(head),
            count=len(left),
        )

    def _refused(self, record: AuditRecord, exc: Exception) -> Difference:
        return Difference(
            record.seq,
            record.event_type,
            DifferenceKind.REFUSED,
            f"the fresh core refused this recorded input: {_error_text(exc)}",
            recorded=summary(record),
            input_seq=record.seq,
            input_type=record.event_type,
        )

    def _undecodable(self, record: AuditRecord, exc: Exception) -> Difference:
        return self._with_root(
            Difference(
                record.seq,
                record.event_type,
                DifferenceKind.UNDECODABLE,
                f"the recorded payload is not a {record.event_type} this replay can read: "
                f"{_error_text(exc)}",
                recorded=summary(record),
            ),
            record,
        )

    def _contradiction(
        self, core: Core, record: AuditRecord, envelope: Envelope
    ) -> Difference | None:
        """A recorded input that says what it replaced, checked against the replay."""
        match envelope.event:
            case RiskLimitsChanged(previous=previous):
                had = core.risk.config.as_limits()
                if previous == had:
                    return None
                fields = [
                    FieldDifference(
                        f"payload.previous.{key}", previous.get(key, ""), had.get(key, "")
                    )
                    for key in sorted(previous.keys() | had.keys())
                    if previous.get(key) != had.get(key)
                ]
                what = "the limits in force before it"
            case TradingStateChanged(previous=previous) if previous is not None:
                state = core.risk.state
                if previous is state:
                    return None
                fields = [FieldDifference("payload.previous", previous.value, state.value)]
                what = "the trading state before it"
            case _:
                return None
        return Difference(
            record.seq,
            record.event_type,
            DifferenceKind.INCONSISTENT,
            f"it records {what} other than the replay had them: the log was made with "
            "other settings, or a record before it was altered",
            recorded=summary(record),
            fields=tuple(fields[:8]),
            more_fields=max(0, len(fields) - 8),
            input_seq=record.seq,
            input_type=record.event_type,
        )


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _notes(report: ReplayReport, survey: _Survey, settings: Settings) -> list[str]:
    notes = []
    if report.settings_source == "environment":
        notes.append(
            "the log does not record the settings that shape the core: they were taken "
            "from the environment, as the server takes them"
        )
    restarts = len(report.segments) - 1
    if restarts > 0:
        notes.append(
            f"{restarts} restart(s): each segment was replayed by a core rebuilt from the "
            "log before it, as the service was rebuilt"
        )
    for segment in report.segments:
        if not segment.broker:
            notes.append(
                f"seq {segment.first_seq} to {segment.last_seq} name no broker (no "
                f"ServiceStarted): replayed with {segment.replayed_with}"
            )
    first = survey.first
    if first is not None and first.event_type == "ServiceStarted" and first.seq == 1:
        at_epoch = first.recorded_at.year == 1970
        if at_epoch and settings.trading_clock == "wall":
            notes.append(
                "the log starts at the Unix epoch, as the event clock does: it was probably "
                "made with TRADING_CLOCK=event (this replay used wall)"
            )
        elif not at_epoch and settings.trading_clock == "event":
            notes.append(
                "the log starts at a wall-clock time, not at the Unix epoch as the event "
                "clock does: it was probably made with TRADING_CLOCK=wall (this replay used event)"
            )
    notes.extend(_settings_doubts(report, survey, settings))
    if report.older_format_from is not None:
        notes.append(
            f"{report.older_format_records} market-data record(s) from seq "
            f"{report.older_format_from} are in the format logs had before format 2: they "
            "were compared decoded, and the hashes from there on (which follow the bytes) "
            "were not compared; the chain itself was verified as recorded"
        )
    for cut in report.cut_short:
        notes.append(
            f"the log ends at seq {cut.last_seq} part way through what input seq "
            f"{cut.input_seq} ({cut.input_type}) caused: the replay produced {cut.records} "
            "more record(s), never committed live (a crash or a forced exit ends a log so)"
        )
    return notes


def _settings_doubts(report: ReplayReport, survey: _Survey, settings: Settings) -> list[str]:
    """Where the log itself shows it was made with other settings than these."""
    doubts = []
    if survey.first_limits is not None:
        seq, previous = survey.first_limits
        try:
            configured = load_risk_config(settings.trading_risk_config).as_limits()
        except DomainError:
            configured = previous  # the replay could not have run: said elsewhere
        other = sorted(
            k for k in previous.keys() | configured.keys() if previous.get(k) != configured.get(k)
        )
        if other:
            shown = ", ".join(
                f"{k}={previous.get(k, '')} (here {configured.get(k, '')})" for k in other
            )
            doubts.append(
                f"the risk-limit change at seq {seq} says the log started with other limits "
                f"than TRADING_RISK_CONFIG gives: {shown}"
            )
    unlisted = sorted(survey.strategy_symbols - set(settings.trading_strategy_symbols))
    if unlisted:
        doubts.append(
            f"the log has strategy signals on {', '.join(unlisted)}, which "
            "TRADING_STRATEGY_SYMBOLS does not list"
        )
    first_paper = report.segments[0].replayed_with == PAPER if report.segments else False
    if first_paper and survey.first_cash is not None:
        seq, cash = survey.first_cash
        if cash != settings.paper_starting_cash:
            doubts.append(
                f"the paper account swept at seq {seq}, before any order, held {cash} in cash: "
                f"PAPER_STARTING_CASH is {settings.paper_starting_cash}"
            )
    return doubts


# --- the fresh core's store ---------------------------------------------------------------


class _ReplayStore:
    """The fresh core's EventStore in a replay. Its past is the recorded log up to
    `base_seq` (what `build_core` reads back, as the restart did); every row the core
    appends after it is sealed as any store seals it and queued in `appended` for
    comparison. Nothing reaches a database. A flush fails where the live one did
    (`failed_at`: the last seq at the time -> the store's message)."""

    def __init__(
        self, past: LogReader, base_seq: int, base_hash: str, failed_at: Mapping[int, str]
    ) -> None:
        self._past = past
        self._base = base_seq
        self._next = base_seq + 1
        self._last_hash = base_hash if base_seq else GENESIS
        self._sealer = Sealer()
        self._failed_at = failed_at
        self._unflushed: list[AuditRecord] = []
        self._listeners: list[CommitListener] = []
        self._health_listeners: list[HealthListener] = []
        self.appended: deque[AuditRecord] = deque()

    def append(self, record: NewRecord) -> AuditRecord:
        sealed, _ = self._sealer.seal(record, self._next, self._last_hash)
        self._next += 1
        self._last_hash = sealed.hash
        self.appended.append(sealed)
        self._unflushed.append(sealed)
        return sealed

    def room(self) -> int:
        return 2**62  # every input in the log was admitted live

    def flush(self) -> None:
        failure = self._failed_at.get(self.last_seq())
        if failure is not None:
            raise Unavailable(failure)
        rows, self._unflushed = self._unflushed, []
        if rows:
            for listener in self._listeners:
                listener(rows)

    def last_seq(self) -> int:
        return self._next - 1

    def query(self, query: AuditQuery) -> Iterator[AuditRecord]:
        if self._next != self._base + 1:
            raise RuntimeError("a replay's store answers only about the recorded past")
        if self._base == 0:
            return iter(())
        to_seq = self._base if query.to_seq is None else min(query.to_seq, self._base)
        return self._past.query(dataclasses.replace(query, to_seq=to_seq))

    def verify(self) -> VerifyResult:
        return walk(self.query(AuditQuery()))

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    @property
    def healthy(self) -> bool:
        return True

    def add_health_listener(self, listener: HealthListener) -> None:
        self._health_listeners.append(listener)

    def close(self) -> None:
        pass


def _batch_format_1(payload: str) -> bool:
    """Whether a MarketDataReceived payload holds its batch in format 1."""
    try:
        batch = json.loads(payload).get("batch")
    except ValueError:
        return False
    return isinstance(batch, dict) and "format" not in batch
