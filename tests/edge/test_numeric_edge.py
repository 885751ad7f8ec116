"""The numeric domain at the edge (DESIGN.md invariant 7): a price or volume
outside it is refused with INVALID_ARGUMENT and changes nothing, and values at
its extremes are accepted and never make an RPC fail with UNKNOWN.

The regressions are the three reproductions of issue 8, finding 3: a 5e-324
tick that led to a confidence-1.0 order, 1.7e308 ticks that silenced a symbol,
and a 1.7e308 tick that made Analyze fail with UNKNOWN.
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import numeric
from domain.errors import InvalidInput
from server.validation import NS, MarketBatchReader
from tests.conftest import RunningService
from tests.support.calls import failure_of
from tests.support.market import SESSION, crossover_prices, ticks
from tests.support.state import snapshot
from trading_sdk.client import error_info, market_event
from trading_sdk.v1 import market_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
LATER = SESSION + timedelta(minutes=30)
SLIDE, RALLY = crossover_prices()[:60], crossover_prices()[60:]


# --- reproduction 1: the 5e-324 tick ---------------------------------------------------


def test_a_subnormal_price_is_refused_at_the_edge_and_changes_nothing(
    traded: RunningService,
) -> None:
    client = traded.client
    before = snapshot(client)

    failure = failure_of(lambda: client.simulate_market_event("SPY", 5e-324, 10.0, LATER))

    assert failure.code == INVALID
    details = failure.details
    assert "event 0 (SPY): price must be finite and > 0" in details
    assert "5e-324" in details and numeric.PRICE_RANGE in details
    info = error_info(failure.error)
    assert info is not None
    assert (info.reason, info.metadata["event_index"]) == ("BAD_MARKET_EVENT", "0")
    assert snapshot(client) == before


def test_the_reproduction_message_is_refused_whole_and_no_order_is_placed(
    svc: RunningService,
) -> None:
    """A slide, one 5e-324 tick, a rally: it used to place an order on a
    confidence of 1.0 ("noise nan% (z=inf)"). Now the message is refused at
    event 60; without the bad tick the same path trades as it always did."""
    client = svc.client
    events = ticks("SPY", [*SLIDE, 5e-324, *RALLY])

    failure = failure_of(lambda: client.stream_market_data([events]))

    assert failure.code == INVALID
    assert "event 60 (SPY)" in failure.details
    info = error_info(failure.error)
    assert info is not None
    assert info.reason == "MARKET_DATA_MESSAGE_REFUSED"
    assert (info.metadata["event_index"], info.metadata["cause"]) == ("60", "BAD_MARKET_EVENT")
    assert client.list_order_history().orders == []
    assert client.get_status().counters.market_events == 0

    summary = client.stream_market_data([ticks("SPY", [*SLIDE, *RALLY])])
    assert (summary.signals, summary.orders) == (1, 1)


OUTSIDE = [
    pytest.param(5e-324, 10.0, "price", "5e-324", id="subnormal-price"),
    pytest.param(numeric.MIN_PRICE / 2, 10.0, "price", "5e-05", id="below-min-price"),
    pytest.param(math.nextafter(numeric.MAX_PRICE, math.inf), 10.0, "price", "", id="above-max"),
    pytest.param(1.7e308, 10.0, "price", "1.7e+308", id="huge-price"),
    pytest.param(-0.0, 10.0, "price", "-0.0", id="negative-zero-price"),
    pytest.param(500.0, numeric.MAX_VOLUME * 1.5, "volume", "1500000000000.0", id="huge-volume"),
    pytest.param(500.0, 1.7e308, "volume", "1.7e+308", id="huger-volume"),
]


@pytest.mark.parametrize(("price", "volume", "field", "shown"), OUTSIDE)
def test_a_stream_message_with_a_value_outside_the_domain_names_it_and_its_range(
    traded: RunningService, price: float, volume: float, field: str, shown: str
) -> None:
    """The bad event is the 3rd of its message; the message is refused whole."""
    client = traded.client
    before = snapshot(client)
    batch = ticks("SPY", [555.0, 556.0], start=LATER)
    batch.append(market_event("SPY", price, volume, LATER + timedelta(seconds=2)))

    failure = failure_of(lambda: client.stream_market_data([batch]))

    assert failure.code == INVALID
    details = failure.details
    allowed = numeric.PRICE_RANGE if field == "price" else numeric.VOLUME_RANGE
    assert f"event 2 (SPY): {field} must be finite" in details
    assert allowed in details and shown in details
    info = error_info(failure.error)
    assert info is not None and info.metadata["event_index"] == "2"
    after = snapshot(client)
    assert (after.positions, after.account, after.orders) == (
        before.positions,
        before.account,
        before.orders,
    )


def test_the_bounds_themselves_are_accepted(traded: RunningService) -> None:
    client = traded.client
    batch = [
        market_event("SPY", numeric.MIN_PRICE, 0.0, LATER),
        market_event("SPY", numeric.MAX_PRICE, numeric.MAX_VOLUME, LATER + timedelta(seconds=1)),
    ]
    summary = client.stream_market_data([batch])
    assert summary.events_accepted == 2
    (position,) = client.list_positions().positions
    assert Decimal(position.market_price) == Decimal(repr(numeric.MAX_PRICE))


# --- reproductions 2 and 3: huge ticks -----------------------------------------------------


def test_a_huge_tick_while_held_is_refused_and_account_and_analyze_still_answer(
    traded: RunningService,
) -> None:
    """It used to be accepted: GetAccount then showed equity 6.8E+309 and Analyze
    failed with UNKNOWN (decimal.InvalidOperation)."""
    client = traded.client
    account = client.get_account()

    failure = failure_of(lambda: client.simulate_market_event("SPY", 1.7e308, 1.0, LATER))

    assert failure.code == INVALID
    assert client.get_account() == account
    analysis = client.analyze(symbols=["SPY"]).analysis
    assert "Account: equity" in analysis.text


def test_at_the_extremes_of_the_domain_every_read_answers_and_the_symbol_trades_again(
    traded: RunningService,
) -> None:
    """SPY held, then 60 ticks at the top of the domain, a jump to its bottom and
    back: GetAccount and Analyze answer with finite numbers, and a crossover
    afterwards is still seen (the running sums recover)."""
    client = traded.client
    start = LATER
    extremes = [numeric.MAX_PRICE] * 60 + [numeric.MIN_PRICE] * 5 + [numeric.MAX_PRICE] * 5
    client.stream_market_data([ticks("SPY", extremes, start=start)])

    equity = Decimal(client.get_account().account.equity)
    assert equity.is_finite() and numeric.money_in_domain(equity)
    for position in client.list_positions().positions:
        assert Decimal(position.market_value).is_finite()
    client.analyze(symbols=["SPY"])  # no UNKNOWN

    # Back to ordinary prices for two laps of the ring, then the crossover again.
    later = start + timedelta(minutes=5)
    settle = ticks("SPY", [100.0 + 0.01 * i for i in range(140)], start=later)
    again = ticks("SPY", crossover_prices(), start=later + timedelta(minutes=5))
    summary = client.stream_market_data([settle, again])
    buys = [
        d
        for d in client.get_risk_status(recent_decisions=20).recent_decisions
        if d.signal.rationale.startswith("20-period MA crossed above")
        and d.signal.created_at.ToDatetime().replace(tzinfo=SESSION.tzinfo) > later
    ]
    assert summary.signals >= 1
    assert buys, "the crossover after the extremes must signal a buy"
    assert all(math.isfinite(d.signal.confidence) for d in buys)


# --- property: the reader accepts the domain and refuses everything else --------------------

NOW_NS = int((SESSION + timedelta(days=1)).timestamp()) * NS
ANY_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=numeric.MIN_PRICE, max_value=numeric.MAX_PRICE),
    st.sampled_from(
        [
            5e-324,
            -5e-324,
            0.0,
            -0.0,
            numeric.MIN_PRICE,
            numeric.MAX_PRICE,
            numeric.MAX_VOLUME,
            math.nextafter(numeric.MIN_PRICE, 0.0),
            math.nextafter(numeric.MAX_PRICE, math.inf),
            math.nextafter(numeric.MAX_VOLUME, math.inf),
            1.7e308,
            math.nan,
            -math.nan,
            math.inf,
            -math.inf,
        ]
    ),
)


def _event(price: float, volume: float) -> market_pb2.MarketEvent:
    event = market_pb2.MarketEvent(symbol="SPY", price=price, volume=volume)
    event.timestamp.FromDatetime(SESSION)
    return event


@settings(max_examples=400, deadline=None)
@given(values=st.lists(st.tuples(ANY_FLOAT, ANY_FLOAT), min_size=1, max_size=12))
def test_the_reader_accepts_only_values_inside_the_domain(
    values: list[tuple[float, float]],
) -> None:
    reader = MarketBatchReader(require_timestamp=True, max_future_skew_ns=0)
    events = [_event(price, volume) for price, volume in values]
    inside = [
        numeric.price_in_domain(price) and numeric.volume_in_domain(volume)
        for price, volume in values
    ]
    try:
        batch = reader.read(events, NOW_NS)
    except InvalidInput as refusal:
        first_bad = inside.index(False)
        assert refusal.reason == "BAD_MARKET_EVENT"
        assert refusal.metadata == {"event_index": str(first_bad)}
        assert f"event {first_bad} (SPY)" in str(refusal)
        return
    assert all(inside)
    assert all(numeric.price_in_domain(p) for p in batch.prices)
    assert all(numeric.volume_in_domain(v) for v in batch.volumes)


def test_the_fast_path_still_refuses_a_nan_that_min_and_max_would_skip() -> None:
    """min() and max() may pass over a NaN (every comparison with it is False);
    the column sum catches it."""
    reader = MarketBatchReader(require_timestamp=True, max_future_skew_ns=0)
    events = [_event(100.0, 1.0), _event(math.nan, 1.0), _event(101.0, 1.0)]
    with pytest.raises(InvalidInput, match=r"event 1 \(SPY\): price must be finite"):
        reader.read(events, NOW_NS)
