"""A loopback LLM provider that rate-limits the way the real ones do, for `bench/` and the tests.

    with ProviderSim([Org("org-a", rpm=60, tpm=30_000)], {"sk-a1": "org-a"}) as sim:
        ... point `agentos requirements --drafter openai:m --api-base {sim.base_url}` at it ...
        sim.stats()["total"]["ok"], sim.ideal_seconds(calls=60, tokens_per_call=500)

It serves `POST /v1/chat/completions` (OpenAI's shape, streamed or not) on 127.0.0.1 with the
standard library only (ThreadingHTTPServer in a daemon thread).

The model
---------
Keys belong to *organisations*; every key of one organisation spends the same budget. Each
organisation may have three limits:

* **requests per minute (RPM)** and **tokens per minute (TPM)**, each a continuously refilled
  token bucket. Providers advertise a per-minute figure but enforce it over a much shorter
  window: a bucket holds `limit × window_s / 60` (at least one request), refills at `limit / 60`
  per second and starts full. With 60 RPM and the default 2 s window an organisation may send 2
  requests at once, then one a second; sending the minute's 60 at once gets 58 refusals. A call
  must fit both buckets; it is charged at admission, tokens as `prompt + max_tokens` when the
  request names `max_tokens` (OpenAI's rule) and `prompt + the answer's size` otherwise, with
  prompt = ceil(characters of all messages / 4) and the answer's size its characters / 4. A call
  that costs more than a full bucket but not more than the per-minute limit is admitted when the
  bucket is full and leaves it in debt (so the average rate still holds); one that costs more
  than the per-minute limit is "Request too large".
* **requests per day (RPD)**, a plain counter of admitted calls. Once it is spent every call of
  the organisation is refused with OpenAI's `insufficient_quota` until the simulator's day ends
  (`day_seconds`, by default never).

A refusal costs nothing (OpenAI says failed requests count against the limit; modelling that
would only make storms worse, and the benchmark's point is that there should be none).

Answers are mock-shaped, so agentos's requirements workflow completes each brief in two calls:
the drafter's answer is an LLD in the workflow's template, the reviewer's starts with APPROVED.
Each answer takes `latency` seconds, which counts against no limit.

Headers (`style`): "openai" sends `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` on
every answer of a known key, 429s included, resets in OpenAI's duration format (`12ms`, `1.5s`,
`6m0s`); "anthropic" sends `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` with
RFC 3339 reset times and `retry-after` (whole seconds) on 429s; "none" sends no rate-limit header.
`remaining` is the bucket's level scaled to the minute (`limit × level / capacity`): a full
bucket says `limit`, although only the window's burst may be sent at once — exactly the trap the
real headers set. `reset` is the time until the bucket is full again.

Refusal bodies are OpenAI's, word for word in their shape, and the "Please try again in 1.2s"
figure is the real time until the bucket admits that call (rounded up to the millisecond).
`overload` answers that fraction of calls (seeded) 503 "The server is overloaded", or in the
anthropic style 529 `overloaded_error`, before any accounting. `noise` refuses that fraction of
calls (seeded) at random, whatever the rate: a `429` with `retry-after: 1` (`noise_retry_after`)
and a body that names no limit, the style's rate-limit headers showing the budget as it is (not
spent). What overloaded moments, a new organisation's acceleration limits or a gateway in front
of the API look like: a refusal that a slower client would have met just as often.

Efficiency
----------
`ideal_seconds(calls, tokens_per_call)` is the least time in which the organisations could admit
that many calls: the smallest T with Σ_org min(burst_req + rpm/60·T, (burst_tok + tpm/60·T) /
tokens_per_call, rpd) ≥ calls. The benchmark divides it (plus one answer's latency) by the time
the run took to get an efficiency figure; 1.0 means every organisation was kept at its limit.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STYLES = ("openai", "anthropic", "none")
HELP_URL = "https://platform.openai.com/account/rate-limits"

# outcome kinds, as counted in stats()
OK = "ok"
RATE_REQUESTS = "rate_requests"  # 429, RPM bucket
RATE_TOKENS = "rate_tokens"  # 429, TPM bucket
TOO_LARGE = "too_large"  # 429, the call costs more than the per-minute TPM
QUOTA = "quota"  # 429 insufficient_quota
OVERLOADED = "overloaded"  # 503 / 529
UNAUTHORIZED = "unauthorized"  # 401
BAD_REQUEST = "bad_request"  # 400 / 404
NOISE = "noise"  # 429 at random, not caused by any limit
KINDS = (
    OK,
    RATE_REQUESTS,
    RATE_TOKENS,
    TOO_LARGE,
    QUOTA,
    OVERLOADED,
    UNAUTHORIZED,
    BAD_REQUEST,
    NOISE,
)

LLD_ANSWER = """# LLD: {title}

