"""Loopback servers that the real agent CLIs talk to in the tests: an Anthropic Messages API
(Claude Code, `ANTHROPIC_BASE_URL`) and a Gemini API (Gemini CLI, `GOOGLE_GEMINI_BASE_URL`).
Both stream their answers as server-sent events the way the real APIs do, and report usage.

Each API key gets a behaviour; "<behaviour>_once" refuses the key's first call and answers the
rest. A prompt that reviews (the requirements workflow's review prompt) is answered APPROVED,
any other with an LLD; a prompt that starts with "SAY:" is answered with the rest of it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.provider_sim import send_json
from support.fake_openai import LLD_ANSWER

#: what one answer uses, as the fake reports it
INPUT_TOKENS = 1000
CACHE_READ_TOKENS = 200
OUTPUT_TOKENS = 500
USAGE_LIMIT_RESET = 1_900_000_000  # the unix time a "usage limit reached|<time>" names


def answer_for(prompt: str) -> str:
    if "SAY:" in prompt:
        return prompt.split("SAY:", 1)[1].strip()
    if "You review low-level designs" in prompt:
        return "APPROVED\n\nEvery requirement has a scenario.\n"
    return LLD_ANSWER


class _Server:
    def __init__(self, behaviours: dict[str, str]) -> None:
        self.behaviours = behaviours
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # Claude Code checks that the server is there
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                send_json(self, 404, {"error": {"message": "not here"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def behaviour(self, key: str, record: dict[str, Any]) -> str:
        behaviour = self.behaviours.get(key, "revoked")
        with self._lock:
            if behaviour.endswith("_once"):
                behaviour = "ok" if key in self._seen else behaviour.removesuffix("_once")
            self._seen.add(key)
            self.calls.append({**record, "key": key, "behaviour": behaviour, "time": time.time()})
        return behaviour

    def handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        raise NotImplementedError

    @staticmethod
    def sse(h: BaseHTTPRequestHandler, events: list[tuple[str | None, dict[str, Any]]]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        for name, data in events:
            head = f"event: {name}\n" if name else ""
            h.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())
            h.wfile.flush()
        h.close_connection = True


@dataclass
class Turn:
    """What a scripted model sees of one request: the prompt, Claude Code's working directory
    (from its system prompt), the tools it offers, and the results of the tools used so far."""

    prompt: str
    cwd: str
    tools: list[str]
    results: list[dict[str, Any]]


#: a scripted model: the tool calls to make now ({"name": ..., "input": {...}}), or None to
#: answer with text and end the turn
Script = Callable[[Turn], list[dict[str, Any]] | None]


class FakeAnthropic(_Server):
    """POST /v1/messages, streamed. Behaviours: ok, rate_limited (429, retry-after: 1),
    overloaded (529), revoked (401), usage_limit (429 "usage limit reached|<unix time>"),
    bad_request (400). With a `script`, an "ok" answer may be `tool_use` blocks instead of text:
    Claude Code then really runs the tools (Write, Edit, Bash) and sends their results back."""

    def __init__(self, behaviours: dict[str, str], script: Script | None = None) -> None:
        super().__init__(behaviours)
        self.script = script

    def handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        prompt = _anthropic_text(body)
        key = h.headers.get("x-api-key", "")
        tools = [str(tool.get("name")) for tool in body.get("tools") or []]
        behaviour = self.behaviour(
            key, {"path": h.path, "model": body.get("model"), "prompt": prompt, "tools": tools}
        )
        errors = {
            "rate_limited": (429, "rate_limit_error", "Number of request tokens has exceeded "
                             "your per-minute rate limit"),
            "overloaded": (529, "overloaded_error", "Overloaded"),
            "revoked": (401, "authentication_error", "invalid x-api-key"),
            "usage_limit": (429, "rate_limit_error",
                            f"Claude AI usage limit reached|{USAGE_LIMIT_RESET}"),
            "bad_request": (400, "invalid_request_error", "prompt is too long"),
        }  # fmt: skip
        if behaviour in errors:
            status, kind, message = errors[behaviour]
            send_json(
                h,
                status,
                {"type": "error", "error": {"type": kind, "message": message}},
                {"retry-after": "1"} if status == 429 else {},
            )
            return
        uses = self.script(_turn(body, prompt)) if self.script is not None else None
        text = answer_for(prompt)
        model = body.get("model") or "claude"
        start = {
            "id": f"msg_{len(self.calls)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": INPUT_TOKENS - CACHE_READ_TOKENS,
                "cache_read_input_tokens": CACHE_READ_TOKENS,
                "cache_creation_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        used = {"output_tokens": OUTPUT_TOKENS}
        events: list[tuple[str | None, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
        ]
        if uses:
            for index, use in enumerate(uses):
                block = {"type": "tool_use", "id": f"toolu_{len(self.calls)}_{index}",
                         "name": use["name"], "input": {}}  # fmt: skip
                delta = {"type": "input_json_delta", "partial_json": json.dumps(use["input"])}
                events += [
                    ("content_block_start",
                     {"type": "content_block_start", "index": index, "content_block": block}),
                    ("content_block_delta",
                     {"type": "content_block_delta", "index": index, "delta": delta}),
                    ("content_block_stop", {"type": "content_block_stop", "index": index}),
                ]  # fmt: skip
            stop = {"stop_reason": "tool_use", "stop_sequence": None}
            events += [
                ("message_delta", {"type": "message_delta", "delta": stop, "usage": used}),
                ("message_stop", {"type": "message_stop"}),
            ]
            self.sse(h, events)
            return
        block = {"type": "text", "text": ""}
        end = {"stop_reason": "end_turn", "stop_sequence": None}
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": block})
        )  # fmt: skip
        for at in range(0, len(text), 40):
            delta = {"type": "text_delta", "text": text[at : at + 40]}
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": end, "usage": used}),
            ("message_stop", {"type": "message_stop"}),
        ]
        self.sse(h, events)


def _turn(body: dict[str, Any], prompt: str) -> Turn:
    system = json.dumps(body.get("system") or "")
    found = re.search(r"Primary working directory: ([^\\\n\"]+)", system)
    results = [
        block
        for message in body.get("messages") or []
        if message.get("role") == "user" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    return Turn(
        prompt=prompt,
        cwd=found.group(1).strip() if found else "",
        tools=[str(tool.get("name")) for tool in body.get("tools") or []],
        results=results,
    )


def _anthropic_text(body: dict[str, Any]) -> str:
    """The user's text in a Messages request (Claude Code sends content blocks)."""
    texts = []
    for message in body.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [b.get("text", "") for b in content if isinstance(b, dict)]
    return "\n".join(texts)


