"""Hypothesis strategies built from protobuf message descriptors.

Nothing here names a method, a message or a field of the trading service: every
strategy is derived from a `Descriptor` by walking its fields, so a new RPC, a
new field or a new enum value is fuzzed the day it is added to a .proto file.

What a field gets, by its descriptor type:

* integers: the type's bounds and their neighbours, 0, +-1, powers of two that
  break conversions (2^31, 2^32, 2^53, 2^63, 2^64 - 1) and their neighbours,
  limits people like to write (100, 1000, 1001, 1024), each kind as likely as
  the others; numbers the service itself handed out (+-1); anything in range;
* double/float: ordinary values (0, -0, +-1), tiny ones (the smallest
  subnormal 5e-324, the largest subnormal, the smallest normal, 1e-300), big
  ones (2^53, 2^63, 2^64), huge ones (1e300, 1e308, the largest double) and
  non-finite ones (+-inf, NaN, also with a payload and with its sign bit set),
  each kind as likely as the others; numbers the service handed out, also
  scaled by factors that tip them over edges (0, -1, 1e-320, 1e305); and any
  other float;
* string: empty and blank strings, NUL, RTL overrides, combining marks, emoji,
  zero-width and BOM characters, digit look-alikes ('²', Arabic and
  full-width digits), bogus ids and page tokens (negative, over-long,
  2^64 as text), any (surrogate-free) unicode text, token-like ASCII, strings
  the service handed out and mutations of them (case, truncation, suffixes,
  NULs), and, outside repeated fields, strings of 257 to 10,000 characters;
* bytes: empty, NULs, 0xff runs, random bytes, 10,000 zero bytes;
* bool: both; enum: every defined number and, for open enums, numbers that are
  not defined (-1, max + 1, int32 bounds);
* message: unset, set but empty, or filled in recursively up to `max_depth`
  levels (deeper ones are only unset or empty);
* repeated: unset, 1 to 4 elements, or 21 / 101 / 1001 copies of one element
  (numbered copies for strings, so that a de-duplicating server still sees
  many); map: unset or 1 to 4 entries; oneof: none or one member;
* google.protobuf.Timestamp: times near the ones the service handed out (+-3
  days), the valid range 0001-01-01 .. 9999-12-31 and one second beyond each
  end, int64 bounds, nanos of 1e9, -1 and the int32 bounds;
  google.protobuf.Duration: its +-10,000-year range and beyond, nanos of the
  wrong sign and out of range.

Sizes are bounded by construction (no filtering): the elements of a repeated
field or a map are drawn "small" (no long strings, no large repeated fields
inside), so a request stays well under a megabyte whatever the nesting.

Raw bodies (`MessageStrategies.bodies`) are random bytes, serialized generated
messages with one mutation (truncated, a byte flipped, bytes inserted or
appended), and hand-built wire records using the message's field numbers with
wrong wire types, overlong or truncated varints, lengths past the end, invalid
UTF-8 in length-delimited payloads, unbalanced groups and field number 0;
`decodes` says whether the message's own parser accepts a body.

Reaching past validation. A request whose every field is hostile is refused by
its first check, so a generated message is one of three (drawn 1 : 1 : 4):

* *hostile*: every field as above, each left unset half the time;
* *plausible*: each field is unset a ninth of the time, otherwise a value the
  service itself handed out three times in four, a hostile one otherwise;
* *single fault* (ONE): exactly one field, at any depth, is hostile (a nested
  message's one faulty field, some or many faulty elements of a repeated
  field); every other field is *clean*, a value the service handed out, and
  set (in a request itself, half of the time mostly unset instead, so that no
  other field's check refuses the request first). A client stream sends
  clean messages around one such message, or any mixture.

The handed-out values come from a `Dictionary` harvested from the service's
responses (`Dictionary.harvest`), kept per response field name and counted: a
request field draws from response fields of a related name (the same name,
singular or plural, or one ending in `_<the other>`: `symbols` takes `symbol`
values, `order_id` takes `client_order_id` ones, `price` takes
`reference_price` ones, `from_seq` takes `seq` ones, `page_token` takes
`next_page_token` ones), the most often seen the most often, else from
everything harvested. Zero is left out of these pools (it reads as unset in
proto3, and is drawn as unset anyway). Plausible times are within ten minutes
(or three days) of the harvested ones, with valid nanos; plausible enums are
defined numbers other than 0 (UNSPECIFIED, the same as unset).

Hypothesis picks among `one_of`'s *distinct* branches evenly whatever the
repeats, so the weights above go through `weighted`. Unset comes first among a
field's choices (it is where shrinking goes, so failures shrink to the fields
that matter), except for the clean fields around a fault, which stay set.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from google.protobuf import message_factory, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import strategies as st

T = TypeVar("T")
TIMESTAMP: Final = "google.protobuf.Timestamp"
DURATION: Final = "google.protobuf.Duration"

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
_RANGES: Final[dict[int, tuple[int, int]]] = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}

# Edge integers by kind (a kind is drawn first, then a value of it that fits the
# field's type; the type's own bounds are a kind of their own).
EDGE_INTS: Final = (
    (0, 1, -1, 2, -2),
    (10, 20, 21, 100, 101, 999, 1000, 1001, 1024, 4096, 4301, 65535, 65536),
    (2**31 - 1, 2**31, -(2**31), -(2**31) - 1),
    (2**32 - 1, 2**32),
    (2**53, 2**53 + 1, -(2**53) - 1),
    (2**63 - 1, 2**63, 2**63 + 1, -(2**63), -(2**63) - 1),
    (2**64 - 1,),
)  # fmt: skip


def _nan_with(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


# Edge doubles by kind; a kind is drawn first, so that each is as likely as any.
EDGE_DOUBLES: Final = (
    (0.0, -0.0, 1.0, -1.0, 0.5, 0.1 + 0.2, 1e-9, 0.005),  # ordinary
    (
        5e-324, -5e-324,  # the smallest subnormal
        2.225073858507201e-308,  # the largest subnormal
        2.2250738585072014e-308,  # the smallest normal
        1e-300, -1e-300,
    ),  # tiny
    (1e15 + 0.3, 2.0**53, 2.0**53 + 2, 2.0**63, 2.0**64, -(2.0**63)),  # big
    (
        1e300, 1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308,
    ),  # huge: near overflow
    (
        math.inf, -math.inf, math.nan, -math.nan,
        _nan_with(0x7FF0000000000001),  # a signalling NaN with a payload
        _nan_with(0xFFF8000000000000),  # NaN with the sign bit set
    ),  # not finite
)  # fmt: skip
EDGE_FLOATS: Final = (
    0.0, -0.0, 1.0, -1.0,
    1.401298464324817e-45,  # float32's smallest subnormal
    1.1754943508222875e-38,  # float32's smallest normal
    3.4028234663852886e38, -3.4028234663852886e38,  # float32's largest
    16777217.0, math.inf, -math.inf, math.nan,
)  # fmt: skip
# Factors that push a plausible number over an edge: sign, zero, tiny, huge.
SCALES: Final = (1.0000001, 0.9999999, 2.0, 0.5, -1.0, 0.0, 1e-300, 1e-320, 1e300, 1e305)

EDGE_STRINGS: Final = (
    "", " ", "   ", "\t", "\n", "\r\n", "\x00", "a\x00b", "\x00" * 16,
    "0", "-1", "+1", "1.5", "1e3", "00", "007", " 1", "1 ", "0x10",
    "9223372036854775807", "9223372036854775808", "18446744073709551616",
    "9" * 19, "9" * 40, "-" + "9" * 19, "NaN", "nan", "inf", "-inf", "Infinity",
    "²", "١٢٣", "\uff10\uff11\uff12", "Ⅻ", "null", "None", "undefined", "true", "{}", "[]",
    "\u202eevil\u202c", "\u200f\u05e9\u05dc\u05d5\u05dd", "مرحبا", "e\u0301", "\u0301",
    "\ufeff", "\u200b", "\u2028", "\U0001f642", "\U0001d518\U0001d52b",
    "\U0010ffff", "\uffff", "%s%n%x", "'; DROP TABLE audit; --", "../../etc/passwd",
    "*", "?", "%", "_", "\\", "A" * 11, "a", "A", "Ab", "ab.cd",
)  # fmt: skip
# Lengths of long strings: just past limits people like to write, then 10,000.
LONG_LENGTHS: Final = (257, 501, 1001, 2001, 4097, 10_000)
LONG_UNITS: Final = ("A", "a", "9", " ", "\x00", "é", "\u202e", "\U0001f642", "ab ")
LARGE_COUNTS: Final = (21, 101, 1001)
MAX_REPEATS: Final = 8
MAX_PLAIN_ELEMENTS: Final = 4

# google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS: Final = -62_135_596_800
MAX_SECONDS: Final = 253_402_300_799
EDGE_SECONDS: Final = (
    0, 1, -1, MIN_SECONDS, MIN_SECONDS - 1, MAX_SECONDS, MAX_SECONDS + 1,
    2**31 - 1, 2**31, 2**32, 4_102_444_800, -(2**63), 2**63 - 1,
)  # fmt: skip
EDGE_NANOS: Final = (0, 1, 999_999_999, 1_000_000_000, -1, -999_999_999, 2**31 - 1, -(2**31))
# google.protobuf.Duration: +-10,000 years.
MAX_DURATION: Final = 315_576_000_000
EDGE_DURATION_SECONDS: Final = (
    0, 1, -1, MAX_DURATION, -MAX_DURATION, MAX_DURATION + 1, -MAX_DURATION - 1,
    -(2**63), 2**63 - 1,
)  # fmt: skip
THREE_DAYS: Final = 3 * 86_400
TEN_MINUTES: Final = 600
NS: Final = 1_000_000_000

INVALID_UTF8: Final = (
    b"\xff", b"\xfe\xfe", b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"abc\xe2\x82", b"\xf8\x88\x80\x80\x80",
)  # fmt: skip


class _Unset:
    """A field left out of the message."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
