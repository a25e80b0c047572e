"""The benchmark's provider simulator: buckets, quotas, headers and bodies as providers send them.

Accounting is driven through `ProviderSim.admit` with a fake clock, so no assertion depends on
how fast this machine is; the HTTP tests freeze the clock too, which makes header values exact.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from agentos import lld
from agentos.item.refusals import RateInfo, classify_http
from bench.provider_sim import (
    LLD_ANSWER,
    NOISE,
    OK,
    OVERLOADED,
    QUOTA,
    RATE_REQUESTS,
    RATE_TOKENS,
    REVIEW_ANSWER,
    TOO_LARGE,
    Org,
    ProviderSim,
    format_duration,
    parse_duration,
)

pytestmark = pytest.mark.timeout(30)

HINT = re.compile(r"Please try again in (\S+)\. ")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sim_of(clock: FakeClock, *orgs: Org, keys: dict[str, str], **kw: Any) -> ProviderSim:
    kw.setdefault("latency", 0.0)
    return ProviderSim(orgs, keys, clock=clock, wall=lambda: 1_700_000_000.0, **kw)


def hint(body: dict[str, Any]) -> float:
    match = HINT.search(body["error"]["message"])
    assert match, body
    return parse_duration(match.group(1))


# ---- durations


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.012, "12ms"),
        (0.6431, "644ms"),
        (1.0, "1s"),
        (1.2, "1.2s"),
        (360.0, "6m0s"),
        (90.5, "1m30.5s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_openai_duration_format_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(math.ceil(seconds * 1000 - 1e-6) / 1000)


def test_a_duration_that_is_not_one_is_refused() -> None:
    for text in ("", "5", "1x", "1s junk"):
        with pytest.raises(ValueError):
            parse_duration(text)


# ---- buckets over the window


def test_rpm_burst_beyond_the_window_gets_openais_429_and_a_true_try_again(
    clock: FakeClock,
) -> None:
    sim = sim_of(clock, Org("org-a", rpm=60), keys={"k1": "org-a"}, window_s=2.0)
    # 60 RPM over 2 s: a burst of 2, then one a second
    assert [sim.admit("k1", 10, 10, "gpt-x")[0] for _ in range(2)] == [200, 200]
    status, body, _, call = sim.admit("k1", 10, 10, "gpt-x")
    assert status == 429 and call.kind == RATE_REQUESTS
    assert body == {
        "error": {
            "message": "Rate limit reached for gpt-x in organization org-a on requests per min "
            "(RPM): Limit 60, Used 60, Requested 1. Please try again in 1s. Visit "
            "https://platform.openai.com/account/rate-limits to learn more.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    clock.advance(0.3)
    status, body, _, _ = sim.admit("k1", 10, 10)
    wait = hint(body)
    assert status == 429 and wait == pytest.approx(0.7)
    clock.advance(wait - 0.002)
    assert sim.admit("k1", 10, 10)[0] == 429
    clock.advance(0.002)
    assert sim.admit("k1", 10, 10)[0] == 200
    # then exactly one a second, never a second burst
    clock.advance(1.0)
    assert [sim.admit("k1", 10, 10)[0] for _ in range(2)] == [200, 429]


def test_a_small_limit_still_admits_one_request_per_window(clock: FakeClock) -> None:
    sim = sim_of(clock, Org("org-a", rpm=6), keys={"k1": "org-a"}, window_s=2.0)
    assert [sim.admit("k1", 1, 1)[0] for _ in range(2)] == [200, 429]
    status, body, _, _ = sim.admit("k1", 1, 1)
    assert status == 429 and hint(body) == pytest.approx(10.0)


def test_tpm_charges_prompt_plus_completion_and_names_the_token_limit(clock: FakeClock) -> None:
    sim = sim_of(clock, Org("org-t", tpm=600), keys={"k1": "org-t"}, window_s=2.0)
    # 600 TPM over 2 s: 20 tokens of burst, 10 a second
    assert sim.admit("k1", 10, 5, "m")[0] == 200
    status, body, _, call = sim.admit("k1", 10, 5, "m")
    assert status == 429 and call.kind == RATE_TOKENS
    assert body["error"]["type"] == "tokens"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["message"].startswith(
        "Rate limit reached for m in organization org-t on tokens per min (TPM): "
        "Limit 600, Used 450, Requested 15. Please try again in 1s."
    )
    clock.advance(1.0)
    assert sim.admit("k1", 10, 5)[0] == 200
    # beyond the per-minute limit: too large, whatever the bucket holds
    clock.advance(10)
    status, body, _, call = sim.admit("k1", 500, 101)
    assert status == 429 and call.kind == TOO_LARGE
    assert "Request too large for sim in organization org-t" in body["error"]["message"]
    # beyond the window but within the minute: admitted from a full bucket, paid back after
    status, _, _, call = sim.admit("k1", 20, 10)
    assert status == 200 and call.tokens == 30
    status, body, _, _ = sim.admit("k1", 1, 1)
    assert status == 429 and hint(body) == pytest.approx(1.2)


def test_the_binding_bucket_is_the_one_named(clock: FakeClock) -> None:
    sim = sim_of(clock, Org("org-b", rpm=60, tpm=600), keys={"k1": "org-b"})
    assert sim.admit("k1", 15, 5)[0] == 200  # 1 of 2 requests, 20 of 20 tokens
    status, body, _, call = sim.admit("k1", 15, 5)
    # a request is free now, but the tokens take 2 s: the answer says tokens, in 2 s
    assert status == 429 and call.kind == RATE_TOKENS and hint(body) == pytest.approx(2.0)


def test_keys_of_one_organisation_share_its_budget(clock: FakeClock) -> None:
    keys = {"k1": "shared", "k2": "shared", "k3": "other"}
    sim = sim_of(clock, Org("shared", rpm=60), Org("other", rpm=60), keys=keys)
    assert [sim.admit(k, 1, 1)[0] for k in ("k1", "k2", "k1", "k2", "k3")] == [
        200,
        200,
        429,
        429,
        200,
    ]
    stats = sim.stats()
    assert stats["orgs"]["shared"][OK] == 2 and stats["orgs"]["shared"]["rate"] == 2
    assert stats["orgs"]["other"][OK] == 1 and stats["orgs"]["other"]["rate"] == 0
    assert stats["keys"]["k2"][RATE_REQUESTS] == 1
    assert stats["total"][OK] == 3 and stats["total"]["refused_429"] == 2
    assert stats["success_times"] == [clock.now] * 3


def test_a_spent_daily_quota_refuses_every_call_until_the_day_ends(clock: FakeClock) -> None:
    keys = {"k1": "org-q", "k2": "org-q"}
    sim = sim_of(clock, Org("org-q", rpm=6000, rpd=3), keys=keys, day_seconds=100)
    assert [sim.admit("k1", 1, 1)[0] for _ in range(3)] == [200] * 3
    status, body, _, call = sim.admit("k2", 1, 1)
    assert status == 429 and call.kind == QUOTA
    assert body == {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing "
            "details. For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    clock.advance(60)
    assert sim.admit("k1", 1, 1)[0] == 429
    clock.advance(40)  # a new day
    assert sim.admit("k1", 1, 1)[0] == 200
    assert sim.stats()["keys"]["k1"][QUOTA] == 1 and sim.stats()["keys"]["k2"][QUOTA] == 1


def test_overload_answers_a_seeded_fraction_503_or_529(clock: FakeClock) -> None:
    def outcomes(style: str, seed: int) -> list[int]:
        sim = sim_of(clock, Org("o"), keys={"k": "o"}, overload=0.25, seed=seed, style=style)
        return [sim.admit("k", 1, 1)[0] for _ in range(400)]

    first = outcomes("openai", 7)
    assert first == outcomes("openai", 7)  # the seed decides
    assert first != outcomes("openai", 8)
    assert set(first) == {200, 503} and 60 <= first.count(503) <= 140
    assert set(outcomes("anthropic", 7)) == {200, 529}
    sim = sim_of(clock, Org("o"), keys={"k": "o"}, overload=1.0)
    status, body, _, call = sim.admit("k", 1, 1)
    assert status == 503 and call.kind == OVERLOADED
    assert body["error"]["type"] == "server_error"
    assert body["error"]["message"].startswith("The server is overloaded")
    sim = sim_of(clock, Org("o"), keys={"k": "o"}, overload=1.0, style="anthropic")
    assert sim.admit("k", 1, 1)[1]["error"]["type"] == "overloaded_error"


def test_noise_refuses_a_seeded_fraction_at_any_rate_naming_no_limit(clock: FakeClock) -> None:
    sim = sim_of(clock, Org("o", rpm=600), keys={"k": "o"}, noise=0.1, seed=3)
    answers = []
    for _ in range(400):
        clock.advance(1.0)  # far under the limit: whatever is refused is noise
        answers.append(sim.admit("k", 1, 1))
    refused = [a for a in answers if a[0] == 429]
    assert 20 <= len(refused) <= 60 and all(a[3].kind == NOISE for a in refused)
    status, body, headers, _ = refused[0]
    assert headers["retry-after"] == "1"
    assert int(headers["x-ratelimit-remaining-requests"]) >= 590  # the budget is not spent
    refusal = classify_http(status, headers, json.dumps(body))
    assert refusal is not None and refusal.kind == "rate" and refusal.limit is None
    assert refusal.wait == 1.0 and RateInfo.from_headers(headers).remaining_requests >= 590
    stats = sim.stats()["total"]
    assert stats[NOISE] == len(refused) and stats["rate"] == 0
    assert stats["refused_429"] == len(refused)
    bare = sim_of(clock, Org("o", rpm=600), keys={"k": "o"}, noise=1.0, style="none")
    assert "x-ratelimit-remaining-requests" not in bare.admit("k", 1, 1)[2]


def test_ideal_seconds_counts_the_burst_the_rates_and_the_quotas(clock: FakeClock) -> None:
    one = sim_of(clock, Org("a", rpm=60), keys={"k": "a"})
    assert one.ideal_seconds(2, 100) == 0.0  # the window's burst
    assert one.ideal_seconds(62, 100) == pytest.approx(60.0)
    four = sim_of(
        clock, *(Org(f"o{n}", rpm=60) for n in range(4)), keys={f"k{n}": f"o{n}" for n in range(4)}
    )
    assert four.ideal_seconds(68, 100) == pytest.approx(15.0)
    tokens = sim_of(clock, Org("t", rpm=6000, tpm=6000), keys={"k": "t"})
    assert tokens.ideal_seconds(12, 100) == pytest.approx(10.0)  # 200 of burst, 100 a second
    # an organisation without keys gives nothing
    unused = sim_of(clock, Org("a", rpm=60), Org("b", rpm=60), keys={"k": "a"})
    assert unused.ideal_seconds(62, 1) == pytest.approx(60.0)
    quota = sim_of(clock, Org("q", rpm=60, rpd=10), Org("h", rpm=60), keys={"k": "q", "j": "h"})
    assert quota.ideal_seconds(22, 1) == pytest.approx(10.0)  # q stops at 10, h does 2 + 10
    assert sim_of(clock, Org("q", rpm=60, rpd=10), keys={"k": "q"}).ideal_seconds(11, 1) == math.inf


# ---- over HTTP


@pytest.fixture
def served(clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[ProviderSim]:
    kw = getattr(request, "param", {})
    orgs = (Org("org-h", rpm=60, tpm=60_000),)
    with sim_of(clock, *orgs, keys={"sk-good-000111": "org-h"}, **kw) as sim:
        yield sim


def post(
    sim: ProviderSim,
    key: str = "sk-good-000111",
    *,
    task: str = "draft",
    **extra: Any,
) -> httpx.Response:
    system = "You review designs." if task == "review" else "You write designs."
    payload = {
        "model": "m",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "## Brief: Dark mode\n- it is dark\n"},
        ],
        **extra,
    }
    return httpx.post(
        f"{sim.base_url}/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def sse(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_a_non_streamed_answer_has_the_lld_and_its_usage(served: ProviderSim) -> None:
    response = post(served)
    assert response.status_code == 200
    data = response.json()
    answer = data["choices"][0]["message"]["content"]
    assert answer == LLD_ANSWER.format(title="Dark mode")
    assert all(f"## {n}. {s}" in answer for n, s in enumerate(lld.SECTIONS, 1))
    chars = len("You write designs.") + len("## Brief: Dark mode\n- it is dark\n")
    assert data["usage"] == {
        "prompt_tokens": math.ceil(chars / 4),
        "completion_tokens": math.ceil(len(answer) / 4),
        "total_tokens": math.ceil(chars / 4) + math.ceil(len(answer) / 4),
    }
    review = post(served, task="review").json()["choices"][0]["message"]["content"]
    assert review == REVIEW_ANSWER and review.startswith("APPROVED")
    assert [c.task for c in served.successes()] == ["draft", "review"]


def test_a_streamed_answer_without_usage(served: ProviderSim) -> None:
    chunks = sse(post(served, stream=True))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == LLD_ANSWER.format(title="Dark mode")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_a_streamed_answer_with_usage_ends_with_the_usage_chunk(served: ProviderSim) -> None:
    response = post(served, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"] == "text/event-stream"
    chunks = sse(response)
    *body, last = chunks
    assert last["choices"] == []
    assert last["usage"]["total_tokens"] == (
        last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )
    assert all(c["usage"] is None for c in body)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in body).startswith("# LLD")


def test_max_tokens_is_charged_and_caps_the_answer(served: ProviderSim) -> None:
    data = post(served, max_tokens=10).json()
    assert len(data["choices"][0]["message"]["content"]) == 40
    assert data["choices"][0]["finish_reason"] == "length"
    (call,) = served.successes()
    assert call.tokens == data["usage"]["prompt_tokens"] + 10


def test_an_unknown_key_is_401(served: ProviderSim) -> None:
    response = post(served, key="sk-nobody-99999999")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "sk-nobody-99999999" not in error["message"]
    assert not any(h.startswith("x-ratelimit") for h in response.headers)
    assert served.stats()["total"]["unauthorized"] == 1


def test_openai_headers_on_every_answer_including_429s(served: ProviderSim) -> None:
    first = post(served)
    h = first.headers
    assert h["x-ratelimit-limit-requests"] == "60"
    assert h["x-ratelimit-remaining-requests"] == "30"  # 1 of the window's 2 spent
    assert parse_duration(h["x-ratelimit-reset-requests"]) == pytest.approx(1.0)
    assert h["x-ratelimit-limit-tokens"] == "60000"
    # 60 000 TPM over 2 s: 2000 tokens of burst, 1000 a second
    spent = first.json()["usage"]["total_tokens"]
    assert int(h["x-ratelimit-remaining-tokens"]) == 30 * (2000 - spent)
    assert parse_duration(h["x-ratelimit-reset-tokens"]) == pytest.approx(spent / 1000, abs=1e-3)
    post(served, task="review")
    refused = post(served)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert parse_duration(refused.headers["x-ratelimit-reset-requests"]) == pytest.approx(2.0)
    assert "retry-after" not in refused.headers
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("served", [{"retry_after": True}], indirect=True)
def test_openai_style_retry_after_when_asked(served: ProviderSim) -> None:
    post(served)
    post(served)
    refused = post(served)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["retry-after-ms"] == "1000"


@pytest.mark.parametrize("served", [{"style": "anthropic"}], indirect=True)
def test_anthropic_headers_with_rfc3339_resets_and_retry_after(served: ProviderSim) -> None:
    def when(value: str) -> float:
        return (
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        )

    h = post(served).headers
    assert h["anthropic-ratelimit-requests-limit"] == "60"
    assert h["anthropic-ratelimit-requests-remaining"] == "30"
    assert when(h["anthropic-ratelimit-requests-reset"]) == 1_700_000_001  # now + 1 s
    assert h["anthropic-ratelimit-tokens-limit"] == "60000"
    assert when(h["anthropic-ratelimit-tokens-reset"]) >= 1_700_000_000
    assert not any(name.startswith("x-ratelimit") for name in h)
    post(served)
    refused = post(served)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"


@pytest.mark.parametrize("served", [{"style": "none"}], indirect=True)
def test_style_none_sends_no_rate_limit_header(served: ProviderSim) -> None:
    answers = [post(served) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    for answer in answers:
        assert not any("ratelimit" in name or name == "retry-after" for name in answer.headers)
    assert "Please try again in 1s." in answers[-1].json()["error"]["message"]


def test_a_bad_path_or_body_is_refused_and_counted(served: ProviderSim) -> None:
    url = served.base_url
    assert httpx.post(f"{url}/completions", content=b"{}", timeout=10).status_code == 404
    bad = httpx.post(f"{url}/chat/completions", content=b"not json", timeout=10)
    assert bad.status_code == 400
    assert served.stats()["total"]["bad_request"] == 2
