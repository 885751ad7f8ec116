"""Audit records as a person reads them: a one-line summary, and what differs
between two records field by field.

Payloads are decoded back into their events (audit.codec) and shown in plain
terms: market data as one entry per tick (symbol, price, volume, time) rather
than the packed columns the log stores; decimals, times and enums as text. A
payload that cannot be decoded is shown as the JSON it holds, or as its text.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from audit.codec import decode_event
from audit.records import AuditRecord
from domain import events as ev
from domain.market import MarketBatch

MAX_FIELDS = 8
"""Most field differences listed; the rest are counted."""
_MAX_TEXT = 120
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ("event_type", "recorded_at", "caused_by", "symbol", "order_id", "idea_id")


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """One field that differs: its path (`recorded_at`, `payload.order.status`,
    `payload.batch[3].price`) and its value on each side, as text ("" if absent)."""

    path: str
    recorded: str
    replayed: str


def field_differences(
    recorded: AuditRecord, replayed: AuditRecord, limit: int = MAX_FIELDS
) -> tuple[list[FieldDifference], int]:
    """The fields that differ (at most `limit`) and how many differ in all."""
    found: list[FieldDifference] = []
    for column in _COLUMNS:
        a, b = getattr(recorded, column), getattr(replayed, column)
        if a != b:
            found.append(FieldDifference(column, _text(readable(a)), _text(readable(b))))
    if recorded.payload != replayed.payload:
        before = len(found)
        _diff("payload", _payload(recorded), _payload(replayed), found)
        if len(found) == before:  # the same content, other bytes (key order, spacing)
            found.append(
                FieldDifference("payload", _text(recorded.payload), _text(replayed.payload))
            )
    return found[:limit], len(found)


def summary(record: AuditRecord) -> str:
    """A short line saying what the record is: `OrderUpdated o12 BUY 10 SPY FILLED`."""
    try:
        event = decode_event(record.event_type, record.payload)
    except Exception:  # a tampered or foreign payload: say so, do not fail
        return f"{record.event_type} (payload not decodable)"
    return f"{record.event_type} {_describe(event)}".rstrip()


def readable(value: Any) -> Any:
    """`value` (an event, or any part of one) as JSON-like plain data a person reads."""
    if isinstance(value, Enum):  # before str: the domain's enums are str subclasses
        return value.value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # JSON has no NaN or infinity: those as their repr
        return value if value - value == 0.0 else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, MarketBatch):
        return [
            {"symbol": s, "price": p, "volume": v, "time": _tick_time(t)}
            for s, p, v, t in zip(
                value.symbols, value.prices, value.volumes, value.timestamps_ns, strict=False
            )
        ]
    if isinstance(value, list | tuple):
        return [readable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): readable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: readable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return repr(value)


def _payload(record: AuditRecord) -> Any:
    try:
        return readable(decode_event(record.event_type, record.payload))
    except Exception:  # not an event this code knows: the JSON, or the text itself
        try:
            return json.loads(record.payload)
        except (ValueError, TypeError):
            return record.payload


def _diff(path: str, a: Any, b: Any, found: list[FieldDifference]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            _diff(
                f"{path}.{key}",
                a.get(key, _ABSENT),
                b.get(key, _ABSENT),
                found,
            )
        return
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(f"{path}[{i}]", x, y, found)
        if len(a) != len(b):
            found.append(FieldDifference(f"{path} length", str(len(a)), str(len(b))))
        return
    if a != b or type(a) is not type(b):
        found.append(FieldDifference(path, _text(a), _text(b)))


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _text(value: Any) -> str:
    if value is _ABSENT:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _tick_time(ns: int) -> str:
    try:
        return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()
    except OverflowError:
        return str(ns)


def _describe(event: ev.DomainEvent) -> str:
    match event:
        case ev.MarketDataReceived(batch=batch):
            symbols = sorted(set(batch.symbols))
            shown = ",".join(symbols[:3]) + ("..." if len(symbols) > 3 else "")
            return f"{len(batch)} tick(s) of {shown}"
        case ev.SignalGenerated(signal=s):
            return f"{s.signal_id} {s.side.value} {s.quantity} {s.symbol} @ {s.reference_price}"
        case ev.RiskDecisionMade(decision=d):
            s = d.signal
            verdict = (
                "approved"
                if d.approved
                else "rejected (" + ", ".join(v.code for v in d.rejections) + ")"
            )
            return f"{d.decision_id} {verdict}: {s.side.value} {s.quantity} {s.symbol}"
        case ev.OrderUpdated(order=o):
            return f"{o.order_id} {o.side.value} {o.quantity} {o.symbol} {o.status.value}"
        case ev.TradingStateChanged(status=st):
            return f"{st.cause.value} {st.state.value} by {st.changed_by or '?'}: {st.reason}"
        case ev.RiskLimitsChanged(limits=new, previous=old, changed_by=by):
            changed = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))
            shown = ", ".join(f"{k}={new.get(k, '')}" for k in changed)
            return f"by {by}: {shown}"
        case ev.StrategyStateChanged(name=name, active=active, changed_by=by):
            return f"{name} {'active' if active else 'inactive'} by {by}"
        case ev.CancelRequested(order_id=order_id, requested_by=by):
            return f"{order_id} by {by}"
        case ev.IdeaUpdated(idea=i):
            return f"{i.idea_id} {i.state.value} {i.side.value} {i.quantity} {i.symbol}"
        case ev.BrokerReportReceived(report=r, order_id=order_id):
            return f"{order_id or r.client_order_id} {r.event or r.order.status.value}"
        case ev.BrokerRequestFailed(failure=f, order_id=order_id):
            return f"{order_id or f.client_order_id} {f.request.value} {f.outcome.value}"
        case ev.ServiceStarted(broker=b, instance=instance):
            return f"broker {b.name} ({b.endpoint}) by {instance}"
    return ""