Scalar = str | int | float


def _stem(name: str) -> str:
    return name[:-1] if len(name) > 3 and name.endswith("s") else name


def related(a: str, b: str) -> bool:
    """Field names that plausibly hold the same kind of value."""
    a, b = _stem(a), _stem(b)
    return a == b or a.endswith("_" + b) or b.endswith("_" + a)


@dataclass(frozen=True)
class Dictionary:
    """Values the service handed out, for generators to reuse and mutate: all of
    them by kind, and each by the name of the field it was found in."""

    strings: tuple[str, ...] = ()
    integers: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()
    seconds: tuple[int, ...] = ()
    by_field: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()

    @classmethod
    def harvest(cls, messages: Iterable[Message], max_length: int = 48) -> Dictionary:
        """Every string of at most `max_length` characters, integer, finite float
        (also from decimal strings) and Timestamp second found anywhere in
        `messages`, sorted so that the same responses give the same dictionary."""
        found = _Found(max_length)
        for message in messages:
            found.walk(message)
        return cls(
            strings=tuple(sorted(found.strings)),
            integers=tuple(sorted(found.integers)),
            floats=tuple(sorted(found.floats)),
            seconds=tuple(sorted(found.seconds)),
            by_field=tuple(
                (name, tuple(v for v, n in sorted(counts.items(), key=_order) for _ in range(n)))
                for name, counts in sorted(found.fields.items())
            ),
        )

    def near(self, name: str) -> tuple[Scalar, ...]:
        """The values found in fields of a name related to `name`, the most often
        found first and repeated (up to MAX_REPEATS times) as often as found: the
        symbol the service talks most about is the likeliest to be drawn."""
        counts: Counter[Scalar] = Counter()
        for field_name, values in self.by_field:
            if related(name, field_name):
                counts.update(values)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], _order(item)))
        return tuple(v for v, n in ranked for _ in range(min(n, MAX_REPEATS)))


