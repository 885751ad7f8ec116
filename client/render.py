"""Human-readable text for the service's messages: one-line summaries, tables, outlines.

Shared by tradectl and the demo so an order or a risk decision reads the same
in both. Decimal strings are shown as the service sent them, never re-rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Final

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from trading.v1 import advisor_pb2, audit_pb2, events_pb2, orders_pb2, risk_pb2
from trading.v1 import trading_service_pb2 as pb

_INDENT: Final = "  "


def label(message: Message, field: str) -> str:
    """The enum value in `field`, without its enum's prefix: ORDER_STATUS_FILLED -> FILLED."""
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    if enum is None:
        raise ValueError(f"{message.DESCRIPTOR.name}.{field} is not an enum field")
    number = getattr(message, field)
    value = enum.values_by_number.get(number)
    if value is None:  # a value newer than these generated modules
        return str(number)
    return value.name.removeprefix(enum.values_by_number[0].name.removesuffix("UNSPECIFIED"))


def when(stamp: timestamp_pb2.Timestamp) -> str:
    """ISO 8601 UTC, or "-" for an unset time stamp."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return "-"
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def signal_line(signal: risk_pb2.TradeSignal) -> str:
    return (
        f"{label(signal, 'side')} {signal.quantity} {signal.symbol} @ {signal.reference_price}"
        f" confidence {signal.confidence:.2f} from {signal.source}"
    )


def rejections(decision: risk_pb2.RiskDecision) -> list[str]:
    """`code: detail` of every rule that failed the decision's signal."""
    return [f"{v.code}: {v.detail}" for v in decision.verdicts if not v.passed]


def decision_line(decision: risk_pb2.RiskDecision) -> str:
    verdict = "APPROVED" if decision.approved else "REJECTED"
    line = f"{verdict} {signal_line(decision.signal)}"
    failed = rejections(decision)
    return f"{line} -- {'; '.join(failed)}" if failed else line


def order_line(order: orders_pb2.Order) -> str:
    line = (
        f"{order.order_id} {label(order, 'side')} {order.quantity} {order.symbol}"
        f" {label(order, 'type')} {label(order, 'status')}"
        f" filled {order.filled_quantity or '0'} @ {order.average_fill_price or '-'}"
    )
    if order.time_in_force:
        line += f" {label(order, 'time_in_force')}"
    return f"{line} (external)" if order.external else line


def fill_lines(order: orders_pb2.Order) -> list[str]:
    """One line per fill in the order's history."""
    return [
        f"{when(change.time)} {change.fill_quantity} @ {change.fill_price}"
        for change in order.history
        if change.fill_quantity not in ("", "0")
    ]


def idea_line(idea: advisor_pb2.TradeIdea) -> str:
    """`id SIDE qty SYMBOL @ price STATE confidence c`, and who decided it once someone has."""
    price = idea.limit_price or f"market (ref {idea.reference_price or '-'})"
    line = (
        f"{idea.idea_id} {label(idea, 'side')} {idea.quantity} {idea.symbol} @ {price}"
        f" {label(idea, 'state')} confidence {idea.confidence:.2f}"
    )
    return f"{line} by {idea.decided_by}" if idea.decided_by else line


def analysis_line(analysis: advisor_pb2.Analysis) -> str:
    """`id KIND by analyst/model: N idea(s), M dropped`."""
    return (
        f"{analysis.analysis_id} {label(analysis, 'kind')} by {analysis.analyst}/{analysis.model}:"
        f" {len(analysis.idea_ids)} idea(s), {len(analysis.dropped)} dropped"
    )


def idea_text(idea: advisor_pb2.TradeIdea) -> str:
    """A trade idea in full: its summary, why, what could go wrong, and what came of it."""
    details = [
        f"notional {idea.notional or '-'}, created {when(idea.created_at)},"
        f" expires {when(idea.expires_at)}",
        f"rationale: {idea.rationale or '-'}",
        "risks:",
        *(f"{_INDENT}- {risk}" for risk in idea.risks),
        *idea_outcome(idea),
    ]
    return "\n".join([idea_line(idea), *(f"{_INDENT}{line}" for line in details)])


