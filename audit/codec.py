"""Domain events to audit rows and back.

Payloads are canonical JSON (sorted keys, compact separators) so that the hash
of a row depends only on its content. Decimals travel as strings, datetimes as
ISO 8601 in UTC, enums as their value, a non-finite float as its repr;
decoding rebuilds the exact dataclasses from their type hints, so a replay sees
what the live run saw. A market-data batch is one binary block
(audit/batch_codec.py, with its format version; older logs' form still decodes).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from audit.batch_codec import FORMAT as BATCH_FORMAT
from audit.batch_codec import decode_batch, encode_batch
from audit.records import AuditRecord, NewRecord
from domain import events as ev
from domain.events import DomainEvent, Envelope
from domain.market import MarketBatch

EVENT_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in typing.get_args(DomainEvent)}


def _plain(value: Any) -> Any:
    if value is None or type(value) in _SCALARS:
        # JSON has no NaN or infinity; a refused signal must still be recorded as it
        # was, so a non-finite float travels as its repr ("nan", "inf"), which
        # decoding by type hint turns back into the float (x - x is 0.0 only if finite).
        if type(value) is float and value - value != 0.0:
            return repr(value)
        return value
    if isinstance(value, Enum):  # before str: the enums are str subclasses
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, MarketBatch):
        return {"data": encode_batch(value), "format": BATCH_FORMAT}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}


_SCALARS = frozenset({str, int, float, bool})


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"cannot put a {cls.__name__} in the audit log")
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _keys(event: DomainEvent) -> tuple[str | None, str | None, str | None]:
    """(symbol, order_id, idea_id) to index the row by."""
    match event:
        case ev.SignalGenerated(signal=s):
            idea = s.source.removeprefix("idea:") if s.source.startswith("idea:") else None
            return s.symbol, None, idea
        case ev.RiskDecisionMade(decision=d):
            s = d.signal
            idea = s.source.removeprefix("idea:") if s.source.startswith("idea:") else None
            return s.symbol, None, idea
        case ev.OrderUpdated(order=o):
            return o.symbol, o.order_id, None
        case ev.IdeaUpdated(idea=i):
            return i.symbol, None, i.idea_id
        case ev.CancelRequested(order_id=order_id):
            return None, order_id, None
        case ev.BrokerReportReceived(report=r, order_id=order_id):
            return r.order.symbol, order_id or None, None
        case ev.BrokerRequestFailed(order_id=order_id):
            return None, order_id or None, None
    symbol = getattr(event, "symbol", None)
    idea_id = getattr(event, "idea_id", None)
    return symbol, None, idea_id


def _payload(event: DomainEvent) -> str:
    """The event's canonical JSON. A market-data record's batch, the only large
    value, is spliced in as its binary block (audit/batch_codec.py) rather than
    walked by the JSON encoder: the same text `canonical_json` would give, since
    "batch" is the first key in sorted order and base64 needs no escaping."""
    if type(event) is not ev.MarketDataReceived:
        return canonical_json(_plain(event))
    rest = canonical_json({name: _plain(getattr(event, name)) for name in _OTHER_FIELDS})
    block = encode_batch(event.batch)
    return f'{{"batch":{{"data":"{block}","format":{BATCH_FORMAT}}},{rest[1:]}'


_OTHER_FIELDS: tuple[str, ...] = tuple(
    sorted(f.name for f in dataclasses.fields(ev.MarketDataReceived) if f.name != "batch")
)
if not _OTHER_FIELDS or _OTHER_FIELDS[0] < "batch":
    raise RuntimeError("the market-data splice needs 'batch' to be the first key")


def to_new_record(at: datetime, caused_by: int, event: DomainEvent) -> NewRecord:
    symbol, order_id, idea_id = _keys(event)
    return NewRecord(
        recorded_at=at,
        event_type=type(event).__name__,
        caused_by=caused_by,
        payload=_payload(event),
        symbol=symbol,
        order_id=order_id,
        idea_id=idea_id,
    )


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner[0], value)
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        return tuple(_build(item, v) for v in value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if origin is dict:
        _key, item = typing.get_args(tp)
        return {k: _build(item, v) for k, v in value.items()}
    if tp is MarketBatch:
        return decode_batch(value)
    if tp is Decimal:
        return Decimal(value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{k: _build(hints[k], v) for k, v in value.items()})
    if tp is float:
        return float(value)
    return value


def decode_event(event_type: str, payload: str) -> DomainEvent:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    return typing.cast(DomainEvent, _build(cls, json.loads(payload)))


def record_to_envelope(record: AuditRecord) -> Envelope:
    return Envelope(
        seq=record.seq,
        at=record.recorded_at,
        caused_by=record.caused_by,
        event=decode_event(record.event_type, record.payload),
    )
