"""What a provider's answer says about its limits, and which of the four kinds of "no" it is.

`classify_http` reads an HTTP answer (status, headers, body); `classify_text` reads what a CLI
agent printed. `RateInfo.from_headers` reads the limit headers every answer carries (OpenAI's
`x-ratelimit-*` with durations such as `6m0s`, `1s`, `12ms`; Anthropic's
`anthropic-ratelimit-*` with RFC 3339 resets; `retry-after-ms`, `retry-after`). The kinds
themselves are `agentos.item.refusal_kinds`: the run's parent names them without compiling the
patterns here, which only a process that reads answers needs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from agentos.item.refusal_kinds import RefusalKind

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_HINT = re.compile(
    r"(?:try again|retry)\s+(?:in|after)\s+(\d[\d.hms]*)(?:\s*(milliseconds?|secs?|seconds?)\b)?",
    re.IGNORECASE,
)
#: OpenAI's 429 message names the limit: "on requests per min (RPM): Limit 60, Used 60, ..."
_STATED_LIMIT = re.compile(
    r"on (requests|tokens) per (min|day)\b[^:]*:\s*Limit\s+(\d+)", re.IGNORECASE
)
_ORGANIZATION = re.compile(r"\bin organization ([\w.-]+)")
_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')
_UNIX_RESET = re.compile(r"\|(\d{10})\b")
_RESETS_IN = re.compile(r"resets? (?:in|after)\s+((?:\d+\s*[hms]\s*)+)", re.IGNORECASE)
_RESETS_AT = re.compile(r"resets? at\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", re.IGNORECASE)

_QUOTA_TEXT = re.compile(
    r"insufficient_quota|exceeded your current quota|usage limit reached|TerminalQuotaError|"
    r"exhausted your (?:daily )?(?:quota|capacity)|QUOTA_EXHAUSTED|PerDay|per day|daily limit|"
    r"billing",
    re.IGNORECASE,
)
_OVERLOADED_TEXT = re.compile(
    r"overloaded|MODEL_CAPACITY_EXHAUSTED|capacity exhausted|\b529\b|\b503\b|"
    r"service unavailable|server is busy",
    re.IGNORECASE,
)
_REJECTED_TEXT = re.compile(
    r"\b401\b|\b403\b|invalid[_ ]api[_ ]key|incorrect api key|authentication[_ ]error|"
    r"permission[_ ]denied|unauthori[sz]ed|API[_ ]key not valid|API_KEY_INVALID",
    re.IGNORECASE,
)
#: Gemini's per-minute refusal reads "Quota exceeded for quota metric '... per minute'": a rate
#: limit (its per-day one says so, and is a quota by the test above)
_RATE_TEXT = re.compile(
    r"429|rate.?limit|too many requests|RESOURCE_EXHAUSTED|quota exceeded", re.IGNORECASE
)


def parse_duration(value: str) -> float | None:
    """OpenAI's reset durations: `1s`, `6m0s`, `12ms`, `1m30.5s`, `2h0m0s`; a bare number is
    seconds."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(a + u for a, u in parts) != value.replace(" ", ""):
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in parts)


def _seconds_until(value: str, now: float) -> float | None:
    """An RFC 3339 time (Anthropic's resets) or an HTTP date, as seconds from `now`."""
    value = value.strip()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        import email.utils  # here: an HTTP date is rare, and the package costs every start-up

        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
    return max(0.0, when - now)


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class RateInfo:
    """The limits an answer states. Requests and tokens are per minute (both providers' headers
    describe their per-minute limits); resets are seconds from the answer."""

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None
    retry_after: float | None = None
    #: the organisation the provider says the key belongs to: keys of one organisation share
    #: its limits (OpenAI `openai-organization`, Anthropic `anthropic-organization-id`)
    organization: str | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float | None = None) -> RateInfo:
        now = time.time() if now is None else now
        h = {k.lower(): v for k, v in headers.items()}

        def duration(name: str) -> float | None:
            value = h.get(name)
            return parse_duration(value) if value is not None else None

        def moment(name: str) -> float | None:
            value = h.get(name)
            return _seconds_until(value, now) if value is not None else None

        openai = cls(
            limit_requests=_number(h, "x-ratelimit-limit-requests"),
            remaining_requests=_number(h, "x-ratelimit-remaining-requests"),
            reset_requests=duration("x-ratelimit-reset-requests"),
            limit_tokens=_number(h, "x-ratelimit-limit-tokens"),
            remaining_tokens=_number(h, "x-ratelimit-remaining-tokens"),
            reset_tokens=duration("x-ratelimit-reset-tokens"),
            retry_after=retry_after(h, now),
            organization=h.get("openai-organization") or h.get("anthropic-organization-id"),
        )
        if openai.limit_requests is not None or openai.limit_tokens is not None:
            return openai
        return cls(
            limit_requests=_number(h, "anthropic-ratelimit-requests-limit"),
            remaining_requests=_number(h, "anthropic-ratelimit-requests-remaining"),
            reset_requests=moment("anthropic-ratelimit-requests-reset"),
            limit_tokens=_number(h, "anthropic-ratelimit-tokens-limit"),
            remaining_tokens=_number(h, "anthropic-ratelimit-tokens-remaining"),
            reset_tokens=moment("anthropic-ratelimit-tokens-reset"),
            retry_after=openai.retry_after,
            organization=openai.organization,
        )


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """`retry-after-ms` first, then `retry-after` (seconds or an HTTP date), as the official SDKs
    read them."""
    h = {k.lower(): v for k, v in headers.items()}
    ms = _number(h, "retry-after-ms")
    if ms is not None:
        return max(0.0, ms / 1000)
    value = h.get("retry-after")
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    return _seconds_until(value, time.time() if now is None else now)


