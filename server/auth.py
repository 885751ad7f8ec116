"""Bearer-token authentication for every RPC except health and reflection."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from domain.errors import Unauthenticated
from server.handlers import Handler, with_behavior

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class Authenticator:
    """Maps bearer tokens to principals, comparing in constant time."""

    def __init__(self, tokens: dict[str, str]) -> None:
        if not tokens:
            raise ValueError("at least one token is needed")
        self._tokens = [(t.encode(), principal) for t, principal in tokens.items()]

    def principal(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if header is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        text = header.decode() if isinstance(header, bytes) else header
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        presented = token.strip().encode()
        found = None
        for known, principal in self._tokens:
            # Compare against every token so timing does not reveal which one matched.
            if hmac.compare_digest(presented, known):
                found = principal
        if found is None:
            raise Unauthenticated("the bearer token is not valid")
        return found

    def of(self, context: grpc.ServicerContext) -> str:
        return self.principal(context.invocation_metadata())


def _refusing(handler: Handler, message: str) -> Handler:
    def refuse(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return with_behavior(handler, refuse)


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        try:
            self._auth.principal(handler_call_details.invocation_metadata)
        except Unauthenticated as exc:
            return _refusing(handler, str(exc))
        return handler
