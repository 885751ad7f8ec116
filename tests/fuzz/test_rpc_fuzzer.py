"""The RPC fuzzer (DESIGN.md invariant 7): every method of trading.v1.TradingService,
taken from the service descriptor (a new RPC is fuzzed without a change here),
gets requests generated from its input message descriptor (tests/fuzz/messages.py)
and raw bytes, on a real server, as the operator, as a viewer, a trader and a
feed, and with no token or a bogus one. Three tests:

* test_generated_requests[Method]: generated requests, one call per example;
* test_raw_bodies[Method]: random, mutated and hand-built wire bytes;
* test_call_sequences: up to six calls of any methods, each sequence on a
  fresh service, for what one call does to the next (a price the edge let
  through, then Analyze); a call that fails on its own is left to the first.

For every call it checks that:

* the answer is OK or a documented refusal: INVALID_ARGUMENT, NOT_FOUND,
  FAILED_PRECONDITION, UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED;
  UNAVAILABLE only when its details blame the store or broker *and* GetStatus
  agrees that one is unhealthy (neither ever is here); never UNKNOWN, INTERNAL,
  CANCELLED or DEADLINE_EXCEEDED;
* nothing hangs: every call has a deadline (10 s); server streams are read up
  to 100 messages and then cancelled; a long-lived stream (LONG_LIVED) never
  ends by itself, so it is read for LONG_LIVED_READ_SECONDS and there, only
  there, DEADLINE_EXCEEDED is how a healthy call ends;
* the refusal reaches the caller: its message is at most MAX_DETAILS_BYTES
  (it travels in the trailers twice, and clients drop trailers past 8 KiB,
  turning the answer into a transport RESOURCE_EXHAUSTED), and the
  google.rpc.Status in the trailers carries the call's own code;
* a missing or bogus token is UNAUTHENTICATED and a role that may not call the
  method (the server's own table, server.auth) is PERMISSION_DENIED;
* a body the request message's parser refuses is INVALID_ARGUMENT;
* a refused call changes nothing: the audit log grows by RequestRefused
  records at most, and GetStatus (counters but audit_events, trading state,
  advisor counters, clock) reads the same. The one documented exception: a
  client stream refused at message k > 0 keeps the k messages before it, and
  says so in its ErrorInfo (accepted_messages);
* the audit chain verifies after every call; every number handed out (double
  fields, decimal strings, and fields that held only decimals after seeding)
  is finite and fits a double; and after a call that changed something (OK
  from a method a viewer may not call, or a partly accepted stream) every read
  method still answers with a documented code and such numbers: accepted input
  must not poison reads;
* what a call journals holds no non-finite number, as a JSON number or
  written into a text (a signal's rationale saying "noise nan%": a NaN that
  got past a check), except in RequestRefused records, which quote what they
  refused.

Each test gets a fresh service (event clock, SQLite, offline analyst, a tokens
file with a viewer, a trader and a feed) seeded with a filled order, a position
and a pending trade idea. The strings, numbers and times in its responses form
the generators' dictionary, so real ids, symbols and market times are mixed
with hostile values and the fuzzer reaches past validation. Seeding is
deterministic, so is the dictionary. Within test_generated_requests and
test_raw_bodies the service's state carries over from example to example
(a DeactivateRisk halts trading for the rest, which is fine); check_call keeps
a failure from being blamed on what earlier examples did (see there).

Randomness, decided: Hypothesis' default random search, so every run tries new
inputs (`--hypothesis-seed=N` replays a whole run), with print_blob=True. A
failure prints the shrunk request (also in protobuf text format, non-ASCII
escaped, in the message: text_format.Parse takes it back), the code and
details, and a blob (the text inside b'...'); rerun that one example with

    FUZZ_REPRODUCE='<blob>' .venv/bin/pytest tests/fuzz -k 'generated_requests and QueryAudit'

Failing examples are also kept in .pytest_cache/hypothesis-fuzz/ (git-ignored)
and tried first on the next run. Each kind of failure (method, status and the
gist of the message; or which check) is its own exception class, so Hypothesis
reports and shrinks distinct bugs separately. FUZZ_SCALE=10 multiplies every
example budget, for a longer hunt; FUZZ_IGNORE='<regex>' skips failure kinds
(e.g. 'error too large') to look past a known bug while it is being fixed.

Budget: 60 to 90 s for the module on two cores when nothing fails, about two
minutes while a dozen bugs are being shrunk. Generated requests get 40 + 30
examples per scalar field of the request (at most 300; a long-lived stream
30), raw bodies 50, sequences 40; a method whose request has nothing to vary
runs out of distinct inputs (its credentials) after a dozen.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import grpc
import hypothesis
import pytest
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from server.auth import FEED, ROLES, TRADER, VIEWER, Principal
from tests.conftest import TOKEN, RunningService, StartService
from tests.fuzz.messages import (
    Dictionary,
    MessageStrategies,
    decodes,
    is_map,
    leaves,
    message_class,
    shown,
    weighted,
)
from tests.support.aapl import RISING, SYMBOL
from tests.support.calls import bearer
from tests.support.market import crossover_prices, ticks
from trading_sdk.client import error_info
from trading_sdk.v1 import trading_service_pb2 as pb

SERVICE: Final = pb.DESCRIPTOR.services_by_name["TradingService"]
METHODS: Final = tuple(SERVICE.methods)
# Server streams that never end by themselves (a property of the contract, not a
# list of requests): read for a moment, then the deadline ends them.
LONG_LIVED: Final = frozenset({"SubscribeEvents"})
LONG_LIVED_READ_SECONDS: Final = 0.2
DEADLINE_SECONDS: Final = 10.0
MAX_STREAM_MESSAGES: Final = 100
MAX_HISTORY: Final = 10
MAX_RESETS: Final = 30
REFUSED_EVENT: Final = "RequestRefused"

SCALE: Final = float(os.environ.get("FUZZ_SCALE", "1"))
IGNORED: Final = os.environ.get("FUZZ_IGNORE", "")
# Generated requests: more fields, more examples (a message with nothing to vary
# runs out of distinct inputs, its credentials, after a dozen).
EXAMPLES_BASE: Final = 40
EXAMPLES_PER_FIELD: Final = 30
MAX_EXAMPLES: Final = 300
RAW_EXAMPLES: Final = 50
# Each valid request to a long-lived stream costs LONG_LIVED_READ_SECONDS.
LONG_LIVED_EXAMPLES: Final = 30
DATABASE_ROOT: Final = Path(__file__).resolve().parents[2] / ".pytest_cache" / "hypothesis-fuzz"

DOCUMENTED: Final = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
BLAMES_A_DEPENDENCY: Final = re.compile(r"\b(store|broker|database)\b", re.IGNORECASE)
# The client's transport refusing the server's answer (its trailers are too large):
# the caller never sees the server's code or message.
TRAILERS_TOO_LARGE: Final = re.compile(r"metadata size exceeds", re.IGNORECASE)
# A refusal's message travels in the trailers twice (grpc-message, and inside
# grpc-status-details-bin in base64), and a client's default limit for received
# metadata is 8 KiB (beyond it, calls fail at random; beyond 16 KiB, always).
MAX_DETAILS_BYTES: Final = 2048
DECIMAL: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
LARGEST_DOUBLE: Final = 1.7976931348623157e308
# A non-finite number as Python, Decimal or JSON write it, as a word of a text
# (case-sensitive: a symbol such as NAN or INF is upper case).
NON_FINITE_TEXT: Final = re.compile(r"(?<![\w.])(-?inf|nan|NaN|-?Infinity|sNaN)(?!\w)")

PEOPLE: Final = {
    "vera": {"token": "vera-viewer-token-0123", "roles": [VIEWER]},
    "tom": {"token": "tom-trader-token-01234", "roles": [TRADER]},
    "fred": {"token": "fred-feed-token-012345", "roles": [FEED]},
}

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Credential:
    """What a call carries; `principal` None: it must be UNAUTHENTICATED."""

    label: str
    metadata: Metadata
    principal: Principal | None

    def __repr__(self) -> str:
        return self.label


def _person(name: str) -> Credential:
    entry = PEOPLE[name]
    token = str(entry["token"])
    return Credential(name, bearer(token), Principal(name, frozenset(entry["roles"])))


OPERATOR_CREDENTIAL: Final = Credential("operator", bearer(TOKEN), Principal("operator", ROLES))
OTHER_CREDENTIALS: Final = (
    _person("vera"),
    _person("tom"),
    _person("fred"),
    Credential("no token", (), None),
    Credential("wrong token", bearer("not-the-test-token"), None),
    Credential("token prefix", bearer(TOKEN[:-1]), None),
    Credential("basic auth", (("authorization", "Basic dGVzdC10b2tlbg=="),), None),
    Credential("bearer without token", (("authorization", "Bearer"),), None),
)
# The operator three times in four (and first: it is what shrinking falls back to).
CREDENTIALS: Final = weighted(
    (3, st.just(OPERATOR_CREDENTIAL)), (1, st.sampled_from(OTHER_CREDENTIALS))
)
VIEWER_PRINCIPAL: Final = Principal("viewer", frozenset({VIEWER}))


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def reads(method: MethodDescriptor) -> bool:
    """Whether a viewer may call it: the server's own notion of a read."""
    return VIEWER_PRINCIPAL.may_call(path_of(method))


