"""One RPC as the interceptor chain sees it, and the observers told of each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol, TypeAlias

import grpc

from server.auth import Principal

Kind: TypeAlias = Literal["unary", "client_stream", "server_stream", "bidi_stream"]
KINDS: Final[dict[tuple[bool, bool], Kind]] = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}

# Why the chain refused a call before it reached the service: a fixed set, so that
# it can be a metric label.
Refusal: TypeAlias = Literal[
    "", "not_allowed_ip", "unauthenticated", "permission_denied", "rate_limited", "stream_limit"
]


@dataclass(slots=True)
class Call:
    """What is known of one call: filled in as the chain admits and runs it."""

    method: str  # the full path, /trading.v1.TradingService/GetStatus
    kind: Kind
    peer: str  # as gRPC names it: ipv4:127.0.0.1:50412, ipv6:[::1]:50412, unix:...
    started_at: datetime  # UTC, for the access log
    started: float  # time.monotonic(), for the duration
    known: bool = True  # the server serves this method
    principal: Principal | None = None
    request_bytes: int = 0  # serialized request messages, summed over a stream
    code: grpc.StatusCode = grpc.StatusCode.OK
    refusal: Refusal = ""
    duration_s: float = 0.0

    @property
    def service(self) -> str:
        return self.method.lstrip("/").split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.method.rsplit("/", 1)[-1]


class CallObserver(Protocol):
    """Told when a call starts and, once, when it ends with its final status.
    Called on the call's own thread (or gRPC's, for a call that ended by cancel):
    quick, and never raising."""

    def call_started(self, call: Call) -> None: ...

    def call_ended(self, call: Call) -> None: ...
