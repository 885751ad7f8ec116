"""Human-readable text for the service's messages: one-line summaries, tables, outlines.

Shared by tradectl and the demo so an order or a risk decision reads the same
in both. Decimal strings are shown as the service sent them, never re-rounded.
tradectl's tables (the `*_view` functions at the end) are rich renderables, made
text for a terminal or for anything else by `to_text`; the plain-text `*_table`
functions share their columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Final, TextIO

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from trading_sdk.v1 import advisor_pb2, audit_pb2, events_pb2, orders_pb2, risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

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


ORDER_COLUMNS: Final = (
    "ORDER",
    "SYMBOL",
    "SIDE",
    "QTY",
    "TYPE",
    "STATUS",
    "FILLED",
    "AVG PRICE",
    "LIMIT",
    "TIF",
    "UPDATED",
)


def order_cells(o: orders_pb2.Order) -> tuple[str, ...]:
    order = f"{o.order_id} (external)" if o.external else o.order_id
    return (
        order,
        o.symbol,
        label(o, "side"),
        o.quantity or (f"notional {o.notional}" if o.notional else "-"),
        label(o, "type"),
        label(o, "status"),
        o.filled_quantity or "0",
        o.average_fill_price or "-",
        o.limit_price or "-",
        label(o, "time_in_force") if o.time_in_force else "-",
        when(o.updated_at),
    )


IDEA_COLUMNS: Final = (
    "IDEA",
    "SYMBOL",
    "SIDE",
    "QTY",
    "PRICE",
    "CONFIDENCE",
    "STATE",
    "EXPIRES",
    "ORDER",
)


def idea_cells(i: advisor_pb2.TradeIdea) -> tuple[str, ...]:
    return (
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


POSITION_COLUMNS: Final = (
    "SYMBOL",
    "QTY",
    "AVG PRICE",
    "MARKET PRICE",
    "MARKET VALUE",
    "UNREALIZED P&L",
)


def position_cells(p: orders_pb2.Position) -> tuple[str, ...]:
    return (p.symbol, p.quantity, p.average_price, p.market_price, p.market_value, p.unrealized_pnl)


def positions_table(positions: Iterable[orders_pb2.Position]) -> str:
    return table(POSITION_COLUMNS, map(position_cells, positions))


STRATEGY_COLUMNS: Final = ("NAME", "ACTIVE", "SYMBOLS", "SIGNALS", "PARAMETERS")


def strategy_cells(s: pb.Strategy) -> tuple[str, ...]:
    return (
        s.name,
        "yes" if s.active else "no",
        ",".join(s.symbols),
        str(s.signals),
        " ".join(f"{k}={v}" for k, v in sorted(s.parameters.items())),
    )


def strategies_table(strategies: Iterable[pb.Strategy]) -> str:
    return table(STRATEGY_COLUMNS, map(strategy_cells, strategies))


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


# --- tables for a person: tradectl's output ----------------------------------------
#
# rich renders these. On a terminal they are styled; anywhere else (a pipe, a file,
# a test) they are plain text laid out wide, so a row is never wrapped. Cells are
# never read as rich markup: a reason or a symbol may hold "[...]".

NOT_A_TERMINAL_WIDTH: Final = 1000
_STATE_STYLES: Final = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "bold red"}


def to_text(view: RenderableType, out: TextIO) -> str:
    """`view` as the text to write to `out`, without a final newline: styled when
    `out` is a terminal (rich decides, honouring NO_COLOR, FORCE_COLOR and
    TTY_COMPATIBLE), plain otherwise; trailing spaces cut."""
    if isinstance(view, str):
        return view
    console = Console(file=out, highlight=False, emoji=False, markup=False)
    if not console.is_terminal:
        console.width = NOT_A_TERMINAL_WIDTH
    with console.capture() as captured:
        console.print(view)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def _grid(columns: Sequence[str], numeric: Iterable[str] = ()) -> Table:
    """A table with a header underlined, no frame; `numeric` columns right-aligned."""
    right = set(numeric)
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name in columns:
        grid.add_column(name, justify="right" if name in right else "left")
    return grid


def _titled(title: str, grid: Table, what: str) -> RenderableType:
    """`grid` under its title, or `what: none` for a table without rows. (A title of
    rich's own is wrapped to the table's width; this one is a line of its own.)"""
    if not grid.row_count:
        return Text(f"{what}: none")
    return Group(Text(title, style="bold"), grid)


def _pairs(
    title: str, rows: Iterable[tuple[str, RenderableType]], numeric: bool = False
) -> RenderableType:
    """`key  value` lines under a title; `numeric` values right-aligned."""
    grid = Table(box=None, show_header=False, pad_edge=False)
    grid.add_column(style="bold")
    grid.add_column(justify="right" if numeric else "left")
    for key, value in rows:
        grid.add_row(key, value)
    return Group(Text(title, style="bold"), grid)


def _dash(value: str) -> str:
    return value or "-"


def _state(status: risk_pb2.TradingStatus) -> Text:
    state = label(status, "state")
    return Text(state, style=_STATE_STYLES.get(state, ""))


def _counts(message: Message) -> list[tuple[str, RenderableType]]:
    """Every scalar field of a counters message, in proto order, zero or not (a counter
    left out would read as "not counted"); a field added to the proto shows up here.
    Maps and nested messages are left to their own tables."""
    rows: list[tuple[str, RenderableType]] = []
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None:
            continue
        value = getattr(message, field.name)
        shown = f"{value:,}" if type(value) is int else _dash(str(value))
        rows.append((field.name.replace("_", " "), shown))
    return rows


def trading_view(status: risk_pb2.TradingStatus, title: str = "Trading") -> RenderableType:
    """The (effective) trading state: who set it, when, as which cause, and why."""
    return _pairs(
        title,
        [
            ("state", _state(status)),
            ("by", _dash(status.changed_by)),
            ("since", when(status.changed_at)),
            ("cause", label(status, "cause") if status.cause else "-"),
            ("reason", _dash(status.reason)),
        ],
    )


def status_view(status: pb.GetStatusResponse) -> Group:
    """`tradectl status`: the service, the trading state, each component's health,
    every counter, and the advisor's counters."""
    live = Text("yes: real money", style="bold red") if status.broker_live else Text("no")
    service = _pairs(
        "Service",
        [
            ("version", _dash(status.version)),
            ("clock", _dash(status.clock)),
            ("now", when(status.now)),
            ("broker", _dash(status.broker)),
            ("endpoint", _dash(status.broker_endpoint)),
            ("account", _dash(status.broker_account)),
            ("live", live),
        ],
    )
    components = _grid(("COMPONENT", "HEALTH", "DETAIL"))
    for component in status.components:
        health = Text("ok", style="green") if component.healthy else Text("FAILING", "bold red")
        components.add_row(component.name, health, _dash(component.detail))
    return Group(
        service,
        Text(""),
        trading_view(status.trading),
        Text(""),
        _titled("Components", components, "components"),
        Text(""),
        _pairs("Counters (since start)", _counts(status.counters), numeric=True),
        Text(""),
        _pairs("Advisor", _counts(status.advisor)),
    )