READ_METHODS: Final = tuple(m for m in METHODS if reads(m) and m.name not in LONG_LIVED)


# --- calling any method with bytes ------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str
    accepted_messages: int = 0
    responses: tuple[Message, ...] = ()
    # Why the google.rpc.Status in the trailers could not be read, if it could not.
    bad_status_detail: str = ""


def invoke(
    channel: grpc.Channel,
    method: MethodDescriptor,
    bodies: Sequence[bytes],
    metadata: Metadata,
    max_messages: int = MAX_STREAM_MESSAGES,
) -> Outcome:
    """Call `method` with serialized request bodies through a generic multicallable:
    the request goes out byte for byte, whatever it is."""
    path = path_of(method)
    decode = message_class(method.output_type).FromString
    long_lived = method.name in LONG_LIVED
    timeout = LONG_LIVED_READ_SECONDS if long_lived else DEADLINE_SECONDS
    responses: list[Message] = []
    try:
        if method.server_streaming:
            stream: Iterator[Message]
            if method.client_streaming:
                both: grpc.StreamStreamMultiCallable[bytes, Message]
                both = channel.stream_stream(path, None, decode)
                stream = both(iter(bodies), timeout=timeout, metadata=metadata)
            else:
                out: grpc.UnaryStreamMultiCallable[bytes, Message]
                out = channel.unary_stream(path, None, decode)
                stream = out(bodies[0], timeout=timeout, metadata=metadata)
            for response in stream:
                responses.append(response)
                if len(responses) >= max_messages:
                    stream.cancel()  # enough read: the call worked
                    break
        elif method.client_streaming:
            into: grpc.StreamUnaryMultiCallable[bytes, Message]
            into = channel.stream_unary(path, None, decode)
            responses.append(into(iter(bodies), timeout=timeout, metadata=metadata))
        else:
            unary: grpc.UnaryUnaryMultiCallable[bytes, Message]
            unary = channel.unary_unary(path, None, decode)
            responses.append(unary(bodies[0], timeout=timeout, metadata=metadata))
    except grpc.RpcError as error:
        try:
            info, bad = error_info(error), ""
        except ValueError as exc:  # e.g. its code is not the call's
            info, bad = None, str(exc)
        accepted = info.metadata.get("accepted_messages", "0") if info else "0"
        return Outcome(
            error.code(),
            error.details() or "",
            int(accepted) if accepted.isdigit() else 0,
            tuple(responses),
            bad,
        )
    return Outcome(grpc.StatusCode.OK, "", 0, tuple(responses))


