"""The offline analyst: rule-based and deterministic, so the advisor works with
no account and the same snapshot always gives the same analysis.

The rules, each with the number it uses:

- concentration: a position worth more than the risk gate's position ceiling
  (max_position_pct of equity) is flagged, with an idea to sell the excess;
- unrealised loss: a position more than LOSS_ALERT below its cost is flagged;
  when its trend is also down, the idea is to sell half of it;
- trend: the SHORT_MA-price moving average against the LONG_MA one, with a
  dead band of TREND_BAND either way called flat (moving averages lag: a trend
  is a description of the past, not a forecast);
- cash drag: more than CASH_DRAG of equity in cash, with an idea to buy the
  symbol of interest in the strongest uptrend, sized at half the ceiling.

Kinds: a portfolio review runs every rule; market conditions describes trends
and suggests only risk reduction; education explains and suggests nothing.
Confidences are fixed per rule (below), not estimates of any probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from domain.ideas import AnalysisKind
from domain.orders import Side
from domain.portfolio import Position
from engines.advisor.analyst import (
    LONG_MA,
    SHORT_MA,
    AnalysisContext,
    AnalystReply,
    MarketView,
    ProposedIdea,
)

TREND_BAND = 0.0025
LOSS_ALERT = Decimal("0.10")
CASH_DRAG = Decimal("0.50")
CONFIDENCE_TRIM = 0.75
CONFIDENCE_CUT_LOSS = 0.65
CONFIDENCE_CASH = 0.6

MODEL = "offline-rules"
RULES_VERSION = "offline_rules_v1"
CENT = Decimal("0.01")


@dataclass(slots=True)
class _Draft:
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ideas: list[ProposedIdea] = field(default_factory=list)


def trend(view: MarketView | None) -> tuple[str, float]:
    """("up" | "down" | "flat" | "unknown", short MA / long MA - 1)."""
    if view is None:
        return "unknown", 0.0
    short, long = view.moving_average(SHORT_MA), view.moving_average(LONG_MA)
    if short is None or long is None or long <= 0:
        return "unknown", 0.0
    spread = short / long - 1.0
    if spread > TREND_BAND:
        return "up", spread
    if spread < -TREND_BAND:
        return "down", spread
    return "flat", spread


def _pct(value: Decimal | float) -> str:
    return f"{float(value):.1%}"


class OfflineAnalyst:
    name = "offline"
    model = MODEL

    def analyze(self, context: AnalysisContext) -> AnalystReply:
        draft = _Draft()
        kind = context.request.kind
        if context.request.question:
            draft.lines.append(
                "The offline analyst is rule-based and cannot answer free-text questions; "
                "below is what its rules find."
            )
        if kind is AnalysisKind.EDUCATION:
            _educate(context, draft)
        else:
            _describe_trends(context, draft)
            if kind is AnalysisKind.PORTFOLIO_REVIEW:
                _review_account(context, draft)
                _review_concentration(context, draft)
            _review_losses(context, draft)
            if kind is AnalysisKind.PORTFOLIO_REVIEW:
                _review_cash(context, draft)
        if not draft.ideas and kind is not AnalysisKind.EDUCATION:
            draft.lines.append("No trade idea: none of the rules calls for one.")
        return AnalystReply(
            text="\n".join(draft.lines),
            warnings=tuple(draft.warnings),
            ideas=tuple(draft.ideas),
            model=MODEL,
            prompt_version=RULES_VERSION,
        )


def _describe_trends(ctx: AnalysisContext, draft: _Draft) -> None:
    for symbol in ctx.symbols:
        view = ctx.market(symbol)
        if view is None or view.last_price is None:
            draft.lines.append(f"{symbol}: no market data seen yet.")
            continue
        direction, spread = trend(view)
        if direction == "unknown":
            draft.lines.append(
                f"{symbol}: last {view.last_price}; fewer than {LONG_MA} prices seen, "
                "so no trend is read."
            )
            continue
        draft.lines.append(
            f"{symbol}: last {view.last_price}; {SHORT_MA}-price average is {spread:+.2%} "
            f"against the {LONG_MA}-price average: trend {direction} (averages lag)."
        )


def _review_account(ctx: AnalysisContext, draft: _Draft) -> None:
    share = ctx.cash / ctx.equity if ctx.equity > 0 else Decimal(0)
    draft.lines.append(
        f"Account: equity {ctx.equity.quantize(CENT)}, cash {ctx.cash.quantize(CENT)} "
        f"({_pct(share)}), {len(ctx.positions)} position(s)."
    )


def _review_concentration(ctx: AnalysisContext, draft: _Draft) -> None:
    ceiling = ctx.limits.position_ceiling(ctx.equity)
    if ceiling is None or ctx.equity <= 0:
        return
    for position in ctx.positions:
        value = position.market_value
        if position.quantity <= 0 or value <= ceiling:
            continue
        draft.warnings.append(
            f"{position.symbol} is {_pct(value / ctx.equity)} of equity, above the "
            f"{_pct(ctx.limits.max_position_pct or 0)} position limit: a move against it "
            "would hurt the whole portfolio."
        )
        excess = (value - ceiling) / position.market_price
        quantity = min(excess.to_integral_value(rounding=ROUND_CEILING), position.quantity)
        draft.ideas.append(
            _sell(
                position,
                quantity,
                CONFIDENCE_TRIM,
                f"Trim {position.symbol} back to the position limit ({ceiling.quantize(CENT)}).",
                "the price may rise after the sale",
            )
        )


def _review_losses(ctx: AnalysisContext, draft: _Draft) -> None:
    for position in ctx.positions:
        cost = position.average_price * position.quantity
        if position.quantity <= 0 or cost <= 0:
            continue
        loss = -position.unrealized_pnl / cost
        if loss <= LOSS_ALERT:
            continue
        direction, _ = trend(ctx.market(position.symbol))
        draft.warnings.append(
            f"{position.symbol} is {_pct(loss)} below its cost "
            f"(unrealised {position.unrealized_pnl.quantize(CENT)}); trend {direction}."
        )
        if direction != "down" or any(i.symbol == position.symbol for i in draft.ideas):
            continue
        half = max((position.quantity / 2).to_integral_value(rounding=ROUND_FLOOR), Decimal(1))
        draft.ideas.append(
            _sell(
                position,
                half,
                CONFIDENCE_CUT_LOSS,
                f"Halve {position.symbol}: it is in a loss and its trend is down.",
                "the price may recover after the sale, and the loss becomes realised",
            )
        )


def _review_cash(ctx: AnalysisContext, draft: _Draft) -> None:
    if ctx.equity <= 0 or ctx.cash / ctx.equity <= CASH_DRAG:
        return
    draft.lines.append(
        f"Cash is {_pct(ctx.cash / ctx.equity)} of equity: idle cash earns nothing in this "
        "account (cash drag); investing it adds market risk."
    )
    ceiling = ctx.limits.position_ceiling(ctx.equity)
    held = {p.symbol for p in ctx.positions}
    candidates = []
    for symbol in ctx.symbols:
        direction, spread = trend(ctx.market(symbol))
        if direction == "up" and symbol not in held and symbol in ctx.prices:
            candidates.append((-spread, symbol))
    if ceiling is None or not candidates:
        return
    symbol = min(candidates)[1]
    price = ctx.prices[symbol]
    quantity = (ceiling / 2 / price).to_integral_value(rounding=ROUND_FLOOR)
    if quantity <= 0:
        return
    draft.ideas.append(
        ProposedIdea(
            symbol=symbol,
            side=Side.BUY.value,
            quantity=quantity,
            notional=None,
            limit_price=None,
            confidence=CONFIDENCE_CASH,
            rationale=(
                f"Put a small part of the idle cash into {symbol}, the symbol of interest in "
                f"the strongest uptrend, at half the position limit."
            ),
            risks=(
                "the trend may reverse: moving averages describe the past",
                "a single-stock position is concentrated risk",
                "the price may gap at the open or on news",
            ),
        )
    )


def _sell(
    position: Position, quantity: Decimal, confidence: float, rationale: str, risk: str
) -> ProposedIdea:
    return ProposedIdea(
        symbol=position.symbol,
        side=Side.SELL.value,
        quantity=quantity,
        notional=None,
        limit_price=None,
        confidence=confidence,
        rationale=rationale,
        risks=(risk, "selling realises a gain or a loss, which may have tax consequences"),
    )


def _educate(ctx: AnalysisContext, draft: _Draft) -> None:
    ceiling = ctx.limits.position_ceiling(ctx.equity)
    limit = (
        f"at most {_pct(ctx.limits.max_position_pct or 0)} of equity "
        f"({ceiling.quantize(CENT)} now) in one position"
        if ceiling is not None
        else "no position-size limit configured"
    )
    draft.lines.extend(
        [
            "How this service manages risk:",
            f"- Position size: the risk gate allows {limit}; a position above that makes "
            "one price move hurt the whole portfolio.",
            "- Diversification: several unrelated positions fall together less often than one.",
            f"- Trends: a {SHORT_MA}-price average above the {LONG_MA}-price one says prices "
            "have been rising; it lags, and says nothing certain about tomorrow.",
            "- Ideas from this advisor are suggestions: a person approves or rejects each, "
            "and an approved idea still passes every risk rule before any order is sent.",
        ]
    )
    draft.warnings.append("Every trade can lose money, including all of what is invested.")
