"""Calling the service as a gRPC client does, and reading how a call failed.

A test asserts on a refusal's status code and the details a person reads (and,
through `Failure.error`, on its rich error details); `failure_of` is the one way
the tests get them, so a call that unexpectedly succeeds fails the test the same
way everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import TOKEN
from trading_sdk.client import ServerStream

TRADING_SERVICE: Final = "trading.v1.TradingService"
# A safety net for server streams that should fail at once: if one does not,
# it is cancelled after this long and the test fails on the missing error.
STREAM_GUARD_SECONDS: Final = 10.0


def bearer(token: str = TOKEN) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a bearer token, as any gRPC client would send it."""
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class Failure:
    """How a call failed: its status code, the explanation a person reads, and the
    error itself (for `trading_sdk.client.error_info` and the other rich details)."""

    code: grpc.StatusCode
    details: str
    error: grpc.RpcError = field(compare=False, repr=False)


class FailedCall(grpc.RpcError):
    """An RpcError as a failed call raises it, for code that reads one (code, details)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def failure_of(call: Callable[[], object]) -> Failure:
    """Run a call that must fail and return how it failed. A server stream is
    read to the end (and cancelled by a guard if it never ends)."""
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if isinstance(result, ServerStream):
            guard = threading.Timer(STREAM_GUARD_SECONDS, result.cancel)
            guard.start()
            try:
                list(result)
            finally:
                guard.cancel()
    error = info.value
    return Failure(error.code(), error.details() or "", error)


def health_of(channel: grpc.Channel, service: str) -> int:
    """The serving status the standard health service reports; no token sent."""
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    status: int = response.status
    return status