## 1. Context & goal
The brief asks for {title}; this design delivers it with the smallest change that works.

## 2. Proposed changes
One module holds the logic, one hook wires it in; nothing else moves.

| File | Change |
|---|---|
| `src/feature/core.py` | the logic |
| `src/feature/hooks.py` | wire it in |

## 3. Requirements
- R1: The feature works as the brief describes.
- R2: Nothing that worked before breaks.

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | use the feature | it does what the brief says |
| T2 | R2 | run the old suite | it passes |

## 5. Security & safety
No new input is trusted; no secret is stored.

## 6. Definition of done
- [ ] both scenarios pass
"""
REVIEW_ANSWER = "APPROVED\n\nEvery requirement has a test scenario and every section is there.\n"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_BRIEF_TITLE = re.compile(r"^## Brief: (.+)$", re.MULTILINE)


def format_duration(seconds: float) -> str:
    """OpenAI's duration format: `0s`, `12ms`, `1.5s`, `6m0s`, `1h2m3.25s` (up to ms, rounded
    up, so that waiting the figure is always enough)."""
    ms = math.ceil(max(0.0, seconds) * 1000 - 1e-6)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    text = f"{secs}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def parse_duration(text: str) -> float:
    """The inverse of `format_duration` (any `1h2m3.5s`/`12ms` spelling); ValueError if none."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tokens_of(text_chars: int) -> int:
    return math.ceil(text_chars / 4)


@dataclass(frozen=True)
class Org:
    """An organisation's limits; None means unlimited."""

    name: str
    rpm: float | None = None
    tpm: float | None = None
    rpd: int | None = None


class Bucket:
    """A continuously refilled token bucket of `per_minute` enforced over `window_s`."""

    def __init__(self, per_minute: float, window_s: float, now: float, floor: float = 0.0) -> None:
        if per_minute <= 0:
            raise ValueError("a limit must be positive")
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(floor, per_minute * window_s / 60.0)
        self.level = self.capacity
        self._stamp = now

    def refill(self, now: float) -> None:
        if now > self._stamp:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
            self._stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is admitted (after `refill`); an amount beyond the capacity
        needs a full bucket."""
        short = min(amount, self.capacity) - self.level
        # a clock advanced by exactly the advertised wait must be enough, float error or not
        return short / self.rate if short > 1e-9 * self.capacity else 0.0

    def take(self, amount: float) -> None:
        self.level -= amount

    def remaining(self) -> int:
        return max(0, math.floor(self.limit * self.level / self.capacity + 1e-9))

    def used(self) -> int:
        return min(round(self.limit), max(0, math.ceil(self.limit - self.remaining())))

    def reset_in(self) -> float:
        return max(0.0, (self.capacity - self.level) / self.rate)


@dataclass
class Call:
    """One request as the simulator saw it; times are the simulator's clock."""

    at: float
    key: str
    org: str | None
    kind: str
    tokens: int = 0  # charged to the TPM bucket (successes only)
    done_at: float | None = None  # when the answer was fully sent (successes only)
    task: str = ""  # "draft" or "review", as the answer was chosen
    usage: dict[str, int] | None = None  # what the answer reported (successes only)


@dataclass
class _OrgState:
    org: Org
    requests: Bucket | None
    tokens: Bucket | None
    day: int = 0
    used_today: int = 0
    counts: Counter[str] = field(default_factory=Counter)


