"""The rate governor's parts with a fake clock: header and refusal parsing, the pacer, grants per
call and leases per item, the four kinds of "no", parked keys. The decision rules (limit or
noise, the learned pace) are in test_governor_decisions.py."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from agentos.errors import ConfigError
from agentos.governor import parked
from agentos.governor.credentials import KeyConfig, load_keys
from agentos.governor.governor import Governor
from agentos.governor.pacing import HEADROOM, Pacer
from agentos.item.keys import KeyOutcome
from agentos.item.refusals import (
    RateInfo,
    RefusalKind,
    classify_http,
    classify_text,
    parse_duration,
    quota_reset,
)

NOW = 1_800_000_000.0  # a fixed wall clock


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def governor(*keys: str | KeyConfig, clock: Clock | None = None, **kw: object) -> Governor:
    return Governor(list(keys), seed=1, clock=clock or Clock(), wall=lambda: NOW, **kw)  # type: ignore[arg-type]


# -- signals
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("12ms", 0.012), ("1m30.5s", 90.5), ("2h0m0s", 7200.0)],
)
def test_openai_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_openai_and_anthropic_headers() -> None:
    openai = RateInfo.from_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert (openai.limit_requests, openai.reset_requests, openai.reset_tokens) == (60, 1, 360)
    anthropic = RateInfo.from_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
            "retry-after": "30",
        },
        now=1_800_000_000.0 - 0,
    )
    assert anthropic.limit_requests == 50 and anthropic.remaining_requests == 0
    assert anthropic.retry_after == 30
    assert RateInfo.from_headers({"retry-after-ms": "1500", "retry-after": "9"}).retry_after == 1.5
    assert RateInfo.from_headers({}).empty


def test_four_kinds_of_no_over_http() -> None:
    rate = classify_http(
        429,
        {},
        '{"error": {"message": "Rate limit reached for m in organization o on requests per min '
        '(RPM): Limit 60, Used 60, Requested 1. Please try again in 1.2s.", "type": "requests", '
        '"code": "rate_limit_exceeded"}}',
    )
    assert rate is not None and rate.kind == RefusalKind.RATE and rate.wait == pytest.approx(1.2)
    assert rate.limit is not None and (rate.limit.unit, rate.limit.per, rate.limit.limit) == (
        "requests",
        "min",
        60,
    )
    quota = classify_http(
        429,
        {},
        '{"error": {"message": "You exceeded your current quota, please check your plan.", '
        '"type": "insufficient_quota", "code": "insufficient_quota"}}',
    )
    assert quota is not None and quota.kind == RefusalKind.QUOTA and quota.wait is None
    daily = classify_http(
        429,
        {},
        '{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded for '
        'metric generate_requests_per_model_per_day, limit PerDay", "details": '
        '[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}]}}',
    )
    assert daily is not None and daily.kind == RefusalKind.QUOTA and daily.wait == 26
    assert classify_http(503, {}, "{}").kind == RefusalKind.OVERLOADED  # type: ignore[union-attr]
    overloaded = classify_http(529, {}, '{"type":"error","error":{"type":"overloaded_error"}}')
    assert overloaded is not None and overloaded.kind == RefusalKind.OVERLOADED
    assert classify_http(401, {}, '{"error": {"message": "bad key"}}').kind == RefusalKind.REJECTED  # type: ignore[union-attr]
    assert classify_http(400, {}, '{"error": {"message": "bad request"}}') is None


def test_four_kinds_of_no_in_cli_text() -> None:
    now = 1_800_000_000.0
    claude = classify_text("Claude usage limit reached|1800003600", now)
    assert claude is not None and claude.kind == RefusalKind.QUOTA and claude.wait == 3600
    assert classify_text("API Error: 529 Overloaded").kind == RefusalKind.OVERLOADED  # type: ignore[union-attr]
    assert classify_text("Error: 429 Too Many Requests").kind == RefusalKind.RATE  # type: ignore[union-attr]
    assert classify_text("invalid api key").kind == RefusalKind.REJECTED  # type: ignore[union-attr]
    assert classify_text("all good") is None
    assert quota_reset("resets in 3h20m", now) == 3 * 3600 + 20 * 60
    five_pm = quota_reset("usage limit reached, resets at 5pm", now)
    assert five_pm is not None and 0 < five_pm <= 86400


# -- the pacer
def test_pacer_spaces_calls_at_the_limit_less_headroom() -> None:
    pacer = Pacer(60)  # one a second, less the headroom
    starts = [pacer.reserve(1, 0.0) for _ in range(5)]
    gap = 1 / HEADROOM
    assert starts == pytest.approx([0.0, gap, 2 * gap, 3 * gap, 4 * gap], abs=1e-9)


def test_pacer_tokens_corrected_by_usage_and_the_providers_account() -> None:
    pacer = Pacer(6000, burst=0.0)  # 100 tokens a second, less headroom
    assert pacer.reserve(100, 0.0) == 0.0
    assert pacer.reserve(100, 0.0) == pytest.approx(100 / pacer.rate)
    pacer.adjust(-100)  # the first call used nothing after all
    assert pacer.start_time(1, 0.0) == pytest.approx(100 / pacer.rate)
    pacer.observe(limit=None, remaining=0, reset=30.0, now=0.0)  # the provider says: spent
    assert pacer.start_time(1, 0.0) == pytest.approx(30.0)


# -- grants per call
def test_calls_are_paced_per_group_and_groups_add_up() -> None:
    clock = Clock()
    gov = governor(
        KeyConfig("sk-a", group="org1", rpm=60),
        KeyConfig("sk-b", group="org1", rpm=60),  # same organisation: no extra capacity
        KeyConfig("sk-c", group="org2", rpm=60),
        clock=clock,
    )
    delays = [gov.acquire_call("i", 10).delay for _ in range(6)]
    # two groups of one call a second each (less the headroom): two calls a second in all
    gap = 1 / HEADROOM
    assert sorted(delays) == pytest.approx([0, 0, gap, gap, 2 * gap, 2 * gap], abs=1e-6)


def test_a_rate_refusal_that_shows_a_limit_moves_the_whole_group_to_the_reset() -> None:
    clock = Clock()
    gov = governor(KeyConfig("sk-a", group="org", rpm=600), "sk-b", clock=clock)
    first = gov.acquire_call("i", 10)
    assert first.label == "key-1"
    # the provider's headers say the minute's requests are spent: a limit, not noise
    gov.end_call(first.call_id, RefusalKind.RATE, {"wait": 5.0, "remaining_requests": 0})
    again = gov.acquire_call("j", 10)
    assert again.label == "key-2" and again.delay == 0  # another group goes at once
    gov.end_call(again.call_id, KeyOutcome.OK, {})
    pinned = gov.acquire_call("k", 10, pinned="key-1")
    assert pinned.delay == pytest.approx(5.0, abs=0.01)
    assert "rate limited" in pinned.reason and "no requests are left" in pinned.reason


def test_limits_are_learned_from_headers_and_from_the_refusal_body() -> None:
    clock = Clock()
    gov = governor("sk-a", clock=clock)
    grant = gov.acquire_call("i", 10)
    gov.end_call(grant.call_id, KeyOutcome.OK, {"limit_requests": 30, "tokens": 50})
    row = gov.snapshot()[0]
    assert row["rpm"] == 30
    body_taught = governor("sk-b", clock=clock)
    grant = body_taught.acquire_call("i", 10)
    body_taught.end_call(
        grant.call_id,
        RefusalKind.RATE,
        {"wait": 1.0, "limit_unit": "requests", "limit_per": "min", "limit": 12},
    )
    assert body_taught.snapshot()[0]["rpm"] == 12


def test_a_grant_dropped_before_its_call_went_is_not_counted_as_a_call() -> None:
    """A grant waiting out its delay whose key is parked meanwhile is dropped by confirm_call;
    it had been counted as the key's call all the same (seen: a key with 4 calls at the provider
    reported 19, and the report drew its group at its limit)."""
    clock = Clock()
    gov = governor(KeyConfig("sk-a", group="org", rpm=60), clock=clock)
    first = gov.acquire_call("i", 10)
    waiting = gov.acquire_call("j", 10)  # paced: a second later
    assert waiting.delay > 0.5
    gov.end_call(first.call_id, RefusalKind.QUOTA, {"wait": 3600.0})
    assert gov.confirm_call(waiting.call_id) is False
    assert gov.snapshot()[0]["calls"] == 1


def test_unknown_limits_start_with_one_call_in_flight() -> None:
    clock = Clock()
    gov = governor("sk-a", clock=clock)
    first = gov.acquire_call("i", 10)
    assert first.call_id
    blocked = gov.acquire_call("j", 10, wait=0.0)  # the first answer has not come back yet
    assert blocked.call_id == 0 and blocked.reason == "waiting for calls in flight"
    gov.end_call(first.call_id, KeyOutcome.OK, {})
    grants = [gov.acquire_call("k", 10, wait=0.0) for _ in range(3)]
    assert [bool(g.call_id) for g in grants] == [True, True, False]  # the window doubled


def test_quota_parks_the_group_and_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOS_STATE_DIR", str(tmp_path))
    clock = Clock()
    gov = governor(KeyConfig("sk-a", group="org"), KeyConfig("sk-b", group="org"), clock=clock)
    grant = gov.acquire_call("i", 10)
    gov.end_call(grant.call_id, RefusalKind.QUOTA, {"wait": 3600.0})
    assert gov.events() == [
        "key-1: out of quota; group org parked until "
        + time.strftime("%H:%M UTC", time.gmtime(NOW + 3600))
    ]
    none = gov.acquire_call("j", 10)
    assert none.call_id == 0 and none.delay == pytest.approx(3600) and "quota" in none.reason
    status = gov.status()
    assert status.parked == 2 and status.all_out_for == pytest.approx(3600)
    parked.save(gov.parked_keys(), set(), now=NOW)
    remembered = parked.load(now=NOW)
    assert len(remembered) == 2 and "sk-a" not in (tmp_path / "keys.json").read_text()
    tomorrow = Governor(["sk-a"], parked=remembered, clock=clock, wall=lambda: NOW + 10)
    assert tomorrow.acquire_call("i", 10).call_id == 0  # parked from the start
    assert parked.load(now=NOW + 7200) == {}  # the reset has passed


def test_overload_backs_everyone_off_and_rejection_retires_the_key() -> None:
    clock = Clock()
    gov = governor("sk-a", "sk-b", clock=clock)
    grant = gov.acquire_call("i", 10)
    gov.end_call(grant.call_id, RefusalKind.OVERLOADED, {})
    after = gov.acquire_call("i", 10)
    assert after.delay > 0.15 and "overloaded" in after.reason
    gov.end_call(after.call_id, RefusalKind.REJECTED, {"detail": "HTTP 401: bad key"})
    assert gov.snapshot()[after.label == "key-2"]["state"] == "revoked"
    clock.t += 100
    assert gov.acquire_call("i", 10).label != after.label
    gov2 = governor("sk-a", clock=clock)
    g = gov2.acquire_call("i", 10)
    gov2.end_call(g.call_id, RefusalKind.REJECTED, {})
    none = gov2.acquire_call("i", 10)
    assert none.call_id == 0 and none.delay == math.inf


def test_errors_release_the_call_without_blame() -> None:
    gov = governor("sk-a")
    grant = gov.acquire_call("i", 10)
    gov.end_call(grant.call_id, KeyOutcome.ERROR, {})
    assert gov.acquire_call("i", 10, wait=0.0).call_id  # the window is free again


# -- leases per item
def test_slots_let_several_items_share_a_key() -> None:
    gov = governor(KeyConfig("sk-a", slots=2), "sk-b")
    leases = [gov.acquire(f"i{n}") for n in range(4)]
    assert [lease.label if lease else None for lease in leases] == [
        "key-1",
        "key-2",
        "key-1",
        None,
    ]


def test_an_item_quota_refusal_parks_and_stops_leasing() -> None:
    gov = governor("sk-a")
    lease = gov.acquire("i")
    assert lease is not None
    gov.release(lease.lease_id, "rate_limited", 600.0, kind=RefusalKind.QUOTA)
    assert gov.acquire("i") is None
    assert gov.status().all_out_for == pytest.approx(600)


# -- the credentials file
def test_key_file_attributes_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("sk-one group=org-a rpm=60 tpm=150000\nsk-two slots=3 rpd=1000\nsk-three\n")
    path.chmod(0o600)
    keys = load_keys(path, warn=print, defaults=KeyConfig("", group="shared", rpm=10))
    assert [(k.group, k.rpm, k.tpm, k.rpd, k.slots) for k in keys] == [
        ("org-a", 60, 150000, None, 1),
        ("shared", 10, None, 1000, 3),
        ("shared", 10, None, None, 1),
    ]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("sk-x rpm=fast", "rpm= must be a number above 0"),
        ("sk-x slots=1.5", "slots= must be a whole number above 0"),
        ("sk-x colour=red", "a word after the key is not one of its attributes"),
        ("sk-x group=a/b", "group= takes a name"),
    ],
)
def test_bad_key_attributes_name_the_line_not_the_key(tmp_path: Path, line: str, said: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"# keys\n{line}\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_keys(path, warn=print)
    assert said in caught.value.message and "line 2" in caught.value.message
    assert "sk-x" not in caught.value.message


def test_agentos_keys_shows_groups_limits_and_parked_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from agentos.commands.cli import cli
    from agentos.governor.credentials import make_credentials

    path = tmp_path / "keys.txt"
    path.write_text("sk-show-one-111111 group=acme rpm=500\nsk-show-two-222222\n")
    path.chmod(0o600)
    monkeypatch.setenv("AGENTOS_STATE_DIR", str(tmp_path / "state"))
    one, two = make_credentials(["sk-show-one-111111", "sk-show-two-222222"])
    soon = time.time() + 3600
    parked.save(
        {two.full_fingerprint: (soon, "key-2: out of quota")},
        set(),
        notes={two.full_fingerprint: {"calls": 7, "leases": 2, "tpm": 30000}},
    )
    result = CliRunner().invoke(cli, ["keys", "--credentials-file", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:4] == ["key-1", f"…{one.fingerprint}", "acme", "500"]
    assert lines[1].split()[7:9] == ["ok", "never"]
    until = time.strftime("%H:%M UTC", time.gmtime(soon))
    assert f"parked until {until} (key-2: out of quota)" in lines[2]
    assert "30000" in lines[2] and "7 calls, 2 items" in lines[2]
    assert "sk-show" not in result.output


def test_a_daily_budget_is_spent_then_comes_back_the_next_day() -> None:
    clock = Clock()
    wall = [NOW]
    gov = Governor([KeyConfig("sk-a", rpd=2)], seed=1, clock=clock, wall=lambda: wall[0])
    for _ in range(2):
        grant = gov.acquire_call("i", 10)
        gov.end_call(grant.call_id, KeyOutcome.OK, {})
    none = gov.acquire_call("i", 10)
    assert none.call_id == 0 and none.delay == pytest.approx(86400 - NOW % 86400)
    wall[0] += 86400
    assert gov.acquire_call("i", 10).call_id


def test_keys_the_provider_names_as_one_organisation_join_one_group() -> None:
    clock = Clock()
    gov = governor("sk-a", "sk-b", KeyConfig("sk-c", group="mine"), clock=clock)
    grants = [gov.acquire_call("i", 10, pinned=label) for label in ("key-1", "key-2", "key-3")]
    for grant in grants:
        gov.end_call(grant.call_id, KeyOutcome.OK, {"organization": "org-x", "limit_requests": 60})
    groups = {row["label"]: row["group"] for row in gov.snapshot()}
    # one budget now: calls of key-1 and key-2 queue behind each other; a named group stays
    assert groups == {"key-1": "org-x", "key-2": "org-x", "key-3": "mine"}
    first, second = (
        gov.acquire_call("i", 10, pinned="key-1"),
        gov.acquire_call("i", 10, pinned="key-2"),
    )
    assert second.delay - first.delay == pytest.approx(1 / HEADROOM, abs=0.01)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # Gemini CLI's words (issue 15): a spent allowance parks the key, a per-minute one waits
        ("You have exhausted your capacity on this model.", RefusalKind.QUOTA),
        ("429 QUOTA_EXHAUSTED for project 123", RefusalKind.QUOTA),
        (
            "Quota exceeded for quota metric 'Generate Content API requests per minute'",
            RefusalKind.RATE,
        ),
        ("API key not valid. Please pass a valid API key.", RefusalKind.REJECTED),
        ('{"reason": "API_KEY_INVALID"}', RefusalKind.REJECTED),
    ],
)
def test_gemini_cli_texts_are_classified(text: str, kind: str) -> None:
    refusal = classify_text(text)
    assert refusal is not None and refusal.kind == kind


def test_a_quota_that_will_reset_after_a_duration() -> None:
    assert quota_reset("Your quota will reset after 2h30m.", now=0) == 9000
