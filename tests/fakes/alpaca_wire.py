"""How the fake Alpaca writes things: decimals and times as Alpaca does, HTTP replies and refusals.

Shared by the broker model (`alpaca_broker`), the REST front (`alpaca_http`), the trade_updates
stream (`alpaca_stream`) and the fault constructors (`alpaca_faults`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"


def fmt(value: Decimal) -> str:
    """A decimal as Alpaca writes it in JSON: a string of plain digits, no exponent, no
    trailing zeros ("10", "187.25", "0.000000001", "-5")."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def fmt_or_none(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def decimals(value: Decimal) -> int:
    """How many digits `value` has after the point, trailing zeros ignored (150.50 -> 1)."""
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def rfc3339(moment: datetime) -> str:
    """UTC, microseconds and a Z, as Alpaca writes order times ("2024-03-05T14:30:00.123456Z")."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """Wall-clock time that never repeats: each reading is at least 1 µs after the previous one,
    so orders sort by submission time and `after`/`until` filters are unambiguous."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        with self._lock:
            moment = datetime.now(UTC)
            if moment <= self._last:
                moment = self._last + timedelta(microseconds=1)
            self._last = moment
            return moment


@dataclass(frozen=True)
class Reply:
    """One HTTP answer. `body` is JSON-encoded unless `raw` is given; 204 answers have neither."""

    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = JSON_TYPE

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


def error_body(code: int | None, message: str, **extra: Any) -> dict[str, Any]:
    """Alpaca's error document: `{"code": 40010001, "message": "..."}` plus any extra fields;
    no `code` at all when `code` is None (the 401 body is just `{"message": "unauthorized."}`)."""
    body: dict[str, Any] = {} if code is None else {"code": code}
    body["message"] = message
    body.update(extra)
    return body


class Refusal(Exception):
    """Raised by the broker model when Alpaca would answer with an error document."""

    def __init__(self, status: int, code: int | None, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def reply(self) -> Reply:
        return Reply(self.status, error_body(self.code, self.message, **self.extra))


def invalid(message: str) -> Refusal:
    """Alpaca's generic validation error: 422 with code 40010001."""
    return Refusal(422, 40010001, message)


def unprocessable(message: str) -> Refusal:
    """Alpaca's order-rule error: 422 with code 42210000 (sub-penny, already filled...)."""
    return Refusal(422, 42210000, message)


def not_found(message: str) -> Refusal:
    return Refusal(404, 40410000, message)