def causes_view(causes: Sequence[risk_pb2.TradingStatus]) -> RenderableType:
    grid = _grid(("CAUSE", "STATE", "BY", "SINCE", "REASON"))
    for c in causes:
        grid.add_row(
            label(c, "cause"), _state(c), _dash(c.changed_by), when(c.changed_at), _dash(c.reason)
        )
    return _titled("Causes in force", grid, "causes in force")


def rules_view(rules: Iterable[risk_pb2.RiskRule]) -> RenderableType:
    """Each rule's counts since the service started and since the audit log began
    (LOG), whether it judges trades that only reduce a position, its parameters."""
    counts = ("PASSED", "REJECTED", "PASSED (LOG)", "REJECTED (LOG)")
    grid = _grid(("RULE", *counts, "REDUCING TRADES", "PARAMETERS"), numeric=counts)
    for r in rules:
        grid.add_row(
            r.name,
            f"{r.passed:,}",
            f"{r.rejected:,}",
            f"{r.passed_total:,}",
            f"{r.rejected_total:,}",
            "judged" if r.applies_to_reducing else "exempt",
            " ".join(f"{k}={v}" for k, v in sorted(r.parameters.items())) or "-",
        )
    return _titled("Rules: counts since start, and (LOG) since the audit log began", grid, "rules")


def decisions_view(decisions: Sequence[risk_pb2.RiskDecision], title: str) -> RenderableType:
    """One row a decision: when, the verdict, the signal, and every refusal's code
    and detail."""
    columns = ("DECIDED", "VERDICT", "SIDE", "QTY", "SYMBOL", "PRICE", "SOURCE", "REFUSED BY")
    grid = _grid(columns, numeric=("QTY", "PRICE"))
    for d in decisions:
        s = d.signal
        verdict = Text("APPROVED", "green") if d.approved else Text("REJECTED", "red")
        grid.add_row(
            when(d.decided_at),
            verdict,
            label(s, "side"),
            _dash(s.quantity),
            s.symbol,
            _dash(s.reference_price),
            _dash(s.source),
            "; ".join(rejections(d)) or "-",
        )
    return _titled(title, grid, title.lower())


def limits_view(limits: Mapping[str, str]) -> RenderableType:
    grid = _grid(("LIMIT", "VALUE"))
    for key, value in sorted(limits.items()):
        grid.add_row(key, value)
    return _titled("Limits in force", grid, "limits")