def _order(item: tuple[Scalar, int]) -> tuple[str, str]:
    return type(item[0]).__name__, repr(item[0])


@dataclass
class _Found:
    max_length: int
    strings: set[str] = field(default_factory=set)
    integers: set[int] = field(default_factory=set)
    floats: set[float] = field(default_factory=set)
    seconds: set[int] = field(default_factory=set)
    fields: dict[str, Counter[Scalar]] = field(default_factory=dict)

    def walk(self, message: Message) -> None:
        if message.DESCRIPTOR.full_name == TIMESTAMP:
            self.seconds.add(getattr(message, "seconds"))  # noqa: B009
            return
        for descriptor, value in message.ListFields():
            if is_map(descriptor):
                items = [v for pair in value.items() for v in pair]
            elif descriptor.is_repeated:
                items = list(value)
            else:
                items = [value]
            for item in items:
                self.value(descriptor.name, item)

    def value(self, name: str, value: object) -> None:
        if isinstance(value, Message):
            self.walk(value)
            return
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return
        if isinstance(value, float) and not math.isfinite(value):
            return
        if isinstance(value, str) and not 0 < len(value) <= self.max_length:
            return
        self.fields.setdefault(name, Counter())[value] += 1
        if isinstance(value, str):
            self.strings.add(value)
            number = _number(value)
            if number is not None:
                self.floats.add(number)
        elif isinstance(value, int):
            self.integers.add(value)
        else:
            self.floats.add(value)


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def leaves(descriptor: Descriptor, max_depth: int = 3) -> int:
    """How many scalar fields a message has, nested ones included (to `max_depth`):
    a measure of how much there is to vary in it."""
    count = 0
    for f in descriptor.fields:
        nested = f.message_type
        if nested is None:
            count += 1
        elif is_map(f):
            count += 2
        elif max_depth > 0:
            count += leaves(nested, max_depth - 1)
    return count


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def decodes(descriptor: Descriptor, body: bytes) -> bool:
    """Whether the message's own parser (the one the server uses) accepts `body`."""
    try:
        message_class(descriptor).FromString(body)
    except DecodeError:
        return False
    return True


