"""Domain exceptions. Handlers raise these; only the gRPC edge maps them to status codes."""


class DomainError(Exception):
    """Base of every error a caller can act on."""


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
