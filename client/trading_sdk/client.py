"""Typed Python SDK for the trading service: `TradingClient` (sync), `AsyncTradingClient` (asyncio).

Both are thin layers over the generated ``TradingServiceStub``: one method per
RPC, named in snake case, returning the generated response message, so every
field (page tokens included) is visible and typed. Server streams come back as
iterators that can be cancelled; the market-data client stream takes batches.

    with TradingClient("127.0.0.1:50051", token) as client:
        print(client.get_status().trading.state)
        for event in client.subscribe_events(from_seq=1):
            ...

Errors: a call the service answers with a non-OK status raises
``grpc.RpcError`` (``grpc.aio.AioRpcError`` from the async client), with the
status in ``error.code()`` and the service's explanation in
``error.details()``; ``error_info(error)`` gives the attached
``google.rpc.ErrorInfo`` (a stable ``reason`` and its facts). Errors are not
translated: a caller that can act on a code sees it unchanged.

Retries: reads (GetStatus, the List and Get calls, CheckOrder, VerifyAudit)
that meet UNAVAILABLE are retried by gRPC's own retry policy, up to 3 attempts
with backoff, within their deadline (client/trading_sdk/retries.py). Nothing that changes
anything is retried: SubmitOrder has no idempotency key.

Defaults from the environment: ``target`` from TRADING_TARGET (else
127.0.0.1:50051), ``token`` from TRADING_API_KEY, TLS from TRADING_TLS*.

Deadlines: unary calls get ``timeout`` seconds (``None``: no deadline).
Streaming calls have none, because they last as long as their data; stop a
server stream with its ``cancel()`` (or leave its ``with`` block).

The bearer token rides as per-call metadata rather than in a channel
interceptor, so it works the same on a channel the caller built (an
``aio`` channel takes interceptors only when it is created).

TLS: ``TradingClient(target, token, ca_file="ca.pem")``, with ``cert_file``
and ``key_file`` for mutual TLS; the TRADING_TLS* variables give what is not
passed (client/trading_sdk/tls.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Final,
    Generic,
    Literal,
    Protocol,
    Self,
    TypeAlias,
    TypedDict,
    TypeVar,
    Unpack,
)

import grpc
import grpc.aio
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from trading_sdk.retries import retry_options
from trading_sdk.tls import ClientTLS, PathArg, open_aio_channel, open_channel, resolve_tls
from trading_sdk.v1 import (
    advisor_pb2,
    audit_pb2,
    events_pb2,
    market_pb2,
    orders_pb2,
    risk_pb2,
    trading_service_pb2_grpc,
)
from trading_sdk.v1 import trading_service_pb2 as pb

if TYPE_CHECKING:
    # numpy and pandas take long to import: the columnar methods import them (via
    # trading_sdk.columnar) when first called, never the SDK itself.
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "Amount",
    "AsyncServerStream",
    "AsyncTradingClient",
    "AuditFilters",
    "CauseName",
    "LimitValue",
    "MarketBatch",
    "OrderTypeName",
    "ServerStream",
    "SideName",
    "StateName",
    "TradingClient",
    "error_info",
    "market_event",
]

DEFAULT_TIMEOUT: Final = 10.0
MAX_TICKS_PER_MESSAGE: Final = 100_000
"""The contract's limit on the ticks of one StreamMarketData message."""
DEFAULT_CHUNK: Final = 10_000
"""Ticks per message of stream_arrays and stream_frame, unless told otherwise."""

# What stream_market_data takes per message: a ready request, or the events of one batch.
MarketBatch: TypeAlias = Sequence[market_pb2.MarketEvent] | pb.StreamMarketDataRequest

# A quantity or a price: sent as decimal text, never through a float.
Amount: TypeAlias = Decimal | str | int
# A risk limit's new value (update_risk_limits): decimal text, an integer, a
# boolean, or a duration (sent in seconds).
LimitValue: TypeAlias = str | int | Decimal | timedelta
# The enums' names the SDK takes besides their generated values (any letter case).
SideName: TypeAlias = Literal["buy", "sell"]
StateName: TypeAlias = Literal["active", "reducing", "halted"]
CauseName: TypeAlias = Literal["operator", "daily_loss_breaker"]
OrderTypeName: TypeAlias = Literal["market", "limit"]

