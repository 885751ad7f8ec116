"""The broker port: the one interface execution talks to.

Every request (submit, cancel, look up) returns at once: the adapter owns its
threads (and event loop), does the I/O there, and answers through the
`ReportSink` it was started with, from any thread, possibly before the call
that asked has returned. So nothing that calls the broker ever waits on the
network, and a real broker is never even asked while the sequencer is held.

`snapshot` is the one blocking call: a REST sweep of the account, its positions
and its orders. It is called only from the service's own supervisor thread,
never under the sequencer.
"""

from __future__ import annotations

from typing import Protocol

from domain.broker import BrokerHealth, BrokerInfo, BrokerReport, BrokerSnapshot, RequestFailure
from domain.orders import SubmitOrder


class BrokerError(Exception):
    """The broker could not do what was asked; the message says why."""


class BrokerUnavailable(BrokerError):
    """The broker did not answer (network, 5xx, rate limit): try again later."""


class BrokerConfigError(BrokerError):
    """The broker cannot be used as configured (missing or refused credentials, a
    live endpoint without the opt-in): the service does not start. The message is
    one line a person can act on, naming the setting."""


class ReportSink(Protocol):
    """Where an adapter sends what it learns; the execution engine implements it.
    Each call is sequenced and journaled as an input."""

    def on_report(self, report: BrokerReport) -> None: ...

    def on_failure(self, failure: RequestFailure) -> None: ...

    def on_gap(self, reason: str) -> None:
        """Reports may have been missed (the stream reconnected, or was down):
        the state must be swept from the broker's REST API."""
        ...


class Broker(Protocol):
    name: str

    @property
    def in_process(self) -> bool:
        """True for a simulator that answers inside each request, deterministically
        and with no I/O: execution then asks it inside the input (a fill lands at
        the tick that caused it) and its answers are part of that input, which a
        replay regenerates by rebuilding the simulator. False for a real broker:
        every request is made after the input, and every answer is an input."""
        ...

    def start(self, sink: ReportSink) -> None:
        """Begin delivering to `sink` (open streams, start threads)."""
        ...

    def close(self) -> None:
        """Stop every thread and stream; requests after this are ignored."""
        ...

    def submit_order(self, order: SubmitOrder) -> None:
        """Send `order` (its `client_order_id` is the idempotency key). The answer
        comes through the sink: a report (source SUBMIT or STREAM) or a failure
        (REFUSED, or UNKNOWN when nothing proves whether the broker took it)."""
        ...

    def cancel_order(self, client_order_id: str, broker_order_id: str) -> None:
        """Ask to cancel. The answer: a report (cancelled, or filled first) or a
        failure (REFUSED: it cannot be cancelled; UNKNOWN)."""
        ...

    def lookup_order(self, client_order_id: str) -> None:
        """Ask for one order by client order id. The answer: a report (source
        LOOKUP) or a failure (NOT_FOUND: the broker has none; UNKNOWN)."""
        ...

    def snapshot(self, open_client_ids: frozenset[str]) -> BrokerSnapshot:
        """Read the broker's state (blocking; raises BrokerUnavailable): the
        account, every position, every open order, and closed orders among
        `open_client_ids` (those the core still thinks open)."""
        ...

    def health(self) -> BrokerHealth:
        """The adapter's current view of its connection; no I/O."""
        ...

    def describe(self) -> BrokerInfo: ...