def idea_outcome(idea: advisor_pb2.TradeIdea) -> list[str]:
    """What came of an idea: when and why it was decided, its risk decision and order (if any).

    Who decided it is in `idea_line`, which always precedes these lines.
    """
    lines = []
    if idea.decided_by:
        reason = f": {idea.decision_reason}" if idea.decision_reason else ""
        lines.append(f"decided at {when(idea.decided_at)}{reason}")
    if idea.HasField("risk_decision"):
        lines.append(f"risk decision {idea.decision_id}: {decision_line(idea.risk_decision)}")
    if idea.HasField("order"):
        lines.append(f"order {order_line(idea.order)}")
    elif idea.order_id:
        lines.append(f"order {idea.order_id}")
    return lines


def analysis_text(
    analysis: advisor_pb2.Analysis, ideas: Iterable[advisor_pb2.TradeIdea] = ()
) -> str:
    """An analysis for a person: its source, text, warnings, what was dropped, and the ideas."""
    lines = [
        f"analysis {analysis_line(analysis)}",
        f"{_INDENT}at {when(analysis.created_at)}, prompt {analysis.prompt_version or '-'},"
        f" symbols {','.join(analysis.symbols) or '-'}",
    ]
    if analysis.question:
        lines.append(f"{_INDENT}question: {analysis.question}")
    lines += ["", *(analysis.text.splitlines() or ["(no text)"])]
    sections = (("warnings", analysis.warnings), ("dropped", analysis.dropped))
    for title, items in sections:
        if items:
            lines += ["", f"{title}:", *(f"{_INDENT}- {item}" for item in items)]
    shown = list(ideas)
    if shown:
        lines += ["", f"ideas ({len(shown)}):", *(idea_text(idea) for idea in shown)]
    return "\n".join(lines)


def event_line(event: events_pb2.Event) -> str:
    """`seq time TYPE summary` for any event kind."""
    head = f"#{event.seq} {when(event.time)} {label(event, 'type')}"
    return f"{head} {_body(event)}".rstrip()


def _body(event: events_pb2.Event) -> str:
    kind = event.WhichOneof("body")
    if kind == "signal":
        return signal_line(event.signal)
    if kind == "risk_decision":
        return decision_line(event.risk_decision)
    if kind == "order":
        return order_line(event.order)
    if kind == "market_data":
        batch = event.market_data
        return f"{batch.event_count} events {','.join(batch.symbols)} from {batch.source}"
    if kind == "trading_status":
        status = event.trading_status
        return f"{label(status, 'state')} by {status.changed_by}: {status.reason}"
    if kind == "strategy_state":
        change = event.strategy_state
        state = "activated" if change.active else "deactivated"
        return f"{change.name} {state} by {change.changed_by}"
    if kind == "request_refused":
        refusal = event.request_refused
        return f"{refusal.method} by {refusal.principal}: {refusal.reason}"
    if kind == "idea":
        return idea_line(event.idea)
    if kind == "analysis":
        return analysis_line(event.analysis)
    return ""


def audit_line(record: audit_pb2.AuditRecord, payload_chars: int = 160) -> str:
    """`seq time event_type payload`, the payload's canonical JSON cut to `payload_chars`.

    Payloads can be long (a market-data batch carries every tick), so a person
    gets the start of it; the whole record is in tradectl's --json output.
    """
    payload = record.payload_json
    if len(payload) > payload_chars:
        payload = f"{payload[:payload_chars]}... ({len(payload)} chars)"
    return f"#{record.seq} {when(record.recorded_at)} {record.event_type} {payload}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell."""
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def orders_table(orders: Iterable[orders_pb2.Order]) -> str:
    return table(
        ("ORDER", "SYMBOL", "SIDE", "QTY", "TYPE", "STATUS", "FILLED", "AVG PRICE", "UPDATED"),
        (
            (
                o.order_id,
                o.symbol,
                label(o, "side"),
                o.quantity,
                label(o, "type"),
                label(o, "status"),
                o.filled_quantity or "0",
                o.average_fill_price or "-",
                when(o.updated_at),
            )
            for o in orders
        ),
    )


