"""The agents for real agent CLIs: `claude:` (Claude Code), `gemini:` (Gemini CLI), `llm:` (llm).

Claude Code and Gemini CLI run for real, installed from npm by `make test-clis` into build/node,
against loopback Anthropic and Gemini servers (tests/support/fake_agent_apis.py); llm runs for
real with the offline plugin llm-echo. Each refusal a server can give must come out as the
outcome the governor acts on, and each answer with its usage and cost.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.agent_clis import KEY, NODE_BIN, need
from support.fake_agent_apis import (
    CACHE_READ_TOKENS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    USAGE_LIMIT_RESET,
    FakeAnthropic,
    FakeGemini,
)
from support.keys import keys_file
from support.processes import agentos_argv, clean_env, run, wait_until_gone
from support.sim import repo_with_briefs

from agentos.agents import AgentRequest, cli_agent, resolve_agent
from agentos.agents.claude import ClaudeAgent
from agentos.agents.cli_agent import Executable, NotRetried, Progress, failure, last_lines
from agentos.agents.gemini import GeminiAgent, _Stream
from agentos.agents.llm import LlmAgent
from agentos.errors import ConfigError, CredentialRejected, ItemError, RateLimited
from agentos.item.context import AttemptSetup, ItemContext
from agentos.item.keys import AttemptKeys
from agentos.item.process import CommandResult
from agentos.item.process_tree import pid_alive
from agentos.item.workflow import Item

LLM_KEY = "llm-leased-key-0123456789"
SAY = "SAY: first line of the answer\nsecond line of the answer"


def context(tmp_path: Path, credential: str | None = KEY) -> ItemContext:
    return ItemContext(
        Item("item-1"),
        1,
        tmp_path / "run",
        None,
        AttemptKeys(credential, "k1" if credential else None),
        AttemptSetup(parallel=False),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of the test's own (the CLIs write their settings and sessions there), the npm
    CLIs on PATH, and none of the developer's keys or endpoints."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # the npm CLIs, and llm from this virtualenv
    path = os.pathsep.join([str(NODE_BIN), str(Path(sys.executable).parent), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "LLM_ECHO_NEEDS_KEY_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLM_USER_PATH", str(home / "llm"))
    return home


# ---- Claude Code ------------------------------------------------------------------------------


@pytest.fixture
def anthropic(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    need("claude")
    with FakeAnthropic({KEY: "ok"}) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        yield server


def claude(model: str = "claude-sonnet-4-5") -> ClaudeAgent:
    agent = resolve_agent(f"claude:{model}", "--drafter")
    assert isinstance(agent, ClaudeAgent)
    return agent


def test_claude_answers_from_stdin_streams_and_records_its_stated_cost(
    anthropic: FakeAnthropic, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = context(tmp_path)
    answer = claude("claude-agentos-test").run(AgentRequest("draft", SAY), ctx)
    assert answer == "first line of the answer\nsecond line of the answer"
    # the answer streamed into the item's output as it came, a line at a time
    err = capfd.readouterr().err
    assert "first line of the answer\n" in err and "second line of the answer\n" in err
    # the prompt went by stdin and the key by ANTHROPIC_API_KEY: neither is on the command line;
    # one request (no session title, a call of its own otherwise)
    (call,) = anthropic.calls
    assert call["key"] == KEY and "second line of the answer" in call["prompt"]
    assert ctx.last_argv is not None
    assert not any(KEY in a or "SAY" in a for a in ctx.last_argv)
    # the cost is Claude Code's own figure (the price database knows no such model); input
    # counts the cache reads, as agentos does
    ((model, used),) = ctx.usage.by_model.items()
    assert (model, used.calls) == ("claude-agentos-test", 1)
    assert used.input_tokens == INPUT_TOKENS and used.cached_tokens == CACHE_READ_TOKENS
    assert used.output_tokens == OUTPUT_TOKENS
    assert used.unpriced_calls == 0 and used.cost_usd > 0


@pytest.mark.parametrize(
    ("behaviour", "outcome", "kind"),
    [
        ("rate_limited", RateLimited, "rate"),
        ("overloaded", RateLimited, "overloaded"),
        ("usage_limit", RateLimited, "quota"),
        ("revoked", CredentialRejected, None),
        ("bad_request", NotRetried, None),
    ],
)
def test_claude_refusals_are_the_governors_kinds_of_no_and_never_retried_inside(
    anthropic: FakeAnthropic,
    tmp_path: Path,
    behaviour: str,
    outcome: type[BaseException],
    kind: str | None,
) -> None:
    anthropic.behaviours[KEY] = behaviour
    ctx = context(tmp_path)
    started = time.monotonic()
    with pytest.raises(outcome) as raised:
        claude().run(AgentRequest("draft", SAY), ctx)
    # one request: Claude Code's own retries (minutes of them) are off, the governor retries
    assert len(anthropic.calls) == 1
    assert time.monotonic() - started < 20
    if kind is not None:
        assert isinstance(raised.value, RateLimited) and raised.value.kind == kind
    if behaviour == "usage_limit":  # parked until the reset the message names
        assert isinstance(raised.value, RateLimited) and raised.value.retry_after is not None
        assert abs(raised.value.retry_after - (USAGE_LIMIT_RESET - time.time())) < 60
    assert KEY not in str(raised.value)
    assert ctx.usage.total.cost_usd == 0


def test_claude_is_error_is_never_an_answer_whatever_its_subtype_or_exit_code(
    tmp_path: Path,
) -> None:
    """The trap public reports show: exit 0, subtype "success", is_error true."""
    agent = ClaudeAgent("claude:x", "x", Executable("/bin/claude", "2.1.0"))
    final = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": None,
        "result": "Claude AI usage limit reached|1900000000",
        "total_cost_usd": 0,
    }
    done = CommandResult(["claude"], 0, b"", [], False, None)
    with pytest.raises(RateLimited) as raised:
        agent.outcome(done, final, context(tmp_path))
    assert raised.value.kind == "quota"
    with pytest.raises(ItemError, match="went wrong"):
        agent.outcome(done, {**final, "result": "something went wrong"}, context(tmp_path))


def test_a_missing_or_old_cli_is_a_one_line_error_before_anything_starts(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    repo = repo_with_briefs(tmp_path, 1)
    done = run(
        agentos_argv("requirements", "--repo", str(repo), "--drafter", "claude:sonnet"),
        cwd=tmp_path,
        env=clean_env(PATH=str(bare)),
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "agentos: error: --drafter 'claude:sonnet': claude not found on PATH; install it: "
        "npm install -g @anthropic-ai/claude-code"
    ]
    old = bare / "gemini"
    old.write_text("#!/bin/sh\necho 0.9.1\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(bare))
    with pytest.raises(ConfigError, match=r"gemini 0\.9\.1 is too old \(agentos needs 0\.20"):
        resolve_agent("gemini:gemini-2.5-flash", "--reviewer")


# ---- end to end: agentos requirements with claude: ---------------------------------------------


def requirements(repo: Path, server: FakeAnthropic, *extra: str) -> list[str]:
    return agentos_argv(
        "requirements", "--repo", str(repo), "--drafter", "claude:claude-sonnet-4-5",
        "--reviewer", "claude:claude-sonnet-4-5", "--run-dir", str(repo.parent / "run"), *extra,
    )  # fmt: skip


def claude_env(home: Path, server: FakeAnthropic) -> dict[str, str]:
    return clean_env(
        HOME=str(home),
        PATH=f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}",
        ANTHROPIC_BASE_URL=server.url,
    )


@pytest.mark.slow
def test_requirements_with_claude_drafting_and_reviewing_records_cost_and_survives_a_429(
    tmp_path: Path, home: Path
) -> None:
    need("claude")
    repo = repo_with_briefs(tmp_path, 2)
    other = "sk-ant-second-key-9876543210"
    keys = keys_file(tmp_path, f"{KEY}\n{other}\n")
    with FakeAnthropic({KEY: "ok", other: "rate_limited_once"}) as server:
        done = run(
            requirements(repo, server, "-j", "2", "-v", "--credentials-file", str(keys),
                         "--rate-limit-cooldown", "0.5"),
            cwd=repo, env=claude_env(home, server), timeout=120,
        )  # fmt: skip
        calls = list(server.calls)
    assert done.returncode == 0, done.stderr[-3000:]
    # -v said which CLI and version it found
    assert "claude:claude-sonnet-4-5: " in done.stderr and "(Claude Code)" in done.stderr
    summary = json.loads((repo.parent / "run" / "summary.json").read_text())
    assert summary["totals"]["done"] == 2
    answered = [c for c in calls if c["behaviour"] == "ok"]
    assert len(answered) == 4  # a draft and a review per brief; the 429 was redone
    assert [c["behaviour"] for c in calls].count("rate_limited") == 1
    usage = summary["usage"]
    assert usage["cost_usd"] > 0
    per_call = usage["cost_usd"] / 4
    for item in summary["items"]:
        assert item["usage"]["cost_usd"] == pytest.approx(2 * per_call)
    for path in [*(repo.parent / "run").rglob("*"), *(repo / "docs").rglob("*")]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert KEY not in text and other not in text, path
    assert KEY not in done.stdout + done.stderr and other not in done.stdout + done.stderr


@pytest.mark.slow
def test_requirements_with_claude_stops_where_the_budget_says(tmp_path: Path, home: Path) -> None:
    need("claude")
    repo = repo_with_briefs(tmp_path, 4)
    keys = keys_file(tmp_path, f"{KEY}\n")
    with FakeAnthropic({KEY: "ok"}) as server:
        # a brief costs two calls; Claude Code prices each (the fake's tokens at Sonnet's
        # prices: about $0.01), so $0.05 holds two briefs and not a third
        done = run(
            requirements(repo, server, "--credentials-file", str(keys), "--budget", "0.05"),
            cwd=repo, env=claude_env(home, server), timeout=120,
        )  # fmt: skip
        calls = len(server.calls)
    summary = json.loads((repo.parent / "run" / "summary.json").read_text())
    finished = summary["totals"]["done"]
    spent = summary["usage"]["cost_usd"]
    assert done.returncode == 1, done.stderr[-3000:]
    assert summary["usage"]["budget"]["reached"] is True
    assert 1 <= finished < 4 and calls == 2 * finished
    assert summary["totals"]["not run"] == 4 - finished
    # it stopped where the next brief, at the mean cost so far, would pass the budget
    assert spent <= 0.05 < spent + spent / finished
    assert done.stderr.strip().splitlines()[-1].startswith("agentos: error: budget reached: ")


# ---- Gemini CLI -------------------------------------------------------------------------------


@pytest.fixture
def gemini_api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    need("gemini")
    # GOOGLE_GEMINI_BASE_URL makes Gemini CLI pick its "gateway" sign-in, which headless mode
    # refuses; the user's settings name the API-key sign-in, as a user with a key has them
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    monkeypatch.setenv("GEMINI_CLI_TRUST_WORKSPACE", "true")
    with FakeGemini({KEY: "ok"}) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        yield server


@functools.cache
def gemini() -> GeminiAgent:
    """Resolved once: `gemini --version` alone takes seconds (Node loads the whole CLI)."""
    agent = resolve_agent("gemini:gemini-2.5-flash", "--drafter")
    assert isinstance(agent, GeminiAgent)
    return agent


@pytest.mark.slow
def test_gemini_answers_from_stdin_and_records_tokens_priced_from_the_database(
    gemini_api: FakeGemini, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = context(tmp_path)
    answer = gemini().run(AgentRequest("draft", SAY), ctx)
    assert answer.strip() == "first line of the answer\nsecond line of the answer"
    assert "second line of the answer" in capfd.readouterr().err
    (call,) = gemini_api.calls
    assert call["key"] == KEY and "SAY:" in call["prompt"]
    assert ctx.last_argv is not None and not any(KEY in a or "SAY" in a for a in ctx.last_argv)
    ((model, used),) = ctx.usage.by_model.items()
    assert (model, used.calls, used.input_tokens, used.output_tokens) == (
        "gemini-2.5-flash",
        1,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
    )
    assert used.unpriced_calls == 0 and used.cost_usd > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("behaviour", "outcome", "kind", "wait"),
    [
        ("rate_limited", RateLimited, "rate", 26.0),  # the wait the server suggested
        ("revoked", CredentialRejected, None, None),
    ],
)
def test_gemini_refusals_end_the_cli_at_once(
    gemini_api: FakeGemini,
    tmp_path: Path,
    behaviour: str,
    outcome: type[BaseException],
    kind: str | None,
    wait: float | None,
) -> None:
    gemini_api.behaviours[KEY] = behaviour
    started = time.monotonic()
    with pytest.raises(outcome) as raised:
        gemini().run(AgentRequest("draft", SAY), context(tmp_path))
    # Gemini CLI would retry a 429 for minutes (26 s and more between tries): it was stopped
    assert time.monotonic() - started < 20
    assert len(gemini_api.calls) == 1
    if kind is not None:
        assert isinstance(raised.value, RateLimited)
        assert (raised.value.kind, raised.value.retry_after) == (kind, wait)
    else:
        # the CLI's error report holds the whole request: it stays with the item's state,
        # private, instead of world-readable in /tmp
        (report,) = (tmp_path / "run" / "items" / "item-1" / "tmp").glob("gemini-client-error*")
        assert "SAY:" in report.read_text() and KEY not in report.read_text()
        assert (report.parent.stat().st_mode & 0o777) == 0o700


#: what Gemini CLI 0.61 printed against the fake's "daily" and "overloaded" answers
_DAILY = (
    '{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: You '
    'have exhausted your daily quota on this model.]\\nPlease wait and try again later."},'
    '"stats":{"models":{"gemini-2.5-flash":{"input_tokens":0,"output_tokens":0,"cached":0}}}}'
)
_REVOKED = (
    '{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: '
    '{\\"error\\":{\\"code\\":400,\\"message\\":\\"API key not valid. Please pass a valid '
    'API key.\\",\\"status\\":\\"INVALID_ARGUMENT\\",\\"details\\":[{\\"reason\\":'
    '\\"API_KEY_INVALID\\"}]}}]"},"stats":{"models":{}}}'
)
_OVERLOADED = (
    "Attempt 1 failed with status 503. Retrying with backoff... _ApiError: "
    '{"error":{"code":503,"message":"The model is overloaded. Please try again later.",'
    '"status":"UNAVAILABLE"}}'
)


@pytest.mark.parametrize(
    ("out", "err", "kind"),
    [
        ([_DAILY], [], "quota"),
        ([], [_OVERLOADED, "    at throwErrorIfNotOK"], "overloaded"),
        ([_REVOKED], [], "rejected"),
    ],
)
def test_gemini_quota_overload_and_bad_key_as_the_cli_reports_them(
    tmp_path: Path, out: list[str], err: list[str], kind: str
) -> None:
    ctx = context(tmp_path)
    stream = _Stream(Progress(ctx))
    stopped = any(stream.line("err", line) for line in err)
    for line in out:
        stream.line("out", line)
    done = CommandResult(["gemini"], -15 if stopped else 1, b"", err, False, None, stopped)
    agent = GeminiAgent("gemini:m", "m", Executable("/bin/gemini", "0.61.0"))
    if kind == "rejected":
        with pytest.raises(CredentialRejected, match="API key not valid"):
            agent.outcome(done, stream, ctx)
        return
    with pytest.raises(RateLimited) as raised:
        agent.outcome(done, stream, ctx)
    assert raised.value.kind == kind


# ---- llm --------------------------------------------------------------------------------------


def need_llm() -> None:
    if shutil.which("llm") is None:
        pytest.skip("llm is not installed: pip install -e '.[dev]' (llm, llm-echo)")


def llm_agent(model: str) -> LlmAgent:
    need_llm()
    agent = resolve_agent(f"llm:{model}", "--drafter")
    assert isinstance(agent, LlmAgent)
    return agent


def test_llm_answers_streams_and_records_its_usage(
    home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = context(tmp_path, credential=None)
    prompt = json.dumps({"prompt": "x", "raw": "line one\nline two three"})
    answer = llm_agent("echo").run(AgentRequest("draft", prompt), ctx)
    assert answer == "line one\nline two three\n"  # llm ends the answer with a newline
    assert "line one\n" in capfd.readouterr().err
    assert ctx.last_argv is not None and prompt not in " ".join(ctx.last_argv)
    ((model, used),) = ctx.usage.by_model.items()
    # llm-echo counts words: the JSON prompt's seven, the answer's five
    assert (model, used.calls, used.input_tokens, used.output_tokens) == ("echo", 1, 7, 5)


def test_llm_key_goes_in_the_models_own_variable_and_a_missing_one_is_not_retried(
    home: Path, tmp_path: Path
) -> None:
    agent = llm_agent("echo-needs-key")
    assert agent.key_env == "LLM_ECHO_NEEDS_KEY_KEY"
    ctx = context(tmp_path, credential=LLM_KEY)
    answer = agent.run(AgentRequest("draft", "hello"), ctx)
    # echo-needs-key shows the key it was given: the leased one, from its variable
    assert json.loads(answer)["key"] == LLM_KEY
    assert ctx.last_argv is not None and not any(LLM_KEY in a for a in ctx.last_argv)
    assert LLM_KEY not in ctx.redact(answer)
    # llm logs every prompt and answer (this one holds the key) to a database in the user's
    # home, where parallel items also lock each other out: agentos asks it not to
    logs = list(home.rglob("logs.db"))
    assert all(LLM_KEY.encode() not in p.read_bytes() for p in logs), logs
    with pytest.raises(NotRetried, match="No key found"):
        agent.run(AgentRequest("draft", "hello"), context(tmp_path, credential=None))


def test_llm_database_is_prepared_before_parallel_first_use(home: Path, tmp_path: Path) -> None:
    """llm processes that find no database create it at once and fail ("table already
    exists"; measured: 3 of 4 failed); naming the agent migrates it first."""
    llm_agent("echo")
    procs = [
        subprocess.Popen(
            ["llm", "-m", "echo"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [p.communicate(b"hi", timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e.decode()[-300:] for _, e in results]


def test_llm_unknown_model_and_refusals(home: Path, tmp_path: Path) -> None:
    need_llm()
    with pytest.raises(ConfigError, match="llm does not know the model 'no-such-model'"):
        resolve_agent("llm:no-such-model", "--drafter")
    agent = LlmAgent("llm:m", "m", Executable("/bin/llm", "0.36"), "gpt-4o-mini", None)
    said: list[tuple[list[str], type[BaseException], str | None]] = [
        (["Error: Rate limit reached for gpt-4o-mini. Please try again in 20s."], RateLimited,
         "rate"),
        (["Error: You exceeded your current quota, please check your plan and billing"],
         RateLimited, "quota"),
        (["Error: Incorrect API key provided: sk-..."], CredentialRejected, None),
    ]  # fmt: skip
    for tail, outcome, kind in said:
        with pytest.raises(outcome) as raised:
            agent.outcome(CommandResult(["llm"], 1, b"", tail, True, None), context(tmp_path))
        if kind is not None:
            assert isinstance(raised.value, RateLimited) and raised.value.kind == kind
    with pytest.raises(RateLimited) as waited:
        agent.outcome(CommandResult(["llm"], 1, b"", said[0][0], True, None), context(tmp_path))
    assert waited.value.retry_after == 20.0


def test_errors_from_a_clis_stderr_carry_no_colours_or_traceback_markers() -> None:
    """Gemini CLI colours its errors even into a pipe, and a Python CLI's traceback ends in a
    `^^^^` marker line: both reached the summary, the journal and the report as they were."""
    stderr = [
        "\x1b[31mError when talking to Gemini API\x1b[0m",
        "    raise OperationalError",
        "    ^^^^^^^^^^^^^^^^^^^^^^",
        "sqlite3.OperationalError: database is locked",
    ]
    said = last_lines(stderr)
    assert said == "raise OperationalError | sqlite3.OperationalError: database is locked"
    error = failure("gemini", 1, last_lines(stderr[:1]))
    assert str(error) == "gemini: exit 1: Error when talking to Gemini API"


def test_a_hung_version_check_is_one_line_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI whose --version hangs: the error was right, but what it had started outlived
    agentos (only the direct child was killed)."""
    fake = tmp_path / "bin" / "gemini"
    fake.parent.mkdir()
    pids = tmp_path / "pids"
    fake.write_text(f"#!/bin/sh\nsleep 100 &\necho $! > {pids}\nsleep 100\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(cli_agent, "VERSION_TIMEOUT", 0.5)
    with pytest.raises(ConfigError, match=r"'gemini --version' gave no answer in 0.5 s"):
        GeminiAgent.from_spec("gemini:m", "--drafter")
    child = int(pids.read_text())
    assert wait_until_gone(lambda: [child] if pid_alive(child) else [], timeout=2) == []


def test_llm_beside_agentos_is_found_without_the_virtualenv_on_path(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_llm()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `.venv/bin/agentos ...`, not activated
    agent = LlmAgent.from_spec("llm:echo", "--drafter")
    assert Path(agent.executable.path).parent == Path(sys.executable).parent