# --- the service under test -----------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """What a refused call must leave as it was."""

    last_seq: int
    chain_ok: bool
    chain_reason: str
    status: str
    unhealthy: tuple[str, ...]


@dataclass
class Target:
    running: RunningService
    channel: grpc.Channel
    strategies: MessageStrategies
    # Response string fields that held only decimal numbers after seeding.
    numeric_fields: frozenset[str]
    # Starts a fresh seeded service, for reset().
    restart: Callable[[], tuple[RunningService, grpc.Channel]]
    # The calls that changed the service since it was seeded, oldest first.
    history: list[str] = field(default_factory=list)
    # Kinds of failure that replayed on a fresh service (see check_call).
    confirmed: set[type[AssertionError]] = field(default_factory=set)
    # A failure needed earlier examples' state: the rest of the test calls nothing.
    frozen: bool = False
    # What was found broken where ("ListPositions()": its bad fields, or its code)
    # the last time it was looked at: still broken later is not the later call's fault.
    broken: dict[str, set[str]] = field(default_factory=dict)
    resets_left: int = 0

    def reset(self) -> None:
        """Replace the service by a freshly seeded one."""
        self.close()
        self.running, self.channel = self.restart()
        self.history.clear()
        self.broken.clear()

    def reset_after_failure(self) -> None:
        if self.resets_left:
            self.resets_left -= 1
            self.reset()
        else:
            self.frozen = True

    def newly_broken(self, where: str, found: set[str]) -> set[str]:
        """Record what is broken at `where` now; return what was not before."""
        before = self.broken.get(where, set())
        self.broken[where] = found
        return found - before

    def observe(self) -> Observation:
        client = self.running.client
        verified = client.verify_audit()
        status = client.get_status()
        unhealthy = tuple(c.name for c in status.components if not c.healthy)
        status.counters.audit_events = 0  # grows by the RequestRefused records
        for component in status.components:
            component.detail = ""  # "last seq N"
        return Observation(verified.last_seq, verified.ok, verified.reason, str(status), unhealthy)

    def close(self) -> None:
        self.channel.close()
        self.running.stop()

    def records_after(self, seq: int) -> list[str]:
        return [r.event_type for r in self.running.client.query_audit(from_seq=seq + 1)]


