"""`gemini:<model>`: Gemini CLI (npm `@google/gemini-cli`) in headless mode.

    gemini --output-format stream-json -m <model>

The prompt goes to stdin; a leased key goes in GEMINI_API_KEY (without keys, the CLI uses its
own login). The answer's text streams into the item's output as the `message` events arrive;
the last line is the `result` event: `status` "success" is the answer, "error" carries
`error.message`, which decides:

    "exhausted your daily quota", TerminalQuotaError,        a spent quota: the key's group is
    "exhausted your capacity", QUOTA_EXHAUSTED, per day      parked (until the stated reset)
    "The model is overloaded", MODEL_CAPACITY_EXHAUSTED,     overloaded: everybody backs off
    503, 529
    429, RESOURCE_EXHAUSTED, "Quota exceeded" (per minute)   rate limited
    API key not valid, 401, 403                              the key is rejected
    exit 42 (input error), 53 (turn limit), 41 (auth not     not retried
    set up), 55 (folder not trusted)

Gemini limits are per Google Cloud project, not per key: put the keys of one project in one key
group (`group=` in the credentials file), or the governor counts one project's allowance twice.

Usage: `stats.models` gives each model's tokens, priced from the price database (the CLI states
no cost).

Who retries: agentos. Gemini CLI retries a 429 or a 5xx up to 10 times with waits of 30 s and
more (measured: 4 attempts in 100 s), unseen by the governor; its `general.maxAttempts` setting
can only be changed in the user's or the system's settings files, which are not agentos's to
rewrite. So the agent watches the CLI's stderr: at its first "Attempt N failed ... Retrying"
notice it stops the CLI and reports the refusal with the wait the server suggested ("Suggested
retry after 26s"), and the governor paces the key instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentos.agents.base import AgentRequest, ToolPolicy
from agentos.agents.cli_agent import (
    CliAgent,
    NotRetried,
    Progress,
    count,
    failure,
    json_event,
    last_lines,
    plain,
    refused,
    short,
)
from agentos.beneath import Beneath
from agentos.errors import ItemError
from agentos.item.context import ItemContext
from agentos.item.process import CommandResult
from agentos.usage.prices import ModelRef

KEY_ENV = "GEMINI_API_KEY"
INSTALL = "npm install -g @google/gemini-cli"
MINIMUM = (0, 20)
PROVIDER = "google"
#: documented exit codes that another attempt would repeat
NOT_RETRIED = {
    41: "authentication is not set up",
    42: "input error",
    53: "turn limit exceeded",
    55: "the folder is not trusted (trust it, or set GEMINI_CLI_TRUST_WORKSPACE=true)",
}
_ATTEMPT_FAILED = re.compile(r"^\s*Attempt \d+ failed\b")


@dataclass(frozen=True)
class GeminiAgent(CliAgent):
    """Gemini CLI, headless (the prompt on its stdin), `gemini:MODEL`."""

    edits_files = True
    program = "gemini"
    install = INSTALL
    minimum = MINIMUM
    example = "gemini:gemini-2.5-flash"

    def models(self) -> list[ModelRef | None]:
        return [ModelRef(self.model, PROVIDER)]

    def argv(self, request: AgentRequest) -> list[str]:
        return [
            self.executable.path,
            "--output-format",
            "stream-json",
            "-m",
            self.model,
            "--approval-mode",
            # headless, a tool that needs approval is not offered at all: "plan" leaves the
            # read-only ones, "auto_edit" adds the file edits (never "yolo": shell commands)
            "auto_edit" if request.tools is ToolPolicy.EDIT else "plan",
        ]

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        stream = _Stream(Progress(ctx))
        # Gemini CLI writes an error report holding the whole request (the prompt) to the
        # temporary directory, world-readable: keep it with the item's own state
        scratch = {"TMPDIR": str(self.scratch(ctx))}
        result = self.call(request, ctx, on_line=stream.line, key_env=KEY_ENV, env=scratch)
        stream.progress.flush()
        return self.outcome(result, stream, ctx)

    @staticmethod
    def scratch(ctx: ItemContext) -> Path:
        with Beneath(ctx.state_dir) as state:  # no link planted in a reused run dir followed
            return state.makedirs("tmp", mode=0o700)

    def outcome(self, result: CommandResult, stream: _Stream, ctx: ItemContext) -> str:
        if result.stopped:
            text = " ".join(stream.retrying)
            found = refused("gemini", None, text, ctx)
            if found is None:  # a retry of something else (a network error): a failure
                raise ItemError(f"gemini: {short(text)}")
            raise found
        final = stream.result
        if final is not None:
            self._record(final, ctx)
        if final is not None and final.get("status") == "success" and result.returncode == 0:
            answer = stream.progress.text
            if not answer.strip():
                raise ItemError(f"{self.spec}: Gemini CLI answered with an empty response")
            return answer
        error = final.get("error") if final is not None else None
        message = ""
        if isinstance(error, dict):
            message = plain(str(error.get("message") or error.get("type") or ""))
        cause = message or last_lines(result.stderr_tail)
        found = refused("gemini", None, cause, ctx)
        if found is not None:
            raise found
        if result.returncode in NOT_RETRIED:
            raise NotRetried(
                f"gemini: {NOT_RETRIED[result.returncode]}: {short(cause)}",
                exit_code=result.returncode,
            )
        if result.returncode == 0 and final is None:
            raise ItemError(f"{self.spec}: Gemini CLI printed no result")
        raise failure("gemini", result.returncode or 1, cause)

    def _record(self, final: dict[str, Any], ctx: ItemContext) -> None:
        stats = final.get("stats")
        models = stats.get("models") if isinstance(stats, dict) else None
        if not isinstance(models, dict):
            return
        for name, used in models.items():
            if not isinstance(used, dict):
                continue
            inner = used.get("tokens")
            tokens: dict[str, Any] = inner if isinstance(inner, dict) else used
            # stream-json says input_tokens/output_tokens; --output-format json prompt/candidates
            given = count(tokens.get("input_tokens", tokens.get("prompt")))
            output = count(tokens.get("output_tokens", tokens.get("candidates")))
            if not given and not output:
                continue  # a refused call: nothing was used
            ctx.record_usage(
                str(name),
                input_tokens=given,
                output_tokens=output,
                cached_tokens=count(tokens.get("cached")) or 0,
                provider=PROVIDER,
            )


class _Stream:
    """Reads Gemini CLI's stream-json events (stdout) and its retry notices (stderr)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.result: dict[str, Any] | None = None
        self.retrying: list[str] = []

    def line(self, stream: str, line: str) -> bool:
        if stream == "err":
            return self._stderr(line)
        event = json_event(line)
        if event is None:
            return False
        kind = event.get("type")
        if kind == "result":
            self.result = event
        elif kind == "message" and event.get("role") == "assistant":
            # the user's message is echoed too: never shown, a prompt may hold secrets
            self.progress.add(str(event.get("content") or ""))
        elif kind == "tool_use":
            self.progress.flush()
            self.progress.ctx.log(f"[gemini uses {event.get('tool_name')}]")
        return False

    def _stderr(self, line: str) -> bool:
        """True (stop the CLI) once it announces a retry: "Attempt 1 failed: <why>" then
        "Suggested retry after 26s.. Retrying after 26896ms..." (or all on one line)."""
        if not self.retrying and not _ATTEMPT_FAILED.match(line):
            return False
        if len(self.retrying) < 4:
            self.retrying.append(line.strip())
        return "Retrying" in line or len(self.retrying) >= 4