def is_map(descriptor: FieldDescriptor) -> bool:
    entry = descriptor.message_type
    return bool(descriptor.is_repeated and entry is not None and entry.GetOptions().map_entry)


def _assign(message: Message, descriptor: FieldDescriptor, value: Any) -> None:
    target = getattr(message, descriptor.name)
    if is_map(descriptor):
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif descriptor.is_repeated:
        target.extend(value)
    elif isinstance(value, Message):
        target.SetInParent()  # present even when empty
        target.MergeFrom(value)
    else:
        setattr(message, descriptor.name, value)


# --- mutations of harvested strings -------------------------------------------------


def _mutations() -> tuple[Callable[[str], str], ...]:
    return (
        lambda s: s,
        str.lower,
        str.upper,
        lambda s: s[:-1],
        lambda s: s[1:],
        lambda s: s + "X",
        lambda s: s + "\x00",
        lambda s: " " + s + " ",
        lambda s: s * 2,
        lambda s: s[::-1],
        lambda s: s + "\u0301",
    )


def _numbered(values: tuple[object, int]) -> list[object]:
    """`count` elements from one: numbered copies of a string (so that
    de-duplication does not hide the size), plain copies of anything else."""
    value, count = values
    if isinstance(value, str):
        return [f"{value}{i}" for i in range(count)]
    return [value] * count