_T = TypeVar("_T")
_V = TypeVar("_V")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The google.rpc.ErrorInfo the service attached to an error, or None.

    Its `reason` is a stable code (e.g. MARKET_DATA_MESSAGE_REFUSED) and its
    `metadata` the facts behind it (e.g. accepted_messages, event_index), so a
    program can act on an error without parsing its message.
    """
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def market_event(
    symbol: str,
    price: float | Decimal,
    volume: float | Decimal | None = None,
    timestamp: datetime | None = None,
) -> market_pb2.MarketEvent:
    """A MarketEvent; `timestamp` must be timezone-aware (None: the service's "now").

    The service validates symbol, price and volume; this only converts. A naive
    datetime raises ValueError rather than being guessed to be UTC or local time.
    """
    event = market_pb2.MarketEvent(symbol=symbol, price=float(price))
    if volume is not None:
        event.volume = float(volume)
    if timestamp is not None:
        event.timestamp.CopyFrom(_timestamp(timestamp))
    return event


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give it a timezone, e.g. UTC")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class AuditFilters(TypedDict, total=False):
    """Filters of query_audit; every one left out is unbounded."""

    from_seq: int
    to_seq: int
    since: datetime
    until: datetime
    # Event class names, e.g. "RiskDecisionMade".
    event_types: Iterable[str]
    symbol: str
    order_id: str
    idea_id: str


# Request builders, shared by both clients so that each method is one line of transport.


def _risk_status_request(recent_decisions: int) -> pb.GetRiskStatusRequest:
    return pb.GetRiskStatusRequest(recent_decisions=recent_decisions)


def _active_orders_request(
    symbol: str, page_size: int, page_token: str
) -> pb.ListActiveOrdersRequest:
    return pb.ListActiveOrdersRequest(symbol=symbol, page_size=page_size, page_token=page_token)


def _order_history_request(
    symbol: str, page_size: int, page_token: str
) -> pb.ListOrderHistoryRequest:
    return pb.ListOrderHistoryRequest(symbol=symbol, page_size=page_size, page_token=page_token)


def _simulate_request(
    symbol: str, price: float | Decimal, volume: float | Decimal | None, timestamp: datetime | None
) -> pb.SimulateMarketEventRequest:
    return pb.SimulateMarketEventRequest(event=market_event(symbol, price, volume, timestamp))


def _subscribe_request(
    types: Iterable[events_pb2.EventType.ValueType], symbols: Iterable[str], from_seq: int
) -> pb.SubscribeEventsRequest:
    return pb.SubscribeEventsRequest(types=types, symbols=symbols, from_seq=from_seq)


def _audit_request(filters: AuditFilters) -> pb.QueryAuditRequest:
    request = pb.QueryAuditRequest(
        from_seq=filters.get("from_seq", 0),
        to_seq=filters.get("to_seq", 0),
        event_types=filters.get("event_types", ()),
        symbol=filters.get("symbol", ""),
        order_id=filters.get("order_id", ""),
        idea_id=filters.get("idea_id", ""),
    )
    if "since" in filters:
        request.since.CopyFrom(_timestamp(filters["since"]))
    if "until" in filters:
        request.until.CopyFrom(_timestamp(filters["until"]))
    return request


def _analyze_request(
    symbols: Iterable[str], question: str, kind: advisor_pb2.AnalysisKind.ValueType
) -> pb.AnalyzeRequest:
    return pb.AnalyzeRequest(symbols=symbols, question=question, kind=kind)


def _list_ideas_request(
    state: advisor_pb2.IdeaState.ValueType, page_size: int, page_token: str
) -> pb.ListIdeasRequest:
    return pb.ListIdeasRequest(state=state, page_size=page_size, page_token=page_token)


def _decide_idea_request(
    idea_id: str, decision: advisor_pb2.IdeaDecision.ValueType, reason: str
) -> pb.DecideIdeaRequest:
    return pb.DecideIdeaRequest(idea_id=idea_id, decision=decision, reason=reason)


_SIDES: Final[Mapping[str, orders_pb2.Side.ValueType]] = {
    "buy": orders_pb2.SIDE_BUY,
    "sell": orders_pb2.SIDE_SELL,
}
_STATES: Final[Mapping[str, risk_pb2.TradingState.ValueType]] = {
    "active": risk_pb2.TRADING_STATE_ACTIVE,
    "reducing": risk_pb2.TRADING_STATE_REDUCING,
    "halted": risk_pb2.TRADING_STATE_HALTED,
}
_CAUSES: Final[Mapping[str, risk_pb2.TradingCause.ValueType]] = {
    "operator": risk_pb2.TRADING_CAUSE_OPERATOR,
    "daily_loss_breaker": risk_pb2.TRADING_CAUSE_DAILY_LOSS_BREAKER,
}
_ORDER_TYPES: Final[Mapping[str, orders_pb2.OrderType.ValueType]] = {
    "market": orders_pb2.ORDER_TYPE_MARKET,
    "limit": orders_pb2.ORDER_TYPE_LIMIT,
}
TIMES_IN_FORCE: Final[Mapping[str, orders_pb2.TimeInForce.ValueType]] = {
    "day": orders_pb2.TIME_IN_FORCE_DAY,
    "gtc": orders_pb2.TIME_IN_FORCE_GTC,
    "ioc": orders_pb2.TIME_IN_FORCE_IOC,
    "fok": orders_pb2.TIME_IN_FORCE_FOK,
    "opg": orders_pb2.TIME_IN_FORCE_OPG,
    "cls": orders_pb2.TIME_IN_FORCE_CLS,
}


def _named(value: _V | str, names: Mapping[str, _V], what: str) -> _V:
    """A generated enum value as given, or the one a name ("buy", "HALTED") stands for."""
    if not isinstance(value, str):
        return value
    key = value.lower()
    if key not in names:
        raise ValueError(f"unknown {what} {value!r}: one of {', '.join(names)}")
    return names[key]


def _decimal_text(value: Amount | None, what: str) -> str:
    """Decimal text as the service reads it ("10", "450.25"); "" for None.

    A float is refused: its binary value is not the decimal a person typed.
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"{what} must be a Decimal, str or int, not {type(value).__name__}")
    if isinstance(value, Decimal):
        return format(value, "f")  # plain digits: Decimal("1E+1") is "10"
    return str(value)


