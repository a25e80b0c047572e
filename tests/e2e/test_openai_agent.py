"""The openai: agent against a real chat-completions server on loopback."""

from __future__ import annotations

import itertools
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI
from support.keys import keys_file
from support.processes import REPO, agentos_argv, clean_env, run

from agentos.agents import resolve_agent
from agentos.agents.openai import retry_after_seconds
from agentos.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

LIMITED, REVOKED, GOOD = (
    "sk-http-limited-111111111",
    "sk-http-revoked-222222222",
    "sk-http-good-3333333333",
)


def make_repo(tmp_path: Path, briefs: int) -> Path:
    repo = tmp_path / "repo"
    (repo / "ideas" / "active").mkdir(parents=True)
    for n in range(briefs):
        (repo / "ideas" / "active" / f"idea-{n}.md").write_text(f"# Idea {n}\n\n- It works\n")
    return repo


def requirements(repo: Path, server: FakeOpenAI, keys: Path, *extra: str) -> list[str]:
    return agentos_argv(
        "requirements",
        "--repo",
        str(repo),
        "--drafter",
        "openai:fake-model",
        "--api-base",
        server.url,
        "--credentials-file",
        str(keys),
        "--run-dir",
        str(repo.parent / "run"),
        *extra,
    )


def everything_written(tmp_path: Path) -> str:
    return "".join(
        p.read_text(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "keys.txt"
    )


def test_one_key_rate_limited_one_revoked_the_batch_completes_on_the_third(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, 4)
    behaviours = {LIMITED: "rate_limited", REVOKED: "revoked", GOOD: "ok"}
    with FakeOpenAI(behaviours, retry_after="1") as server:
        done = run(
            requirements(
                repo,
                server,
                keys_file(tmp_path, [LIMITED, REVOKED, GOOD]),
                "-j",
                "3",
                "--retries",
                "0",
            ),
            cwd=repo,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((repo / "docs" / "lld" / "active").glob("*.md"))) == 4
    assert (
        "key-2 rejected by the provider (HTTP 401: Incorrect API key provided: [key-2]); "
        "not used again this run" in done.stderr
    )
    # a refused call goes again on another key at once: the item neither fails nor restarts
    assert "failed" not in done.stderr and "queued again" not in done.stderr
    # the revoked key was tried once and never again
    assert len(server.calls_for(REVOKED)) == 1
    # the cooldown was honoured: the rate-limited key never came back within a second
    limited = [c["time"] for c in server.calls_for(LIMITED)]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(limited))
    # every answer that counted came through the good key
    assert {c["behaviour"] for c in server.calls_for(GOOD)} == {"ok"}
    assert all(
        c["path"] == "/v1/chat/completions" and c["model"] == "fake-model" for c in server.calls
    )
    text = done.stdout + done.stderr + everything_written(tmp_path)
    for key in (LIMITED, REVOKED, GOOD):
        assert key not in text


def test_streamed_answers_are_prefixed_line_by_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 2)
    with FakeOpenAI({GOOD: "ok"}) as server:
        done = run(requirements(repo, server, keys_file(tmp_path, [GOOD]), "-j", "2"), cwd=repo)
    assert done.returncode == 0, done.stderr[-2000:]
    for item in ("brief-idea-0", "brief-idea-1"):
        streamed = [
            line.removeprefix(f"[{item}] ")
            for line in done.stderr.splitlines()
            if line.startswith(f"[{item}] ")
        ]
        assert "# LLD: Served over HTTP" in streamed
        assert "| `src/served.py` | everything |" in streamed  # whole lines, though tokens split
        assert "APPROVED" in streamed
    lld = (repo / "docs" / "lld" / "active" / "idea-0.md").read_text()
    assert "Status: Approved" in lld and "## 6. Definition of done" in lld


def test_a_slow_answer_times_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 1)
    with FakeOpenAI({GOOD: "slow"}, slow_seconds=8) as server:
        t0 = time.monotonic()
        done = run(
            requirements(
                repo,
                server,
                keys_file(tmp_path, [GOOD]),
                "-j",
                "1",
                "--timeout",
                "1",
                "--retries",
                "0",
            ),
            cwd=repo,
        )
        elapsed = time.monotonic() - t0
    assert done.returncode == 1
    assert elapsed < 6
    (record,) = [
        json.loads(line) for line in (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
    ]
    assert record["status"] == "timeout"


def test_server_errors_are_failures_that_get_retried(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 1)
    with FakeOpenAI({GOOD: "error_once"}) as server:
        done = run(
            requirements(
                repo, server, keys_file(tmp_path, [GOOD]), "-j", "1", "--retry-backoff", "0.1"
            ),
            cwd=repo,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HTTP 500 from" in done.stderr and "retry 1 of 1" in done.stderr
    records = [
        json.loads(line) for line in (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
    ]
    assert [r["status"] for r in records] == ["failed", "done"]


def test_an_unreachable_api_is_a_clear_failure(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 1)
    done = run(
        agentos_argv(
            "requirements",
            "--repo",
            str(repo),
            "--drafter",
            "openai:m",
            "--api-base",
            "http://127.0.0.1:9/v1",
            "--retries",
            "0",
        ),
        cwd=repo,
        env=clean_env(AGENTOS_CREDENTIALS=GOOD),
    )
    assert done.returncode == 1
    assert "cannot reach http://127.0.0.1:9/v1: ConnectError" in done.stderr
    assert "Traceback" not in done.stderr and GOOD not in done.stderr


def test_openai_agent_without_keys_stops_before_anything_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 1)
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "--drafter", "openai:m", "-j", "2"),
        cwd=repo,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "agentos: error: openai:m needs an API key: pass --credentials-file "
        "PATH or set AGENTOS_CREDENTIALS\n"
    )
    assert not (repo / ".agentos").exists()


def test_bad_specs_and_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="give the model after 'openai:'"):
        resolve_agent("openai:", "--drafter")
    with pytest.raises(ConfigError, match="is not an http"):
        resolve_agent("openai:m", "--drafter", "ftp://x")


def test_missing_httpx_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ConfigError) as caught:
        resolve_agent("openai:m", "--drafter")
    assert caught.value.message == (
        "the openai: agent needs httpx; install it with: pip install 'agentos-batch[http]'"
    )


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after": "12"}, "", 12.0),
        ({"retry-after": " 2.5 "}, "", 2.5),
        ({}, '{"error": {"message": "Please try again in 20s."}}', 20.0),
        ({}, "Rate limit: retry after 500ms", 0.5),
        ({}, "no hint", None),
        ({"retry-after": "soon"}, "try again in 3 seconds", 3.0),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], body: str, expected: float | None) -> None:
    assert retry_after_seconds(headers, body) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds({"retry-after": later}, "", now=now.timestamp()) == 30.0


def test_the_http_extra_is_declared() -> None:
    setup = (REPO / "setup.cfg").read_text()
    assert "http =\n    httpx" in setup
