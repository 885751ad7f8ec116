"""Analyst output is untrusted input: each proposed idea becomes a valid idea or
a reason it was dropped, never anything in between.

The checks are against the snapshot the analyst saw (`AnalysisContext`): the
symbol must be one the service knows and has a price for, the size must be a
positive number of whole shares within the risk gate's position ceiling (and
at most one order's bound of the numeric domain), any limit price inside the
price domain, and the idea must say why and name its risks. A proposal with a
number that cannot be computed with (NaN, an overflow) is dropped with that
reason; nothing in it can raise out of the advisor. A sell larger than the position is
dropped too: the advisor suggests cutting risk, not opening shorts. Passing
here proves nothing about the trade: an approved idea still meets the risk gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from domain import numeric
from domain.ideas import AnalysisKind, IdeaState, TradeIdea
from domain.orders import Side
from domain.portfolio import Position
from engines.advisor.analyst import AnalysisContext, ProposedIdea

MAX_TEXT = 2000
MAX_RISKS = 10


@dataclass(frozen=True, slots=True)
class ValidIdea:
    """A proposal that passed every check, waiting for its id and timestamps."""

    symbol: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    reference_price: Decimal
    confidence: float
    rationale: str
    risks: tuple[str, ...]
    ttl: timedelta

    def to_idea(self, idea_id: str, analysis_id: str, now: datetime) -> TradeIdea:
        return TradeIdea(
            idea_id=idea_id,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            limit_price=self.limit_price,
            reference_price=self.reference_price,
            confidence=self.confidence,
            rationale=self.rationale,
            risks=self.risks,
            created_at=now,
            expires_at=now + self.ttl,
            state=IdeaState.PENDING_APPROVAL,
            analysis_id=analysis_id,
        )


class Dropped(Exception):
    """Why one proposal cannot become an idea (internal to this module)."""


def validate_all(
    proposals: tuple[ProposedIdea, ...], ctx: AnalysisContext
) -> tuple[list[ValidIdea], list[str]]:
    """Split proposals into valid ideas and drop reasons, in the analyst's order."""
    valid: list[ValidIdea] = []
    dropped: list[str] = []
    for proposal in proposals:
        label = f"{proposal.symbol.strip() or '?'} {proposal.side.strip() or '?'}"
        if ctx.request.kind is AnalysisKind.EDUCATION:
            dropped.append(f"{label}: dropped, an education answer proposes no trades")
            continue
        if len(valid) == ctx.max_ideas:
            dropped.append(f"{label}: dropped, at most {ctx.max_ideas} ideas per analysis")
            continue
        try:
            valid.append(validate(proposal, ctx))
        except Dropped as why:
            dropped.append(f"{label}: {why}")
        except ArithmeticError as exc:
            # The checks below guard every number they know of; this catches the
            # one they missed, so an analyst's odd number drops its idea, nothing more.
            dropped.append(f"{label}: a number in it could not be computed ({type(exc).__name__})")
    return valid, dropped


def numbers_outside_domain(ctx: AnalysisContext) -> list[str]:
    """The account's numbers in `ctx` that are not finite or outside the money
    domain, as "name=value" (empty when all are inside). An analysis, and the
    cent rounding it does, is only made from numbers inside the domain."""
    amounts: list[tuple[str, Decimal]] = [("cash", ctx.cash), ("equity", ctx.equity)]
    for position in ctx.positions:
        amounts += _position_amounts(position)
    return [f"{name}={value}" for name, value in amounts if not numeric.money_in_domain(value)]


def _position_amounts(p: Position) -> list[tuple[str, Decimal]]:
    try:
        value, pnl = p.market_value, p.unrealized_pnl
    except ArithmeticError:  # inf - inf, 0 * inf: not computable, so not a number
        value = pnl = Decimal("NaN")
    return [
        (f"{p.symbol} quantity", p.quantity),
        (f"{p.symbol} average price", p.average_price),
        (f"{p.symbol} market price", p.market_price),
        (f"{p.symbol} market value", value),
        (f"{p.symbol} unrealised P&L", pnl),
    ]


