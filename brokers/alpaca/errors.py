"""How a failed Alpaca request ended, in the domain's words (`Outcome`).

Only an answer whose meaning proves Alpaca did not and will not act is a
refusal: 400, 401, 403 and 422 (and 404 for a submit or a cancel). Everything
else is UNKNOWN: a 429 or a 5xx (the SDK may even have re-posted), a timeout, a
dropped connection, an answer that cannot be read, any other exception. One
422 is not what it says: "client_order_id must be unique" on our own submit is
what the SDK's own re-POST gets after a 504 or 429 whose first POST went
through, so the order may well exist: UNKNOWN, to be looked up.

Always branch on the HTTP status first: `APIError.code` and `.message` parse
the body as JSON and raise on a gateway's HTML (`JSONDecodeError`) or on
Alpaca's 401 body, which has no code (`KeyError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests
from alpaca.common.exceptions import APIError

from domain.broker import Outcome, RequestKind

DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"
_MESSAGE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Classified:
    """`answered`: an HTTP answer from Alpaca itself (not a 5xx or a 429: those say
    the broker is not there, or not for us now)."""

    outcome: Outcome
    code: str
    message: str
    answered: bool
    status: int | None = None


def api_error_body(error: APIError) -> tuple[str, str]:
    """The (code, message) of Alpaca's error body; ("", text) when it is not JSON
    or has no code."""
    text = str(error)
    try:
        body = json.loads(text)
    except ValueError:
        return "", _squash(text)
    if not isinstance(body, dict):
        return "", _squash(text)
    code = body.get("code")
    message = body.get("message")
    return (
        "" if code is None else str(code),
        _squash(message if isinstance(message, str) else text),
    )


def classify(error: BaseException, request: RequestKind) -> Classified:
    """How `request` ended when the SDK raised `error`."""
    if isinstance(error, APIError):
        return _classify_api_error(error, request)
    if isinstance(error, requests.Timeout):
        return Classified(Outcome.UNKNOWN, "timeout", _describe(error), answered=False)
    if isinstance(error, requests.ConnectionError):
        return Classified(Outcome.UNKNOWN, "connection", _describe(error), answered=False)
    if isinstance(error, requests.RequestException):
        return Classified(Outcome.UNKNOWN, "transport", _describe(error), answered=False)
    if isinstance(error, ValueError):
        # A 2xx whose body is not JSON (requests' JSONDecodeError is a ValueError).
        return Classified(Outcome.UNKNOWN, "unreadable", _describe(error), answered=False)
    return Classified(Outcome.UNKNOWN, "error", _describe(error), answered=False)


def _classify_api_error(error: APIError, request: RequestKind) -> Classified:
    status = error.status_code
    if status is None:
        return Classified(Outcome.UNKNOWN, "error", _describe(error), answered=False)
    status = int(status)
    code, message = api_error_body(error)
    message = message or f"HTTP {status}"
    if status == 429 or status >= 500:
        return Classified(Outcome.UNKNOWN, f"http-{status}", message, answered=False, status=status)
    if status == 404:
        outcome = Outcome.NOT_FOUND if request is RequestKind.LOOKUP else Outcome.REFUSED
        return Classified(outcome, code or "http-404", message, answered=True, status=status)
    if status in (400, 401, 403, 422):
        if (
            request is RequestKind.SUBMIT
            and status == 422
            and DUPLICATE_CLIENT_ORDER_ID in message.lower()
        ):
            return Classified(
                Outcome.UNKNOWN, code or "http-422", message, answered=True, status=status
            )
        return Classified(
            Outcome.REFUSED, code or f"http-{status}", message, answered=True, status=status
        )
    # Any other status (409, a redirect refused, ...) proves nothing about the order.
    return Classified(
        Outcome.UNKNOWN, code or f"http-{status}", message, answered=True, status=status
    )


def _describe(error: BaseException) -> str:
    return _squash(f"{type(error).__name__}: {error}")


def _squash(text: str) -> str:
    """One line, bounded: a gateway's HTML page must not flood the journal."""
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 3] + "..."
