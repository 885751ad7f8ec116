"""Domain errors to gRPC status codes, in one place: the interceptor chain
(server/interceptors/chain.py) calls `abort` for every DomainError a call raises,
whether from a gate (allow-list, authentication, rate or stream limits) or from
the servicer."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from domain import errors

log = logging.getLogger(__name__)

ERROR_DOMAIN = "trading.v1"

STATUS_OF: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_of(exc: errors.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: errors.DomainError) -> NoReturn:
    """End the call with the error's status; a stable reason and its facts travel
    as a google.rpc.ErrorInfo detail, for programs to act on, and the wait before a
    retry (a rate limit's) as a google.rpc.RetryInfo."""
    code = status_of(exc)
    details: list[any_pb2.Any] = []
    if exc.reason:
        details.append(
            _packed(
                error_details_pb2.ErrorInfo(
                    reason=exc.reason, domain=ERROR_DOMAIN, metadata=exc.metadata
                )
            )
        )
    retry_after = exc.retry_after_seconds if isinstance(exc, errors.ResourceExhausted) else None
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, round(retry_after * 1e9)))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    if not details:
        context.abort(code, str(exc))
    else:
        status = status_pb2.Status(code=code.value[0], message=str(exc), details=details)
        # What abort_with_status does, spelled out so grpc_testing's context can do it too.
        context.set_trailing_metadata(rpc_status.to_status(status).trailing_metadata)
        context.abort(code, str(exc))
    raise AssertionError("unreachable: context.abort raises")


def _packed(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail
