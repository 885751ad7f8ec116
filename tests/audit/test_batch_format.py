"""The market-data journal's binary block (format 2) and the form older logs hold
(format 1): both decode exactly; format 2 is still canonical JSON."""

from __future__ import annotations

import base64
import json
import struct
from array import array
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.batch_codec import decode_batch, encode_batch
from audit.codec import canonical_json, decode_event, to_new_record
from domain.events import MarketDataReceived
from domain.market import MarketBatch

AT = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def _bits(values: list[float]) -> bytes:
    """Exact comparison, NaN payloads included."""
    return array("d", values).tobytes()


def _format_1(batch: MarketBatch) -> dict[str, object]:
    """The payload an older release wrote for a batch."""

    def pack(code: str, values: list[float] | list[int]) -> str:
        return base64.b64encode(array(code, values).tobytes()).decode("ascii")

    return {
        "symbols": batch.symbols,
        "prices_f64le": pack("d", batch.prices),
        "volumes_f64le": pack("d", batch.volumes),
        "timestamps_ns_i64le": pack("q", batch.timestamps_ns),
    }


symbols = st.sampled_from(["SPY", "QQQ", "BRK.B", "BTC/USD", "Ä-é", ""]) | st.text(max_size=12)
ticks = st.tuples(
    symbols,
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**63 - 1),
)


def _batch(rows: list[tuple[str, float, float, int]]) -> MarketBatch:
    return MarketBatch(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    )


@given(st.lists(ticks, min_size=1, max_size=200), st.booleans())
def test_any_batch_round_trips_exactly_in_both_formats(
    rows: list[tuple[str, float, float, int]], grouped: bool
) -> None:
    batch = _batch(sorted(rows, key=lambda r: r[0]) if grouped else rows)
    for payload in ({"data": encode_batch(batch), "format": 2}, _format_1(batch)):
        back = decode_batch(json.loads(json.dumps(payload)))
        assert back.symbols == batch.symbols
        assert back.timestamps_ns == batch.timestamps_ns
        assert _bits(back.prices) == _bits(batch.prices)
        assert _bits(back.volumes) == _bits(batch.volumes)


@given(st.lists(ticks, min_size=1, max_size=50), st.text(max_size=20), st.text(max_size=20))
def test_a_market_data_record_is_canonical_json_and_decodes_to_its_event(
    rows: list[tuple[str, float, float, int]], source: str, feed_id: str
) -> None:
    rows = [(s, abs(p) if p == p else 1.0, v, t) for s, p, v, t in rows]
    event = MarketDataReceived(
        _batch(rows), source, message_starts=(0,), feed_id=feed_id, message_sequences=(3,)
    )
    record = to_new_record(AT, 0, event)
    assert canonical_json(json.loads(record.payload)) == record.payload
    back = decode_event(record.event_type, record.payload)
    assert isinstance(back, MarketDataReceived)
    assert (back.source, back.feed_id, back.message_starts) == (source, feed_id, (0,))
    assert back.batch.symbols == event.batch.symbols
    assert _bits(back.batch.prices) == _bits(event.batch.prices)


def test_one_symbol_is_named_once_however_many_ticks() -> None:
    batch = MarketBatch(["SPY"] * 10_000, [1.0] * 10_000, [0.0] * 10_000, [1] * 10_000)
    block = base64.b64decode(encode_batch(batch))
    assert block.count(b"SPY") == 1
    assert len(block) == 8 + 2 + 3 + 1 + 24 * 10_000  # no symbol codes at all
    assert struct.unpack_from("<II", block, 0) == (10_000, 1)


def test_interleaved_symbols_take_one_byte_a_tick() -> None:
    symbols = [("SPY", "QQQ", "IWM")[i % 3] for i in range(999)]
    batch = MarketBatch(symbols, [1.0] * 999, [0.0] * 999, [1] * 999)
    block = base64.b64decode(encode_batch(batch))
    assert len(block) == 8 + 3 * (2 + 3) + 1 + 999 + 24 * 999
    assert decode_batch({"data": encode_batch(batch), "format": 2}).symbols == symbols


def test_an_unknown_format_or_a_cut_block_is_refused() -> None:
    batch = MarketBatch(["SPY"], [1.0], [0.0], [1])
    with pytest.raises(ValueError, match="unknown market-data format 3"):
        decode_batch({"data": encode_batch(batch), "format": 3})
    cut = base64.b64encode(base64.b64decode(encode_batch(batch))[:-4]).decode("ascii")
    with pytest.raises((ValueError, struct.error)):
        decode_batch({"data": cut, "format": 2})