def ideas_table(ideas: Iterable[advisor_pb2.TradeIdea]) -> str:
    return table(
        ("IDEA", "SYMBOL", "SIDE", "QTY", "PRICE", "CONFIDENCE", "STATE", "EXPIRES", "ORDER"),
        (
            (
                i.idea_id,
                i.symbol,
                label(i, "side"),
                i.quantity,
                i.limit_price or "market",
                f"{i.confidence:.2f}",
                label(i, "state"),
                when(i.expires_at),
                i.order_id or "-",
            )
            for i in ideas
        ),
    )


def positions_table(positions: Iterable[orders_pb2.Position]) -> str:
    return table(
        ("SYMBOL", "QTY", "AVG PRICE", "MARKET PRICE", "MARKET VALUE", "UNREALIZED P&L"),
        (
            (
                p.symbol,
                p.quantity,
                p.average_price,
                p.market_price,
                p.market_value,
                p.unrealized_pnl,
            )
            for p in positions
        ),
    )


def strategies_table(strategies: Iterable[pb.Strategy]) -> str:
    return table(
        ("NAME", "ACTIVE", "SYMBOLS", "SIGNALS", "PARAMETERS"),
        (
            (
                s.name,
                "yes" if s.active else "no",
                ",".join(s.symbols),
                str(s.signals),
                " ".join(f"{k}={v}" for k, v in sorted(s.parameters.items())),
            )
            for s in strategies
        ),
    )


# --- the risk gate ----------------------------------------------------------------


def trading_line(status: risk_pb2.TradingStatus) -> str:
    """`STATE by who since when (CAUSE): reason`, leaving out what is not known.

    `changed_at` is unset before any change, so a fresh ACTIVE reads just `ACTIVE`.
    """
    parts = [label(status, "state")]
    if status.changed_by:
        parts.append(f"by {status.changed_by}")
    if when(status.changed_at) != "-":
        parts.append(f"since {when(status.changed_at)}")
    if status.cause:
        parts.append(f"({label(status, 'cause')})")
    line = " ".join(parts)
    return f"{line}: {status.reason}" if status.reason else line


def causes_text(causes: Sequence[risk_pb2.TradingStatus]) -> str:
    """Every cause in force as a table under `causes in force:`, or `causes in force: none`."""
    if not causes:
        return "causes in force: none"
    rows = table(
        ("CAUSE", "STATE", "BY", "SINCE", "REASON"),
        (
            (
                label(c, "cause"),
                label(c, "state"),
                c.changed_by or "-",
                when(c.changed_at),
                c.reason or "-",
            )
            for c in causes
        ),
    )
    return "\n".join(["causes in force:", *(f"{_INDENT}{row}" for row in rows.splitlines())])


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def trading_state_text(response: pb.SetTradingStateResponse) -> str:
    """What setting the state did (the service's own words), the effective state, its causes."""
    lines = [response.message] if response.message else []
    lines += [
        f"trading: {trading_line(response.trading)}",
        f"changed: {_yes(response.changed)}",
        causes_text(response.causes),
    ]
    return "\n".join(lines)


def rules_table(rules: Iterable[risk_pb2.RiskRule]) -> str:
    """Each rule's counts since the service started and since the audit log began (LOG),
    whether it judges trades that only reduce a position, and its parameters."""
    return table(
        (
            "RULE",
            "PASSED",
            "REJECTED",
            "PASSED(LOG)",
            "REJECTED(LOG)",
            "REDUCING TRADES",
            "PARAMETERS",
        ),
        (
            (
                r.name,
                str(r.passed),
                str(r.rejected),
                str(r.passed_total),
                str(r.rejected_total),
                "judged" if r.applies_to_reducing else "exempt",
                " ".join(f"{k}={v}" for k, v in sorted(r.parameters.items())) or "-",
            )
            for r in rules
        ),
    )


