"""The advisor's RPCs (Analyze, ListIdeas, GetIdea, DecideIdea), mixed into the
TradingServicer: validate, translate, hand to the advisor engine, answer.

Every one makes the audit log durable before it answers, refusals included:
an operator action is durable before it is confirmed, and a read that noticed
an idea's expiry has journaled it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import grpc

from domain.errors import InvalidInput
from domain.ideas import AnalysisKind
from engines.advisor.analyst import AnalysisRequest
from engines.advisor.engine import IdeaRecord
from engines.core import Core
from server import translate as tr
from server import validation
from server.auth import Authenticator
from trading_sdk.v1 import advisor_pb2
from trading_sdk.v1 import trading_service_pb2 as pb

MAX_SYMBOLS = 20
MAX_QUESTION = 2000
T = TypeVar("T")


class AdvisorRpcs:
    """Needs the servicer's `_core` (whose `advisor` does the work) and `_auth`."""

    _core: Core
    _auth: Authenticator

    def Analyze(
        self, request: pb.AnalyzeRequest, context: grpc.ServicerContext
    ) -> pb.AnalyzeResponse:
        analysis_request = AnalysisRequest(
            kind=_kind(request.kind),
            question=_question(request.question),
            symbols=_symbols(request.symbols),
        )
        principal = self._auth.of(context)
        analysis, ideas = self._durably(
            lambda: self._core.advisor.analyze(analysis_request, principal)
        )
        return pb.AnalyzeResponse(
            analysis=tr.analysis_to_proto(analysis), ideas=[tr.idea_to_proto(i) for i in ideas]
        )

    def ListIdeas(
        self, request: pb.ListIdeasRequest, context: grpc.ServicerContext
    ) -> pb.ListIdeasResponse:
        state = None
        if request.state != advisor_pb2.IDEA_STATE_UNSPECIFIED:
            state = tr.IDEA_STATE_FROM_PROTO.get(request.state)
            if state is None:
                raise InvalidInput(f"state {request.state} is not a known IdeaState")
        requested = validation.page(request.page_size, request.page_token)
        records, next_token = requested.of(self._durably(lambda: self._core.advisor.ideas(state)))
        return pb.ListIdeasResponse(ideas=[_idea(r) for r in records], next_page_token=next_token)

    def GetIdea(
        self, request: pb.GetIdeaRequest, context: grpc.ServicerContext
    ) -> pb.GetIdeaResponse:
        validation.identifier(request.idea_id, "idea_id", "give an idea id (see ListIdeas)")
        record = self._durably(lambda: self._core.advisor.get(request.idea_id))
        return pb.GetIdeaResponse(idea=_idea(record))

    def DecideIdea(
        self, request: pb.DecideIdeaRequest, context: grpc.ServicerContext
    ) -> pb.DecideIdeaResponse:
        validation.identifier(request.idea_id, "idea_id", "give an idea id (see ListIdeas)")
        if request.decision == advisor_pb2.IDEA_DECISION_APPROVE:
            approve = True
        elif request.decision == advisor_pb2.IDEA_DECISION_REJECT:
            approve = False
        else:
            raise InvalidInput("decision must be IDEA_DECISION_APPROVE or IDEA_DECISION_REJECT")
        reason = validation.reason(request.reason)
        principal = self._auth.of(context)
        record = self._durably(
            lambda: self._core.advisor.decide(request.idea_id, approve, principal, reason)
        )
        return pb.DecideIdeaResponse(idea=_idea(record))

    def _durably(self, call: Callable[[], T]) -> T:
        """Run an input, then make what it journaled durable, whether it succeeded or not."""
        try:
            return call()
        finally:
            self._core.bus.flush()


def _idea(record: IdeaRecord) -> advisor_pb2.TradeIdea:
    return tr.idea_to_proto(record.idea, record.decision, record.order)


def _kind(value: advisor_pb2.AnalysisKind.ValueType) -> AnalysisKind:
    # Unspecified asks for the most common help, a review of the portfolio's risk.
    if value == advisor_pb2.ANALYSIS_KIND_UNSPECIFIED:
        return AnalysisKind.PORTFOLIO_REVIEW
    kind = tr.ANALYSIS_KIND_FROM_PROTO.get(value)
    if kind is None:
        raise InvalidInput(f"kind {value} is not a known AnalysisKind")
    return kind


def _question(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_QUESTION:
        raise InvalidInput(f"question is too long: at most {MAX_QUESTION} characters")
    return value


def _symbols(values: Iterable[str]) -> tuple[str, ...]:
    symbols = tuple(dict.fromkeys(validation.symbol(s, "symbols") for s in values))
    if len(symbols) > MAX_SYMBOLS:
        raise InvalidInput(f"at most {MAX_SYMBOLS} symbols per analysis, got {len(symbols)}")
    return symbols
