"""The access log (TRADING_ACCESS_LOG): one JSON line per RPC, refused ones
included, for the question "who called what, from where, and how did it end?".

A line holds the time the call started (UTC), the principal and the id of the key
it presented, the peer address, the method, its kind, the final status code, the
duration in milliseconds, the size of the request messages in bytes, and why the
chain refused it if it did. Never a token, a key or a payload: what a call
changed is in the audit log, which records the decision, not the traffic.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from typing import Any

from server.interceptors.call import Call

LOGGER = "trading.access"


def open_access_log(destination: str) -> logging.Logger | None:
    """A logger writing raw JSON lines: `-` or `stderr` for standard error, `off` for
    none, anything else a file path (reopened when logrotate moves it)."""
    if destination.strip().lower() == "off":
        return None
    logger = logging.getLogger(f"{LOGGER}.{id(destination)}")
    logger.propagate = False  # its lines are JSON, not the service log's format
    logger.setLevel(logging.INFO)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler: logging.Handler
    if destination.strip().lower() in ("-", "stderr"):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.WatchedFileHandler(destination, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger


def line(call: Call) -> str:
    principal = call.principal
    fields: dict[str, Any] = {
        "time": call.started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "principal": principal.name if principal else None,
        "key_id": principal.key_id or None if principal else None,
        "peer": call.peer,
        "method": call.method[:200],  # a probe for unknown methods is worth seeing
        "known": call.known,
        "kind": call.kind,
        "code": call.code.name,
        "duration_ms": round(call.duration_s * 1000, 3),
        "request_bytes": call.request_bytes,
        "refused": call.refusal or None,
    }
    return json.dumps(fields, separators=(",", ":"))


class AccessLog:
    """The chain's observer that writes a line when each call ends."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def call_started(self, call: Call) -> None:
        pass

    def call_ended(self, call: Call) -> None:
        self._logger.info(line(call))

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            self._logger.removeHandler(handler)
            handler.close()