def _limit_text(key: str, value: LimitValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        seconds = Decimal(value // timedelta(microseconds=1)).scaleb(-6)
        return format(seconds.normalize(), "f")
    return _decimal_text(value, f"limit {key}")


def _set_trading_state_request(
    state: risk_pb2.TradingState.ValueType | StateName,
    reason: str,
    cause: risk_pb2.TradingCause.ValueType | CauseName | None,
) -> pb.SetTradingStateRequest:
    return pb.SetTradingStateRequest(
        state=_named(state, _STATES, "trading state"),
        reason=reason,
        cause=risk_pb2.TRADING_CAUSE_UNSPECIFIED
        if cause is None
        else _named(cause, _CAUSES, "trading cause"),
    )


def _update_risk_limits_request(
    limits: Mapping[str, LimitValue], reason: str
) -> pb.UpdateRiskLimitsRequest:
    texts = {key: _limit_text(key, value) for key, value in limits.items()}
    return pb.UpdateRiskLimitsRequest(limits=texts, reason=reason)


def _check_order_request(
    symbol: str,
    side: orders_pb2.Side.ValueType | SideName,
    quantity: Amount,
    limit_price: Amount | None,
) -> pb.CheckOrderRequest:
    return pb.CheckOrderRequest(
        symbol=symbol,
        side=_named(side, _SIDES, "side"),
        quantity=_decimal_text(quantity, "quantity"),
        limit_price=_decimal_text(limit_price, "limit_price"),
    )


def _submit_order_request(
    symbol: str,
    side: orders_pb2.Side.ValueType | SideName,
    quantity: Amount | None,
    limit_price: Amount | None,
    order_type: orders_pb2.OrderType.ValueType | OrderTypeName | None,
    reason: str,
    time_in_force: orders_pb2.TimeInForce.ValueType | str | None = None,
    notional: Amount | None = None,
) -> pb.SubmitOrderRequest:
    if order_type is None:
        kind = orders_pb2.ORDER_TYPE_MARKET if limit_price is None else orders_pb2.ORDER_TYPE_LIMIT
    else:
        kind = _named(order_type, _ORDER_TYPES, "order type")
    return pb.SubmitOrderRequest(
        symbol=symbol,
        side=_named(side, _SIDES, "side"),
        quantity=_decimal_text(quantity, "quantity"),
        type=kind,
        limit_price=_decimal_text(limit_price, "limit_price"),
        reason=reason,
        notional=_decimal_text(notional, "notional"),
        time_in_force=(
            orders_pb2.TIME_IN_FORCE_UNSPECIFIED
            if time_in_force is None
            else _named(time_in_force, TIMES_IN_FORCE, "time in force")
        ),
    )


def _market_request(batch: MarketBatch) -> pb.StreamMarketDataRequest:
    if isinstance(batch, pb.StreamMarketDataRequest):
        return batch
    return pb.StreamMarketDataRequest(events=batch)


class _Numbering:
    """Names the messages of one stream with `feed_id` and numbers them from `first`:
    a request the caller numbered keeps its number (and the next follows it); a
    request the caller built is copied, never changed."""

    def __init__(self, feed_id: str, first: int) -> None:
        if first < 1:
            raise ValueError(f"first_sequence must be at least 1, got {first}")
        self._feed_id = feed_id
        self._next = first

    def __call__(self, batch: MarketBatch) -> pb.StreamMarketDataRequest:
        if isinstance(batch, pb.StreamMarketDataRequest):
            if batch.sequence:
                self._next = batch.sequence + 1
                if batch.feed_id:
                    return batch
            request = pb.StreamMarketDataRequest()
            request.CopyFrom(batch)
        else:
            request = pb.StreamMarketDataRequest(events=batch)
        if not request.feed_id:
            request.feed_id = self._feed_id
        if not request.sequence:
            request.sequence = self._next
            self._next += 1
        return request


def _market_requests(
    batches: Iterable[MarketBatch], feed_id: str | None, first_sequence: int
) -> Iterator[pb.StreamMarketDataRequest]:
    if not feed_id:
        return map(_market_request, batches)
    return map(_Numbering(feed_id, first_sequence), batches)


def _async_market_requests(
    batches: Iterable[MarketBatch] | AsyncIterable[MarketBatch],
    feed_id: str | None = None,
    first_sequence: int = 1,
) -> Iterator[pb.StreamMarketDataRequest] | AsyncIterator[pb.StreamMarketDataRequest]:
    # grpc.aio takes a sync or an async iterator; keep either lazy, so a long file
    # streams without being held in memory twice.
    if isinstance(batches, AsyncIterable):
        request = _Numbering(feed_id, first_sequence) if feed_id else _market_request
        return (request(batch) async for batch in batches)
    return _market_requests(batches, feed_id, first_sequence)


def _event(response: pb.SubscribeEventsResponse) -> events_pb2.Event:
    return response.event


def _record(response: pb.QueryAuditResponse) -> audit_pb2.AuditRecord:
    return response.record


# ---------------------------------------------------------------------------
# Server streams
# ---------------------------------------------------------------------------


class _SyncCall(Protocol[_R_co]):
    def __iter__(self) -> Iterator[_R_co]: ...
    def cancel(self) -> bool: ...


class _AsyncCall(Protocol[_R_co]):
    def __aiter__(self) -> AsyncIterator[_R_co]: ...
    def cancel(self) -> bool: ...


def _cancelled(error: grpc.RpcError) -> bool:
    return bool(error.code() == grpc.StatusCode.CANCELLED)


class ServerStream(Generic[_T]):
    """The items of a server-streaming call as they arrive.

    ``cancel()`` (safe from another thread) ends the call; iteration then stops
    quietly instead of raising CANCELLED. Any other failure raises grpc.RpcError.
    Leaving a ``with`` block cancels too.
    """

    def __init__(self, call: _SyncCall[_R], unwrap: Callable[[_R], _T]) -> None:
        self._call = call
        self._items = map(unwrap, call)
        self._cancel_requested = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> _T:
        try:
            return next(self._items)
        except grpc.RpcError as error:
            if self._cancel_requested and _cancelled(error):
                raise StopIteration from None
            raise

    def cancel(self) -> None:
        """End the call; items already received stay received."""
        self._cancel_requested = True
        self._call.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


class AsyncServerStream(Generic[_T]):
    """The asyncio twin of ServerStream: ``async for``, ``cancel()``, ``async with``."""

    def __init__(self, call: _AsyncCall[_R], unwrap: Callable[[_R], _T]) -> None:
        responses = call.__aiter__()

        async def next_item() -> _T:
            return unwrap(await anext(responses))

        self._call = call
        self._next_item = next_item
        self._cancel_requested = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> _T:
        try:
            return await self._next_item()
        except grpc.RpcError as error:
            if self._cancel_requested and _cancelled(error):
                raise StopAsyncIteration from None
            raise
        except asyncio.CancelledError:
            # grpc.aio reports a locally cancelled call as CancelledError; swallow it
            # only when cancel() asked for it and this task itself is not being cancelled.
            task = asyncio.current_task()
            if self._cancel_requested and (task is None or not task.cancelling()):
                raise StopAsyncIteration from None
            raise

    def cancel(self) -> None:
        """End the call; items already received stay received."""
        self._cancel_requested = True
        self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------


class _CallOptions(TypedDict):
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]


DEFAULT_TARGET: Final = "127.0.0.1:50051"


def _target(target: str | None) -> str:
    return target or os.environ.get("TRADING_TARGET", "") or DEFAULT_TARGET


class _CallSettings:
    """The call options both clients send: the bearer token, and deadlines."""

    def __init__(self, token: str | None, timeout: float | None) -> None:
        token = token if token is not None else os.environ.get("TRADING_API_KEY", "")
        if not token:
            raise ValueError(
                "no token: pass token= or set TRADING_API_KEY (every call needs an API key)"
            )
        metadata = (("authorization", f"Bearer {token}"),)
        self._unary: _CallOptions = {"timeout": timeout, "metadata": metadata}
        self._streaming: _CallOptions = {"timeout": None, "metadata": metadata}


def _own_channel_tls(
    channel: object,
    tls: bool | None,
    ca_file: PathArg | None,
    cert_file: PathArg | None,
    key_file: PathArg | None,
    server_name: str | None,
) -> ClientTLS | None:
    """The TLS of the channel a client creates (client/trading_sdk/tls.py, which also reads the
    TRADING_TLS* variables); a channel passed in has its own credentials."""
    if channel is None:
        return resolve_tls(tls, ca_file, cert_file, key_file, server_name)
    if tls is not None or any(v is not None for v in (ca_file, cert_file, key_file, server_name)):
        raise ValueError("TLS options are for the channel the client creates, not one passed in")
    return None


class TradingClient(_CallSettings):
    """Blocking client. Use as a context manager, or call close().

    TLS: `tls=True` (gRPC's default roots), or `ca_file` to trust; `cert_file` and
    `key_file` for mutual TLS; `server_name` to check in the server's certificate
    instead of the target's host. Each one not given is read from the environment
    (TRADING_TLS=yes, TRADING_TLS_CA, TRADING_TLS_CLIENT_CERT, TRADING_TLS_CLIENT_KEY,
    TRADING_TLS_SERVER_NAME; see client/trading_sdk/tls.py); with none, plaintext.

    `channel`: a channel you built (credentials, options); then `target` and the
    TLS options are not used and the channel stays yours to close.
    """

    def __init__(
        self,
        target: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
        tls: bool | None = None,
        ca_file: PathArg | None = None,
        cert_file: PathArg | None = None,
        key_file: PathArg | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(token, timeout)
        security = _own_channel_tls(channel, tls, ca_file, cert_file, key_file, server_name)
        self._owns_channel = channel is None
        self._channel = (
            open_channel(_target(target), security, retry_options()) if channel is None else channel
        )
        self._stub = trading_service_pb2_grpc.TradingServiceStub(self._channel)

    def close(self) -> None:
        """Close the channel if this client created it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def get_status(self) -> pb.GetStatusResponse:
        """Health of each component, the trading state and counters."""
        return self._stub.GetStatus(pb.GetStatusRequest(), **self._unary)

    def list_strategies(self) -> pb.ListStrategiesResponse:
        return self._stub.ListStrategies(pb.ListStrategiesRequest(), **self._unary)

    def activate_strategy(self, name: str) -> pb.ActivateStrategyResponse:
        """Raises NOT_FOUND for an unknown name."""
        request = pb.ActivateStrategyRequest(name=name)
        return self._stub.ActivateStrategy(request, **self._unary)

    def deactivate_strategy(self, name: str) -> pb.DeactivateStrategyResponse:
        request = pb.DeactivateStrategyRequest(name=name)
        return self._stub.DeactivateStrategy(request, **self._unary)

    def get_risk_status(self, recent_decisions: int = 0) -> pb.GetRiskStatusResponse:
        """The risk gate's rules and totals, with up to `recent_decisions` (<= 1000) decisions."""
        request = _risk_status_request(recent_decisions)
        return self._stub.GetRiskStatus(request, **self._unary)

    def activate_risk(self, reason: str = "") -> pb.ActivateRiskResponse:
        request = pb.ActivateRiskRequest(reason=reason)
        return self._stub.ActivateRisk(request, **self._unary)

    def deactivate_risk(self, reason: str) -> pb.DeactivateRiskResponse:
        """Halt trading: every new signal is rejected. It never bypasses the gate."""
        request = pb.DeactivateRiskRequest(reason=reason)
        return self._stub.DeactivateRisk(request, **self._unary)

    def set_trading_state(
        self,
        state: risk_pb2.TradingState.ValueType | StateName,
        reason: str = "",
        *,
        cause: risk_pb2.TradingCause.ValueType | CauseName | None = None,
    ) -> pb.SetTradingStateResponse:
        """Set the operator's trading state (a reason is required for REDUCING and HALTED).

        `cause="daily_loss_breaker"` with state "active" resets the daily loss
        breaker. Setting what is already in force changes nothing: the answer
        has `changed` false and a `message` saying who set it and when.
        """
        request = _set_trading_state_request(state, reason, cause)
        return self._stub.SetTradingState(request, **self._unary)

    def flatten(self, reason: str = "") -> pb.FlattenResponse:
        """The kill switch: halt, cancel every working order, close every position.

        The closing orders are market orders through the risk gate; the answer
        lists what was cancelled, each closing decision and each order placed.
        """
        return self._stub.Flatten(pb.FlattenRequest(reason=reason), **self._unary)

    def update_risk_limits(
        self, limits: Mapping[str, LimitValue], reason: str = ""
    ) -> pb.UpdateRiskLimitsResponse:
        """Replace some risk limits (keys as in `get_risk_status().limits`), all or none.

        Values go as text: decimals and integers as digits, booleans as
        true/false, durations in seconds. INVALID_ARGUMENT names every bad one.
        """
        request = _update_risk_limits_request(limits, reason)
        return self._stub.UpdateRiskLimits(request, **self._unary)

    def check_order(
        self,
        symbol: str,
        side: orders_pb2.Side.ValueType | SideName,
        quantity: Amount,
        *,
        limit_price: Amount | None = None,
    ) -> pb.CheckOrderResponse:
        """Every rule's verdict on this order as the gate would judge it now; no side effect."""
        request = _check_order_request(symbol, side, quantity, limit_price)
        return self._stub.CheckOrder(request, **self._unary)

    def submit_order(
        self,
        symbol: str,
        side: orders_pb2.Side.ValueType | SideName,
        quantity: Amount | None = None,
        *,
        limit_price: Amount | None = None,
        order_type: orders_pb2.OrderType.ValueType | OrderTypeName | None = None,
        reason: str = "",
        time_in_force: orders_pb2.TimeInForce.ValueType | str | None = None,
        notional: Amount | None = None,
    ) -> pb.SubmitOrderResponse:
        """Place an order as this client's principal, through the same risk gate as any signal.

        A `limit_price` makes it a LIMIT order unless `order_type` says
        otherwise; none makes it MARKET. `time_in_force` ("day", "gtc", "ioc",
        "fok", "opg", "cls"; default DAY). `notional` instead of a quantity: a
        market DAY order for that much money. The answer has the risk decision and,
        when it was approved, the order as it is by then (with a real broker,
        usually NEW or SUBMITTED: its acknowledgement and fills follow as events).
        """
        request = _submit_order_request(
            symbol, side, quantity, limit_price, order_type, reason, time_in_force, notional
        )
        return self._stub.SubmitOrder(request, **self._unary)

    def get_execution_status(self) -> pb.GetExecutionStatusResponse:
        request = pb.GetExecutionStatusRequest()
        return self._stub.GetExecutionStatus(request, **self._unary)

    def list_active_orders(
        self, symbol: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListActiveOrdersResponse:
        """One page of open orders; pass `next_page_token` back for the next."""
        request = _active_orders_request(symbol, page_size, page_token)
        return self._stub.ListActiveOrders(request, **self._unary)

    def list_order_history(
        self, symbol: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListOrderHistoryResponse:
        """One page of all orders, oldest first; pass `next_page_token` back for the next."""
        request = _order_history_request(symbol, page_size, page_token)
        return self._stub.ListOrderHistory(request, **self._unary)

    def cancel_order(self, order_id: str) -> pb.CancelOrderResponse:
        """Works while trading is halted too."""
        request = pb.CancelOrderRequest(order_id=order_id)
        return self._stub.CancelOrder(request, **self._unary)

    def get_account(self) -> pb.GetAccountResponse:
        return self._stub.GetAccount(pb.GetAccountRequest(), **self._unary)

    def list_positions(self) -> pb.ListPositionsResponse:
        return self._stub.ListPositions(pb.ListPositionsRequest(), **self._unary)

    def stream_market_data(
        self,
        batches: Iterable[MarketBatch],
        *,
        feed_id: str | None = None,
        first_sequence: int = 1,
    ) -> pb.StreamMarketDataResponse:
        """Send each batch as one message, lazily; each is accepted or refused whole.

        A refused batch ends the call with INVALID_ARGUMENT; the batches before
        it stay accepted (the error's details say how many).

        `feed_id` makes the stream exactly once: the messages are named with it
        and numbered `first_sequence`, +1, ... (a `StreamMarketDataRequest` that
        carries its own sequence keeps it, and numbering goes on from there). The
        service drops a message whose number it already accepted for that feed,
        so after UNAVAILABLE the same batches can simply be sent again with the
        same feed id; the summary counts `duplicates_dropped` and gives the
        `last_sequence` accepted.
        """
        requests = _market_requests(batches, feed_id, first_sequence)
        return self._stub.StreamMarketData(requests, **self._streaming)

    def stream_arrays(
        self,
        symbol: str,
        timestamps_ns: npt.ArrayLike,
        prices: npt.ArrayLike,
        volumes: npt.ArrayLike | None = None,
        *,
        chunk: int = DEFAULT_CHUNK,
        feed_id: str | None = None,
        first_sequence: int = 1,
    ) -> pb.StreamMarketDataResponse:
        """Stream one symbol's ticks from arrays, in the columnar form: one
        `SymbolSeries` of `chunk` ticks (1 to 100,000) per message, built as the
        stream pulls it.

        `timestamps_ns`: integer nanoseconds since the epoch, or datetime64 (naive
        is UTC); 0 or NaT means no timestamp. `prices` and `volumes` (None: every
        volume 0): numbers, one per tick. The arrays are checked and converted
        before anything is sent (ValueError, TypeError). Then as
        stream_market_data: each message is accepted or refused whole (the error
        names the series, the tick's index in it and its `event_index`), and
        `feed_id` makes the stream exactly once.
        """
        from trading_sdk import columnar

        requests = columnar.array_requests(symbol, timestamps_ns, prices, volumes, chunk=chunk)
        return self.stream_market_data(requests, feed_id=feed_id, first_sequence=first_sequence)

    def stream_frame(
        self,
        frame: pd.DataFrame,
        *,
        columns: Mapping[str, Hashable] | None = None,
        symbol: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        feed_id: str | None = None,
        first_sequence: int = 1,
    ) -> pb.StreamMarketDataResponse:
        """Stream a pandas DataFrame's rows, in its order, in the columnar form:
        `chunk` rows (1 to 100,000) per message, each run of consecutive rows of
        one symbol a `SymbolSeries`, built as the stream pulls them.

        Columns, by name in any letter case: ``symbol`` (or pass `symbol` for a
        frame of one), ``timestamp`` (datetime64, tz-aware or naive UTC, or
        integer ns; else a DatetimeIndex), ``price``, and optionally ``volume``.
        `columns` maps a role to another column: ``{"price": "Close"}``. See
        trading_sdk.columnar.frame_requests; otherwise as stream_arrays.
        """
        from trading_sdk import columnar

        requests = columnar.frame_requests(frame, columns=columns, symbol=symbol, chunk=chunk)
        return self.stream_market_data(requests, feed_id=feed_id, first_sequence=first_sequence)

    def simulate_market_event(
        self,
        symbol: str,
        price: float | Decimal,
        volume: float | Decimal | None = None,
        timestamp: datetime | None = None,
    ) -> pb.SimulateMarketEventResponse:
        """One market event, answered with the signals, decisions and orders it caused."""
        request = _simulate_request(symbol, price, volume, timestamp)
        return self._stub.SimulateMarketEvent(request, **self._unary)

    def subscribe_events(
        self,
        types: Iterable[events_pb2.EventType.ValueType] = (),
        symbols: Iterable[str] = (),
        from_seq: int = 0,
    ) -> ServerStream[events_pb2.Event]:
        """Live events (all but market data unless `types` says), replayed from `from_seq` first."""
        request = _subscribe_request(types, symbols, from_seq)
        return ServerStream(self._stub.SubscribeEvents(request, **self._streaming), _event)

    def query_audit(self, **filters: Unpack[AuditFilters]) -> ServerStream[audit_pb2.AuditRecord]:
        """The audit records matching every filter given, in seq order."""
        request = _audit_request(filters)
        return ServerStream(self._stub.QueryAudit(request, **self._streaming), _record)

    def verify_audit(self) -> pb.VerifyAuditResponse:
        """Check the audit log's hash chain; `ok` false names the first bad seq."""
        return self._stub.VerifyAudit(pb.VerifyAuditRequest(), **self._unary)

    def analyze(
        self,
        symbols: Iterable[str] = (),
        question: str = "",
        kind: advisor_pb2.AnalysisKind.ValueType = advisor_pb2.ANALYSIS_KIND_UNSPECIFIED,
    ) -> pb.AnalyzeResponse:
        """An analysis with risk warnings, and trade ideas pending approval (never trades).

        Empty `symbols`: the portfolio's. UNSPECIFIED `kind`: a portfolio review.
        UNAVAILABLE when the AI model cannot be reached.
        """
        request = _analyze_request(symbols, question, kind)
        return self._stub.Analyze(request, **self._unary)

    def list_ideas(
        self,
        state: advisor_pb2.IdeaState.ValueType = advisor_pb2.IDEA_STATE_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListIdeasResponse:
        """One page of ideas (all states unless `state` says), oldest first."""
        request = _list_ideas_request(state, page_size, page_token)
        return self._stub.ListIdeas(request, **self._unary)

    def get_idea(self, idea_id: str) -> pb.GetIdeaResponse:
        """Raises NOT_FOUND for an unknown id."""
        return self._stub.GetIdea(pb.GetIdeaRequest(idea_id=idea_id), **self._unary)

    def decide_idea(
        self, idea_id: str, decision: advisor_pb2.IdeaDecision.ValueType, reason: str = ""
    ) -> pb.DecideIdeaResponse:
        """Approve or reject a pending idea, as this client's principal.

        An approval sends the idea, as a signal, through the risk gate; the
        answer shows the risk decision and the order. FAILED_PRECONDITION when
        the idea is already decided, expired, or its price has moved too far.
        """
        request = _decide_idea_request(idea_id, decision, reason)
        return self._stub.DecideIdea(request, **self._unary)


class AsyncTradingClient(_CallSettings):
    """The asyncio twin of TradingClient, over grpc.aio; create it inside the event loop.

    Unary methods are coroutines; subscribe_events and query_audit return an
    AsyncServerStream at once (``async for`` over it). `channel` must be a
    grpc.aio channel; see TradingClient for who closes it, and for TLS.
    """

    def __init__(
        self,
        target: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
        tls: bool | None = None,
        ca_file: PathArg | None = None,
        cert_file: PathArg | None = None,
        key_file: PathArg | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(token, timeout)
        security = _own_channel_tls(channel, tls, ca_file, cert_file, key_file, server_name)
        self._owns_channel = channel is None
        self._channel = (
            open_aio_channel(_target(target), security, retry_options())
            if channel is None
            else channel
        )
        self._stub = trading_service_pb2_grpc.TradingServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel if this client created it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def get_status(self) -> pb.GetStatusResponse:
        return await self._stub.GetStatus(pb.GetStatusRequest(), **self._unary)

    async def list_strategies(self) -> pb.ListStrategiesResponse:
        return await self._stub.ListStrategies(pb.ListStrategiesRequest(), **self._unary)

    async def activate_strategy(self, name: str) -> pb.ActivateStrategyResponse:
        request = pb.ActivateStrategyRequest(name=name)
        return await self._stub.ActivateStrategy(request, **self._unary)

    async def deactivate_strategy(self, name: str) -> pb.DeactivateStrategyResponse:
        request = pb.DeactivateStrategyRequest(name=name)
        return await self._stub.DeactivateStrategy(request, **self._unary)

    async def get_risk_status(self, recent_decisions: int = 0) -> pb.GetRiskStatusResponse:
        request = _risk_status_request(recent_decisions)
        return await self._stub.GetRiskStatus(request, **self._unary)

    async def activate_risk(self, reason: str = "") -> pb.ActivateRiskResponse:
        request = pb.ActivateRiskRequest(reason=reason)
        return await self._stub.ActivateRisk(request, **self._unary)

    async def deactivate_risk(self, reason: str) -> pb.DeactivateRiskResponse:
        request = pb.DeactivateRiskRequest(reason=reason)
        return await self._stub.DeactivateRisk(request, **self._unary)

    async def set_trading_state(
        self,
        state: risk_pb2.TradingState.ValueType | StateName,
        reason: str = "",
        *,
        cause: risk_pb2.TradingCause.ValueType | CauseName | None = None,
    ) -> pb.SetTradingStateResponse:
        request = _set_trading_state_request(state, reason, cause)
        return await self._stub.SetTradingState(request, **self._unary)

    async def flatten(self, reason: str = "") -> pb.FlattenResponse:
        return await self._stub.Flatten(pb.FlattenRequest(reason=reason), **self._unary)

    async def update_risk_limits(
        self, limits: Mapping[str, LimitValue], reason: str = ""
    ) -> pb.UpdateRiskLimitsResponse:
        request = _update_risk_limits_request(limits, reason)
        return await self._stub.UpdateRiskLimits(request, **self._unary)

    async def check_order(
        self,
        symbol: str,
        side: orders_pb2.Side.ValueType | SideName,
        quantity: Amount,
        *,
        limit_price: Amount | None = None,
    ) -> pb.CheckOrderResponse:
        request = _check_order_request(symbol, side, quantity, limit_price)
        return await self._stub.CheckOrder(request, **self._unary)

    async def submit_order(
        self,
        symbol: str,
        side: orders_pb2.Side.ValueType | SideName,
        quantity: Amount | None = None,
        *,
        limit_price: Amount | None = None,
        order_type: orders_pb2.OrderType.ValueType | OrderTypeName | None = None,
        reason: str = "",
        time_in_force: orders_pb2.TimeInForce.ValueType | str | None = None,
        notional: Amount | None = None,
    ) -> pb.SubmitOrderResponse:
        request = _submit_order_request(
            symbol, side, quantity, limit_price, order_type, reason, time_in_force, notional
        )
        return await self._stub.SubmitOrder(request, **self._unary)

    async def get_execution_status(self) -> pb.GetExecutionStatusResponse:
        request = pb.GetExecutionStatusRequest()
        return await self._stub.GetExecutionStatus(request, **self._unary)

    async def list_active_orders(
        self, symbol: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListActiveOrdersResponse:
        request = _active_orders_request(symbol, page_size, page_token)
        return await self._stub.ListActiveOrders(request, **self._unary)

    async def list_order_history(
        self, symbol: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListOrderHistoryResponse:
        request = _order_history_request(symbol, page_size, page_token)
        return await self._stub.ListOrderHistory(request, **self._unary)

    async def cancel_order(self, order_id: str) -> pb.CancelOrderResponse:
        request = pb.CancelOrderRequest(order_id=order_id)
        return await self._stub.CancelOrder(request, **self._unary)

    async def get_account(self) -> pb.GetAccountResponse:
        return await self._stub.GetAccount(pb.GetAccountRequest(), **self._unary)

    async def list_positions(self) -> pb.ListPositionsResponse:
        return await self._stub.ListPositions(pb.ListPositionsRequest(), **self._unary)

    async def stream_market_data(
        self,
        batches: Iterable[MarketBatch] | AsyncIterable[MarketBatch],
        *,
        feed_id: str | None = None,
        first_sequence: int = 1,
    ) -> pb.StreamMarketDataResponse:
        """As TradingClient.stream_market_data: `feed_id` names and numbers the messages."""
        requests = _async_market_requests(batches, feed_id, first_sequence)
        return await self._stub.StreamMarketData(requests, **self._streaming)

    async def stream_arrays(
        self,
        symbol: str,
        timestamps_ns: npt.ArrayLike,
        prices: npt.ArrayLike,
        volumes: npt.ArrayLike | None = None,
        *,
        chunk: int = DEFAULT_CHUNK,
        feed_id: str | None = None,
        first_sequence: int = 1,
    ) -> pb.StreamMarketDataResponse:
        """As TradingClient.stream_arrays."""
        from trading_sdk import columnar

        requests = columnar.array_requests(symbol, timestamps_ns, prices, volumes, chunk=chunk)
        return await self.stream_market_data(
            requests, feed_id=feed_id, first_sequence=first_sequence
        )

    async def stream_frame(
        self,
        frame: pd.DataFrame,
        *,
        columns: Mapping[str, Hashable] | None = None,
        symbol: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        feed_id: str | None = None,
        first_sequence: int = 1,
    ) -> pb.StreamMarketDataResponse:
        """As TradingClient.stream_frame."""
        from trading_sdk import columnar

        requests = columnar.frame_requests(frame, columns=columns, symbol=symbol, chunk=chunk)
        return await self.stream_market_data(
            requests, feed_id=feed_id, first_sequence=first_sequence
        )

    async def simulate_market_event(
        self,
        symbol: str,
        price: float | Decimal,
        volume: float | Decimal | None = None,
        timestamp: datetime | None = None,
    ) -> pb.SimulateMarketEventResponse:
        request = _simulate_request(symbol, price, volume, timestamp)
        return await self._stub.SimulateMarketEvent(request, **self._unary)

    def subscribe_events(
        self,
        types: Iterable[events_pb2.EventType.ValueType] = (),
        symbols: Iterable[str] = (),
        from_seq: int = 0,
    ) -> AsyncServerStream[events_pb2.Event]:
        request = _subscribe_request(types, symbols, from_seq)
        return AsyncServerStream(self._stub.SubscribeEvents(request, **self._streaming), _event)

    def query_audit(
        self, **filters: Unpack[AuditFilters]
    ) -> AsyncServerStream[audit_pb2.AuditRecord]:
        request = _audit_request(filters)
        return AsyncServerStream(self._stub.QueryAudit(request, **self._streaming), _record)

    async def verify_audit(self) -> pb.VerifyAuditResponse:
        return await self._stub.VerifyAudit(pb.VerifyAuditRequest(), **self._unary)

    async def analyze(
        self,
        symbols: Iterable[str] = (),
        question: str = "",
        kind: advisor_pb2.AnalysisKind.ValueType = advisor_pb2.ANALYSIS_KIND_UNSPECIFIED,
    ) -> pb.AnalyzeResponse:
        request = _analyze_request(symbols, question, kind)
        return await self._stub.Analyze(request, **self._unary)

    async def list_ideas(
        self,
        state: advisor_pb2.IdeaState.ValueType = advisor_pb2.IDEA_STATE_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListIdeasResponse:
        request = _list_ideas_request(state, page_size, page_token)
        return await self._stub.ListIdeas(request, **self._unary)

    async def get_idea(self, idea_id: str) -> pb.GetIdeaResponse:
        return await self._stub.GetIdea(pb.GetIdeaRequest(idea_id=idea_id), **self._unary)

    async def decide_idea(
        self, idea_id: str, decision: advisor_pb2.IdeaDecision.ValueType, reason: str = ""
    ) -> pb.DecideIdeaResponse:
        request = _decide_idea_request(idea_id, decision, reason)
        return await self._stub.DecideIdea(request, **self._unary)
