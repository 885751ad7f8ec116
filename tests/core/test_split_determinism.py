"""DESIGN.md invariant 4 through the whole core: the same ticks split into other
messages give the same signals, decisions (every verdict), orders and fills, in
the same order, with the same numbers. Only what journal records number (seqs,
and the ids made of them) may follow the message boundaries."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.codec import record_to_envelope
from audit.records import AuditQuery
from domain.events import OrderUpdated, RiskDecisionMade, SignalGenerated
from domain.market import MarketBatch
from server.bootstrap import load_calendar
from tests.core.harness import make_harness
from tests.support.market import SESSION_START

SYMBOLS = ("SPY", "QQQ")
TICKS = 360  # one tick a minute for each symbol in turn: 3 hours of the session
STEP_NS = 30_000_000_000


def _path(seed: int, volatility: float) -> MarketBatch:
    """Two interleaved random walks with trends that reverse, so crossings trade."""
    rng = random.Random(seed)
    prices = dict.fromkeys(SYMBOLS, 100.0)
    start = int(SESSION_START.timestamp()) * 1_000_000_000
    rows: list[tuple[str, float, int]] = []
    for k in range(TICKS):
        symbol = SYMBOLS[k % 2]
        drift = 0.004 * math.sin(k / 25 + (k % 2))
        prices[symbol] *= math.exp(drift + rng.gauss(0, volatility))
        rows.append((symbol, round(prices[symbol], 4), start + k * STEP_NS))
    return MarketBatch(
        [r[0] for r in rows], [r[1] for r in rows], [100.0] * len(rows), [r[2] for r in rows]
    )


def _what_happened(batch: MarketBatch, cuts: list[int]) -> list[tuple[Any, ...]]:
    harness = make_harness(load_calendar(), trading_strategy_symbols=list(SYMBOLS))
    bounds = [0, *sorted(set(cuts)), len(batch)]
    for start, end in itertools.pairwise(bounds):
        if start == end:
            continue
        harness.core.ingest(
            MarketBatch(
                batch.symbols[start:end],
                batch.prices[start:end],
                batch.volumes[start:end],
                batch.timestamps_ns[start:end],
            ),
            "test",
        )
    happened: list[tuple[Any, ...]] = []
    for record in harness.store.query(AuditQuery()):
        envelope = record_to_envelope(record)
        match envelope.event:
            case SignalGenerated(signal=s, tick_index=_):
                happened.append(
                    (
                        "signal",
                        s.symbol,
                        s.side,
                        s.quantity,
                        s.reference_price,
                        s.confidence,
                        s.rationale,
                        s.created_at,
                    )
                )
            case RiskDecisionMade(decision=d):
                verdicts = tuple((v.rule, v.passed, v.code, v.detail) for v in d.verdicts)
                happened.append(("decision", d.approved, verdicts, d.decided_at))
            case OrderUpdated(order=o):
                change = o.history[-1]
                happened.append(
                    (
                        "order",
                        o.symbol,
                        o.side,
                        o.quantity,
                        o.status,
                        o.filled_quantity,
                        o.average_fill_price,
                        change.fill_quantity,
                        change.fill_price,
                        change.fill_fee,
                        change.at,
                    )
                )
    return happened


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    volatility=st.sampled_from([0.002, 0.006, 0.015]),
    cuts=st.lists(st.integers(1, TICKS - 1), max_size=30),
)
def test_any_split_gives_the_same_decisions_orders_and_fills(
    seed: int, volatility: float, cuts: list[int]
) -> None:
    batch = _path(seed, volatility)
    whole = _what_happened(batch, [])
    assert _what_happened(batch, cuts) == whole
    assert _what_happened(batch, list(range(1, TICKS))) == whole  # one tick a message


def test_the_chosen_path_trades() -> None:
    """The property above is not vacuous: its paths make signals, approvals and fills."""
    happened = _what_happened(_path(3, 0.006), [])
    kinds = [h[0] for h in happened]
    assert kinds.count("signal") >= 2
    assert any(h[0] == "decision" and h[1] for h in happened)
    assert any(h[0] == "order" and h[7] > 0 for h in happened)
