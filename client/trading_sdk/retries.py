"""Which calls the SDK retries, and how: gRPC's own retry policy (a service config
on the channel), for the calls that are safe to repeat.

Reads change nothing, so a read that met UNAVAILABLE (the service restarting, a
connection dropped, the audit store briefly down) is tried again, up to three
times in all, backing off from 0.1 s, within the call's deadline: a service that
is down is reported after about a third of a second. A call that changes
something is never retried by the SDK: SubmitOrder has no idempotency key, so a
blind resend could place a second order, and an operator action should be seen
to fail, not to happen later. Streams are not retried
either: StreamMarketData resumes by its feed id and sequence numbers, and
SubscribeEvents by `from_seq`, which the caller knows and gRPC does not.
"""

from __future__ import annotations

import json
from typing import Final

SERVICE: Final = "trading.v1.TradingService"
SAFE_TO_RETRY: Final = (
    "GetStatus",
    "ListStrategies",
    "GetRiskStatus",
    "GetExecutionStatus",
    "ListActiveOrders",
    "ListOrderHistory",
    "GetAccount",
    "ListPositions",
    "VerifyAudit",
    "ListIdeas",
    "GetIdea",
    "CheckOrder",  # a dry run: every rule's verdict, nothing journaled
)
MAX_ATTEMPTS: Final = 3

_SERVICE_CONFIG: Final = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": m} for m in SAFE_TO_RETRY],
                "retryPolicy": {
                    "maxAttempts": MAX_ATTEMPTS,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def retry_options() -> list[tuple[str, str | int]]:
    """Channel options that turn the policy on."""
    return [("grpc.enable_retries", 1), ("grpc.service_config", _SERVICE_CONFIG)]