def body_hint(body: str) -> float | None:
    """ "Please try again in 1.2s" / "in 644ms"; Gemini's RetryInfo `"retryDelay": "26s"`."""
    match = _HINT.search(body or "")
    if match:
        token, word = match.group(1).rstrip("."), (match.group(2) or "").lower()
        seconds = parse_duration(token)  # 1.2s, 644ms, 1m30.5s, or a bare 20
        if seconds is not None:
            return seconds / 1000 if word.startswith("milli") else seconds
    delay = _RETRY_DELAY.search(body or "")
    return float(delay.group(1)) if delay else None


@dataclass(frozen=True)
class StatedLimit:
    """A limit a refusal names ("on requests per min (RPM): Limit 60")."""

    unit: str  # "requests" | "tokens"
    per: str  # "min" | "day"
    limit: float


def stated_limit(body: str) -> StatedLimit | None:
    match = _STATED_LIMIT.search(body or "")
    if not match:
        return None
    return StatedLimit(match.group(1).lower(), match.group(2).lower(), float(match.group(3)))


@dataclass(frozen=True)
class Refusal:
    """One "no": its kind, how long to wait (None: not stated), and the provider's words."""

    kind: RefusalKind
    wait: float | None
    detail: str
    limit: StatedLimit | None = None
    organization: str | None = None  # named in OpenAI's 429 message ("in organization org-x")


def error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return " ".join((body or "").split())[:300]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
    return " ".join((body or "").split())[:300]


def _error_fields(body: str) -> str:
    """The machine-readable parts of an error body (type, code, status), for matching."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    return " ".join(str(error.get(k, "")) for k in ("type", "code", "status"))


def quota_reset(text: str, now: float | None = None) -> float | None:
    """Seconds until a quota resets, when the text says so: `|<unix time>` (Claude's usage
    limit), "resets in 3h20m" / "will reset after 2h30m", "resets at 5pm" (taken as UTC),
    Gemini's retryDelay."""
    now = time.time() if now is None else now
    match = _UNIX_RESET.search(text)
    if match:
        return max(0.0, int(match.group(1)) - now)
    match = _RESETS_IN.search(text)
    if match:
        seconds = parse_duration(match.group(1).replace(" ", ""))
        if seconds is not None:
            return seconds
    match = _RESETS_AT.search(text)
    if match:
        hour = int(match.group(1)) % 12 if match.group(3) else int(match.group(1))
        if (match.group(3) or "").lower() == "pm":
            hour += 12
        minute = int(match.group(2) or 0)
        day = 86400.0
        midnight = now - now % day
        at = midnight + hour * 3600 + minute * 60
        return at - now if at > now else at + day - now
    delay = _RETRY_DELAY.search(text)
    return float(delay.group(1)) if delay else None


def classify_http(
    status: int, headers: Mapping[str, str], body: str, now: float | None = None
) -> Refusal | None:
    """The kind of "no" an HTTP answer is; None for an answer that is not a refusal (2xx, and
    errors that are the request's own fault)."""
    message = error_message(body)
    fields = _error_fields(body)
    if status in (401, 403):
        return Refusal(RefusalKind.REJECTED, None, f"HTTP {status}: {message}")
    if status in (503, 529) or "overloaded" in fields.lower() or "CAPACITY" in fields:
        return Refusal(
            RefusalKind.OVERLOADED, retry_after(headers, now), f"HTTP {status}: {message}"
        )
    if status == 429 or "RESOURCE_EXHAUSTED" in fields:
        limit = stated_limit(message)
        text = f"{fields} {message} {body}"
        daily = limit is not None and limit.per == "day"
        if daily or _QUOTA_TEXT.search(fields) or _QUOTA_TEXT.search(message):
            reset = quota_reset(text, now)
            if reset is None:
                reset = retry_after(headers, now)
            return Refusal(RefusalKind.QUOTA, reset, f"HTTP {status}: {message}", limit)
        wait = retry_after(headers, now)
        if wait is None:
            wait = body_hint(body)
        if wait is None:
            wait = RateInfo.from_headers(headers, now).reset_requests
        org = _ORGANIZATION.search(message)
        return Refusal(
            RefusalKind.RATE,
            wait,
            f"HTTP {status}: {message}",
            limit,
            org.group(1) if org else None,
        )
    return None


def classify_text(text: str, now: float | None = None) -> Refusal | None:
    """The kind of "no" in what a CLI agent printed (its error output or JSON result), or None
    when it shows none. Quota before rate: "429 ... exceeded your current quota" is a quota."""
    if not text:
        return None
    line = " ".join(text.split())[-300:]
    if _QUOTA_TEXT.search(text):
        return Refusal(RefusalKind.QUOTA, quota_reset(text, now), line, stated_limit(text))
    if _OVERLOADED_TEXT.search(text):
        return Refusal(RefusalKind.OVERLOADED, body_hint(text), line)
    if _RATE_TEXT.search(text):
        return Refusal(RefusalKind.RATE, body_hint(text), line, stated_limit(text))
    if _REJECTED_TEXT.search(text):
        return Refusal(RefusalKind.REJECTED, None, line)
    return None
