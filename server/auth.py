"""Bearer-token authentication and role checks for every RPC except health and
reflection.

Each token belongs to a principal (a person or a program) with roles. With only
TRADING_API_KEY set there is one principal, `operator`, with every role; a
tokens file (TRADING_TOKENS_FILE) names several, so that the audit log records
who did what, and a read-only viewer cannot halt trading or approve an idea.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from domain.errors import Unauthenticated
from server.handlers import Handler, with_behavior

log = logging.getLogger(__name__)

VIEWER, TRADER, FEED, OPERATOR = "viewer", "trader", "feed", "operator"
ROLES = frozenset({VIEWER, TRADER, FEED, OPERATOR})

_READS = (
    "GetStatus",
    "ListStrategies",
    "GetRiskStatus",
    "GetExecutionStatus",
    "ListActiveOrders",
    "ListOrderHistory",
    "GetAccount",
    "ListPositions",
    "SubscribeEvents",
    "QueryAudit",
    "VerifyAudit",
    "ListIdeas",
    "GetIdea",
    "CheckOrder",  # a dry run changes nothing
)
# The roles that may call each method of trading.v1.TradingService (an operator
# may call all). A method missing here is refused to everyone but an operator.
METHOD_ROLES: dict[str, frozenset[str]] = {
    **{m: frozenset({VIEWER, TRADER, FEED}) for m in _READS},
    "Analyze": frozenset({TRADER}),
    "DecideIdea": frozenset({TRADER}),
    "CancelOrder": frozenset({TRADER}),
    "SubmitOrder": frozenset({TRADER}),
    "StreamMarketData": frozenset({FEED}),
    "SimulateMarketEvent": frozenset({FEED}),
    # ActivateStrategy, DeactivateStrategy, ActivateRisk, DeactivateRisk,
    # SetTradingState, Flatten, UpdateRiskLimits: operators only.
}

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str]

    def may_call(self, method: str) -> bool:
        """`method` is the full gRPC path, /trading.v1.TradingService/Name."""
        if OPERATOR in self.roles:
            return True
        return bool(self.roles & METHOD_ROLES.get(method.rsplit("/", 1)[-1], frozenset()))


INSECURE_TOKENS_FILE_BITS = 0o027
"""Group write or any access by others: whoever has it could read every token or add
one. The owner (and a group, read-only) is all a tokens file should allow."""


def check_tokens_file_mode(path: Path, *, allow_insecure: bool = False) -> None:
    """Refuse (ValueError) a tokens file that its group may write or others may read or
    write; with `allow_insecure` (TRADING_TOKENS_FILE_ALLOW_INSECURE) only warn, loudly.
    Nothing is checked where file modes mean nothing (Windows)."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ValueError(f"TRADING_TOKENS_FILE {path}: cannot read it: {exc}") from None
    if not mode & INSECURE_TOKENS_FILE_BITS:
        return
    problem = (
        f"TRADING_TOKENS_FILE {path} is mode {mode:o}: "
        f"{'others' if mode & 0o007 else 'its group'} can "
        f"{'read' if mode & 0o004 else 'change'} the tokens"
    )
    if not allow_insecure:
        raise ValueError(
            f"{problem}; make it owner-only (chmod 600 {path}), or set "
            "TRADING_TOKENS_FILE_ALLOW_INSECURE=true to accept it anyway"
        )
    log.warning("%s; accepted because TRADING_TOKENS_FILE_ALLOW_INSECURE is set", problem)


def load_tokens_file(path: Path, *, allow_insecure: bool = False) -> dict[str, Principal]:
    """Tokens from a JSON file: {"alice": {"token": "...", "roles": ["operator"]}, ...}.
    Raises ValueError with a message naming the problem, also when the file's mode lets
    others read it (see check_tokens_file_mode)."""
    check_tokens_file_mode(path, allow_insecure=allow_insecure)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"TRADING_TOKENS_FILE {path}: cannot read it: {exc}") from None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"TRADING_TOKENS_FILE {path}: expected an object of principals")
    tokens: dict[str, Principal] = {}
    for name, entry in entries.items():
        token = entry.get("token") if isinstance(entry, dict) else None
        roles = entry.get("roles") if isinstance(entry, dict) else None
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError(f"TRADING_TOKENS_FILE: {name}: token must be at least 16 characters")
        if not isinstance(roles, list) or not roles or not set(roles) <= ROLES:
            known = ", ".join(sorted(ROLES))
            raise ValueError(f"TRADING_TOKENS_FILE: {name}: roles must be a list of {known}")
        if token in tokens:
            raise ValueError(f"TRADING_TOKENS_FILE: {name}: token is shared with another principal")
        tokens[token] = Principal(name, frozenset(roles))
    return tokens


class Authenticator:
    """Maps bearer tokens to principals, comparing in constant time."""

    def __init__(self, tokens: dict[str, Principal]) -> None:
        if not tokens:
            raise ValueError("at least one token is needed")
        self._tokens = [(t.encode(), principal) for t, principal in tokens.items()]

    def principal(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> Principal:
        headers = [v for k, v in metadata or () if k == "authorization"]
        if not headers:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        if len(headers) > 1:
            # Which one counts would be up to each proxy on the way: refuse the ambiguity.
            raise Unauthenticated(
                f"{len(headers)} 'authorization' metadata entries were sent; "
                "send exactly one 'authorization: Bearer <token>'"
            )
        header = headers[0]
        text = header.decode() if isinstance(header, bytes) else header
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        presented = token.strip().encode()
        found = None
        for known, principal in self._tokens:
            # Compare against every token so timing does not reveal which one matched.
            if hmac.compare_digest(presented, known):
                found = principal
        if found is None:
            raise Unauthenticated("the bearer token is not valid")
        return found

    def of(self, context: grpc.ServicerContext) -> str:
        """The caller's name, as recorded in the audit log."""
        return self.principal(context.invocation_metadata()).name


def _refusing(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    def refuse(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return with_behavior(handler, refuse)


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        try:
            principal = self._auth.principal(handler_call_details.invocation_metadata)
        except Unauthenticated as exc:
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if not principal.may_call(method):
            roles = ", ".join(sorted(principal.roles))
            return _refusing(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{principal.name} ({roles}) may not call {method.rsplit('/', 1)[-1]}",
            )
        return handler