def _repeat_to(values: tuple[str, int]) -> str:
    unit, length = values
    return (unit * (length // len(unit) + 1))[:length]


def _scaled(values: tuple[float, float]) -> float:
    return values[0] * values[1]


def _in(values: Iterable[Scalar], lo: int, hi: int, neighbours: bool = True) -> list[int]:
    """The integers among `values` (digit strings too), and their neighbours, in
    [lo, hi]; without neighbours, the nonzero ones only (zero is what an unset
    proto3 number reads as, drawn anyway)."""
    found: set[int] = set()
    steps = (-1, 0, 1) if neighbours else (0,)
    for value in values:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            found |= {value + d for d in steps if lo <= value + d <= hi}
    return sorted(found if neighbours else found - {0})


def _nonzero(values: Iterable[float]) -> list[float]:
    """Zero is what an unset proto3 number (or Timestamp) reads as: it is drawn as
    unset anyway, and as an edge; a pool of plausible values is better without."""
    return sorted({v for v in values if v})


# --- the strategies ----------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, each as often as its weight says. (`st.one_of` picks
    among its distinct branches evenly, whatever the repeats; shrinking goes to
    the first choice, here as there.)"""
    table = [strategy for weight, strategy in choices for _ in range(weight)]

    @st.composite
    def pick(draw: st.DrawFn) -> T:
        return draw(table[draw(st.integers(0, len(table) - 1))])

    return pick()


# How the fields of a message are drawn (see the module's docstring).
HOSTILE: Final = "hostile"
PLAUSIBLE: Final = "plausible"
CLEAN: Final = "clean"  # known values only: the fields around ONE's target
ONE: Final = "one"  # one field (at any depth) hostile, every other one clean


class MessageStrategies:
    """Strategies for messages, requests and raw bodies, built from descriptors."""

    def __init__(self, dictionary: Dictionary | None = None, max_depth: int = 3) -> None:
        self.dictionary = dictionary or Dictionary()
        self.max_depth = max_depth
        self._messages: dict[tuple[str, int, bool, str], st.SearchStrategy[Message]] = {}

    # requests and bodies of a method

    def requests(self, method: MethodDescriptor) -> st.SearchStrategy[list[Message]]:
        """What one call sends: a message, or 0 to 4 of them for a client stream
        (any mixture, or clean ones around one with a single hostile field)."""
        one = self.message(method.input_type)
        if not method.client_streaming:
            return one.map(lambda message: [message])
        clean = st.lists(self._message(method.input_type, 0, False, CLEAN), max_size=2)
        single = self._message(method.input_type, 0, False, ONE)
        return st.lists(one, max_size=MAX_PLAIN_ELEMENTS) | st.tuples(clean, single, clean).map(
            lambda parts: [*parts[0], parts[1], *parts[2]]
        )

    def bodies(self, method: MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
        """Raw request bodies of one call: one, or 0 to 4 for a client stream."""
        one = self.body(method.input_type)
        if method.client_streaming:
            return st.lists(one, max_size=MAX_PLAIN_ELEMENTS)
        return one.map(lambda body: [body])

    def body(self, descriptor: Descriptor) -> st.SearchStrategy[bytes]:
        valid = self.message(descriptor).map(lambda message: message.SerializeToString())
        return st.one_of(
            st.binary(max_size=64),
            _mutated(valid),
            _wire_records(descriptor),
            valid,
        )

    # messages

    def message(self, descriptor: Descriptor) -> st.SearchStrategy[Message]:
        """A hostile, a plausible or a single-fault message."""
        return weighted(
            (1, self._message(descriptor, 0, False, HOSTILE)),
            (1, self._message(descriptor, 0, False, PLAUSIBLE)),
            (4, self._message(descriptor, 0, False, ONE)),
        )

    def _message(
        self, descriptor: Descriptor, depth: int, small: bool, mode: str
    ) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth, small, mode)
        if key not in self._messages:
            self._messages[key] = self._build(descriptor, depth, small, mode)
        return self._messages[key]

    def _build(
        self, descriptor: Descriptor, depth: int, small: bool, mode: str
    ) -> st.SearchStrategy[Message]:
        cls = message_class(descriptor)
        if descriptor.full_name == TIMESTAMP:
            if mode in (PLAUSIBLE, CLEAN):
                return st.builds(cls, seconds=self._near_seconds(), nanos=st.integers(0, NS - 1))
            return st.builds(cls, seconds=self._timestamp_seconds(), nanos=_nanos())
        if descriptor.full_name == DURATION:
            return st.builds(cls, seconds=_duration_seconds(), nanos=_nanos())
        if depth >= self.max_depth:
            return st.builds(cls)
        around = CLEAN if mode == ONE else mode
        plain = [
            (f, self._field(f, depth, small, around))
            for f in descriptor.fields
            if f.containing_oneof is None
        ]
        targets = [self._target(f, depth, small) for f, _ in plain] if mode == ONE else []
        # Around a faulty field, the others are mostly set (to get past the checks
        # of what is required) or, in a request itself half of the time, mostly
        # unset (so that no check of another field refuses it first).
        sparse = [self._field(f, depth, small, CLEAN, sparse=True) for f, _ in plain if targets]
        oneofs = [
            [(f, self._value(f, depth, small, around)) for f in oneof.fields]
            for oneof in descriptor.oneofs
        ]

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            message = cls()
            target = draw(st.integers(0, len(targets) - 1)) if targets else -1
            thin = bool(targets) and depth == 0 and draw(st.booleans())
            others = sparse if thin else [strategy for _, strategy in plain]
            for index, (descriptor_, _) in enumerate(plain):
                value = draw(targets[index] if index == target else others[index])
                if value is not UNSET:
                    _assign(message, descriptor_, value)
            for members in oneofs:
                chosen = draw(st.integers(-1, len(members) - 1))
                if chosen >= 0:
                    member, member_strategy = members[chosen]
                    _assign(message, member, draw(member_strategy))
            return message

        return build()

    def _field(
        self, f: FieldDescriptor, depth: int, small: bool, mode: str, sparse: bool = False
    ) -> st.SearchStrategy[object]:
        """The field's value, or UNSET. UNSET is the first choice (the one shrinking
        goes to, and the one Hypothesis favours when it simplifies) except around
        a faulty field, where the set value comes first: context stays realistic."""
        unset: st.SearchStrategy[object] = st.just(UNSET)
        value: st.SearchStrategy[object]
        if is_map(f):
            entry = f.message_type
            assert entry is not None
            keys = self._value(entry.fields_by_name["key"], depth, True, mode)
            values = self._value(entry.fields_by_name["value"], depth, True, mode)
            value = st.dictionaries(keys, values, min_size=1, max_size=MAX_PLAIN_ELEMENTS)
        elif f.is_repeated:
            element = self._value(f, depth, True, mode)
            value = st.lists(element, min_size=1, max_size=MAX_PLAIN_ELEMENTS)
            if not small and mode != CLEAN:
                many: st.SearchStrategy[object]
                many = st.tuples(element, st.sampled_from(LARGE_COUNTS)).map(_numbered)
                value = weighted((3, value), (1, many))
        else:
            value = self._value(f, depth, small, mode)
        if sparse:
            return weighted((3, unset), (1, value))
        if mode == CLEAN:
            return weighted((8, value), (1, unset))
        return weighted((1, unset), (1 if mode == HOSTILE else 8, value))

    def _target(self, f: FieldDescriptor, depth: int, small: bool) -> st.SearchStrategy[object]:
        """The one faulty field of a ONE message: a hostile value, or (a message)
        a ONE message itself, or (repeated) some or many faulty elements."""
        if is_map(f):
            return self._field(f, depth, True, HOSTILE)
        element = self._value(f, depth, True, ONE)
        if f.is_repeated:
            some = st.lists(element, min_size=1, max_size=MAX_PLAIN_ELEMENTS)
            many = st.tuples(element, st.sampled_from(LARGE_COUNTS)).map(_numbered)
            return some if small else some | many
        return self._value(f, depth, small, ONE)

    def _value(
        self, f: FieldDescriptor, depth: int, small: bool, mode: str
    ) -> st.SearchStrategy[object]:
        """One value of the field's type (an element, for a repeated field)."""
        if f.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            nested = f.message_type
            assert nested is not None
            empty = st.builds(message_class(nested))
            if depth + 1 > self.max_depth:
                return empty
            filled = self._message(nested, depth + 1, small, mode)
            if mode == ONE:
                return filled
            if mode == CLEAN:
                return weighted((9, filled), (1, empty))
            return weighted((1, empty), (1 if mode == HOSTILE else 9, filled))
        if mode in (HOSTILE, ONE):
            return self._hostile(f, small)
        if mode == CLEAN:
            return self._known(f)
        return weighted((3, self._known(f)), (1, self._hostile(f, small)))

    def _hostile(self, f: FieldDescriptor, small: bool) -> st.SearchStrategy[object]:
        kind = f.type
        if kind in _RANGES:
            return self._integers(*_RANGES[kind])
        if kind == FieldDescriptor.TYPE_DOUBLE:
            return self._doubles()
        if kind == FieldDescriptor.TYPE_FLOAT:
            return st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(width=32))
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_STRING:
            return self._strings(small)
        if kind == FieldDescriptor.TYPE_BYTES:
            return _bytes(small)
        if kind == FieldDescriptor.TYPE_ENUM:
            return _enum_numbers(f)
        raise AssertionError(f"no strategy for {f.full_name} of type {kind}")

    def _known(self, f: FieldDescriptor) -> st.SearchStrategy[object]:
        """A value the service could have handed out for this field."""
        kind = f.type
        near = self.dictionary.near(f.name)
        if kind in _RANGES:
            lo, hi = _RANGES[kind]
            ints = _in(near, lo, hi, False) or _in(self.dictionary.integers, lo, hi, False)
            small_ints = st.integers(max(lo, 0), min(hi, 100))
            return st.sampled_from(ints) | small_ints if ints else small_ints
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            numbers = [n for v in near for n in [_as_float(v)] if n]
            floats = numbers or _nonzero(self.dictionary.floats) or [1.0, 100.0]
            wiggle = st.sampled_from((1.0, 1.0, 1.001, 0.999, 1.05, 0.95))
            return st.tuples(st.sampled_from(floats), wiggle).map(_scaled)
        if kind == FieldDescriptor.TYPE_STRING:
            strings = [v for v in near if isinstance(v, str)] or list(self.dictionary.strings)
            return (
                st.sampled_from(strings)
                if strings
                else st.from_regex(r"[A-Z]{1,5}", fullmatch=True)
            )
        if kind == FieldDescriptor.TYPE_ENUM:
            enum = f.enum_type
            assert enum is not None
            numbers = sorted(v.number for v in enum.values)
            # Zero is UNSPECIFIED by convention: the same as unset, which is drawn anyway.
            return st.sampled_from([n for n in numbers if n != 0] or numbers)
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        return self._hostile(f, small=True)  # bytes: nothing to know

    # scalars

    def _integers(self, lo: int, hi: int) -> st.SearchStrategy[object]:
        kinds = [[v for v in kind if lo <= v <= hi] for kind in EDGE_INTS]
        kinds = [kind for kind in kinds if kind] + [[lo, lo + 1, hi - 1, hi]]
        edges = st.sampled_from(kinds).flatmap(st.sampled_from)
        known = _in(self.dictionary.integers, lo, hi)
        return weighted(
            (3, edges),
            (1, st.sampled_from(known) if known else st.integers(0, 10)),
            (1, st.integers(max(lo, -3), min(hi, 1030))),
            (2, st.integers(lo, hi)),
        )

    def _doubles(self) -> st.SearchStrategy[object]:
        edges = st.sampled_from(EDGE_DOUBLES).flatmap(st.sampled_from)
        known = st.sampled_from(self.dictionary.floats or (1.0, 100.0))
        return weighted(
            (4, edges),
            (1, known),
            (1, st.tuples(known, st.sampled_from(SCALES)).map(_scaled)),
            (1, st.floats()),
        )

    def _strings(self, small: bool) -> st.SearchStrategy[object]:
        parts: list[st.SearchStrategy[str]] = [st.sampled_from(EDGE_STRINGS)]
        if self.dictionary.strings:
            known = st.sampled_from(self.dictionary.strings)
            mutations = st.sampled_from(_mutations())
            parts += [known, st.tuples(known, mutations).map(lambda t: t[1](t[0]))]
        parts += [
            st.text(max_size=24),
            st.from_regex(r"[A-Za-z0-9._/:\-]{1,16}", fullmatch=True),
            st.integers(-(2**65), 2**65).map(str),
        ]
        if not small:
            units = st.sampled_from(LONG_UNITS) | st.text(min_size=1, max_size=3)
            parts.append(st.tuples(units, st.sampled_from(LONG_LENGTHS)).map(_repeat_to))
        return st.one_of(parts)

    # google.protobuf.Timestamp

    def _near_seconds(self) -> st.SearchStrategy[int]:
        seen = [int(v) for v in _nonzero(self.dictionary.seconds)] or [1_700_000_000]
        offsets = st.integers(-TEN_MINUTES, TEN_MINUTES) | st.integers(-THREE_DAYS, THREE_DAYS)
        return st.tuples(st.sampled_from(seen), offsets).map(sum)

    def _timestamp_seconds(self) -> st.SearchStrategy[int]:
        return st.one_of(
            self._near_seconds(),
            st.sampled_from(EDGE_SECONDS),
            st.integers(MIN_SECONDS, MAX_SECONDS),
            st.integers(*INT64),
        )


