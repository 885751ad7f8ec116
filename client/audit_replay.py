"""`tradectl replay --from DATABASE_URL`: does a recorded audit log reproduce?

The command works offline, on the database alone: it never talks to the
service. It reads the log without writing to it, checks its hash chain, runs
its inputs through a fresh core and compares every record (server/log_replay.py).
The settings that shape the core are read from the environment, as the server
reads them: the log does not record them.

Exit status: 0 every record reproduced; 1 a record differs (the first is
named); 2 the log cannot be replayed (bad URL, no such database or file, no
audit table, an empty log, settings that do not load), with one line on
stderr; 3 the hash chain is broken (as `tradectl audit verify`).

tradectl's parser calls `add_replay_arguments` for the `replay` command and its
handler calls `run_replay`. The core is imported when the command runs, not
when tradectl starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from server.log_replay import Progress, ReplayReport

EXIT_REPRODUCED: Final = 0
EXIT_DIFFERS: Final = 1
EXIT_UNREADABLE: Final = 2
EXIT_CHAIN_BROKEN: Final = 3

WIDTH: Final = 100
"""Settings and notes are wrapped to this width."""

EPILOG: Final = (
    "Works offline on the database, never writing to it. The settings that shape the "
    "core (TRADING_CLOCK, TRADING_STRATEGY_SYMBOLS, PAPER_STARTING_CASH, TRADING_RISK_CONFIG, "
    "...) are read from the environment, as the server reads them. Exit status: 0 every "
    "record reproduced, 1 a record differs, 2 the log cannot be read, 3 broken hash chain."
)


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """The `replay` command's arguments: `--from URL` (as `args.source`), `--no-progress`."""
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DATABASE_URL",
        help="the recorded audit log, e.g. sqlite:///var/trading-audit.db or "
        "postgresql+psycopg://user@host:5432/db (read only)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (it shows only on a terminal, for a long log)",
    )
    if parser.epilog is None:
        parser.epilog = EPILOG


def run_replay(args: argparse.Namespace, out: TextIO, as_json: bool) -> int:
    """Replay the log `args.source` names and print the report to `out` (a JSON object
    with `as_json`); returns the exit status. An error is one line on stderr."""
    from server.log_replay import LogUnreadable, replay_log

    show_progress = not getattr(args, "no_progress", False) and _is_terminal(sys.stderr)
    try:
        with _quiet_logs(), _progress_bar(show_progress) as progress:
            report = replay_log(args.source, progress=progress)
    except LogUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except Exception as exc:  # a bug: still one line, never a traceback
        print(f"error: the replay failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        if as_json:
            print(json.dumps(report_json(report), indent=2), file=out)
        else:
            print(render(report), file=out)
        out.flush()
    except BrokenPipeError:  # `tradectl replay ... | head -3`: the reader has gone
        pass
    return exit_status(report)


def exit_status(report: ReplayReport) -> int:
    if not report.chain.ok:
        return EXIT_CHAIN_BROKEN
    return EXIT_REPRODUCED if report.reproduced else EXIT_DIFFERS


def report_json(report: ReplayReport) -> dict[str, Any]:
    """The report as JSON-ready data: every field of ReplayReport, and `reproduced`."""
    data = dataclasses.asdict(report)
    data["settings"] = dict(report.settings)
    data["seconds"] = round(report.seconds, 3)
    return {"reproduced": report.reproduced, "exit_status": exit_status(report), **data}


def render(report: ReplayReport) -> str:
    """The report as a few lines a person reads."""
    chain = report.chain
    lines = [f"replay of {report.source}: {_verdict(report)}"]
    if not chain.ok:
        lines.append(
            _wrapped(
                "  chain     ",
                f"broken at seq {chain.first_bad_seq}: {chain.reason}; {chain.checked:,} "
                "record(s) verified before it; nothing was replayed against a log that is "
                "not what was written",
            )
        )
        return "\n".join(lines)
    lines.append(f"  chain     ok, {chain.checked:,} record(s), seq 1 to {chain.last_seq}")
    segments = ", ".join(
        f"seq {s.first_seq}-{s.last_seq} with the {s.replayed_with}" for s in report.segments
    )
    lines.append(
        f"  replayed  {report.inputs_replayed:,} input(s) through a fresh core "
        f"in {report.seconds:.1f} s: {segments}"
    )
    lines.append(
        f"  compared  {report.records_compared:,} of {report.records:,} record(s) "
        "(seq, type, every column, payload bytes, hash)"
    )
    difference = report.first_difference
    if difference is not None:
        lines.append(
            f"  first difference at seq {difference.seq} ({difference.event_type}): "
            f"{difference.detail}"
        )
        if difference.input_seq and difference.input_seq != difference.seq:
            lines.append(
                f"            among the effects of input seq {difference.input_seq} "
                f"({difference.input_type})"
            )
        if difference.recorded:
            lines.append(f"    recorded  {difference.recorded}")
        if difference.replayed:
            lines.append(f"    replayed  {difference.replayed}")
        for f in difference.fields:
            recorded, replayed = f.recorded or "(none)", f.replayed or "(none)"
            line = f"    {f.path}: {recorded} -> {replayed}"
            if len(line) <= WIDTH:
                lines.append(line)
            else:
                lines.append(f"    {f.path}:")
                lines.append(_wrapped("      recorded  ", recorded))
                lines.append(_wrapped("      replayed  ", replayed))
        if difference.more_fields:
            lines.append(f"    ... and {difference.more_fields} more field(s)")
    where = "from the environment" if report.settings_source == "environment" else "as given"
    settings = " ".join(f"{k}={v}" for k, v in report.settings.items())
    lines.append(_wrapped("  settings  ", f"{where}: {settings}"))
    lines.extend(_wrapped("  note      ", note) for note in report.notes)
    return "\n".join(lines)


def _wrapped(label: str, text: str) -> str:
    return textwrap.fill(
        text,
        WIDTH,
        initial_indent=label,
        subsequent_indent=" " * len(label),
        break_on_hyphens=False,
        break_long_words=False,
    )


def _verdict(report: ReplayReport) -> str:
    if not report.chain.ok:
        return "HASH CHAIN BROKEN"
    if report.reproduced:
        return "every record reproduced"
    difference = report.first_difference
    if difference is not None:
        return f"DIFFERS at seq {difference.seq} ({difference.event_type})"
    return "DIFFERS"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress | None]:
    """tradectl's progress bar (client/progress.py), a bar a phase; None (no progress
    asked) when disabled."""
    if not enabled:
        yield None
        return
    from client.progress import progress_bar

    labels = {"verifying": "verifying the chain", "replaying": "replaying"}
    with progress_bar("records", labels=labels) as advance:
        yield lambda phase, done, total: advance(done, total, phase)


class _OneLine(logging.Formatter):
    """Log lines without tracebacks: the command's output is its report."""

    def formatException(self, ei: Any) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """While the replay runs, the core's errors go to stderr as one line each (no
    tracebacks, no warnings), unless the program configured logging itself."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(_OneLine("replay: %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