def seed(running: RunningService) -> None:
    """A filled order and a position (SPY crossover), AAPL prices, a pending idea."""
    client = running.client
    client.stream_market_data([ticks("SPY", crossover_prices())])
    client.stream_market_data([ticks(SYMBOL, RISING)])
    client.analyze([SYMBOL])


def harvest(channel: grpc.Channel) -> Dictionary:
    """The dictionary: everything every read method (called with its empty
    request) answers."""
    answers: list[Message] = []
    for method in READ_METHODS:
        empty = message_class(method.input_type)().SerializeToString()
        outcome = invoke(channel, method, [empty], OPERATOR_CREDENTIAL.metadata)
        answers.extend(outcome.responses)
    return Dictionary.harvest(answers)


def start_target(start_service: StartService, folder: Path, like: Target | None = None) -> Target:
    """A seeded service in `folder`, with strategies made from its dictionary (or,
    to save the harvest, those of `like`: seeding is deterministic)."""
    tokens = folder / "tokens.json"
    if not tokens.exists():
        tokens.write_text(json.dumps(PEOPLE))
        tokens.chmod(0o600)  # the service refuses a tokens file others may read

    def restart() -> tuple[RunningService, grpc.Channel]:
        running = start_service(
            trading_tokens_file=str(tokens),
            openai_api_key=None,
            database_url=f"sqlite:///{folder / f'audit-{uuid.uuid4().hex}.db'}",
            # The fuzzer calls as fast as it can; rate limits have tests of their own.
            trading_rate_limit_per_second=0,
            # The broker sweep journals on its own timer (every 30 s by default); one
            # landing during a refused call would look like the call's records.
            trading_broker_sweep_seconds=3600,
        )
        seed(running)
        return running, grpc.insecure_channel(running.target)

    if like is not None:
        return Target(
            *restart(), like.strategies, like.numeric_fields, restart, resets_left=MAX_RESETS
        )
    running, channel = restart()
    dictionary = harvest(channel)
    numeric = frozenset(
        name
        for name, values in dictionary.by_field
        if (texts := [v for v in values if isinstance(v, str)])
        and all(DECIMAL.fullmatch(v) for v in texts)
    )
    return Target(
        running, channel, MessageStrategies(dictionary), numeric, restart, resets_left=MAX_RESETS
    )


@pytest.fixture
def target(start_service: StartService, tmp_path: Path) -> Iterator[Target]:
    started = start_target(start_service, tmp_path)
    yield started
    started.close()


# --- the checks ----------------------------------------------------------------------


class FuzzFailure(AssertionError):
    """Base of the failures; each kind gets its own subclass, so that Hypothesis
    reports (and shrinks) distinct bugs separately instead of the first only."""


_KINDS: dict[str, type[FuzzFailure]] = {}


