"""A request that does not decode (truncated bytes, a string field that is not
UTF-8) is the caller's mistake, not ours: answer INVALID_ARGUMENT, not the
INTERNAL grpcio gives when a deserializer raises. The interceptor chain wraps
every method's deserializer with `tolerant`, and its behaviour with `checked`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from domain.errors import InvalidInput

UNDECODABLE = "UNDECODABLE_MESSAGE"


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request message that could not be decoded."""

    reason: str

    def error(self) -> InvalidInput:
        return InvalidInput(
            f"the request could not be decoded as this method's message ({self.reason}); "
            "string fields must be valid UTF-8",
            reason=UNDECODABLE,
        )


def tolerant(
    decode: Callable[[bytes], Any], count: Callable[[int], None]
) -> Callable[[bytes], Any]:
    """`decode`, giving an Undecodable instead of raising, and telling `count` each
    message's size."""

    def deserialize(raw: bytes) -> Any:
        count(len(raw))
        try:
            return decode(raw)
        except DecodeError as exc:
            return Undecodable(str(exc) or "malformed message")

    return deserialize


def checked_request(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise request.error()
    return request


def checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    """A stream's undecodable message raises where the servicer reads it, so the
    servicer can say what it kept of the messages before."""
    for request in requests:
        yield checked_request(request)