def risk_status_view(response: pb.GetRiskStatusResponse) -> Group:
    """`tradectl risk status`: the effective state and every cause in force, the
    decisions so far, every rule, the limits, and the recent decisions asked for."""
    parts: list[RenderableType] = [
        trading_view(response.trading),
        Text(""),
        causes_view(response.causes),
        Text(""),
        Text(
            f"decisions since start: {response.approvals:,} approved, "
            f"{response.rejections:,} rejected"
        ),
        Text(""),
        rules_view(response.rules),
        Text(""),
        limits_view(response.limits),
    ]
    if response.recent_decisions:
        count = len(response.recent_decisions)
        parts += [
            Text(""),
            decisions_view(response.recent_decisions, f"Recent decisions ({count})"),
        ]
    return Group(*parts)


def _with_next_page(view: RenderableType, token: str) -> RenderableType:
    return Group(view, Text(f"more: --page-token {token}")) if token else view


def orders_view(
    orders: Sequence[orders_pb2.Order], next_page: str = "", what: str = "orders"
) -> RenderableType:
    """One row an order; `what` names them when there are none ("no active orders")."""
    if not orders:
        return _with_next_page(Text(f"no {what}"), next_page)
    grid = _grid(ORDER_COLUMNS, numeric=("QTY", "FILLED", "AVG PRICE", "LIMIT"))
    for o in orders:
        cells: list[RenderableType] = list(order_cells(o))
        cells[2] = _side(o)
        grid.add_row(*cells)
    return _with_next_page(grid, next_page)


def _side(message: orders_pb2.Order | advisor_pb2.TradeIdea) -> Text:
    side = label(message, "side")
    return Text(side, style={"BUY": "green", "SELL": "red"}.get(side, ""))


def positions_view(positions: Sequence[orders_pb2.Position]) -> RenderableType:
    if not positions:
        return Text("no positions")
    grid = _grid(POSITION_COLUMNS, numeric=POSITION_COLUMNS[1:])
    for p in positions:
        cells: list[RenderableType] = list(position_cells(p))
        cells[-1] = Text(p.unrealized_pnl, style=_sign_style(p.unrealized_pnl))
        grid.add_row(*cells)
    return grid


def _sign_style(amount: str) -> str:
    if amount.startswith("-"):
        return "red"
    return "green" if amount.strip("0.") else ""


def account_view(account: orders_pb2.Account) -> RenderableType:
    return _pairs(
        "Account",
        [
            ("cash", _dash(account.cash)),
            ("equity", _dash(account.equity)),
            ("buying power", _dash(account.buying_power)),
            ("currency", _dash(account.currency)),
        ],
    )


def ideas_view(ideas: Sequence[advisor_pb2.TradeIdea], next_page: str = "") -> RenderableType:
    if not ideas:
        return _with_next_page(Text("no ideas"), next_page)
    grid = _grid(IDEA_COLUMNS, numeric=("QTY", "PRICE", "CONFIDENCE"))
    for i in ideas:
        cells: list[RenderableType] = list(idea_cells(i))
        cells[2] = _side(i)
        grid.add_row(*cells)
    return _with_next_page(grid, next_page)


def strategies_view(strategies: Sequence[pb.Strategy]) -> RenderableType:
    if not strategies:
        return Text("no strategies")
    grid = _grid(STRATEGY_COLUMNS, numeric=("SIGNALS",))
    for s in strategies:
        cells: list[RenderableType] = list(strategy_cells(s))
        cells[1] = Text("yes", style="green") if s.active else Text("no")
        grid.add_row(*cells)
    return grid


def stream_view(
    summary: pb.StreamMarketDataResponse,
    *,
    source: str,
    feed_id: str,
    seconds: float | None = None,
    tries: int = 1,
) -> Group:
    """`tradectl stream`'s summary: every count of the response, zero or not, then the
    risk gate's rejections by reason code, most frequent first."""
    rows = _counts(summary)  # all but rejections_by_code, a table of its own below
    rows.append(("feed id", feed_id))
    if seconds is not None and seconds > 0:
        rate = summary.events_accepted / seconds
        took = f"{seconds:.1f} s ({rate:,.0f} events/s)" if rate else f"{seconds:.1f} s"
        rows.append(("took", took))
    by_code = sorted(summary.rejections_by_code.items(), key=lambda item: (-item[1], item[0]))
    reasons = _grid(("CODE", "COUNT"), numeric=("COUNT",))
    for code, count in by_code:
        reasons.add_row(code, f"{count:,}")
    parts: list[RenderableType] = [
        _pairs(f"Streamed {source}", rows),
        Text(""),
        _titled("Rejections by reason", reasons, "rejections by reason"),
    ]
    if tries > 1:
        # A try that failed returned no summary, so what it caused is in none.
        parts.append(
            Text(
                f"(the counts of the last of {tries} tries: the messages an earlier try got "
                "accepted are its duplicates dropped, and what they caused is not counted "
                "here; `tradectl risk status` has the totals)"
            )
        )
    return Group(*parts)
