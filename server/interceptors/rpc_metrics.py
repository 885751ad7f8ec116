"""Per-RPC metrics from the chain: the chain's calls, handed to the service's
Prometheus metrics (server/metrics.py) under the grpc_server_* names."""

from __future__ import annotations

from typing import Protocol

import grpc

from server.interceptors.call import Call

UNKNOWN_METHOD = "/unknown/unknown"  # every unknown method is one label value


class RpcCounters(Protocol):
    def call_started(self, method: str, kind: str) -> None: ...

    def call_ended(
        self, method: str, kind: str, code: grpc.StatusCode, duration_s: float
    ) -> None: ...

    def call_refused(self, reason: str) -> None: ...


class RpcMetrics:
    """The chain's observer that counts every call, its status and its duration."""

    def __init__(self, counters: RpcCounters) -> None:
        self._counters = counters

    def call_started(self, call: Call) -> None:
        self._counters.call_started(call.method if call.known else UNKNOWN_METHOD, call.kind)

    def call_ended(self, call: Call) -> None:
        method = call.method if call.known else UNKNOWN_METHOD
        if call.refusal:
            self._counters.call_refused(call.refusal)
        self._counters.call_ended(method, call.kind, call.code, call.duration_s)
