"""The Alpaca broker: alpaca-py's TradingClient for orders, account and positions,
its TradingStream for trade_updates, behind the broker port (`brokers.base`).

Threads (all the adapter's own):
- REST lanes: `workers` single-thread executors, each with its own TradingClient
  (so its own HTTP session). Every request about one client order id goes to the
  same lane (by a stable hash), so a cancel never overtakes its submit. The SDK's
  own blocking habits (3 s sleeps and a re-POST on 429/504) stay on these threads;
  the callers of `submit_order`, `cancel_order` and `lookup_order` never wait.
- the stream: `TradingStream.run()` (an asyncio loop), reporting trade updates to
  the sink as STREAM reports, and its connection state to a `StreamWatch`.
- the watch: once a second, a gap while the stream is down (every
  `down_gap_interval_s`), and a new stream thread should the old one have died.

`verify` and `snapshot` block, on the caller's thread (the service's start-up and
its supervisor), with a client of their own.

Every answer goes to the sink given to `start`; after `close` none does.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from uuid import UUID

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from brokers.alpaca.config import AlpacaConfig, derive_stream_url, is_paper_endpoint
from brokers.alpaca.errors import Classified, api_error_body, classify
from brokers.alpaca.mapping import (
    MalformedMessage,
    account_from,
    broker_order_from,
    position_from,
    report_from_update,
)
from brokers.alpaca.orders import LocalRefusal, order_request_for
from brokers.alpaca.stream import ObservedTradingStream, StreamWatch
from brokers.alpaca.transport import apply_timeout
from brokers.base import BrokerConfigError, BrokerError, BrokerUnavailable, ReportSink
from domain.broker import (
    BrokerHealth,
    BrokerInfo,
    BrokerOrder,
    BrokerReport,
    BrokerSnapshot,
    Outcome,
    ReportSource,
    RequestFailure,
    RequestKind,
)
from domain.orders import OrderStatus, SubmitOrder

__all__ = ["AlpacaBroker", "AlpacaConfig", "derive_stream_url", "is_paper_endpoint"]

log = logging.getLogger(__name__)

OPEN_ORDERS_LIMIT = 500  # Alpaca's largest page
_KEYS = "ALPACA_API_KEY / ALPACA_SECRET_KEY"


class AlpacaBroker:
    """The broker port over Alpaca. Construction does no I/O; it refuses (with
    BrokerConfigError) missing keys, a URL that is not http(s), and a real-money
    endpoint without `live`."""

    name = "alpaca"
    in_process = False  # a real broker: asked after each input, its answers are inputs

    def __init__(self, config: AlpacaConfig) -> None:
        if not config.api_key or not config.secret_key:
            raise BrokerConfigError(
                f"Alpaca needs both {_KEYS}: set them to the key id and secret of the account"
            )
        derive_stream_url(config.base_url)  # refuses a base URL that is not http(s)
        if not is_paper_endpoint(config.base_url) and not config.live:
            raise BrokerConfigError(
                f"ALPACA_BASE_URL={config.base_url} is not Alpaca's paper API and may trade "
                "real money: set TRADING_LIVE=true to trade it, or use "
                "https://paper-api.alpaca.markets"
            )
        self.config = config
        self._base_url = config.base_url.strip().rstrip("/")
        self._stream_url = config.stream_url.strip() or derive_stream_url(self._base_url)
        self._client = self._new_client()  # verify and snapshot, on the caller's thread
        self._client_lock = threading.Lock()
        self._account_number = ""
        self._state_lock = threading.Lock()
        self._reachable = True
        self._rest_detail = "no request yet"
        self._sink: ReportSink | None = None
        self._closed = threading.Event()
        self._lanes: list[_Lane] = []
        self._watch = StreamWatch(
            self._gap,
            grace_s=config.stream_grace_s,
            gap_interval_s=config.down_gap_interval_s,
        )
        self._stream: ObservedTradingStream | None = None
        self._stream_thread: threading.Thread | None = None
        self._watch_thread: threading.Thread | None = None

    # --- the port: lifecycle ------------------------------------------------------------

    def start(self, sink: ReportSink) -> None:
        if self._sink is not None:
            raise BrokerError("the Alpaca adapter is already started")
        if self._closed.is_set():
            raise BrokerError("the Alpaca adapter is closed")
        self._sink = sink
        self._lanes = [_Lane(i, self._new_client()) for i in range(max(1, self.config.workers))]
        self._watch.starting()
        self._start_stream()
        self._watch_thread = threading.Thread(
            target=self._watch_loop, name="alpaca-watch", daemon=True
        )
        self._watch_thread.start()

    def close(self) -> None:
        """Stop the stream, the watch and the lanes, within a few seconds. A request in
        flight is not waited for (it ends by its timeout) and its answer is dropped:
        once close has begun nothing new is delivered to the sink."""
        if self._closed.is_set():
            return
        self._closed.set()
        for lane in self._lanes:
            lane.executor.shutdown(wait=False, cancel_futures=True)
        stream, thread = self._stream, self._stream_thread
        if stream is not None:
            stream.stop_from_thread(timeout_s=2.0)
        if thread is not None:
            thread.join(timeout=3.0)
            if thread.is_alive():
                log.warning("Alpaca trade_updates thread did not stop within 3 s")
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=2.0)

    # --- the port: requests (return at once) ------------------------------------------

    def submit_order(self, order: SubmitOrder) -> None:
        self._enqueue(order.client_order_id, self._submit, order)

    def cancel_order(self, client_order_id: str, broker_order_id: str) -> None:
        self._enqueue(client_order_id, self._cancel, client_order_id, broker_order_id)

    def lookup_order(self, client_order_id: str) -> None:
        self._enqueue(client_order_id, self._lookup, client_order_id)

    # --- the port: blocking calls -------------------------------------------------------

    def verify(self) -> BrokerInfo:
        """Read the account once (start-up, before serving). Raises BrokerConfigError
        when Alpaca refuses the keys or the URL is not its Trading API, and
        BrokerUnavailable when it does not answer."""
        with self._client_lock:
            try:
                raw = self._client.get_account()
            except APIError as exc:
                self._note_rest(classify(exc, RequestKind.LOOKUP))
                raise self._verify_error(exc) from exc
            except Exception as exc:
                raise self._unavailable(exc, "did not answer") from exc
        self._note_ok()
        account = _mapping(raw, "the account")
        self._account_number = str(account.get("account_number") or account.get("id") or "")
        status = account.get("status")
        if status not in (None, "ACTIVE"):
            log.warning("Alpaca account %s is %s", self._account_number, status)
        for flag in ("trading_blocked", "account_blocked", "trade_suspended_by_user"):
            if account.get(flag) is True:
                log.warning("Alpaca account %s: %s", self._account_number, flag)
        return self.describe()

    def snapshot(self, open_client_ids: frozenset[str]) -> BrokerSnapshot:
        """The account, its positions, every open order, and each of `open_client_ids`
        Alpaca no longer lists as open (looked up one by one; absent when unknown).
        Raises BrokerUnavailable when any request fails."""
        with self._client_lock:
            try:
                raw_account = _mapping(self._client.get_account(), "the account")
                account = account_from(raw_account)
                if not self._account_number:  # verify() found Alpaca down at start-up
                    self._account_number = str(raw_account.get("account_number") or "")
                positions = tuple(
                    position_from(_mapping(p, "a position"))
                    for p in _sequence(self._client.get_all_positions(), "positions")
                )
                listed = _sequence(
                    self._client.get_orders(
                        GetOrdersRequest(
                            status=QueryOrderStatus.OPEN, limit=OPEN_ORDERS_LIMIT, nested=False
                        )
                    ),
                    "orders",
                )
                if len(listed) >= OPEN_ORDERS_LIMIT:
                    log.warning(
                        "Alpaca lists %d open orders, its page limit: older ones are not "
                        "in this sweep (the service's own are looked up one by one)",
                        len(listed),
                    )
                orders: dict[str, BrokerOrder] = {}
                for raw in listed:
                    try:
                        order = broker_order_from(_mapping(raw, "an order"))
                    except MalformedMessage as exc:
                        log.warning("Alpaca open order skipped in the sweep: %s", exc)
                        continue
                    orders[order.client_order_id] = order
                for client_order_id in sorted(open_client_ids - orders.keys()):
                    found = self._order_or_none(client_order_id)
                    if found is not None:
                        orders[client_order_id] = found
            except BrokerUnavailable:
                raise
            except MalformedMessage as exc:
                self._note_ok()
                raise BrokerUnavailable(
                    f"Alpaca's answer to the sweep could not be read: {exc}"
                ) from exc
            except Exception as exc:
                raise self._unavailable(exc, "sweep failed") from exc
        self._note_ok()
        return BrokerSnapshot(account, positions, tuple(orders.values()))

    def _unavailable(self, exc: Exception, what: str) -> BrokerUnavailable:
        """A blocking read that got no usable answer: noted for health, and said."""
        verdict = classify(exc, RequestKind.LOOKUP)
        self._note_rest(verdict)
        return BrokerUnavailable(
            f"Alpaca {what} at {self._base_url} ({verdict.code}: {verdict.message})"
        )

    def _order_or_none(self, client_order_id: str) -> BrokerOrder | None:
        try:
            raw = self._client.get_order_by_client_id(client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise
        return broker_order_from(_mapping(raw, "an order"))

    # --- the port: cheap views ----------------------------------------------------------

    def health(self) -> BrokerHealth:
        with self._state_lock:
            reachable, rest = self._reachable, self._rest_detail
        stream_ok, stream = self._watch.state()
        return BrokerHealth(
            reachable=reachable, stream_connected=stream_ok, detail=f"REST: {rest}; {stream}"
        )

    def describe(self) -> BrokerInfo:
        return BrokerInfo(
            name=self.name,
            endpoint=self._base_url,
            account=self._account_number,
            live=not is_paper_endpoint(self._base_url),
        )

    # --- the requests, on a lane ----------------------------------------------------------

    def _submit(self, client: TradingClient, order: SubmitOrder) -> None:
        kind = RequestKind.SUBMIT
        try:
            request = order_request_for(order)
        except LocalRefusal as refusal:
            log.info("order %s refused locally: %s", order.client_order_id, refusal.message)
            self._fail(order.client_order_id, kind, Outcome.REFUSED, refusal.code, refusal.message)
            return
        try:
            raw = client.submit_order(request)
        except Exception as exc:
            self._failed(order.client_order_id, kind, exc)
            return
        self._note_ok()
        try:
            accepted = broker_order_from(_mapping(raw, "the order"))
        except MalformedMessage as exc:
            # Alpaca answered 2xx: the order exists, but what it says is unreadable.
            self._fail(order.client_order_id, kind, Outcome.UNKNOWN, "unreadable", str(exc))
            return
        if accepted.client_order_id != order.client_order_id:
            log.warning(
                "Alpaca answered submit %s with order %s",
                order.client_order_id,
                accepted.client_order_id,
            )
        self._report(BrokerReport(accepted, ReportSource.SUBMIT, "accepted"))

    def _cancel(self, client: TradingClient, client_order_id: str, broker_order_id: str) -> None:
        kind = RequestKind.CANCEL
        known: BrokerOrder | None = None
        order_id = broker_order_id if _is_uuid(broker_order_id) else ""
        if not order_id:
            try:
                known = broker_order_from(
                    _mapping(client.get_order_by_client_id(client_order_id), "the order")
                )
            except MalformedMessage as exc:
                self._fail(client_order_id, kind, Outcome.UNKNOWN, "unreadable", str(exc))
                return
            except Exception as exc:
                self._failed(client_order_id, kind, exc)
                return
            self._note_ok()
            if known.status.is_terminal:
                self._report(BrokerReport(known, ReportSource.CANCEL, known.broker_status))
                return
            order_id = known.broker_order_id
        try:
            client.cancel_order_by_id(order_id)
        except Exception as exc:
            self._failed(client_order_id, kind, exc)
            return
        self._note_ok()
        # 204: Alpaca took the request; "canceled" comes on the stream. Read the order
        # back so the report carries its current fills.
        current = known
        try:
            current = broker_order_from(_mapping(client.get_order_by_id(order_id), "the order"))
            self._note_ok()
        except Exception as exc:
            log.info("order %s not read back after its cancel: %s", client_order_id, exc)
        if current is None:
            self._fail(
                client_order_id,
                kind,
                Outcome.UNKNOWN,
                "cancel-unconfirmed",
                "Alpaca took the cancel (204) but the order could not be read back",
            )
            return
        if current.status.is_terminal or current.status is OrderStatus.PENDING_CANCEL:
            event = current.broker_status
        else:
            current = replace(current, status=OrderStatus.PENDING_CANCEL)
            event = "pending_cancel"
        self._report(BrokerReport(current, ReportSource.CANCEL, event or "pending_cancel"))

    def _lookup(self, client: TradingClient, client_order_id: str) -> None:
        kind = RequestKind.LOOKUP
        try:
            raw = client.get_order_by_client_id(client_order_id)
        except Exception as exc:
            self._failed(client_order_id, kind, exc)
            return
        self._note_ok()
        try:
            found = broker_order_from(_mapping(raw, "the order"))
        except MalformedMessage as exc:
            self._fail(client_order_id, kind, Outcome.UNKNOWN, "unreadable", str(exc))
            return
        self._report(BrokerReport(found, ReportSource.LOOKUP, found.broker_status))

    # --- the stream -------------------------------------------------------------------------

    def _start_stream(self) -> None:
        if self._closed.is_set():
            return
        stream = ObservedTradingStream(
            self.config.api_key,
            self.config.secret_key,
            url=self._stream_url,
            watch=self._watch,
            open_timeout_s=self.config.request_timeout_s,
        )
        stream.subscribe_trade_updates(self._on_trade_update)
        thread = threading.Thread(target=self._run_stream, args=(stream,), name="alpaca-stream")
        thread.daemon = True
        self._stream, self._stream_thread = stream, thread
        thread.start()

    def _run_stream(self, stream: ObservedTradingStream) -> None:
        try:
            stream.run()
        except Exception:
            log.exception("Alpaca trade_updates loop ended")
        finally:
            self._watch.disconnected("stream thread ended")

    async def _on_trade_update(self, message: Any) -> None:
        report = report_from_update(message) if isinstance(message, Mapping) else None
        if report is None:
            self._gap("a trade update could not be read")
            return
        self._report(report)

    def _watch_loop(self) -> None:
        while not self._closed.wait(min(1.0, self.config.down_gap_interval_s)):
            try:
                self._watch.tick()
                thread = self._stream_thread
                if thread is not None and not thread.is_alive() and not self._closed.is_set():
                    log.error("Alpaca trade_updates thread died: starting a new one")
                    self._start_stream()
            except Exception:
                log.exception("Alpaca watch failed")

    # --- delivery -----------------------------------------------------------------------------

    def _enqueue(self, client_order_id: str, work: Callable[..., None], *args: Any) -> None:
        if self._closed.is_set():
            log.info("Alpaca adapter closed: request about %s ignored", client_order_id)
            return
        if not self._lanes:
            raise BrokerError("the Alpaca adapter is not started")
        lane = self._lanes[zlib.crc32(client_order_id.encode()) % len(self._lanes)]
        try:
            lane.executor.submit(self._guarded, work, lane.client, *args)
        except RuntimeError:  # shut down meanwhile
            log.info("Alpaca adapter closed: request about %s ignored", client_order_id)

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        if self._closed.is_set():
            return
        try:
            work(*args)
        except Exception:
            log.exception("Alpaca request failed unexpectedly")

    def _report(self, report: BrokerReport) -> None:
        sink = self._sink
        if sink is None or self._closed.is_set():
            return
        try:
            sink.on_report(report)
        except Exception:
            log.exception("report sink failed on %s", report.client_order_id)

    def _fail(
        self, client_order_id: str, kind: RequestKind, outcome: Outcome, code: str, message: str
    ) -> None:
        sink = self._sink
        if sink is None or self._closed.is_set():
            return
        try:
            sink.on_failure(RequestFailure(client_order_id, kind, outcome, code, message))
        except Exception:
            log.exception("report sink failed on %s", client_order_id)

    def _failed(self, client_order_id: str, kind: RequestKind, exc: Exception) -> None:
        verdict = classify(exc, kind)
        self._note_rest(verdict)
        log.log(
            logging.INFO if verdict.outcome is not Outcome.UNKNOWN else logging.WARNING,
            "Alpaca %s of %s: %s %s (%s)",
            kind.value.lower(),
            client_order_id,
            verdict.outcome.value,
            verdict.code,
            verdict.message,
        )
        self._fail(client_order_id, kind, verdict.outcome, verdict.code, verdict.message)

    def _gap(self, reason: str) -> None:
        sink = self._sink
        if sink is None or self._closed.is_set():
            return
        try:
            sink.on_gap(reason)
        except Exception:
            log.exception("report sink failed on a gap")

    # --- helpers ----------------------------------------------------------------------------

    def _new_client(self) -> TradingClient:
        client = TradingClient(
            self.config.api_key,
            self.config.secret_key,
            raw_data=True,
            url_override=self._base_url,
        )
        apply_timeout(client, self.config.request_timeout_s)
        return client

    def _note_ok(self) -> None:
        with self._state_lock:
            self._reachable = True
            self._rest_detail = "answering"

    def _note_rest(self, verdict: Classified) -> None:
        with self._state_lock:
            self._reachable = verdict.answered
            self._rest_detail = (
                "answering" if verdict.answered else f"{verdict.code}: {verdict.message}"
            )

    def _verify_error(self, exc: APIError) -> BrokerError:
        status = exc.status_code
        _, message = api_error_body(exc)
        said = message.rstrip(".") or "refused"
        if status in (401, 403):
            return BrokerConfigError(
                f"Alpaca refused the credentials in {_KEYS} ({status} {said}) at {self._base_url}"
            )
        if status == 404:
            return BrokerConfigError(
                f"ALPACA_BASE_URL={self._base_url} answered 404 for /v2/account: "
                "it is not an Alpaca Trading API (https://paper-api.alpaca.markets)"
            )
        return BrokerUnavailable(
            f"Alpaca did not answer at {self._base_url} (http-{status}: {said})"
        )


class _Lane:
    """One REST worker: a single thread and the client it alone uses."""

    def __init__(self, index: int, client: TradingClient) -> None:
        self.client = client
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"alpaca-rest-{index}")


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedMessage(f"{what} is not a JSON object")
    return value


def _sequence(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedMessage(f"{what} is not a JSON array")
    return value