def fail(kind: str, message: str) -> None:
    """Raise the failure of this kind, unless FUZZ_IGNORE (a regular expression)
    matches its kind: a way to look past a known bug while it is being fixed."""
    name = re.sub(r"\W+", "_", kind).strip("_")
    if IGNORED and re.search(IGNORED, name.replace("_", " ")):
        return
    cls = _KINDS.setdefault(name, type(name, (FuzzFailure,), {}))
    raise cls(message)


def _cut(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _gist(details: str) -> str:
    """The first words of a message, without numbers: failures whose messages differ
    only in numbers are one bug, others are reported (and shrunk) separately."""
    return " ".join(re.sub(r"[^A-Za-z ]+", " ", details).split()[:8])


def documented(method: MethodDescriptor, outcome: Outcome, after: Observation) -> bool:
    if outcome.code == grpc.StatusCode.OK or outcome.code in DOCUMENTED:
        return True
    if outcome.code == grpc.StatusCode.UNAVAILABLE:
        return bool(BLAMES_A_DEPENDENCY.search(outcome.details)) and bool(after.unhealthy)
    return outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED and method.name in LONG_LIVED


def check_call(
    target: Target,
    method: MethodDescriptor,
    credential: Credential,
    bodies: Sequence[bytes],
    request_text: str,
    confirm: bool = True,
) -> None:
    """Make the call and check everything about it.

    The service's state carries over from example to example, which a failure
    must not be blamed on:

    * a read that was already broken, or a number already bad, before this call
      is not this call's failure (Target.broken);
    * with `confirm`, a failure of a kind not seen yet in this test is replayed
      once on a fresh service. If it fails there too, it is the call's own; if
      not, it needed what earlier examples did (its message lists those calls)
      and the rest of the test passes without calling anything, so that
      Hypothesis reports that failure (as flaky) instead of shrinking it
      towards an example that fails only on what the earlier ones left behind;
    * a failing call that changed the service is followed by a fresh one, so
      that shrinking starts each attempt from the seeded state, up to
      MAX_RESETS times per test (restarts cost time); then the rest of the test
      passes without calling anything and Hypothesis reports the smallest
      failure found so far (as flaky)."""
    if target.frozen:
        return
    changes = len(target.history)
    try:
        _run_call(target, method, credential, bodies, request_text)
        return
    except FuzzFailure as caught:
        failure = caught
    kind = type(failure)
    if not confirm:
        raise failure
    if kind in target.confirmed:
        if len(target.history) > changes:
            target.reset_after_failure()
        raise failure
    target.reset()
    if _fails(target, method, credential, bodies):
        target.confirmed.add(kind)
        target.reset()
        raise failure
    target.frozen = True
    raise kind(f"{failure}\n  (on a freshly seeded service this call passes)")


def _fails(
    target: Target, method: MethodDescriptor, credential: Credential, bodies: Sequence[bytes]
) -> bool:
    try:
        _run_call(target, method, credential, bodies, "")
    except FuzzFailure:
        return True
    return False


def _run_call(
    target: Target,
    method: MethodDescriptor,
    credential: Credential,
    bodies: Sequence[bytes],
    request_text: str,
) -> None:
    before = target.observe()
    outcome = invoke(target.channel, method, bodies, credential.metadata)
    after = target.observe()
    context = (
        f"\n  {method.name} as {credential.label}\n  request: {request_text}\n"
        f"  -> {outcome.code.name}: {_cut(outcome.details)}"
    )
    if target.history:
        earlier = "\n    ".join(target.history[-MAX_HISTORY:])
        context += (
            f"\n  after these calls changed the seeded service (oldest first):\n    {earlier}"
        )
    changed = outcome.code == grpc.StatusCode.OK or outcome.accepted_messages
    if after.last_seq > before.last_seq and (changed or after.status != before.status):
        target.history.append(f"{method.name} as {credential.label}: {_cut(request_text, 300)}")
    _check_call(target, method, credential, bodies, outcome, before, after, context)


def _check_call(
    target: Target,
    method: MethodDescriptor,
    credential: Credential,
    bodies: Sequence[bytes],
    outcome: Outcome,
    before: Observation,
    after: Observation,
    context: str,
) -> None:
    if not documented(method, outcome, after):
        kind = f"{method.name} {outcome.code.name} {_gist(outcome.details)}"
        fail(kind, f"undocumented status{context}")
    too_large = len(outcome.details.encode()) > MAX_DETAILS_BYTES
    if too_large or TRAILERS_TOO_LARGE.search(outcome.details):
        fail(
            f"{method.name} error too large",
            f"the error message is too large to deliver reliably{context}",
        )
    if outcome.bad_status_detail:
        fail(f"{method.name} status detail", f"{outcome.bad_status_detail}{context}")
    if credential.principal is None and outcome.code != grpc.StatusCode.UNAUTHENTICATED:
        fail(f"{method.name} authentication", f"expected UNAUTHENTICATED{context}")
    permitted = credential.principal is not None and credential.principal.may_call(path_of(method))
    denied = credential.principal is not None and not permitted
    if denied and outcome.code != grpc.StatusCode.PERMISSION_DENIED:
        fail(f"{method.name} roles", f"expected PERMISSION_DENIED{context}")
    undecodable = not all(decodes(method.input_type, body) for body in bodies)
    if permitted and undecodable and outcome.code != grpc.StatusCode.INVALID_ARGUMENT:
        fail(f"{method.name} undecodable", f"expected INVALID_ARGUMENT{context}")
    sent = frozenset(_sent_strings(method, bodies))
    _check_state(target, method, outcome, before, after, sent, context)


def _check_state(
    target: Target,
    method: MethodDescriptor,
    outcome: Outcome,
    before: Observation,
    after: Observation,
    sent: frozenset[str],
    context: str,
) -> None:
    if not after.chain_ok:
        fail(f"{method.name} chain", f"audit chain broken: {after.chain_reason}{context}")
    _check_numbers(target, method, outcome.responses, method.name, context)
    if after.last_seq > before.last_seq:
        _check_records(target, method, before.last_seq, sent, context)
    if outcome.code == grpc.StatusCode.OK:
        if not reads(method):
            _check_reads_still_work(target, method, context)
    elif outcome.accepted_messages:
        # A client stream keeps what it accepted before the refused message.
        _check_reads_still_work(target, method, context)
    else:
        _check_unchanged(target, method, before, after, context)


def _check_unchanged(
    target: Target,
    method: MethodDescriptor,
    before: Observation,
    after: Observation,
    context: str,
) -> None:
    if after.last_seq != before.last_seq:
        written = target.records_after(before.last_seq)
        others = [t for t in written if t != REFUSED_EVENT]
        if others or after.last_seq < before.last_seq:
            fail(
                f"{method.name} refusal journaled",
                f"a refused call wrote audit records {written}{context}",
            )
    if after.status != before.status:
        fail(
            f"{method.name} refusal changed status",
            f"a refused call changed GetStatus\n  before: {before.status!r}\n"
            f"  after:  {after.status!r}{context}",
        )


def _check_reads_still_work(target: Target, method: MethodDescriptor, context: str) -> None:
    for read in READ_METHODS:
        empty = message_class(read.input_type)().SerializeToString()
        outcome = invoke(target.channel, read, [empty], OPERATOR_CREDENTIAL.metadata, 1000)
        bad = outcome.code != grpc.StatusCode.OK and outcome.code not in DOCUMENTED
        if target.newly_broken(f"{read.name} code", {outcome.code.name} if bad else set()):
            fail(
                f"{method.name} poisons {read.name}",
                f"after this call, {read.name}() answers {outcome.code.name}: "
                f"{_cut(outcome.details)}{context}",
            )
        _check_numbers(target, method, outcome.responses, f"{read.name}()", context)


def _sent_strings(method: MethodDescriptor, bodies: Sequence[bytes]) -> Iterator[str]:
    cls = message_class(method.input_type)
    for body in bodies:
        if decodes(method.input_type, body):
            yield from _strings_in(cls.FromString(body))


def _strings_in(message: Message) -> Iterator[str]:
    for descriptor, value in message.ListFields():
        items = (
            value.values() if is_map(descriptor) else value if descriptor.is_repeated else [value]
        )
        for item in items:
            if isinstance(item, Message):
                yield from _strings_in(item)
            elif isinstance(item, str):
                yield item


def _check_records(
    target: Target, method: MethodDescriptor, since: int, sent: frozenset[str], context: str
) -> None:
    """What a call journals holds no non-finite number: not as a JSON number, and
    not written into a text (a rationale saying "noise nan%" is a NaN that got
    past a check), unless the request itself sent that word in a string."""
    for record in target.running.client.query_audit(from_seq=since + 1):
        if record.event_type == REFUSED_EVENT:
            continue  # a refusal quotes what it refused
        try:
            payload = json.loads(record.payload_json)
        except ValueError:
            continue
        bad = _non_finite(payload, sent)
        if bad:
            fail(
                f"{method.name} journals non-finite numbers",
                f"audit record {record.seq} ({record.event_type}) holds {bad}{context}",
            )


def _non_finite(value: object, sent: frozenset[str]) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str) and _unsent_non_finite(value, sent):
        return repr(value)
    children: Iterable[object] = ()
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    for child in children:
        found = _non_finite(child, sent)
        if found:
            return found
    return ""


