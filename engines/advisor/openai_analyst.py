"""The OpenAI analyst: the official `openai` SDK, chat completions with structured
output (a JSON schema generated from the pydantic models below).

The SDK does the transport: base URL (OPENAI_BASE_URL), timeout and retries of
transient errors (connection errors, 408, 409, 429, 5xx) with backoff. What
comes back is untrusted. It is read leniently, one idea at a time, so that one
malformed idea is dropped with its reason instead of losing the whole answer;
a refusal or an empty answer becomes an analysis that says so. Anything the
SDK raises becomes `Unavailable` with a message an operator can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import openai
import pydantic
from openai.lib import type_to_response_format_param
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from domain.errors import Unavailable
from engines.advisor.analyst import (
    LONG_MA,
    SHORT_MA,
    AnalysisContext,
    AnalystReply,
    ProposedIdea,
)

PROMPT_VERSION = "advisor_v1"


class ModelIdea(pydantic.BaseModel):
    """One idea as the model must write it (see the prompt)."""

    model_config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)

    symbol: str
    side: Literal["BUY", "SELL"]
    quantity: float | None
    notional: float | None
    limit_price: float | None
    confidence: float
    rationale: str
    risks: list[str]
    expires_in_minutes: int | None


class ModelReply(pydantic.BaseModel):
    """The whole answer: analysis text, risk warnings and zero or more ideas."""

    model_config = pydantic.ConfigDict(extra="forbid")

    analysis: str
    warnings: list[str]
    ideas: list[ModelIdea]


@dataclass(frozen=True, slots=True)
class Prompt:
    version: str
    text: str


def load_prompt(version: str = PROMPT_VERSION) -> Prompt:
    """A prompt from the package's versioned files (engines/advisor/prompts/<version>.md)."""
    path = resources.files("engines.advisor.prompts").joinpath(f"{version}.md")
    return Prompt(version, path.read_text(encoding="utf-8"))


def openai_analyst(
    api_key: str, base_url: str | None, model: str, timeout_seconds: float, max_retries: int
) -> OpenAIAnalyst:
    """An analyst with its own SDK client. Building the client opens no connection."""
    client = openai.OpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=max_retries
    )
    return OpenAIAnalyst(client, model, load_prompt())


class OpenAIAnalyst:
    name = "openai"

    def __init__(self, client: openai.OpenAI, model: str, prompt: Prompt) -> None:
        self._client = client
        self.model = model
        self.prompt = prompt
        self._response_format = type_to_response_format_param(ModelReply)

    def analyze(self, context: AnalysisContext) -> AnalystReply:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": self.prompt.text},
            {"role": "user", "content": context_to_json(context)},
        ]
        try:
            completion = self._client.chat.completions.create(
                model=self.model, messages=messages, response_format=self._response_format
            )
        except openai.OpenAIError as exc:
            raise Unavailable(self._explain(exc)) from exc
        return read_reply(completion, completion.model or self.model, self.prompt.version)

    def _explain(self, exc: openai.OpenAIError) -> str:
        client = self._client
        tries = f"{client.max_retries + 1} attempt(s)"
        where = f"OpenAI at {client.base_url}"
        if isinstance(exc, openai.APITimeoutError):
            why = f"{where} did not answer within {client.timeout}s ({tries})"
        elif isinstance(exc, openai.APIConnectionError):
            why = f"cannot reach {where} ({tries}): {exc}"
        elif isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            why = f"{where} refused the API key (HTTP {exc.status_code}): check OPENAI_API_KEY"
        elif isinstance(exc, openai.APIStatusError):
            why = f"{where} answered HTTP {exc.status_code} ({tries}): {exc.message}"
        else:
            why = f"{where} failed: {exc}"
        return f"the AI advisor is unavailable: {why}. The rest of the service is not affected."


