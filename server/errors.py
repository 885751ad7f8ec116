"""Domain errors to gRPC status codes, in one place."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import grpc

from domain import errors

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}

F = TypeVar("F", bound=Callable[..., Any])


def status_of(exc: errors.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: errors.DomainError) -> NoReturn:
    context.abort(status_of(exc), str(exc))
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