def validate(proposal: ProposedIdea, ctx: AnalysisContext) -> ValidIdea:
    """The proposal as a valid idea, or raise Dropped with the reason."""
    symbol = _known_symbol(proposal.symbol, ctx)
    side = _side(proposal.side)
    reference = ctx.prices.get(symbol)
    if reference is None or not numeric.decimal_price_in_domain(reference):
        raise Dropped(f"no market price for {symbol}, so it cannot be sized or priced")
    limit = proposal.limit_price
    if limit is not None and not numeric.decimal_price_in_domain(limit):
        raise Dropped(
            f"limit price must be positive, finite and within {numeric.PRICE_RANGE}, got {limit}"
        )
    quantity = _quantity(proposal, limit or reference)
    if not (math.isfinite(proposal.confidence) and 0.0 <= proposal.confidence <= 1.0):
        raise Dropped(f"confidence must be between 0 and 1, got {proposal.confidence}")
    _check_size(symbol, side, quantity, limit or reference, ctx)
    rationale = proposal.rationale.strip()[:MAX_TEXT]
    if not rationale:
        raise Dropped("it gives no rationale")
    risks = tuple(r.strip()[:MAX_TEXT] for r in proposal.risks if r.strip())[:MAX_RISKS]
    if not risks:
        raise Dropped("it names no risks; every idea must say what could go wrong")
    return ValidIdea(
        symbol=symbol,
        side=side,
        quantity=quantity,
        limit_price=limit,
        reference_price=reference,
        confidence=proposal.confidence,
        rationale=rationale,
        risks=risks,
        ttl=_ttl(proposal.expires_in_minutes, ctx.idea_ttl),
    )


def _known_symbol(text: str, ctx: AnalysisContext) -> str:
    symbol = text.strip().upper()
    if not symbol:
        raise Dropped("it names no symbol")
    known = (
        symbol in ctx.prices
        or symbol in ctx.request.symbols
        or symbol in ctx.strategy_symbols
        or any(p.symbol == symbol for p in ctx.positions)
    )
    if not known:
        raise Dropped(
            f"unknown symbol {symbol!r}: not held, not traded by a strategy, "
            "not asked about, and no market data seen"
        )
    return symbol


def _side(text: str) -> Side:
    try:
        return Side(text.strip().upper())
    except ValueError:
        raise Dropped(f"side must be BUY or SELL, got {text!r}") from None


def _quantity(proposal: ProposedIdea, price: Decimal) -> Decimal:
    quantity = proposal.quantity
    if quantity is None:
        if proposal.notional is None:
            raise Dropped("it gives neither a quantity nor a notional")
        if not numeric.money_in_domain(proposal.notional):
            raise Dropped(
                f"notional must be a finite amount within {numeric.MONEY_RANGE}, "
                f"got {proposal.notional}"
            )
        # A notional is turned into whole shares at the price it would trade at.
        quantity = (proposal.notional / price).to_integral_value(rounding=ROUND_FLOOR)
    if not quantity.is_finite() or quantity <= 0:
        raise Dropped(f"quantity must be positive, got {quantity}")
    if quantity > numeric.MAX_ORDER_QUANTITY:
        raise Dropped(
            f"quantity must be within {numeric.ORDER_QUANTITY_RANGE} shares, got {quantity}"
        )
    if quantity != quantity.to_integral_value():
        raise Dropped(f"quantity must be whole shares, got {quantity}")
    return quantity.quantize(Decimal(1))


def _check_size(
    symbol: str, side: Side, quantity: Decimal, price: Decimal, ctx: AnalysisContext
) -> None:
    held = ctx.held(symbol)
    if side is Side.SELL:
        if quantity > held:
            raise Dropped(
                f"sells {quantity} but {held} are held; the advisor does not propose short sales"
            )
        return  # selling what is held only reduces risk: never limited by size
    ceiling = ctx.limits.position_ceiling(ctx.equity)
    notional = (quantity * price).quantize(Decimal("0.01"))
    if ceiling is not None and notional > ceiling:
        raise Dropped(
            f"notional {notional} exceeds the position ceiling {ceiling} "
            f"(max_position_pct {ctx.limits.max_position_pct} of equity {ctx.equity})"
        )


def _ttl(minutes: int | None, default: timedelta) -> timedelta:
    if minutes is None:
        return default
    if minutes <= 0:
        raise Dropped(f"expiry must be in the future, got {minutes} minutes")
    # An analyst may shorten an idea's life, never extend it past the default.
    return min(timedelta(minutes=minutes), default)