def read_reply(completion: ChatCompletion, model: str, prompt_version: str) -> AnalystReply:
    """Turn a completion into a reply, trusting nothing in it."""

    def say(text: str, warning: str, dropped: tuple[str, ...] = ()) -> AnalystReply:
        return AnalystReply(text, (warning,), (), model, prompt_version, dropped)

    message = completion.choices[0].message if completion.choices else None
    if message is not None and message.refusal:
        return say(
            f"The model declined to answer: {message.refusal}",
            "No analysis and no ideas: the model refused this request.",
        )
    content = (message.content or "").strip() if message is not None else ""
    if not content:
        return say(
            "The model returned nothing, so there is no analysis this time.",
            "No analysis and no ideas: the model's answer was empty.",
        )
    try:
        data = json.loads(content)
    except ValueError as exc:
        return say(
            "The model's answer could not be read and was discarded.",
            "No ideas: the model's answer was malformed.",
            (f"the model's answer is not valid JSON ({exc}); nothing in it was used",),
        )
    if not isinstance(data, dict) or not isinstance(data.get("analysis"), str):
        return say(
            "The model's answer did not follow the expected format and was discarded.",
            "No ideas: the model's answer was malformed.",
            ("the model's answer has no 'analysis' text; nothing in it was used",),
        )
    ideas, dropped = _read_ideas(data.get("ideas"))
    return AnalystReply(
        text=data["analysis"].strip(),
        warnings=tuple(w.strip() for w in _list(data.get("warnings")) if isinstance(w, str)),
        ideas=tuple(ideas),
        model=model,
        prompt_version=prompt_version,
        dropped=tuple(dropped),
    )


def _read_ideas(raw: object) -> tuple[list[ProposedIdea], list[str]]:
    ideas: list[ProposedIdea] = []
    dropped: list[str] = []
    for number, item in enumerate(_list(raw), start=1):
        try:
            idea = ModelIdea.model_validate(item)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'idea'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            dropped.append(f"idea {number} from the model is malformed ({problems})")
            continue
        ideas.append(
            ProposedIdea(
                symbol=idea.symbol,
                side=idea.side,
                quantity=_decimal(idea.quantity),
                notional=_decimal(idea.notional),
                limit_price=_decimal(idea.limit_price),
                confidence=idea.confidence,
                rationale=idea.rationale,
                risks=tuple(idea.risks),
                expires_in_minutes=idea.expires_in_minutes,
            )
        )
    return ideas, dropped


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _decimal(value: float | None) -> Decimal | None:
    # repr gives the shortest text that round-trips, so 10.0 stays 10 and 0.1 stays 0.1.
    if value is None:
        return None
    exact = Decimal(repr(value))
    return exact.quantize(Decimal(1)) if exact == exact.to_integral_value() else exact


def context_to_json(ctx: AnalysisContext) -> str:
    """The user message: the snapshot as JSON, money as decimal strings."""
    ceiling = ctx.limits.position_ceiling(ctx.equity)
    document = {
        "request": {
            "kind": ctx.request.kind.value,
            "question": ctx.request.question,
            "symbols": list(ctx.symbols),
        },
        "now": ctx.now.isoformat(),
        "account": {"cash": str(ctx.cash), "equity": str(ctx.equity)},
        "positions": [
            {
                "symbol": p.symbol,
                "quantity": str(p.quantity),
                "average_price": str(p.average_price),
                "market_price": str(p.market_price),
                "market_value": str(p.market_value),
                "weight_of_equity": f"{p.market_value / ctx.equity:.4f}" if ctx.equity else "",
                "unrealized_pnl": str(p.unrealized_pnl),
            }
            for p in ctx.positions
        ],
        "markets": [
            {
                "symbol": m.symbol,
                "last_price": None if m.last_price is None else str(m.last_price),
                "recent_prices": list(m.recent),
                f"moving_average_{SHORT_MA}": m.moving_average(SHORT_MA),
                f"moving_average_{LONG_MA}": m.moving_average(LONG_MA),
            }
            for m in ctx.markets
        ],
        "risk_limits": {
            "max_position_notional": None if ceiling is None else str(ceiling),
            "rules": ctx.limits.rules,
        },
        "trading_active": ctx.trading_active,
        "known_symbols": sorted(ctx.prices),
        "max_ideas": ctx.max_ideas,
        "idea_ttl_minutes": int(ctx.idea_ttl.total_seconds() // 60),
    }
    return json.dumps(document, sort_keys=True)
