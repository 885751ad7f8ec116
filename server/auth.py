"""Bearer-token authentication and role checks for every RPC except health and
reflection.

Each token belongs to a principal (a person or a program) with roles. With only
TRADING_API_KEY set there is one principal, `operator`, with every role; a
tokens file (TRADING_TOKENS_FILE, see server/tokens.py) names several, so that
the audit log records who did what, and a read-only viewer cannot halt trading
or approve an idea. The interceptor chain (server/interceptors/) authenticates
every call with `Authenticator` and checks `Principal.may_call`.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

from domain.errors import Unauthenticated
from server.tokens import TokenEntry, TokensFileError, digest, read_tokens_file

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
    key_id: str = ""  # which of the principal's keys was presented (never the key)

    def may_call(self, method: str) -> bool:
        """`method` is the full gRPC path, /trading.v1.TradingService/Name."""
        if OPERATOR in self.roles:
            return True
        return bool(self.roles & METHOD_ROLES.get(method.rsplit("/", 1)[-1], frozenset()))


class Authenticator:
    """Maps bearer tokens to principals by their SHA-256 digests, compared in
    constant time against every live key.

    `tokens` are fixed keys (TRADING_API_KEY's operator). `tokens_file` is read at
    start (a bad file stops the start) and read again whenever it changes (checked
    on every call, a stat) or when `reload` is called (SIGHUP), so a key created,
    revoked or expired takes effect on the next call, with no restart. If a changed
    file cannot be read, every key of the file is refused until it can: a revoked
    key must not live on because an edit went wrong. The fixed keys still work."""

    def __init__(
        self,
        tokens: Mapping[str, Principal] | None = None,
        *,
        tokens_file: Path | None = None,
        allow_insecure: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._fixed = [
            TokenEntry(p.key_id or "operator", p.name, p.roles, digest(t))
            for t, p in (tokens or {}).items()
        ]
        self._file = tokens_file
        self._allow_insecure = allow_insecure
        self._clock = clock
        self._lock = threading.Lock()
        self._file_keys: list[TokenEntry] = []
        self._seen: tuple[int, int, int] | None = None
        if tokens_file is not None:
            self._file_keys = read_tokens_file(tokens_file, ROLES, allow_insecure=allow_insecure)
            self._seen = self._signature()
        if not self._fixed and not self._file_keys:
            raise ValueError("at least one token is needed")

    def reload(self) -> None:
        """Read the tokens file again now (SIGHUP), whether or not it looks changed."""
        with self._lock:
            self._seen = None
        self._refresh()

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
        text = header.decode(errors="replace") if isinstance(header, bytes) else header
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        presented = digest(token.strip()).encode()
        self._refresh()
        now = self._clock()
        found: TokenEntry | None = None
        for entry in (*self._fixed, *self._file_keys):
            # Compare against every key so timing does not reveal which one matched.
            if hmac.compare_digest(presented, entry.sha256.encode()):
                found = entry
        if found is None:
            raise Unauthenticated("the bearer token is not valid")
        if not found.usable_at(now):
            # Said plainly: the caller holds a real key and needs to know to replace it.
            raise Unauthenticated(f"the bearer token (key {found.id}) is {found.state(now)}")
        return Principal(found.principal, found.roles, found.id)

    def of(self, context: grpc.ServicerContext) -> str:
        """The caller's name, as recorded in the audit log."""
        return self.principal(context.invocation_metadata()).name

    def _signature(self) -> tuple[int, int, int] | None:
        assert self._file is not None
        try:
            st = self._file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        if self._file is None:
            return
        signature = self._signature()
        if signature is not None and signature == self._seen:
            return
        with self._lock:
            if signature is not None and signature == self._seen:
                return
            try:
                keys = read_tokens_file(self._file, ROLES, allow_insecure=self._allow_insecure)
            except TokensFileError as exc:
                if self._file_keys or self._seen is not None:
                    log.error(
                        "tokens file changed and cannot be used; its keys are refused: %s", exc
                    )
                self._file_keys, self._seen = [], signature
                return
            live = sum(k.usable_at(self._clock()) for k in keys)
            log.info("tokens file %s read: %d keys, %d live", self._file, len(keys), live)
            self._file_keys, self._seen = keys, signature