class FakeGemini(_Server):
    """POST /v1beta/models/<model>:streamGenerateContent?alt=sse. Behaviours: ok, rate_limited
    (429 per minute, RetryInfo 26s), daily (429 per day), overloaded (503), revoked (400
    API_KEY_INVALID, as Google answers a bad key)."""

    def handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        texts = [
            part.get("text", "")
            for content in body.get("contents") or []
            if content.get("role") == "user"
            for part in content.get("parts") or []
            if isinstance(part, dict)
        ]
        prompt = "\n".join(texts)
        key = h.headers.get("x-goog-api-key", "")
        model = h.path.split("/models/", 1)[-1].split(":", 1)[0]
        behaviour = self.behaviour(key, {"path": h.path, "model": model, "prompt": prompt})
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}
        errors = {
            "rate_limited": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric "
                             "'Generate Content API requests per minute'", [retry]),
            "daily": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                {**retry, "retryDelay": "3600s"}]),
            "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again "
                           "later.", []),
            "revoked": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API "
                        "key.", [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                  "reason": "API_KEY_INVALID"}]),
        }  # fmt: skip
        if behaviour in errors:
            status, code, message, details = errors[behaviour]
            error = {"code": status, "message": message, "status": code, "details": details}
            send_json(h, status, {"error": error})
            return
        text = answer_for(prompt)
        chunks = [text[at : at + 40] for at in range(0, len(text), 40)] or [""]
        events: list[tuple[str | None, dict[str, Any]]] = []
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": chunk}], "role": "model"},
                "index": 0,
            }
            data: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if last:
                candidate["finishReason"] = "STOP"
                data["usageMetadata"] = {
                    "promptTokenCount": INPUT_TOKENS,
                    "candidatesTokenCount": OUTPUT_TOKENS,
                    "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS,
                }
            events.append((None, data))
        self.sse(h, events)