def _unsent_non_finite(text: str, sent: frozenset[str]) -> bool:
    """A non-finite word in a text that no string of the request carried: a text
    quoting what a person wrote ("flatten: NaN" from reason "NaN") is not a number."""
    return any(
        not any(match.group(0) in s for s in sent) for match in NON_FINITE_TEXT.finditer(text)
    )


def _check_numbers(
    target: Target,
    method: MethodDescriptor,
    responses: Iterable[Message],
    where: str,
    context: str,
) -> None:
    """Every number the service hands out is finite and fits a double: a double
    field, a decimal string, and any value of a field that held only decimals."""
    bad = dict(b for response in responses for b in _bad_numbers(response, target.numeric_fields))
    new = target.newly_broken(where, set(bad))
    if new:
        first = sorted(new)[0]
        fail(f"{method.name} hands out bad numbers", f"{where} answers {bad[first]}{context}")


def _bad_numbers(message: Message, numeric_fields: frozenset[str]) -> Iterator[tuple[str, str]]:
    """(field, what is wrong) for every bad number in the message."""
    for descriptor, value in message.ListFields():
        items = (
            value.values() if is_map(descriptor) else (value if descriptor.is_repeated else [value])
        )
        name = descriptor.full_name
        for item in items:
            if isinstance(item, Message):
                yield from _bad_numbers(item, numeric_fields)
            elif isinstance(item, float) and not math.isfinite(item):
                yield name, f"{name} = {item}"
            elif isinstance(item, str) and item:
                if DECIMAL.fullmatch(item):
                    if abs(float(item)) > LARGEST_DOUBLE:
                        yield name, f"{name} = {item!r}, beyond any double"
                elif descriptor.name in numeric_fields:
                    yield name, f"{name} = {item!r}, not a finite number"


