"""How the paper broker's answers reach the sink: inline, from inside the request
that caused them (no latency), or from a thread of its own after a delay, in the
order they were produced. A repeating stream is simulated here too."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from brokers.base import ReportSink
from domain.broker import BrokerReport, RequestFailure

log = logging.getLogger(__name__)

_JOIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Gap:
    """Tell the sink that reports may have been missed."""

    reason: str


Message = BrokerReport | RequestFailure | Gap


class Outbox:
    """`latency_s` 0: `deliver` calls the sink at once, on the caller's thread.
    Otherwise `post` queues the messages, each due `latency_s` after it was posted,
    and a thread started by `start` delivers them; `close` stops it and drops what
    was not delivered yet. `duplicate_reports`: each report is delivered twice."""

    def __init__(self, latency_s: float, duplicate_reports: bool) -> None:
        self._latency = latency_s
        self._duplicate = duplicate_reports
        self._sink: ReportSink | None = None
        self._queue: deque[tuple[float, Message]] = deque()
        self._changed = threading.Condition()
        self._delivering = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._generation = 0  # a thread of an earlier start stops even if it outlives close

    @property
    def delayed(self) -> bool:
        return self._latency > 0

    def start(self, sink: ReportSink) -> None:
        with self._changed:
            self._sink = sink
            self._closed = False
            if self.delayed and self._thread is None:
                self._generation += 1
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._generation,),
                    name="paper-broker-delivery",
                    daemon=True,
                )
                self._thread.start()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._sink = None
            self._queue.clear()
            self._changed.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_SECONDS)

    def post(self, messages: Sequence[Message]) -> None:
        """Queue `messages` for the delivery thread (the caller holds the broker's lock,
        so the queue's order is the order the broker produced them in)."""
        due = time.monotonic() + self._latency
        with self._changed:
            if self._closed:
                return
            self._queue.extend((due, m) for m in self._expanded(messages))
            self._changed.notify_all()

    def deliver(self, messages: Sequence[Message]) -> None:
        """Deliver `messages` now, on this thread (the broker's lock is not held, so the
        sink may call the broker back)."""
        for message in self._expanded(messages):
            sink = self._sink
            if sink is None:
                return
            _dispatch(sink, message)

    def drain(self, timeout: float) -> bool:
        """Wait until everything posted has been delivered (True), or `timeout` seconds
        have passed (False)."""
        give_up = time.monotonic() + timeout
        with self._changed:
            while self._queue or self._delivering:
                left = give_up - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _expanded(self, messages: Iterable[Message]) -> list[Message]:
        out: list[Message] = []
        for message in messages:
            out.append(message)
            if self._duplicate and isinstance(message, BrokerReport):
                out.append(message)
        return out

    def _run(self, generation: int) -> None:
        while True:
            with self._changed:
                while self._current(generation) and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._changed.wait(wait)
                if not self._current(generation):
                    return
                _, message = self._queue.popleft()
                sink = self._sink
                self._delivering += 1
            try:
                if sink is not None:
                    _dispatch(sink, message)
            except Exception:
                # The sink's failure must not stop the answers to every later request.
                log.exception("the report sink failed on %r", message)
            finally:
                with self._changed:
                    self._delivering -= 1
                    self._changed.notify_all()

    def _current(self, generation: int) -> bool:
        return not self._closed and generation == self._generation


def _dispatch(sink: ReportSink, message: Message) -> None:
    if isinstance(message, BrokerReport):
        sink.on_report(message)
    elif isinstance(message, RequestFailure):
        sink.on_failure(message)
    else:
        sink.on_gap(message.reason)