def _as_float(value: Scalar) -> float | None:
    if isinstance(value, str):
        return _number(value)
    return float(value)


def _nanos() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, NS - 1), st.sampled_from(EDGE_NANOS), st.integers(*INT32))


def _duration_seconds() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from(EDGE_DURATION_SECONDS),
        st.integers(-MAX_DURATION, MAX_DURATION),
        st.integers(*INT64),
    )


def _bytes(small: bool) -> st.SearchStrategy[object]:
    parts: list[st.SearchStrategy[bytes]] = [
        st.sampled_from((b"", b"\x00", b"\xff" * 8, *INVALID_UTF8)),
        st.binary(max_size=32),
    ]
    if not small:
        parts.append(st.just(b"\x00" * 10_000))
    return st.one_of(parts)


def _enum_numbers(f: FieldDescriptor) -> st.SearchStrategy[object]:
    enum = f.enum_type
    assert enum is not None
    defined = sorted(v.number for v in enum.values)
    known = st.sampled_from(defined)
    if enum.is_closed:  # a closed (proto2) enum cannot hold an undefined number
        return known
    undefined = sorted({defined[-1] + 1, defined[0] - 1, -1, 1000, *INT32} - set(defined))
    return known | st.sampled_from([v for v in undefined if INT32[0] <= v <= INT32[1]])


