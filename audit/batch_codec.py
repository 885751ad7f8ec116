"""A market-data batch in the audit log: one compact binary block, base64 in the
record's JSON.

Format 2 (written since columnar market data; `{"data": "<base64>", "format": 2}`):
all little-endian,

    u32 symbols        distinct symbols, in order of first appearance
    per symbol:        u16 byte length, UTF-8 bytes
    u32 runs           runs of consecutive ticks of one symbol
    per run:           u32 symbol index, u32 ticks
    f64 x n            prices
    f64 x n            volumes
    i64 x n            timestamps (ns since the epoch; 0: none given)

so that a batch of one symbol, or of one series per symbol as the columnar form
sends them, names each symbol once instead of once a tick. The block is spliced
into the record's canonical JSON as a string (base64 needs no escaping), so the
payload is still exactly what `canonical_json` would give, at a fraction of the
cost of encoding ten thousand strings and numbers one by one.

Format 1 (logs written before; no `format` key): the symbols as a JSON list and
each numeric column as its own base64. Both decode to the same `MarketBatch`, so
older logs verify (their bytes are untouched) and replay.
"""

from __future__ import annotations

import base64
import itertools
import struct
import sys
from array import array
from typing import Any, Final

from domain.market import MarketBatch

FORMAT: Final = 2
_LITTLE: Final = sys.byteorder == "little"
_MAX_NAME: Final = 0xFFFF


def encode_batch(batch: MarketBatch) -> str:
    """The base64 block of format 2."""
    index: dict[str, int] = {}
    names: list[bytes] = []
    runs = array("I")
    symbols = batch.symbols
    # One symbol (a feed of one, a series): counted in C, not grouped tick by tick.
    grouped = (
        [(symbols[0], len(symbols))]
        if symbols and symbols.count(symbols[0]) == len(symbols)
        else ((symbol, len(list(group))) for symbol, group in itertools.groupby(symbols))
    )
    for symbol, ticks in grouped:
        code = index.get(symbol)
        if code is None:
            code = index[symbol] = len(names)
            names.append(symbol.encode("utf-8"))
        runs.append(code)
        runs.append(ticks)
    parts = [struct.pack("<I", len(names))]
    for name in names:
        if len(name) > _MAX_NAME:
            raise ValueError(f"a symbol of {len(name)} bytes cannot be journaled")
        parts.append(struct.pack("<H", len(name)))
        parts.append(name)
    parts.append(struct.pack("<I", len(runs) // 2))
    parts.append(_bytes(runs))
    parts.append(_bytes(array("d", batch.prices)))
    parts.append(_bytes(array("d", batch.volumes)))
    parts.append(_bytes(array("q", batch.timestamps_ns)))
    return base64.b64encode(b"".join(parts)).decode("ascii")


def decode_batch(value: dict[str, Any]) -> MarketBatch:
    """A batch from its payload, of either format."""
    if value.get("format") == FORMAT:
        return _decode_block(base64.b64decode(value["data"]))
    if "format" in value:
        raise ValueError(f"unknown market-data format {value['format']!r}")
    return MarketBatch(
        symbols=list(value["symbols"]),
        prices=_column("d", base64.b64decode(value["prices_f64le"])),
        volumes=_column("d", base64.b64decode(value["volumes_f64le"])),
        timestamps_ns=_column("q", base64.b64decode(value["timestamps_ns_i64le"])),
    )


def _decode_block(block: bytes) -> MarketBatch:
    (count,) = struct.unpack_from("<I", block, 0)
    at = 4
    names = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", block, at)
        names.append(block[at + 2 : at + 2 + length].decode("utf-8"))
        at += 2 + length
    (run_count,) = struct.unpack_from("<I", block, at)
    at += 4
    runs = _column("I", block[at : at + 8 * run_count])
    at += 8 * run_count
    symbols: list[str] = []
    for code, ticks in zip(runs[::2], runs[1::2], strict=True):
        symbols.extend(itertools.repeat(names[code], ticks))
    n = len(symbols)
    prices = _column("d", block[at : at + 8 * n])
    volumes = _column("d", block[at + 8 * n : at + 16 * n])
    stamps = _column("q", block[at + 16 * n : at + 24 * n])
    if at + 24 * n != len(block):
        raise ValueError("a market-data block of the wrong length")
    return MarketBatch(symbols, prices, volumes, stamps)


def _bytes(values: array[Any]) -> bytes:
    if not _LITTLE:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _column(code: str, raw: bytes) -> list[Any]:
    values = array(code)
    values.frombytes(raw)
    if not _LITTLE:
        values.byteswap()
    return values.tolist()