# --- the tests ------------------------------------------------------------------------


def budget(examples: int) -> int:
    return max(1, round(examples * SCALE))


def fuzz_settings(examples: int, suite: str) -> settings:
    return settings(
        max_examples=budget(examples),
        deadline=None,
        print_blob=True,
        database=DirectoryBasedExampleDatabase(DATABASE_ROOT / suite),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def request_examples(method: MethodDescriptor) -> int:
    if method.name in LONG_LIVED:
        return LONG_LIVED_EXAMPLES
    fields = leaves(method.input_type)
    return min(MAX_EXAMPLES, EXAMPLES_BASE + EXAMPLES_PER_FIELD * fields)


def reproducible(test: Callable[..., None]) -> Callable[..., None]:
    """FUZZ_REPRODUCE='<blob>' replays the one example a failure printed."""
    blob = os.environ.get("FUZZ_REPRODUCE")
    if not blob:
        return test
    return hypothesis.reproduce_failure(hypothesis.__version__, blob.encode())(test)


def by_name(method: MethodDescriptor) -> str:
    return method.name


@pytest.mark.parametrize("method", METHODS, ids=by_name)
def test_generated_requests(target: Target, method: MethodDescriptor) -> None:
    """Requests generated from the method's input message descriptor."""

    @reproducible
    @fuzz_settings(request_examples(method), f"requests/{method.name}")
    @given(credential=CREDENTIALS, requests=target.strategies.requests(method))
    def fuzz(credential: Credential, requests: list[Message]) -> None:
        bodies = [r.SerializeToString() for r in requests]
        check_call(target, method, credential, bodies, shown(requests))

    fuzz()


@pytest.mark.parametrize("method", METHODS, ids=by_name)
def test_raw_bodies(target: Target, method: MethodDescriptor) -> None:
    """Random and mutated bytes as request bodies: undecodable is INVALID_ARGUMENT."""

    @reproducible
    @fuzz_settings(min(RAW_EXAMPLES, request_examples(method)), f"bodies/{method.name}")
    @given(credential=CREDENTIALS, bodies=target.strategies.bodies(method))
    def fuzz(credential: Credential, bodies: list[bytes]) -> None:
        check_call(target, method, credential, bodies, repr(bodies)[:3000])

    fuzz()


SEQUENCE_METHODS: Final = {m.name: m for m in METHODS if m.name not in LONG_LIVED}
SEQUENCE_EXAMPLES: Final = 40
MAX_STEPS: Final = 6


def test_call_sequences(start_service: StartService, tmp_path: Path) -> None:
    """Calls to any methods, one after another, each checked as above: what one
    method accepts must not break another (a price the edge let through, say,
    then Analyze or GetAccount). Each sequence gets a fresh seeded service, so
    that a failure is the sequence's own and replays exactly; a call that fails
    on its own too is left to test_generated_requests."""
    first = start_target(start_service, tmp_path)
    first.close()
    strategies = first.strategies

    def step(name: str) -> st.SearchStrategy[tuple[str, Credential, list[Message]]]:
        return st.tuples(st.just(name), CREDENTIALS, strategies.requests(SEQUENCE_METHODS[name]))

    steps = st.sampled_from(sorted(SEQUENCE_METHODS)).flatmap(step)

    @reproducible
    @fuzz_settings(SEQUENCE_EXAMPLES, "sequences")
    @given(calls=st.lists(steps, min_size=1, max_size=MAX_STEPS))
    def fuzz(calls: list[tuple[str, Credential, list[Message]]]) -> None:
        target = start_target(start_service, tmp_path, first)
        try:
            for index, (name, credential, requests) in enumerate(calls):
                text = f"(call {index + 1} of {len(calls)}) {shown(requests)}"
                try:
                    call(target, name, credential, requests, text)
                except FuzzFailure:
                    if index == 0 or fails_alone(name, credential, requests):
                        return  # a bug of one call: test_generated_requests reports it
                    raise
        finally:
            target.close()

    def fails_alone(name: str, credential: Credential, requests: list[Message]) -> bool:
        alone = start_target(start_service, tmp_path, first)
        try:
            call(alone, name, credential, requests, "")
        except FuzzFailure:
            return True
        finally:
            alone.close()
        return False

    fuzz()


def call(
    target: Target, name: str, credential: Credential, requests: list[Message], text: str
) -> None:
    bodies = [r.SerializeToString() for r in requests]
    check_call(target, SEQUENCE_METHODS[name], credential, bodies, text, confirm=False)


def test_the_fuzzer_knows_every_long_lived_stream_it_names() -> None:
    streams = {m.name for m in METHODS if m.server_streaming}
    assert streams >= LONG_LIVED


def _contract_messages() -> list[Descriptor]:
    files, todo = {}, [pb.DESCRIPTOR]
    while todo:
        file = todo.pop()
        if file.name not in files:
            files[file.name] = file
            todo.extend(file.dependencies)
    found = {d.full_name: d for f in files.values() for d in f.message_types_by_name.values()}
    return [found[name] for name in sorted(found)]


@pytest.mark.parametrize("descriptor", _contract_messages(), ids=lambda d: d.full_name)
def test_generators_build_every_message_of_the_contract_within_bounds(
    descriptor: Descriptor,
) -> None:
    """Maps, oneofs and deep nesting do not occur in requests today; the response
    and event messages have them, so building those keeps the generators honest."""
    strategies = MessageStrategies(Dictionary(strings=("SPY",), seconds=(1_709_650_800,)))

    @settings(max_examples=budget(5), deadline=None, database=None)
    @given(message=strategies.message(descriptor), body=strategies.body(descriptor))
    def build(message: Message, body: bytes) -> None:
        assert message.ByteSize() < 1_000_000
        assert decodes(descriptor, message.SerializeToString())
        decodes(descriptor, body)

    build()
