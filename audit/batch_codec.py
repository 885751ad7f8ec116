"""A market-data batch in the audit log: one compact binary block, base64 in the
record's JSON.

Format 2 (written since columnar market data; `{"data": "<base64>", "format": 2}`):
all little-endian,

    u32 n              ticks
    u32 symbols        distinct symbols, in order of first appearance
    per symbol:        u16 byte length, UTF-8 bytes
    u8 width           bytes per symbol code: 0 (one symbol: no codes), 1, 2 or 4
    width x n          each tick's symbol, as its index in the table
    f64 x n            prices
    f64 x n            volumes
    i64 x n            timestamps (ns since the epoch; 0: none given)

so that a batch names each symbol once instead of once a tick, and a batch of one
symbol (a feed of one, a series) carries no codes at all. The block is spliced
into the record's canonical JSON as a string (base64 needs no escaping), so the
payload is still exactly what `canonical_json` would give, at a fraction of the
cost of encoding ten thousand strings and numbers one by one.

Format 1 (logs written before; no `format` key): the symbols as a JSON list and
each numeric column as its own base64. Both decode to the same `MarketBatch`, so
older logs verify (their bytes are untouched) and replay.
"""

from __future__ import annotations

import base64
import struct
import sys
from array import array
from typing import Any, Final

from domain.market import MarketBatch

FORMAT: Final = 2
_LITTLE: Final = sys.byteorder == "little"
_MAX_NAME: Final = 0xFFFF
# (array type code, bytes): the narrowest that holds every symbol's index.
_CODE_WIDTHS: Final = (("B", 1), ("H", 2), ("I", 4))


def encode_batch(batch: MarketBatch) -> str:
    """The base64 block of format 2."""
    symbols = batch.symbols
    names = list(dict.fromkeys(symbols))  # first appearance order, in C
    parts = [struct.pack("<II", len(symbols), len(names))]
    for name in names:
        raw = name.encode("utf-8")
        if len(raw) > _MAX_NAME:
            raise ValueError(f"a symbol of {len(raw)} bytes cannot be journaled")
        parts.append(struct.pack("<H", len(raw)))
        parts.append(raw)
    if len(names) <= 1:
        parts.append(b"\x00")
    else:
        code, width = next((c, w) for c, w in _CODE_WIDTHS if len(names) <= 1 << (8 * w))
        index = {name: i for i, name in enumerate(names)}
        parts.append(bytes((width,)))
        parts.append(_bytes(array(code, map(index.__getitem__, symbols))))
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
    n, count = struct.unpack_from("<II", block, 0)
    at = 8
    names = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", block, at)
        names.append(block[at + 2 : at + 2 + length].decode("utf-8"))
        at += 2 + length
    width = block[at]
    at += 1
    if width == 0:
        if n and len(names) != 1:
            raise ValueError("a market-data block without codes names more than one symbol")
        symbols = names * n if n else []
    else:
        code = next((c for c, w in _CODE_WIDTHS if w == width), None)
        if code is None:
            raise ValueError(f"a market-data block with symbol codes of {width} bytes")
        symbols = list(map(names.__getitem__, _column(code, block[at : at + width * n])))
        at += width * n
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
