"""The one interceptor every call goes through, and the order of its steps.

    observers (access log, metrics)   see every call's start and final status
      IP allow-list                   refuse a peer outside TRADING_ALLOWED_CLIENTS
        authentication and roles      bearer token -> principal; may it call this?
          rate limit                  a token bucket per principal
            stream slots              caps on open streams (server/stream_limits.py)
              decoding                undecodable bytes -> INVALID_ARGUMENT
                the servicer
      error mapping                   DomainError -> status + ErrorInfo (server/errors.py)

Everything a step refuses is a DomainError, mapped in the same place as the
servicer's own, so observers see the same status code the client does. An
exception that is not a DomainError is a bug: logged with its traceback and
answered INTERNAL with no internals in the message.

Health and reflection (auth.OPEN_SERVICES) skip authentication and the rate
limit, so that probes and grpcurl's `list` work without a token, but not the
allow-list. A method the server does not serve is answered UNIMPLEMENTED by the
chain itself, so that a probe for one is logged and counted like any call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc

from domain.errors import DomainError, PermissionDenied, ResourceExhausted, Unauthenticated
from server import decoding
from server.auth import OPEN_SERVICES, Authenticator, Principal
from server.errors import abort
from server.handlers import Handler, behavior_of, with_behavior
from server.interceptors.allow_list import AllowList
from server.interceptors.call import KINDS, Call, CallObserver, Refusal
from server.interceptors.rate_limit import RateLimiter
from server.stream_limits import ANONYMOUS, StreamLimiter, StreamSlot

log = logging.getLogger(__name__)


def _unknown_method(request: Any, context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "the service has no such method")


# Raw bytes in and out, and streaming both ways, so it can answer any call shape.
_UNKNOWN: Handler = grpc.stream_stream_rpc_method_handler(_unknown_method)


class _Ending:
    """Ends a call once, whichever comes first: the behaviour finishing, or gRPC
    reporting the call over (cancelled, deadline, client gone)."""

    __slots__ = ("_call", "_context", "_done", "_lock", "_observers", "_size", "slot")

    def __init__(
        self,
        call: Call,
        context: grpc.ServicerContext,
        observers: Sequence[CallObserver],
        size: list[int],
    ) -> None:
        self._call = call
        self._size = size  # bytes of request messages read so far
        self._context = context
        self._observers = observers
        self._lock = threading.Lock()
        self._done = False
        self.slot: StreamSlot | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.slot is not None:
            self.slot.release()
        call, context = self._call, self._context
        call.duration_s = time.monotonic() - call.started
        call.request_bytes = self._size[0]
        code = context.code()  # type: ignore[attr-defined]  # grpcio has it; the stubs do not
        if isinstance(code, grpc.StatusCode):
            call.code = code
        elif not context.is_active():
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            call.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
        for observer in self._observers:
            try:
                observer.call_ended(call)
            except Exception:  # an observer's bug must not become the caller's error
                log.exception("call observer %r failed", observer)


class CallChain(grpc.ServerInterceptor):
    def __init__(
        self,
        auth: Authenticator,
        streams: StreamLimiter,
        *,
        allow_list: AllowList | None = None,
        rate_limit: RateLimiter | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        self._auth = auth
        self._streams = streams
        self._allow_list = allow_list
        self._rate_limit = rate_limit
        self._observers = tuple(observers)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        found = continuation(handler_call_details)
        handler = found if found is not None else _UNKNOWN
        streaming = (handler.request_streaming, handler.response_streaming)
        kind = KINDS[streaming]
        behavior = behavior_of(handler)
        size = [0]

        def count(n: int) -> None:
            size[0] += n

        def start(context: grpc.ServicerContext) -> tuple[Call, _Ending]:
            call = Call(
                method, kind, context.peer(), datetime.now(UTC), time.monotonic(), found is not None
            )
            for observer in self._observers:
                try:
                    observer.call_started(call)
                except Exception:
                    log.exception("call observer %r failed", observer)
            ending = _Ending(call, context, self._observers, size)
            if not context.add_callback(ending):
                ending()  # the call ended while it waited for a thread
            return call, ending

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            call, ending = start(context)
            try:
                ending.slot = self._admit(call, metadata, any(streaming))
                if not call.known:
                    return behavior(request, context)
                request = (
                    decoding.checked_stream(request)
                    if handler.request_streaming
                    else decoding.checked_request(request)
                )
                responses = behavior(request, context)
            except BaseException as exc:
                _fail(exc, context, ending)
            if handler.response_streaming:
                return _streamed(responses, context, ending)
            ending()
            return responses

        return with_behavior(
            handler,
            run,
            request_deserializer=decoding.tolerant(handler.request_deserializer, count)
            if handler.request_deserializer is not None
            else _counting(count),
        )

    def _admit(self, call: Call, metadata: Any, streaming: bool) -> StreamSlot | None:
        """Run the gates in order; a refusal raises its DomainError, and its kind
        is noted on the call."""
        gate: Refusal = "not_allowed_ip"
        try:
            if self._allow_list is not None:
                self._allow_list.check(call.peer)
            if not call.known:
                return None
            gate = "unauthenticated"
            if call.method.startswith(OPEN_SERVICES):
                call.principal = self._principal_if_any(metadata)
            else:
                principal = call.principal = self._auth.principal(metadata)
                if not principal.may_call(call.method):
                    gate = "permission_denied"
                    roles = ", ".join(sorted(principal.roles))
                    raise PermissionDenied(
                        f"{principal.name} ({roles}) may not call {call.name}",
                        reason="ROLE_NOT_ALLOWED",
                        metadata={"principal": principal.name, "method": call.name},
                    )
                if self._rate_limit is not None:
                    gate = "rate_limited"
                    self._rate_limit.take(principal.name)
            if not streaming:
                return None
            gate = "stream_limit"
            name = call.principal.name if call.principal is not None else ANONYMOUS
            return self._streams.acquire(name, call.name)
        except (PermissionDenied, Unauthenticated, ResourceExhausted):
            call.refusal = gate
            raise

    def _principal_if_any(self, metadata: Any) -> Principal | None:
        try:
            return self._auth.principal(metadata)
        except Unauthenticated:
            return None


def _counting(count: Callable[[int], None]) -> Callable[[bytes], bytes]:
    def identity(raw: bytes) -> bytes:
        count(len(raw))
        return raw

    return identity


def _answer(exc: BaseException, context: grpc.ServicerContext) -> NoReturn:
    """Map what a call raised to its status (always raises)."""
    if isinstance(exc, DomainError):
        abort(context, exc)
    if (
        isinstance(exc, Exception)
        and context.code() is None  # type: ignore[attr-defined]  # not an abort
        and context.is_active()  # not a read of a request stream the call's end broke
    ):
        # Not an abort and not a domain error: a bug of ours, never the caller's.
        log.exception("internal error", exc_info=exc)
        context.abort(grpc.StatusCode.INTERNAL, "internal error: the service logged it")
    raise exc


def _fail(exc: BaseException, context: grpc.ServicerContext, ending: _Ending) -> NoReturn:
    try:
        _answer(exc, context)
    finally:
        ending()
    raise AssertionError("unreachable: _answer raises")


def _streamed(
    responses: Iterator[Any], context: grpc.ServicerContext, ending: _Ending
) -> Iterator[Any]:
    try:
        yield from responses
    except BaseException as exc:
        _fail(exc, context, ending)
    ending()
