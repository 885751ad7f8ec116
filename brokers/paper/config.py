"""How the paper broker behaves. The defaults are the plain simulator every test of
the service relies on: no latency, one full fill per marketable order, every
answer given synchronously from inside the request, nothing random. Each other
field switches on one behaviour of a real broker, so the engine can be tested
against it without Alpaca."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from types import MappingProxyType


class Ambiguity(str, Enum):
    """How a scripted submit ends without an answer that proves anything (the broker
    answers `RequestFailure(SUBMIT, UNKNOWN)` either way, so the engine must look the
    order up)."""

    TAKEN = "TAKEN"
    """The broker handled the order as usual (accepted it, and filled it if it was
    marketable) but the answer was lost: a timeout after acceptance. The submit's
    acknowledgement is replaced by the failure; the stream's reports still come."""

    TAKEN_SILENT = "TAKEN_SILENT"
    """As TAKEN, and the stream's reports were lost too: only a lookup or a sweep
    tells the engine what became of the order."""

    NOT_TAKEN = "NOT_TAKEN"
    """The broker failed before it took the order (a 500): nothing is kept, the
    client order id stays free and a lookup answers NOT_FOUND."""


@dataclass(frozen=True, slots=True)
class Commission:
    """The fee of one execution: `per_share` times its quantity plus `bps` basis points
    of its notional, at least `minimum`, rounded half up to the cent. All zero: free.
    The minimum applies per execution, as brokers that charge per execution do, so a
    split fill pays it on every part."""

    per_share: Decimal = Decimal(0)
    bps: Decimal = Decimal(0)
    minimum: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for name in ("per_share", "bps", "minimum"):
            value = getattr(self, name)
            if not value.is_finite() or value < 0:
                raise ValueError(f"commission {name} must be finite and 0 or more, not {value}")

    def fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        if not (self.per_share or self.bps or self.minimum):
            return Decimal(0)
        raw = self.per_share * quantity + self.bps * quantity * price / Decimal(10_000)
        return max(raw, self.minimum).quantize(_CENT, rounding=ROUND_HALF_UP)


_CENT = Decimal("0.01")


def _no_rejections() -> Mapping[str, str]:
    return MappingProxyType({})


def _no_ambiguities() -> Mapping[str, Ambiguity]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PaperBrokerConfig:
    """Starting cash, and slippage in basis points against the taker (buys pay up);
    then the opt-in behaviours of a real broker, each off by default."""

    starting_cash: Decimal = Decimal("100000")
    slippage_bps: Decimal = Decimal("5")
    allow_short: bool = False

    commission: Commission = field(default_factory=Commission)
    """What each execution costs (none by default, as at Alpaca for US stocks)."""

    latency_s: float = 0.0
    """0: every answer is given synchronously, from inside the request that caused it.
    Above 0: the request changes the broker's state at once and returns; its answers
    are delivered `latency_s` seconds later from a thread the broker owns (started by
    `start`, stopped by `close`), in the order they were produced."""

    partial_fills: int = 1
    """A marketable order fills in this many executions of near-equal quantity that sum
    exactly to the order's quantity (finer than its own decimals when it has fewer
    units than executions), each with its own execution id."""

    partial_fill_tick: Decimal = Decimal("0.01")
    """Each further execution of a split fill is priced this much worse for the taker
    than the one before (never beyond a limit price), so the average is not trivial.
    0: every execution at the same price."""

    rejections: Mapping[str, str] = field(default_factory=_no_rejections)
    """Symbol -> reason: every order for it is refused definitely (Outcome.REFUSED)."""

    reject_ratio: float = 0.0
    """The share of orders (0..1) refused definitely at random, drawn from `seed`: the
    same submits in the same order are refused the same way on every run."""

    seed: int = 0

    async_rejections: bool = False
    """Scripted and random refusals come as Alpaca's asynchronous rejections do: the
    submit is acknowledged (ACCEPTED) and a REJECTED report follows on the stream,
    instead of a RequestFailure. (A refusal the account itself causes, such as
    insufficient buying power, is always a RequestFailure, as at Alpaca.)"""

    fill_before_ack: bool = False
    """The stream's reports of a submit (its fills, an asynchronous rejection) are
    delivered before the submit's own ACCEPTED answer, which then arrives stale: a
    real broker's stream beating its REST response."""

    duplicate_reports: bool = False
    """Every report is delivered twice in a row, identical, as a stream that repeats
    (failures are delivered once)."""

    unknown_outcomes: Mapping[str, Ambiguity] = field(default_factory=_no_ambiguities)
    """Client order id -> how its first submit ends ambiguously (see Ambiguity)."""

    unknown_submits: tuple[Ambiguity | None, ...] = ()
    """The same by position: the n-th fresh submit (its id not yet taken, the broker
    up) ends as the n-th entry says; None, or past the end, answers normally. For
    ids not known in advance: `(Ambiguity.TAKEN,)` makes the first submit a timeout."""

    down: bool = False
    """Start unreachable (see PaperBroker.set_down)."""

    def __post_init__(self) -> None:
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be 0 or more, not {self.latency_s}")
        if self.partial_fills < 1:
            raise ValueError(f"partial_fills must be 1 or more, not {self.partial_fills}")
        if self.partial_fill_tick < 0:
            raise ValueError(f"partial_fill_tick must be 0 or more, not {self.partial_fill_tick}")
        if not 0 <= self.reject_ratio <= 1:
            raise ValueError(f"reject_ratio must be between 0 and 1, not {self.reject_ratio}")
        # A copy the caller cannot change under the broker's feet.
        object.__setattr__(self, "rejections", MappingProxyType(dict(self.rejections)))
        object.__setattr__(self, "unknown_outcomes", MappingProxyType(dict(self.unknown_outcomes)))
        object.__setattr__(self, "unknown_submits", tuple(self.unknown_submits))
