"""`openai:<model>`: any OpenAI-compatible chat-completions endpoint over HTTP.

    --drafter openai:gpt-4o-mini                                  the public OpenAI API
    --drafter openai:llama3 --api-base http://localhost:8000/v1   a local server or a proxy

Keys are taken per call from the rate governor (agentos.governor): each call asks for a key
with an estimate of its tokens (characters / 4, corrected by the answer's `usage`), waits the
pacing delay the governor hands out, and reports the answer's limit headers and usage back. The
key goes in the Authorization header and nowhere else. How answers map:

    200, streamed or not      the answer; streamed tokens appear live as the item's output lines;
                              `stream_options.include_usage` asks for the usage at the end. The
                              call's usage is recorded (ctx.record_usage) under the model the
                              answer names: tokens, cached tokens, the cost when the provider
                              states it (OpenRouter's `usage.cost`); a server that reports no
                              usage leaves the call's tokens and cost unknown
    429 rate limit            the governor pushes the key group's schedule to the reset
                              (Retry-After, the reset headers or "try again in 1.2s"); this call
                              goes again, on the same or another key: no retry spent, the item's
                              finished calls kept
    429 quota, per-day limit  the key's group is parked until the stated reset (or for the run);
                              the call goes on with another key
    503, 529 overloaded       everybody backs off briefly; the call goes again
    401, 403                  the key is retired for the run; the call goes on with another key
    other errors              ItemError: a failure, retried per --retries
    slower than --timeout     ItemTimeout (the attempt's deadline bounds the request)

An item that holds a leased key (a workflow that mixes this agent with a CLI agent) is paced on
that key, and a refusal of that key ends the attempt the way a CLI agent's would.

httpx is an optional dependency: `pip install 'agentos-batch[http]'`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from agentos.agents.base import Agent, AgentRequest
from agentos.errors import ConfigError, CredentialRejected, ItemError, ItemTimeout, RateLimited
from agentos.item.context import ItemContext
from agentos.item.keys import KeyOutcome
from agentos.item.refusals import (
    RateInfo,
    Refusal,
    RefusalKind,
    body_hint,
    classify_http,
    retry_after,
)
from agentos.text import plural
from agentos.usage.prices import ModelRef

DEFAULT_API_BASE = "https://api.openai.com/v1"
#: a call refused this many times in a row gives up (the item goes back to the queue): a
#: governor that keeps sending a call into refusals has a wrong picture; say so, do not spin
MAX_CALL_REFUSALS = 30
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
            "the openai: agent needs httpx; install it with: pip install 'agentos-batch[http]'"
        ) from None
    return httpx


def retry_after_seconds(headers: Any, body: str, now: float | None = None) -> float | None:
    """The provider's wait: `retry-after-ms` / `Retry-After` (delta seconds or an HTTP date),
    else a hint in the error body ("Please try again in 20s", "retry after 500ms")."""
    wait = retry_after(headers if headers is not None else {}, now)
    return wait if wait is not None else body_hint(body)


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
    """An OpenAI-compatible chat completions API, a key per call (`openai:MODEL`)."""

    spec: str
    model: str
    api_base: str = DEFAULT_API_BASE
    stream: bool = True
    needs_credential: bool = True
    keys_per_call: bool = True

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

    def models(self) -> list[ModelRef | None]:
        return [ModelRef(self.model, self.api_base)]

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        httpx = _require_httpx()
        if not ctx.credential and not ctx.keys_per_call:
            raise ItemError(
                f"{self.spec} needs an API key: pass --credentials-file or set AGENTOS_CREDENTIALS"
            )
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": _SYSTEM.get(request.task, _SYSTEM["draft"])},
                {"role": "user", "content": request.prompt},
            ],
            "stream": self.stream,
        }
        if self.stream:
            payload["stream_options"] = {"include_usage": True}
        if not ctx.keys_per_call:
            assert ctx.credential is not None
            ctx.check_budget()
            with ctx.model_call(self.model, ctx.credential_label):
                reply = self._call(httpx, payload, ctx.credential, ctx, ctx.credential_label)
            return reply.answer
        # characters / 4 is the usual rule of thumb for prompt tokens (no tokenizer download);
        # the governor adds the answer's size it has learned, and the answer's usage corrects
        # its account afterwards
        estimate = sum(len(m["content"]) for m in payload["messages"]) / 4
        refusals = 0
        while True:
            ctx.check_budget()  # an item over --item-budget makes no more calls
            grant = ctx.call_key(estimate)
            try:
                with ctx.model_call(self.model, grant.label):
                    reply = self._call(httpx, payload, grant.secret, ctx, grant.label)
            except _Refused as refused:
                ctx.end_call(grant, refused.refusal.kind, refused.info)
                refusals += 1
                if refused.refusal.kind == RefusalKind.REJECTED and ctx.credential:
                    raise CredentialRejected(refused.refusal.detail) from None
                if refusals > MAX_CALL_REFUSALS:
                    raise RateLimited(
                        f"refused {plural(refusals, 'time')} in a row: {refused.refusal.detail}",
                        refused.refusal.wait,
                        kind=refused.refusal.kind,
                    ) from None
                continue  # the governor now knows; ask it again, for this call only
            except BaseException:
                ctx.end_call(grant, KeyOutcome.ERROR)
                raise
            ctx.end_call(
                grant,
                KeyOutcome.OK,
                {**vars(reply.limits), "tokens": reply.tokens, "output_tokens": reply.output},
            )
            return reply.answer

    def _call(
        self, httpx: Any, payload: dict[str, Any], key: str, ctx: ItemContext, label: str | None
    ) -> _Reply:
        left = ctx.time_left()
        timeout = httpx.Timeout(connect=10.0, read=left, write=30.0, pool=10.0)
        url = f"{self.api_base}/chat/completions"
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream("POST", url, json=payload, headers=headers) as response,
            ):
                limits = RateInfo.from_headers(response.headers)
                if response.status_code != 200:
                    body = response.read().decode("utf-8", errors="replace")
                    self._raise_for(response.status_code, response.headers, body, ctx, limits)
                kind = response.headers.get("content-type", "")
                streamed = "text/event-stream" in kind
                if streamed:
                    answer, usage, model = self._read_stream(response, ctx)
                else:
                    answer, usage, model = self._read_json(response.read())
                # an answer is paid for whatever its content: recorded before it is judged
                self._record(ctx, usage, model, label)
                if not answer.strip():
                    raise ItemError(
                        "the API streamed an empty answer"
                        if streamed
                        else "the API answered with an empty message"
                    )
                return _Reply(answer, *_tokens(usage), limits)
        except httpx.TimeoutException:
            raise ItemTimeout(f"{self.spec}: no answer from {self.api_base} in time") from None
        except httpx.HTTPError as exc:
            raise ItemError(
                f"{self.spec}: cannot reach {self.api_base}: {type(exc).__name__}: {exc}"
            ) from None

    def _raise_for(
        self, status: int, headers: Any, body: str, ctx: ItemContext, limits: RateInfo
    ) -> None:
        refusal = classify_http(status, headers, body)
        if refusal is not None and ctx.keys_per_call:
            info: dict[str, Any] = {**vars(limits), "wait": refusal.wait, "detail": refusal.detail}
            info["organization"] = limits.organization or refusal.organization
            if refusal.limit is not None:
                info.update(
                    limit_unit=refusal.limit.unit,
                    limit_per=refusal.limit.per,
                    limit=refusal.limit.limit,
                )
            raise _Refused(refusal, info)
        detail = _error_text(body)
        if refusal is not None and refusal.kind == RefusalKind.REJECTED:
            raise CredentialRejected(f"HTTP {status}: {detail}")
        if refusal is not None and refusal.kind in (RefusalKind.RATE, RefusalKind.QUOTA):
            raise RateLimited(f"HTTP {status}: {detail}", refusal.wait, kind=refusal.kind)
        if refusal is not None:  # overloaded: not the key's fault, a failure that is retried
            raise RateLimited(f"HTTP {status}: {detail}", refusal.wait, kind=refusal.kind)
        raise ItemError(
            f"{self.spec}: HTTP {status} from {self.api_base}: {detail}", exit_code=status
        )

    def _record(self, ctx: ItemContext, usage: Any, model: Any, label: str | None) -> None:
        """The call's usage, under the model the answer names (often a dated version of the
        one asked for), else the one asked for."""
        usage = usage if isinstance(usage, dict) else {}
        details = usage.get("prompt_tokens_details")
        cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
        cost = usage.get("cost")  # OpenRouter and some proxies state what the call cost
        ctx.record_usage(
            model if isinstance(model, str) and model.strip() else self.model,
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=cached or 0,
            cost_usd=_amount(cost),
            provider=self.api_base,
            key_label=label,
        )

    @staticmethod
    def _read_json(raw: bytes) -> tuple[str, Any, Any]:
        """(content, usage, model) of a whole answer."""
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ItemError("the API answered 200 with no choices[0].message.content") from None
        return content if isinstance(content, str) else "", data.get("usage"), data.get("model")

    @staticmethod
    def _read_stream(response: Any, ctx: ItemContext) -> tuple[str, Any, Any]:
        """Server-sent events: print whole lines of the answer as they complete. The last
        chunk carries the usage when the server honours `include_usage`. Returns (answer,
        usage, model)."""
        parts: list[str] = []
        line = ""
        usage: Any = None
        model: Any = None
        for raw in response.iter_lines():
            if not raw.startswith("data:"):
                continue
            data = raw[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            if not isinstance(chunk, dict):
                continue
            usage = chunk.get("usage") or usage
            model = chunk.get("model") or model
            try:
                delta = chunk["choices"][0].get("delta", {}).get("content") or ""
            except (KeyError, IndexError, TypeError, AttributeError):
                continue
            parts.append(delta)
            line += delta
            while "\n" in line:
                done, line = line.split("\n", 1)
                ctx.log(done)
        if line:
            ctx.log(line)
        return "".join(parts), usage, model


@dataclass(frozen=True)
class _Reply:
    """One answer: its text, the tokens it says it used, and the limits its headers state."""

    answer: str
    tokens: float | None  # the call's total, when the answer says
    output: float | None  # of which the answer's own
    limits: RateInfo


class _Refused(Exception):
    """A refusal, inside the agent: the governor hears of it and the call goes again."""

    def __init__(self, refusal: Refusal, info: dict[str, Any]) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal
        self.info = info


def _amount(value: Any) -> float | None:
    """An amount from an answer: a finite number >= 0, else unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _count(value: Any) -> int | None:
    """A token count from an answer: a whole number >= 0, else unknown."""
    amount = _amount(value)
    return int(amount) if amount is not None and amount.is_integer() else None


def _tokens(usage: Any) -> tuple[float | None, float | None]:
    """(total, completion) tokens of an answer's `usage`, None where it does not say."""
    if not isinstance(usage, dict):
        return None, None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    output = float(completion) if isinstance(completion, (int, float)) else None
    total = usage.get("total_tokens")
    if isinstance(total, (int, float)):
        return float(total), output
    numbers = [p for p in (prompt, completion) if isinstance(p, (int, float))]
    return (float(sum(numbers)) if numbers else None), output
