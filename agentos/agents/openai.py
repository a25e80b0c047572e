"""`openai:<model>`: any OpenAI-compatible chat-completions endpoint over HTTP.

    --drafter openai:gpt-4o-mini                                  the public OpenAI API
    --drafter openai:llama3 --api-base http://localhost:8000/v1   a local server or a proxy

The leased key goes in the Authorization header and nowhere else. How answers map to the runner:

    200, streamed or not      the answer; streamed tokens appear live as the item's output lines
    429                       RateLimited: the key cools for Retry-After (seconds or an HTTP date)
                              or the body's "try again in N s" hint; the item goes to another key
    401, 403                  CredentialRejected: the key is retired for the run, the item retried
    5xx, connection errors    ItemError: a failure, retried per --retries
    slower than --timeout     ItemTimeout (the attempt's deadline bounds the request)

httpx is an optional dependency: `pip install 'agentos[http]'`.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from agentos.agents.base import Agent, AgentRequest
from agentos.errors import ConfigError, CredentialRejected, ItemError, ItemTimeout, RateLimited
from agentos.workflows.parallel.context import ItemContext

DEFAULT_API_BASE = "https://api.openai.com/v1"
_HINT = re.compile(
    r"(?:try again|retry)\s+(?:in|after)\s+(\d+(?:\.\d+)?)\s*(ms|s|sec|seconds?)?", re.IGNORECASE
)
_SYSTEM = {
    "draft": "You write low-level software designs. Answer in markdown only.",
    "review": "You review low-level software designs strictly and briefly.",
    "implement": "You implement software designs. Answer with files as instructed.",
}


def _require_httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise ConfigError(
            "the openai: agent needs httpx; install it with: pip install 'agentos[http]'"
        ) from None
    return httpx


def retry_after_seconds(headers: Any, body: str, now: float | None = None) -> float | None:
    """The provider's wait: the Retry-After header (delta seconds or an HTTP date), else a hint
    in the error body ("Please try again in 20s", "retry after 500ms")."""
    value = headers.get("retry-after") if headers is not None else None
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when - (now if now is not None else time.time()))
    match = _HINT.search(body or "")
    if match:
        amount = float(match.group(1))
        return amount / 1000 if (match.group(2) or "").lower() == "ms" else amount
    return None


def _error_text(body: str) -> str:
    try:
        data = json.loads(body)
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if message:
            return str(message)[:300]
    except (ValueError, AttributeError):
        pass
    return " ".join(body.split())[:300]


@dataclass(frozen=True)
class OpenAIAgent(Agent):
    spec: str
    model: str
    api_base: str = DEFAULT_API_BASE
    stream: bool = True
    needs_credential: bool = True

    @classmethod
    def from_spec(cls, spec: str, option: str, api_base: str | None) -> OpenAIAgent:
        model = spec.partition(":")[2].strip()
        if not model:
            raise ConfigError(
                f"{option} {spec!r}: give the model after 'openai:', e.g. 'openai:gpt-4o-mini'"
            )
        base = (api_base or DEFAULT_API_BASE).rstrip("/")
        if not re.match(r"^https?://[^\s/]+", base):
            raise ConfigError(f"--api-base {api_base!r} is not an http(s) URL")
        _require_httpx()
        return cls(spec=spec, model=model, api_base=base)

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        httpx = _require_httpx()
        if not ctx.credential:
            raise ItemError(
                f"{self.spec} needs an API key: pass --credentials-file or set AGENTOS_CREDENTIALS"
            )
        payload = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": _SYSTEM.get(request.task, _SYSTEM["draft"])},
                {"role": "user", "content": request.prompt},
            ],
            "stream": self.stream,
        }
        left = ctx.time_left()
        timeout = httpx.Timeout(connect=10.0, read=left, write=30.0, pool=10.0)
        url = f"{self.api_base}/chat/completions"
        headers = {"Authorization": f"Bearer {ctx.credential}"}
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("POST", url, json=payload, headers=headers) as response,
            ):
                if response.status_code != 200:
                    body = response.read().decode("utf-8", errors="replace")
                    self._raise_for(response.status_code, response.headers, body)
                kind = response.headers.get("content-type", "")
                if "text/event-stream" in kind:
                    return self._read_stream(response, ctx)
                return self._read_json(response.read())
        except httpx.TimeoutException:
            raise ItemTimeout(f"{self.spec}: no answer from {self.api_base} in time") from None
        except httpx.HTTPError as exc:
            raise ItemError(
                f"{self.spec}: cannot reach {self.api_base}: {type(exc).__name__}: {exc}"
            ) from None

    def _raise_for(self, status: int, headers: Any, body: str) -> None:
        detail = _error_text(body)
        if status == 429:
            raise RateLimited(f"HTTP 429: {detail}", retry_after=retry_after_seconds(headers, body))
        if status in (401, 403):
            raise CredentialRejected(f"HTTP {status}: {detail}")
        raise ItemError(
            f"{self.spec}: HTTP {status} from {self.api_base}: {detail}", exit_code=status
        )

    @staticmethod
    def _read_json(raw: bytes) -> str:
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ItemError("the API answered 200 with no choices[0].message.content") from None
        if not isinstance(content, str) or not content.strip():
            raise ItemError("the API answered with an empty message")
        return content

    @staticmethod
    def _read_stream(response: Any, ctx: ItemContext) -> str:
        """Server-sent events: print whole lines of the answer as they complete."""
        parts: list[str] = []
        line = ""
        for raw in response.iter_lines():
            if not raw.startswith("data:"):
                continue
            data = raw[5:].strip()
            if data == "[DONE]":
                break
            try:
                delta = json.loads(data)["choices"][0].get("delta", {}).get("content") or ""
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                continue
            parts.append(delta)
            line += delta
            while "\n" in line:
                done, line = line.split("\n", 1)
                ctx.log(done)
        if line:
            ctx.log(line)
        answer = "".join(parts)
        if not answer.strip():
            raise ItemError("the API streamed an empty answer")
        return answer