# --- raw bytes ---------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= 2**64 - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@st.composite
def _mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A serialized message with one mutation."""
    body = bytearray(draw(valid))
    at = draw(st.integers(0, len(body)))
    how = draw(st.sampled_from(("truncate", "flip", "insert", "append")))
    if how == "truncate":
        return bytes(body[:at])
    if how == "flip" and body:
        index = min(at, len(body) - 1)
        body[index] ^= draw(st.integers(1, 255))
        return bytes(body)
    extra = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(INVALID_UTF8))
    if how == "insert":
        return bytes(body[:at] + extra + body[at:])
    return bytes(body + extra)


@st.composite
def _wire_records(draw: st.DrawFn, descriptor: Descriptor, nested: bool = True) -> bytes:
    """Hand-built wire records on the message's own field numbers (and a few others)."""
    numbers = sorted({f.number for f in descriptor.fields} | {0, 1, 2**29 - 1, 19_000})
    out = bytearray()
    for _ in range(draw(st.integers(1, 3))):
        number = draw(st.sampled_from(numbers))
        wire_type = draw(st.integers(0, 7))
        out += _varint(number << 3 | wire_type)
        out += draw(_wire_payload(wire_type, descriptor if nested else None))
    return bytes(out)


def _wire_payload(wire_type: int, descriptor: Descriptor | None) -> st.SearchStrategy[bytes]:
    if wire_type == 0:  # varint: any, overlong (11 bytes), or cut off
        return st.one_of(
            st.integers(0, 2**64 - 1).map(_varint),
            st.just(b"\xff" * 10 + b"\x01"),
            st.just(b"\x80"),
            st.just(b""),
        )
    if wire_type in (1, 5):  # fixed64 / fixed32, whole or cut off
        size = 8 if wire_type == 1 else 4
        return st.binary(min_size=0, max_size=size)
    if wire_type == 2:  # length-delimited, with a length that may lie
        contents: list[st.SearchStrategy[bytes]] = [
            st.sampled_from(INVALID_UTF8),
            st.binary(max_size=16),
        ]
        if descriptor is not None:
            contents.append(_wire_records(descriptor, nested=False))
        return st.tuples(st.one_of(contents), st.sampled_from((0, 0, 0, 1, -1, 100, 2**31))).map(
            _length_delimited
        )
    # 3: a group that may never end; 4: an end without a start; 6, 7: no such type.
    return st.binary(max_size=4)


def _length_delimited(values: tuple[bytes, int]) -> bytes:
    content, lie = values
    return _varint(max(len(content) + lie, 0)) + content


def shown(messages: Sequence[Message], limit: int = 3000) -> str:
    """Requests in protobuf text format (non-ASCII escaped, so it can be pasted into
    text_format.Parse), cut at `limit` characters."""
    parts = [
        text_format.MessageToString(m, as_one_line=True, as_utf8=False) or "<empty>"
        for m in messages
    ]
    text = " | ".join(parts) if parts else "<no messages>"
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text
