"""Domain exceptions. Handlers raise these; only the gRPC edge maps them to status codes."""


class DomainError(Exception):
    """Base of every error a caller can act on.

    `reason` is a stable code and `metadata` the facts behind it, for a program
    to act on without parsing the message (the edge sends them as a
    google.rpc.ErrorInfo detail)."""

    def __init__(
        self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = dict(metadata or {})


class InvalidInput(DomainError):
    """The request is malformed: maps to INVALID_ARGUMENT."""


class NotFound(DomainError):
    """The named thing does not exist: maps to NOT_FOUND."""


class PreconditionFailed(DomainError):
    """The request is well-formed but the system is not in a state to do it: FAILED_PRECONDITION."""


class IllegalTransition(PreconditionFailed):
    """An order (or idea) was asked to move to a state its state machine forbids."""


class Unavailable(DomainError):
    """A dependency (audit store, broker, model) cannot be reached right now: UNAVAILABLE."""


class Unauthenticated(DomainError):
    """No valid credentials were presented: UNAUTHENTICATED."""


class PermissionDenied(DomainError):
    """The caller is known but not allowed to do this: PERMISSION_DENIED."""


class ResourceExhausted(DomainError):
    """A capacity limit is reached (say, too many open streams); retrying once
    something ends may succeed: RESOURCE_EXHAUSTED. `retry_after_seconds`, when
    known (a rate limit), says how long to wait before a retry can succeed."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds
