"""Domain errors to gRPC status codes, in one place."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
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

F = TypeVar("F", bound=Callable[..., Any])


def status_of(exc: errors.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: errors.DomainError) -> NoReturn:
    """End the call with the error's status; a stable reason and its facts travel
    as a google.rpc.ErrorInfo detail, for programs to act on."""
    code = status_of(exc)
    if not exc.reason:
        context.abort(code, str(exc))
    else:
        info = error_details_pb2.ErrorInfo(
            reason=exc.reason, domain=ERROR_DOMAIN, metadata=exc.metadata
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=code.value[0], message=str(exc), details=[detail])
        # What abort_with_status does, spelled out so grpc_testing's context can do it too.
        context.set_trailing_metadata(rpc_status.to_status(status).trailing_metadata)
        context.abort(code, str(exc))
    raise AssertionError("unreachable: context.abort raises")


def maps_domain_errors(method: F) -> F:
    """Wrap a servicer method (unary or streaming) so a DomainError becomes its status."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except errors.DomainError as exc:
                abort(context, exc)

        return streaming  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except errors.DomainError as exc:
            abort(context, exc)

    return unary  # type: ignore[return-value]