def risk_status_text(response: pb.GetRiskStatusResponse) -> str:
    """The gate at a glance: the effective state and its causes, totals, every rule, and
    the recent decisions asked for."""
    lines = [
        f"trading: {trading_line(response.trading)}",
        causes_text(response.causes),
        f"decisions since start: {response.approvals} approved, {response.rejections} rejected",
        "rules (counts since start, and (LOG) since the audit log began):",
        *(f"{_INDENT}{row}" for row in rules_table(response.rules).splitlines()),
    ]
    if response.recent_decisions:
        lines.append(f"recent decisions ({len(response.recent_decisions)}):")
        lines += (f"{_INDENT}{decision_line(d)}" for d in response.recent_decisions)
    return "\n".join(lines)


def limits_table(limits: Mapping[str, str]) -> str:
    """Every risk limit in force, by key (the keys UpdateRiskLimits takes)."""
    return table(("LIMIT", "VALUE"), sorted(limits.items()))


def limits_update_text(response: pb.UpdateRiskLimitsResponse) -> str:
    """The limits the update changed, with their previous values."""
    changed = [
        (key, response.previous.get(key, "-"), value)
        for key, value in sorted(response.limits.items())
        if response.previous.get(key) != value
    ]
    if not changed:
        return "no limit changed: every value given was already in force"
    return table(("LIMIT", "PREVIOUS", "VALUE"), changed)


def verdicts_table(verdicts: Iterable[risk_pb2.RuleVerdict]) -> str:
    return table(
        ("RULE", "PASSED", "CODE", "DETAIL"),
        ((v.rule, _yes(v.passed), v.code, v.detail) for v in verdicts),
    )


def order_check_text(response: pb.CheckOrderResponse) -> str:
    """Every rule's verdict, then the answer: `would be APPROVED|REJECTED at PRICE ...`."""
    answer = "APPROVED" if response.approved else "REJECTED"
    line = (
        f"would be {answer} at {response.reference_price or '-'}"
        f" (reduces position: {_yes(response.reduces_position)})"
    )
    refused = [v.code for v in response.verdicts if not v.passed]
    if refused:
        line = f"{line}: {', '.join(refused)}"
    return "\n".join([verdicts_table(response.verdicts), line])


def decision_text(decision: risk_pb2.RiskDecision) -> str:
    """`decision ID: APPROVED|REJECTED signal`, then one `refused CODE: detail` line per refusal."""
    verdict = "APPROVED" if decision.approved else "REJECTED"
    head = f"decision {decision.decision_id or '-'}: {verdict} {signal_line(decision.signal)}"
    return "\n".join([head, *(f"{_INDENT}refused {line}" for line in rejections(decision))])


def order_submission_text(response: pb.SubmitOrderResponse) -> str:
    """The risk decision on a person's order, and the order it placed (if approved)."""
    placed = (
        f"order {order_line(response.order)}"
        if response.HasField("order")
        else "order: none placed"
    )
    return "\n".join([decision_text(response.decision), placed])


def _section(title: str, lines: Sequence[str]) -> list[str]:
    if not lines:
        return [f"{title}: none"]
    return [f"{title} ({len(lines)}):", *(f"{_INDENT}{line}" for line in lines)]


def flatten_text(response: pb.FlattenResponse) -> str:
    """The kill switch's report: the state it left, each order cancelled, each closing
    decision (a refusal says why) and each closing order placed."""
    return "\n".join(
        [
            f"trading: {trading_line(response.trading)}",
            *_section("cancelled", [order_line(o) for o in response.cancelled]),
            *_section("closing decisions", [decision_line(d) for d in response.closing_decisions]),
            *_section("closing orders", [order_line(o) for o in response.closing_orders]),
        ]
    )


def outline(message: Message) -> str:
    """Any message as an indented `field: value` outline (fields left at default are omitted)."""
    fields = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return "\n".join(_outline(fields, 0)) or "(empty)"


def _outline(value: object, depth: int) -> list[str]:
    pad = _INDENT * depth
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and not item:
                # A message whose fields are all at their defaults, or an empty list.
                lines.append(f"{pad}{key}: (empty)")
            elif isinstance(item, dict | list):
                lines.append(f"{pad}{key}:")
                lines.extend(_outline(item, depth + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            nested = _outline(item, depth + 1)
            if isinstance(item, dict | list) and nested:
                # "- " takes the place of the first line's indent, YAML style.
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
