"""A fake OpenAI API on a loopback port: the real `openai` SDK is pointed at it
through its base URL, so tests exercise the SDK's own transport, timeout,
retries and parsing, with no network and no patching.

It speaks `POST /v1/chat/completions`. Each request takes the next scripted
answer (`then`), or the standing one (`always`) when the script is empty:

    with FakeOpenAI() as fake:
        fake.always(ideas_reply("AAPL looks stretched", [idea("AAPL", "SELL", 5)]))
        fake.then(server_error(), server_error())   # two 500s first: the SDK retries
        ... Settings(openai_api_key="sk-test", openai_base_url=fake.base_url) ...
        fake.requests[0].body["messages"]            # what the SDK sent

Answers: `ideas_reply` (well-formed structured output), `content` (any text,
e.g. malformed JSON), `refusal`, `content(None)` (empty), `server_error`, and
`slow(seconds, answer)` for a server that outlives the client's timeout.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini-2024-07-18"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: a status, a JSON body, and how long to wait before it."""

    status: int
    body: dict[str, Any]
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def user_document(self) -> dict[str, Any]:
        """The JSON snapshot the advisor sent as the user message."""
        message = next(m for m in self.body["messages"] if m["role"] == "user")
        document: dict[str, Any] = json.loads(message["content"])
        return document

    @property
    def system_prompt(self) -> str:
        return str(next(m for m in self.body["messages"] if m["role"] == "system")["content"])


def _completion(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_709_650_800,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
    }


def content(text: str | None) -> Answer:
    """The model's message content exactly as given (None: an empty answer)."""
    return Answer(200, _completion(text))


def refusal(text: str = "I can't help with that.") -> Answer:
    return Answer(200, _completion(None, refusal=text))


def server_error(status: int = 500) -> Answer:
    return Answer(
        status, {"error": {"message": "the fake is failing", "type": "server_error", "code": None}}
    )


def slow(seconds: float, answer: Answer | None = None) -> Answer:
    answer = answer or content(None)
    return Answer(answer.status, answer.body, delay=seconds)


def idea(
    symbol: str,
    side: str,
    quantity: float | None = None,
    *,
    notional: float | None = None,
    limit_price: float | None = None,
    confidence: float = 0.8,
    risks: list[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One idea in the structured-output shape (overrides may break it on purpose)."""
    document: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "notional": notional,
        "limit_price": limit_price,
        "confidence": confidence,
        "rationale": f"{side} {symbol}: a test rationale.",
        "risks": ["the price may move against it"] if risks is None else risks,
        "expires_in_minutes": None,
    }
    document.update(overrides)
    return document


def ideas_reply(
    analysis: str, ideas: list[dict[str, Any]], warnings: list[str] | None = None
) -> Answer:
    """A well-formed structured answer."""
    document = {
        "analysis": analysis,
        "warnings": ["Markets can fall."] if warnings is None else warnings,
        "ideas": ideas,
    }
    return content(json.dumps(document))


@dataclass
class _State:
    standing: Answer = field(default_factory=lambda: ideas_reply("Nothing to do.", []))
    script: deque[Answer] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def next_answer(self, request: Request) -> Answer:
        with self.lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else self.standing


class FakeOpenAI:
    def __init__(self) -> None:
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self._state))
        self._server.daemon_threads = True
        # A short poll interval, so that close() (which waits for the next poll) is quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[Request]:
        with self._state.lock:
            return list(self._state.requests)

    def always(self, answer: Answer) -> None:
        """Answer every request with this once the script is used up."""
        with self._state.lock:
            self._state.standing = answer

    def then(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order."""
        with self._state.lock:
            self._state.script.extend(answers)

    def close(self) -> None:
        self._state.closing.set()  # wakes slow answers, so no thread outlives the test long
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(Answer(404, {"error": {"message": f"no route {self.path}"}}))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = state.next_answer(Request(self.path, headers, json.loads(raw)))
            if answer.delay and state.closing.wait(answer.delay):
                return
            self._send(answer)

        def _send(self, answer: Answer) -> None:
            payload = json.dumps(answer.body).encode()
            # The client may have given up on a slow answer and gone away.
            with contextlib.suppress(OSError):
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                # Retries come at once instead of after the SDK's backoff.
                self.send_header("retry-after-ms", "1")
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler
