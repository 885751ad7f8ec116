"""The risk limits: one immutable `RiskConfig` every rule reads from its context.

A limit is changed by making a new config (`RiskConfig.updated`, which the
UpdateRiskLimits command uses, or `load_risk_config` at start-up); the engine
swaps it in and the next signal is judged by it. Rules keep no copy of a limit,
so an update needs no rebuilt rule and a stateful rule keeps its memory.

Every config is valid by construction: `__post_init__` checks every field and
the fields against each other, and raises `InvalidInput` naming every problem.
Text and TOML go through the same checks, so a bad value is refused the same
way wherever it comes from, and nothing is changed by a refused update.

The text form (`as_limits`, `updated`, the TOML file) names each field as it
is spelt here: decimals as plain text (``0.05``, ``25000``), durations in
seconds (``60``, ``0.5``; to the microsecond), integers as digits, booleans
``true``/``false``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from domain import numeric
from domain.errors import DomainError, InvalidInput

INVALID_RISK_LIMITS = "INVALID_RISK_LIMITS"
BAD_RISK_CONFIG = "BAD_RISK_CONFIG"

_MAX_TEXT = 64  # characters in one value's text; no limit needs more
_MICROSECOND = Decimal("0.000001")
ZERO = Decimal(0)
_DAY = Decimal(86400)
MAX_WINDOW = timedelta(days=1)  # the widest duplicate or order-rate window a config may set


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """The limits of the pre-trade rules. The defaults suit a small fund (an account
    of the order of 100 000 to a few million) trading liquid US equities.

    - `max_position_pct` = 0.05: one symbol's position (filled, in flight and this
      order) at most 5% of equity, so no single name can sink the account.
    - `max_positions_per_symbol` = 2: at most two open entries per symbol, so a
      strategy cannot pyramid into a name signal after signal.
    - `duplicate_window` = 60 s: the same source, symbol and side approved less
      than a minute ago is taken for a repeat, not a new decision.
    - `min_confidence` = 0.6: a signal must be more likely right than not, with
      a margin.
    - `max_order_notional` = 25 000: one order's value, whatever the equity;
      the fat-finger cap (an order above it is a typo or a bug, not a trade).
    - `max_order_quantity` = 10 000 shares: the same cap in shares, for a cheap
      stock whose notional stays small while the order floods the book.
    - `order_rate_window` = 60 s with `max_orders_per_window` = 30 in total and
      `max_orders_per_symbol_per_window` = 10 per symbol: far above what the
      strategies need (a crossover trades a symbol a few times a day), low
      enough that a runaway loop is stopped within a minute.
    - `max_gross_exposure_pct` = 1.0: the sum of |position value| plus every
      order in flight plus this order at most the equity: no leverage. May be
      set up to 10 (a margin account), never to zero.
    - `daily_loss_pct` = 0.03, `daily_loss_resets_next_session` = True: losing
      3% of the session's opening equity in a session stops new exposure for
      the rest of it (the engine moves to REDUCING); the next session starts
      afresh unless set to False, when only an operator clears it.
    - `price_collar_pct` = 0.05: a limit price (or a market order's reference
      price) more than 5% from the last trade is a mistake or a stale quote.
    - `max_data_age` = 5 minutes: the symbol's last tick, by the core's clock,
      must be at most this old; a silent feed must not be traded on.

    Ranges (checked on construction): the fractions in (0, 1] (gross exposure
    (0, 10]; `min_confidence` [0, 1]); the caps above zero and inside the
    numeric domain; windows and the data age above zero and at most a day (the
    data age at most a week); counts at least one; the per-symbol order rate at
    most the total.
    """

    max_position_pct: Decimal = Decimal("0.05")
    max_positions_per_symbol: int = 2
    duplicate_window: timedelta = timedelta(seconds=60)
    min_confidence: float = 0.6
    max_order_notional: Decimal = Decimal("25000")
    max_order_quantity: Decimal = Decimal("10000")
    order_rate_window: timedelta = timedelta(seconds=60)
    max_orders_per_window: int = 30
    max_orders_per_symbol_per_window: int = 10
    max_gross_exposure_pct: Decimal = Decimal("1.0")
    daily_loss_pct: Decimal = Decimal("0.03")
    daily_loss_resets_next_session: bool = True
    price_collar_pct: Decimal = Decimal("0.05")
    max_data_age: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        problems = _problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise _invalid(problems)

    def as_limits(self) -> dict[str, str]:
        """Every limit by its field name, as text (what GetRiskStatus shows and
        UpdateRiskLimits accepts): `RiskConfig().updated(c.as_limits()) == c`."""
        return {f.name: _text(getattr(self, f.name)) for f in fields(self)}

    def updated(self, changes: Mapping[str, str]) -> RiskConfig:
        """This config with `changes` (field name -> text) applied, validated as a
        whole. Raises `InvalidInput` (reason INVALID_RISK_LIMITS, metadata: each
        offending key and its problem) naming every problem: an unknown key, a
        value that does not parse, one outside its range, limits that contradict
        each other. `self` is never changed."""
        problems: dict[str, str] = {}
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, text in changes.items():
            spec = _SPECS.get(key)
            if spec is None:
                problems[key] = f"unknown key {_quote(key)} (known: {', '.join(_SPECS)})"
                continue
            try:
                values[key] = spec.parse(text)
            except ValueError as exc:
                problems[key] = f"{key}={_quote(text)}: {exc}"
        # The rest is checked too (the keys that did not parse keep their value
        # meanwhile), so that one answer names every problem.
        problems.update(_problems(values, given=changes, skip=problems.keys()))
        problems = dict(sorted(problems.items(), key=lambda item: _ORDER.get(item[0], -1)))
        if problems:
            raise _invalid(problems)
        return RiskConfig(**values)


class RiskConfigError(DomainError):
    """The risk config file cannot be used: missing, unreadable, not TOML, or a
    value that is not a valid limit. The message is one line naming the file."""


def load_risk_config(path: Path | None) -> RiskConfig:
    """The limits in a TOML file, or the defaults for None.

    The file is a flat table of `RiskConfig` field names (no section): integers,
    floats, strings or booleans, durations in seconds, e.g.::

        max_position_pct = 0.05
        max_order_notional = "25000"
        order_rate_window = 60
        daily_loss_resets_next_session = true

    A key left out keeps its default. Values go through `RiskConfig.updated`, so
    a file is held to exactly the rules of UpdateRiskLimits. Raises
    RiskConfigError (reason BAD_RISK_CONFIG) for a missing or unreadable file,
    bad TOML or a bad value."""
    if path is None:
        return RiskConfig()

    def error(problem: str) -> RiskConfigError:
        line = " ".join(f"risk config {path}: {problem}".split())
        return RiskConfigError(line, reason=BAD_RISK_CONFIG, metadata={"path": str(path)})

    try:
        with path.open("rb") as file:
            table = tomllib.load(file)
    except FileNotFoundError:
        raise error("no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise error("not valid TOML (not UTF-8 text)") from None
    except OSError as exc:
        raise error(f"cannot be read ({exc.strerror or exc})") from None
    changes: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, bool):
            changes[key] = "true" if value else "false"
        elif isinstance(value, int | str):
            changes[key] = str(value)
        elif isinstance(value, float):
            changes[key] = repr(value)
        else:
            kind = "a table" if isinstance(value, dict) else type(value).__name__
            raise error(f"{key} is {kind}; expected a number, a string or a boolean")
    try:
        return RiskConfig().updated(changes)
    except InvalidInput as exc:
        raise error(str(exc)) from None


# --- the fields: parsing text, and the ranges every config is held to ------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    """One field: its kind and its range, [low, high] with `low_open` excluding low
    (durations in seconds). `places` bounds the digits after the point of a
    decimal, so no limit is a billion digits long."""

    kind: type
    low: Decimal | None = None
    high: Decimal | None = None
    low_open: bool = False
    places: int = 8

    @property
    def range_text(self) -> str:
        low = "(" if self.low_open else "["
        unit = " seconds" if self.kind is timedelta else ""
        return f"{low}{_plain(self.low or ZERO)}, {_plain(self.high or ZERO)}]{unit}"

    def parse(self, text: str) -> Any:
        """The value of `text`, or ValueError saying what is wrong with it."""
        if not isinstance(text, str):
            raise ValueError("must be given as text")
        if len(text) > _MAX_TEXT:
            raise ValueError(f"longer than {_MAX_TEXT} characters")
        text = text.strip()
        if self.kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false"):
                raise ValueError("must be true or false")
            return lowered == "true"
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError("must be a whole number") from None
        try:
            number = Decimal(text)
        except InvalidOperation:
            unit = " of seconds" if self.kind is timedelta else ""
            raise ValueError(f"not a number{unit}") from None
        problem = self.problem(number)
        if problem:
            raise ValueError(problem)
        if self.kind is float:
            return float(number)
        if self.kind is timedelta:
            return timedelta(microseconds=int(number.scaleb(6)))
        return number

    def problem(self, number: Decimal) -> str:
        """What is wrong with a number for this field ("" if nothing)."""
        if not number.is_finite():
            return "must be a finite number"
        if self.low is not None and not (
            number > self.low if self.low_open else number >= self.low
        ):
            return f"must be in {self.range_text}"
        if self.high is not None and not number <= self.high:
            return f"must be in {self.range_text}"
        places = 6 if self.kind is timedelta else self.places
        # Inside the range a number has at most 17 digits before the point, so this
        # quantize is exact for any number that has no finer digits.
        if number.quantize(Decimal(1).scaleb(-places)) != number:
            what = "a microsecond" if self.kind is timedelta else f"{places} decimal places"
            return f"finer than {what}"
        return ""


_FRACTION = _Spec(Decimal, Decimal(0), Decimal(1), low_open=True)
_WINDOW = _Spec(timedelta, Decimal(0), _DAY, low_open=True)
_COUNT = _Spec(int, Decimal(1), Decimal(100_000))

_SPECS: dict[str, _Spec] = {
    "max_position_pct": _FRACTION,
    "max_positions_per_symbol": _Spec(int, Decimal(1), Decimal(1000)),
    "duplicate_window": _WINDOW,
    "min_confidence": _Spec(float, Decimal(0), Decimal(1), places=17),
    "max_order_notional": _Spec(Decimal, Decimal(0), numeric.MAX_MONEY, low_open=True),
    "max_order_quantity": _Spec(Decimal, Decimal(0), numeric.MAX_ORDER_QUANTITY, low_open=True),
    "order_rate_window": _WINDOW,
    "max_orders_per_window": _COUNT,
    "max_orders_per_symbol_per_window": _COUNT,
    "max_gross_exposure_pct": _Spec(Decimal, Decimal(0), Decimal(10), low_open=True),
    "daily_loss_pct": _FRACTION,
    "daily_loss_resets_next_session": _Spec(bool),
    "price_collar_pct": _FRACTION,
    "max_data_age": _Spec(timedelta, Decimal(0), 7 * _DAY, low_open=True),
}


_ORDER = {key: n for n, key in enumerate(_SPECS)}  # problems are listed in field order


def _problems(
    values: Mapping[str, Any],
    given: Mapping[str, str] | None = None,
    skip: Collection[str] = (),
) -> dict[str, str]:
    """Every problem of a complete set of field values, by key; `given` is the text
    each came from, if it came from text (for the message); `skip` the keys already
    known to be wrong (not checked, nor against each other)."""
    problems: dict[str, str] = {}

    def shown(key: str) -> str:
        if given is not None and key in given:
            return _quote(given[key])
        return _quote(_text(values[key]))

    for key, spec in _SPECS.items():
        if key in skip:
            continue
        value = values[key]
        number = _as_number(spec.kind, value)
        if number is None:
            problems[key] = f"{key}={value!r}: must be a {spec.kind.__name__}"
        elif spec.kind is not bool and (problem := spec.problem(number)):
            problems[key] = f"{key}={shown(key)}: {problem}"
    per_symbol, total = "max_orders_per_symbol_per_window", "max_orders_per_window"
    wrong = {*problems, *skip}
    if not wrong & {per_symbol, total} and values[per_symbol] > values[total]:
        problems[per_symbol] = (
            f"{per_symbol}={values[per_symbol]} is more than {total}={values[total]}: "
            "one symbol cannot have more orders than all of them"
        )
    return problems


def _as_number(kind: type, value: Any) -> Decimal | None:
    """A field's value as a Decimal to check its range (seconds for a duration), or
    None when it is not of the field's kind (a bool is no int here)."""
    if kind is bool:
        return Decimal(1) if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is Decimal:
        return value if isinstance(value, Decimal) else None
    if kind is int:
        return Decimal(value) if isinstance(value, int) else None
    if kind is float:
        if not isinstance(value, int | float):
            return None
        return Decimal(repr(float(value))) if math.isfinite(value) else Decimal("NaN")
    if kind is timedelta:
        return _seconds(value) if isinstance(value, timedelta) else None
    return None  # pragma: no cover - every kind is listed above


def _seconds(duration: timedelta) -> Decimal:
    micros = (duration.days * 86400 + duration.seconds) * 1_000_000 + duration.microseconds
    return Decimal(micros) * _MICROSECOND


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return _plain(_seconds(value))
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _plain(number: Decimal) -> str:
    """A Decimal without an exponent and without trailing zeros: 0.05, 25000, 1.5."""
    if not number.is_finite():
        return str(number)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _quote(text: object) -> str:
    text = str(text)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _invalid(problems: Mapping[str, str]) -> InvalidInput:
    message = "invalid risk limits: " + "; ".join(problems.values())
    return InvalidInput(message, reason=INVALID_RISK_LIMITS, metadata=dict(problems))