class ProviderSim:
    """The simulator; a context manager that serves while inside the `with`."""

    def __init__(
        self,
        orgs: Iterable[Org],
        keys: Mapping[str, str],
        *,
        window_s: float = 2.0,
        latency: float = 0.3,
        style: str = "openai",
        retry_after: bool | None = None,
        overload: float = 0.0,
        noise: float = 0.0,
        noise_retry_after: float = 1.0,
        seed: int = 0,
        day_seconds: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        stream_chunk: int = 16,
        answer_model: str | None = None,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {style!r}")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.orgs = {org.name: org for org in orgs}
        unknown = sorted(set(keys.values()) - set(self.orgs))
        if unknown:
            raise ValueError(f"keys refer to unknown organisations: {unknown}")
        self.keys = dict(keys)
        self.window_s = window_s
        self.latency = latency
        self.style = style
        # Anthropic always says when to come back; OpenAI mostly leaves it to the body
        self.retry_after = style == "anthropic" if retry_after is None else retry_after
        self.overload = overload
        self.noise = noise
        self.noise_retry_after = noise_retry_after
        self.day_seconds = day_seconds
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.stream_chunk = max(1, stream_chunk)
        # the model answers name, as providers name a dated version of the one asked for
        # (`gpt-4o-mini` → `gpt-4o-mini-2024-07-18`); default: the one asked for
        self.answer_model = answer_model
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._start = clock()
        self._state = {
            name: _OrgState(
                org,
                Bucket(org.rpm, window_s, self._start, floor=1.0) if org.rpm else None,
                Bucket(org.tpm, window_s, self._start) if org.tpm else None,
            )
            for name, org in self.orgs.items()
        }
        self._totals: Counter[str] = Counter()
        self._per_key: dict[str, Counter[str]] = {}
        self.calls: list[Call] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- serving
    def start(self) -> ProviderSim:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                sim._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # -j 10 items may all connect at once

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="provider-sim",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ProviderSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not serving; use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- accounting
    def admit(
        self,
        key: str,
        prompt_tokens: int,
        completion_tokens: int,
        model: str = "sim",
        task: str = "",
    ) -> tuple[int, dict[str, Any], dict[str, str], Call]:
        """Decide one call: (status, error body or {}, headers, the recorded call). Separate from
        HTTP so that tests can drive it with a fake clock."""
        with self._lock:
            now = self.clock()
            org_name = self.keys.get(key)
            if org_name is None:
                return self._refuse(now, key, None, UNAUTHORIZED, 401, _unauthorized_body(key), {})
            st = self._state[org_name]
            for bucket in (st.requests, st.tokens):
                if bucket is not None:
                    bucket.refill(now)
            if self.overload and self._random.random() < self.overload:
                status, body = self._overloaded()
                return self._refuse(now, key, st, OVERLOADED, status, body, self._headers(st))
            if self.noise and self._random.random() < self.noise:
                headers = self._headers(st)
                headers["retry-after"] = f"{self.noise_retry_after:g}"
                return self._refuse(now, key, st, NOISE, 429, _noise_body(), headers)
            day = self._day(now)
            if day != st.day:
                st.day, st.used_today = day, 0
            org = st.org
            if org.rpd is not None and st.used_today >= org.rpd:
                return self._refuse(now, key, st, QUOTA, 429, _quota_body(), self._headers(st))
            cost = prompt_tokens + completion_tokens
            if st.tokens is not None and cost > st.tokens.limit:
                body = _too_large_body(model, org.name, st.tokens, cost)
                return self._refuse(now, key, st, TOO_LARGE, 429, body, self._headers(st))
            waits: list[tuple[float, str, Bucket, int]] = []
            if st.requests is not None:
                waits.append((st.requests.wait_for(1), RATE_REQUESTS, st.requests, 1))
            if st.tokens is not None:
                waits.append((st.tokens.wait_for(cost), RATE_TOKENS, st.tokens, cost))
            # the binding bucket is named: its "try again in" is when the call would pass
            wait, kind, bucket, amount = max(waits, default=(0.0, OK, None, 0), key=lambda w: w[0])
            if wait > 0 and bucket is not None:
                body = _rate_body(model, org.name, kind, bucket, amount, wait)
                headers = self._headers(st)
                if self.retry_after:
                    headers["retry-after"] = str(max(1, math.ceil(wait)))
                    if self.style == "openai":
                        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
                return self._refuse(now, key, st, kind, 429, body, headers)
            if st.requests is not None:
                st.requests.take(1)
            if st.tokens is not None:
                st.tokens.take(cost)
            st.used_today += 1
            call = self._record(now, key, st, OK, cost)
            call.task = task
            return 200, {}, self._headers(st), call

    def _refuse(
        self,
        now: float,
        key: str,
        st: _OrgState | None,
        kind: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any], dict[str, str], Call]:
        return status, body, headers, self._record(now, key, st, kind, 0)

    def _record(self, now: float, key: str, st: _OrgState | None, kind: str, tokens: int) -> Call:
        call = Call(now, key, st.org.name if st else None, kind, tokens)
        self.calls.append(call)
        self._totals[kind] += 1
        self._per_key.setdefault(key, Counter())[kind] += 1
        if st is not None:
            st.counts[kind] += 1
        return call

    def _day(self, now: float) -> int:
        if math.isinf(self.day_seconds):
            return 0
        return int((now - self._start) // self.day_seconds)

    def _overloaded(self) -> tuple[int, dict[str, Any]]:
        if self.style == "anthropic":
            return 529, {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
        return 503, {
            "error": {
                "message": "The server is overloaded or not ready yet.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }

    def _headers(self, st: _OrgState) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.style == "none":
            return headers
        # both providers name the organisation on every answer (OpenAI `openai-organization`,
        # Anthropic `anthropic-organization-id`): how a client learns which keys share a budget
        org_header = (
            "openai-organization" if self.style == "openai" else "anthropic-organization-id"
        )
        headers[org_header] = st.org.name
        for name, bucket in (("requests", st.requests), ("tokens", st.tokens)):
            if bucket is None:
                continue
            limit, remaining, reset = str(round(bucket.limit)), str(bucket.remaining()), None
            if self.style == "openai":
                reset = format_duration(bucket.reset_in())
                headers[f"x-ratelimit-limit-{name}"] = limit
                headers[f"x-ratelimit-remaining-{name}"] = remaining
                headers[f"x-ratelimit-reset-{name}"] = reset
            else:
                # whole seconds, rounded up, as Anthropic sends them
                reset = rfc3339(math.ceil(self.wall() + bucket.reset_in()))
                headers[f"anthropic-ratelimit-{name}-limit"] = limit
                headers[f"anthropic-ratelimit-{name}-remaining"] = remaining
                headers[f"anthropic-ratelimit-{name}-reset"] = reset
        return headers

    # -- statistics
    def stats(self) -> dict[str, Any]:
        """Counts by outcome kind, in total, per organisation and per key, plus `rate` (all
        rate-limit 429s a limit caused: `noise` is apart) and `refused_429` (every 429), and the
        success times."""
        with self._lock:

            def view(counts: Counter[str]) -> dict[str, int]:
                out = {kind: counts.get(kind, 0) for kind in KINDS}
                out["rate"] = out[RATE_REQUESTS] + out[RATE_TOKENS] + out[TOO_LARGE]
                out["refused_429"] = out["rate"] + out[QUOTA] + out[NOISE]
                return out

            return {
                "total": view(self._totals),
                "orgs": {name: view(st.counts) for name, st in self._state.items()},
                "keys": {key: view(counts) for key, counts in self._per_key.items()},
                "success_times": [c.at for c in self.calls if c.kind == OK],
            }

    def usage_totals(self) -> dict[str, int]:
        """The tokens the answers reported, summed: what a client's account must match."""
        totals = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        with self._lock:
            for call in self.calls:
                if call.usage is not None:
                    totals["calls"] += 1
                    totals["prompt_tokens"] += call.usage["prompt_tokens"]
                    totals["completion_tokens"] += call.usage["completion_tokens"]
        return totals

    def successes(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.kind == OK]

    def first_request_at(self) -> float | None:
        with self._lock:
            return self.calls[0].at if self.calls else None

    def ideal_seconds(self, calls: int, tokens_per_call: float, bursts: bool = True) -> float:
        """The least time in which the organisations that have keys could admit `calls` calls of
        `tokens_per_call` tokens each, starting with full buckets (math.inf if their daily quotas
        cannot cover them). Without `bursts`, at the per-minute rates alone: the issue's "calls
        needed ÷ capacity", which does not count on a provider's window."""
        orgs = [self._state[name] for name in sorted(set(self.keys.values()))]

        def admitted(t: float) -> float:
            total = 0.0
            for st in orgs:
                n = math.inf
                if st.requests is not None:
                    burst = st.requests.capacity if bursts else 0.0
                    n = min(n, burst + st.requests.rate * t)
                if st.tokens is not None and tokens_per_call > 0:
                    burst = st.tokens.capacity if bursts else 0.0
                    n = min(n, (burst + st.tokens.rate * t) / tokens_per_call)
                if st.org.rpd is not None:
                    n = min(n, st.org.rpd)
                total += n
            return total

        if admitted(0.0) >= calls:
            return 0.0
        high = 1.0
        while admitted(high) < calls:
            high *= 2
            if high > 1e9:
                return math.inf
        low = 0.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if admitted(mid) < calls else (low, mid)
        return high

    # -- HTTP
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if not h.path.rstrip("/").endswith("/chat/completions"):
            self._count_bad(h)
            send_json(h, 404, _error_body(f"Unknown request URL: POST {h.path}.", "invalid_url"))
            return
        try:
            body = json.loads(raw or b"{}")
            messages = body["messages"]
            chars = sum(len(_content_text(m.get("content"))) for m in messages)
        except (ValueError, KeyError, TypeError, AttributeError):
            self._count_bad(h)
            send_json(h, 400, _error_body("We could not parse the JSON body of your request."))
            return
        key = _key_of(h)
        task, answer = self._answer(messages)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            answer = answer[: max_tokens * 4]
            charged = max_tokens
        else:
            max_tokens = None
            charged = tokens_of(len(answer))
        prompt_tokens = tokens_of(chars)
        model = str(body.get("model", "sim"))
        status, error, headers, call = self.admit(key, prompt_tokens, charged, model, task)
        if status != 200:
            send_json(h, status, error, headers)
            return
        self.sleep(self.latency)
        model = self.answer_model or model
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens_of(len(answer)),
            "total_tokens": prompt_tokens + tokens_of(len(answer)),
        }
        with self._lock:
            call.usage = usage
        finish = "length" if max_tokens is not None and len(answer) >= max_tokens * 4 else "stop"
        try:
            if body.get("stream"):
                options = body.get("stream_options") or {}
                self._stream(h, headers, model, answer, finish, usage, options)
            else:
                payload = {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                    "object": "chat.completion",
                    "created": int(self.wall()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                }
                send_json(h, 200, payload, headers)
        finally:
            with self._lock:
                call.done_at = self.clock()

    def _count_bad(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._record(self.clock(), _key_of(h), None, BAD_REQUEST, 0)

    @staticmethod
    def _answer(messages: list[Any]) -> tuple[str, str]:
        system = " ".join(
            _content_text(m.get("content")) for m in messages if m.get("role") == "system"
        )
        user = " ".join(
            _content_text(m.get("content")) for m in messages if m.get("role") != "system"
        )
        if "review" in system.lower():
            return "review", REVIEW_ANSWER
        match = _BRIEF_TITLE.search(user)
        return "draft", LLD_ANSWER.format(title=match.group(1).strip() if match else "the change")

    def _stream(
        self,
        h: BaseHTTPRequestHandler,
        headers: dict[str, str],
        model: str,
        answer: str,
        finish: str,
        usage: dict[str, int],
        options: Mapping[str, Any],
    ) -> None:
        include_usage = bool(options.get("include_usage"))
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(self.wall())

        def chunk(choices: list[dict[str, Any]], with_usage: dict[str, int] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                data["usage"] = with_usage  # null on every chunk but the last, as OpenAI does
            return f"data: {json.dumps(data)}\n\n".encode()

        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        parts = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        for start in range(0, len(answer), self.stream_chunk):
            piece = answer[start : start + self.stream_chunk]
            parts.append(chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
        parts.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if include_usage:
            parts.append(chunk([], usage))
        parts.append(b"data: [DONE]\n\n")
        for part in parts:
            h.wfile.write(part)
        h.wfile.flush()


def _content_text(content: Any) -> str:
    """A message's text: a string, or OpenAI's list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _key_of(h: BaseHTTPRequestHandler) -> str:
    auth = h.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return (h.headers.get("x-api-key") or "").strip()


def _mask(key: str) -> str:
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"


def _error_body(message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def _unauthorized_body(key: str) -> dict[str, Any]:
    return _error_body(
        f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
    )


def _quota_body() -> dict[str, Any]:
    return {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing "
            "details. For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }


def _rate_body(
    model: str, org: str, kind: str, bucket: Bucket, requested: int, wait: float
) -> dict[str, Any]:
    what, unit = ("requests", "RPM") if kind == RATE_REQUESTS else ("tokens", "TPM")
    return {
        "error": {
            "message": f"Rate limit reached for {model} in organization {org} on {what} per min "
            f"({unit}): Limit {round(bucket.limit)}, Used {bucket.used()}, Requested {requested}. "
            f"Please try again in {format_duration(wait)}. Visit {HELP_URL} to learn more.",
            "type": what,
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def _noise_body() -> dict[str, Any]:
    """A refusal that names no limit: a gateway's or an overloaded moment's "slow down"."""
    return {
        "error": {
            "message": "Too many requests at the moment. Please retry after a short wait.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def _too_large_body(model: str, org: str, bucket: Bucket, requested: int) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Request too large for {model} in organization {org} on tokens per min "
            f"(TPM): Limit {round(bucket.limit)}, Requested {requested}. The input or output "
            f"tokens must be reduced in order to run successfully. Visit {HELP_URL} to learn "
            "more.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def send_json(
    h: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)
