"""What `tradectl stream` tells a person beyond the service's summary: warnings
before a file is sent, a progress bar of what the service has processed, and the
file's line for a tick the service refused.

A stream that cannot trade still "succeeds": every tick is accepted and nothing
happens. The two usual reasons are checked before anything is sent: no active
strategy watches the file's symbols, or the service runs on the wall clock while
the file is history (the risk gate then judges each signal at the service's time,
not the bar's, so history trades, or is refused, as if it were now).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol

import grpc

from client import progress
from client.marketdata import MarketFile
from trading_sdk.client import error_info
from trading_sdk.v1 import market_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

if TYPE_CHECKING:
    from rich.console import Console

_NS: Final = 1_000_000_000
# Bars that ended longer ago than this are history, not a live feed running late.
HISTORY_AFTER_NS: Final = 24 * 3600 * _NS
# How often the progress bar asks the service how far it has got.
POLL_SECONDS: Final = 0.5

Messages = Iterable[list[market_pb2.MarketEvent]]


class _Status(Protocol):
    def get_status(self) -> pb.GetStatusResponse: ...


# --- warnings -------------------------------------------------------------------------


def stream_warnings(
    status: pb.GetStatusResponse, strategies: Sequence[pb.Strategy], data: MarketFile
) -> list[str]:
    """The warnings for streaming `data` to the service with this status and these
    strategies, each a few lines of text."""
    return [*unwatched(strategies, data.symbols), *wall_clock_history(status, data)]


def unwatched(strategies: Sequence[pb.Strategy], symbols: Sequence[str]) -> list[str]:
    """A warning when no active strategy watches any of `symbols`."""
    wanted = set(symbols)
    active = [s for s in strategies if s.active]
    if any(wanted & set(s.symbols) for s in active):
        return []
    watching = ", ".join(f"{s.name} ({', '.join(s.symbols) or 'no symbols'})" for s in active)
    fixes = [f"start the service with TRADING_STRATEGY_SYMBOLS={','.join(sorted(wanted))}"]
    fixes += [
        f"tradectl strategies activate {s.name} (it watches "
        f"{', '.join(sorted(wanted & set(s.symbols)))})"
        for s in strategies
        if not s.active and wanted & set(s.symbols)
    ]
    return [
        f"warning: no active strategy watches {', '.join(sorted(wanted))}, so this stream "
        f"makes no signals and no trades (active: {watching or 'none'})\n"
        f"  to trade them: {'; or '.join(fixes)}"
    ]


def wall_clock_history(status: pb.GetStatusResponse, data: MarketFile) -> list[str]:
    """A warning when the service runs on the wall clock and every bar of `data` is
    more than a day older than the service's time."""
    if status.clock != "wall":
        return []
    now_ns = status.now.seconds * _NS + status.now.nanos
    if not now_ns or data.last_ns >= now_ns - HISTORY_AFTER_NS:
        return []
    return [
        f"warning: the service runs on the wall clock, and this file's bars are history "
        f"({_day(data.first_ns)} to {_day(data.last_ns)}): the risk gate judges each "
        "signal at the service's time, not the bar's, so outside today's market hours "
        "every signal is refused (OUTSIDE_MARKET_HOURS)\n"
        "  to replay history: run the service with TRADING_CLOCK=event "
        "(TRADING_CLOCK=event make run)"
    ]


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, tz=UTC).date().isoformat()


# --- progress -------------------------------------------------------------------------


@contextmanager
def stream_progress(
    client: _Status,
    status: pb.GetStatusResponse | None,
    total: int,
    *,
    console: Console | None = None,
) -> Iterator[Callable[[Messages], Messages]]:
    """tradectl's progress bar (client/progress.py) for a stream of `total` ticks;
    yields a wrapper for the stream's messages.

    gRPC takes messages as fast as its buffers allow, megabytes ahead of the
    service, so counting what was handed over would show 100% long before the end.
    With the service's status readable (`status`, read before the stream) the bar
    counts what the service has processed instead: GetStatus's `market_events`
    since then, asked every POLL_SECONDS once the bar can show (the service answers
    between messages). Without it, it counts the ticks handed over.
    """
    polling = status is not None and progress.on_terminal(console)
    stop = threading.Event()
    with progress.progress_bar("ticks", console=console) as advance:
        poller: threading.Thread | None = None
        if status is not None and polling:
            baseline = status.counters.market_events

            def poll() -> None:
                if stop.wait(progress.PROGRESS_AFTER_S):
                    return
                while True:
                    try:
                        processed = client.get_status().counters.market_events - baseline
                    except grpc.RpcError:
                        return  # the stream's own outcome says what went wrong
                    advance(min(max(processed, 0), total), total)
                    if stop.wait(POLL_SECONDS):
                        return

            poller = threading.Thread(target=poll, name="tradectl-stream-progress", daemon=True)
            poller.start()

        def counted(messages: Messages) -> Messages:
            done = 0
            for message in messages:
                yield message
                done += len(message)  # gRPC asks for the next once this one is sent
                if not polling:
                    advance(done, total)

        try:
            yield counted
        finally:
            stop.set()
            if poller is not None:
                poller.join(timeout=POLL_SECONDS)


# --- refusals -------------------------------------------------------------------------


def refused_where(error: grpc.RpcError, data: MarketFile, batch_size: int) -> str | None:
    """`PATH: line N` of the tick a MARKET_DATA_MESSAGE_REFUSED error names, or None
    when it names none (a refusal of the message as a whole, or another error).

    The error gives the refused message's index in the stream and the tick's
    `event_index` in that message (for the columnar form as well); tradectl sends
    `batch_size` ticks a message, in the file's merged order, from the first.
    """
    if not isinstance(error, grpc.Call):  # no trailers to read the details from
        return None
    info = error_info(error)
    if info is None:
        return None
    message, event = info.metadata.get("refused_message_index"), info.metadata.get("event_index")
    if message is None or event is None or not (message.isdigit() and event.isdigit()):
        return None
    index = int(message) * batch_size + int(event)
    return data.where(index) if index < len(data.events) else None
