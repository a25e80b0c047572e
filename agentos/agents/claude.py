"""`claude:<model>`: Claude Code (npm `@anthropic-ai/claude-code`) in print mode.

    claude -p --output-format stream-json --verbose --include-partial-messages --model <model>

The prompt goes to stdin; a leased key goes in ANTHROPIC_API_KEY (without keys, Claude Code uses
its own login or the user's variable). The answer's text streams into the item's output as the
`stream_event` deltas arrive; the last line is the `result` object, whose fields decide:

    is_error false, subtype success   the answer (`result`); a result that says `is_error` is
                                      never an answer, whatever its subtype or exit code (Claude
                                      Code reports a refused request as subtype "success")
    api_error_status 429              rate limited; "usage limit reached|<unix time>" (and the
                                      other reset forms) is a spent quota, parked until then
    api_error_status 529, 503         overloaded
    api_error_status 401, 403         the key is rejected
    api_error_status 400              the request itself is wrong: not retried

Usage: `modelUsage` gives each model's tokens and Claude Code's own cost (`costUSD`, adding up to
`total_cost_usd`), recorded per model with that cost, so no price is needed.

Who retries: agentos. Claude Code retries a refused request internally for minutes (measured: 9
attempts in 120 s against a server answering 429, and still going), where the governor sees
nothing: the key is not cooled, other items pile onto it, and --timeout is spent waiting.
CLAUDE_CODE_MAX_RETRIES=0 makes it return the refusal at once, so the governor paces the key and
queues the item again. The price: with retries off Claude Code does not pass on the server's
Retry-After, so a 429 waits the governor's cooldown (--rate-limit-cooldown, growing on repeats)
unless the message states a wait. Its non-essential traffic is off too
(CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1): otherwise each run spends a second model call on a
session title, and N parallel copies run the auto-updater on the same executable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentos.agents.base import AgentRequest, ToolPolicy
from agentos.agents.cli_agent import (
    CliAgent,
    NotRetried,
    Progress,
    amount,
    count,
    failure,
    json_event,
    last_lines,
    refused,
    short,
)
from agentos.errors import ItemError
from agentos.item.context import ItemContext
from agentos.item.process import CommandResult
from agentos.usage.prices import ModelRef

KEY_ENV = "ANTHROPIC_API_KEY"
INSTALL = "npm install -g @anthropic-ai/claude-code"
MINIMUM = (2, 0)
ENV = {
    "CLAUDE_CODE_MAX_RETRIES": "0",
    # no session title (a model call of its own per run, measured: two requests instead of
    # one for a multi-line prompt), no auto-updater, telemetry or error reports
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
}


@dataclass(frozen=True)
class ClaudeAgent(CliAgent):
    """Claude Code (`claude -p`), `claude:MODEL`."""

    edits_files = True
    program = "claude"
    install = INSTALL
    minimum = MINIMUM
    example = "claude:sonnet"

    def models(self) -> list[ModelRef | None]:
        # Claude Code states what each call cost: no price is needed, and an alias such as
        # "sonnet" names no price anyway; a budget counts the costs as they come
        return [None]

    def argv(self, request: AgentRequest) -> list[str]:
        return [
            self.executable.path,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",  # stream-json needs it in print mode
            "--include-partial-messages",
            "--model",
            self.model,
            *permission_flags(request),
        ]

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        stream = _Stream(Progress(ctx))
        result = self.call(request, ctx, on_line=stream.line, key_env=KEY_ENV, env=ENV)
        stream.progress.flush()
        return self.outcome(result, stream.result, ctx, request)

    def outcome(
        self,
        result: CommandResult,
        final: dict[str, Any] | None,
        ctx: ItemContext,
        request: AgentRequest | None = None,
    ) -> str:
        if final is None:
            # no result line: Claude Code failed before it could answer (bad option, crash)
            cause = last_lines(result.stderr_tail)
            found = refused("claude", None, cause, ctx) if result.returncode else None
            if found is not None:
                raise found
            if result.returncode == 0:
                said = f": {cause}" if cause else ""
                raise ItemError(f"{self.spec}: claude printed no result{said}")
            raise failure("claude", result.returncode, cause)
        self._record(final, ctx)
        denied = denials(final.get("permission_denials"))
        if denied:
            # the answer may well say "I wrote src/x.py": it did not, the policy refused
            raise ItemError(
                f"claude was denied {'; '.join(denied[:3])}"
                + (f" (and {len(denied) - 3} more)" if len(denied) > 3 else "")
                + ": the permission policy agentos gave it does not allow that"
                + (
                    "; --allow-tool RULE grants more"
                    if request is not None and request.tools is ToolPolicy.EDIT
                    else ""
                )
            )
        text = final.get("result")
        text = text if isinstance(text, str) else ""
        failed = final.get("is_error") is not False or final.get("subtype") != "success"
        if not failed and result.returncode == 0:
            if not text.strip():
                raise ItemError(f"{self.spec}: Claude Code answered with an empty result")
            return text
        status = final.get("api_error_status")
        status = status if isinstance(status, int) and not isinstance(status, bool) else None
        detail = text or str(final.get("subtype") or "an error")
        found = refused("claude", status, detail, ctx)
        if found is not None:
            raise found
        if status == 400:
            raise NotRetried(f"claude: the API refused the request (400): {short(detail)}")
        code = result.returncode if result.returncode > 0 else 1
        subtype = final.get("subtype")
        where = f" ({subtype})" if subtype and subtype != "success" else ""
        raise ItemError(f"claude{where}: {short(detail)}", exit_code=code)

    def _record(self, final: dict[str, Any], ctx: ItemContext) -> None:
        """Each model's tokens and cost as Claude Code states them; its `input_tokens` leave
        out the prompt cache's, which agentos counts as input (`cached_tokens` of it)."""
        models = final.get("modelUsage")
        if isinstance(models, dict) and models:
            for name, used in models.items():
                if not isinstance(used, dict):
                    continue
                fresh = count(used.get("inputTokens"))
                read = count(used.get("cacheReadInputTokens")) or 0
                written = count(used.get("cacheCreationInputTokens")) or 0
                ctx.record_usage(
                    str(name),
                    input_tokens=None if fresh is None else fresh + read + written,
                    output_tokens=count(used.get("outputTokens")),
                    cached_tokens=read,
                    cost_usd=amount(used.get("costUSD")),
                    provider="anthropic",
                )
            return
        cost = amount(final.get("total_cost_usd"))
        if cost:  # a cost without a breakdown by model: recorded under the model asked for
            ctx.record_usage(self.model, cost_usd=cost, provider="anthropic")


#: the tools each policy offers; `--tools` is the upper bound, whatever settings say
_TOOLS = {
    ToolPolicy.NONE: "",
    ToolPolicy.READ: "Read,Glob,Grep",
    ToolPolicy.EDIT: "Read,Glob,Grep,Edit,Write,Bash",
}
#: commands an editing agent may always run: looking at its own changes
_READ_ONLY_COMMANDS = ("git status", "git diff", "git log")


def permission_flags(request: AgentRequest) -> list[str]:
    """Claude Code's flags for the request's tool policy. Stated in full on every call, so that
    what is allowed never depends on the user's settings or on the repository's: only the
    user's own settings are loaded (the repository's `.claude/settings.json` is data, not
    permissions), no MCP server is started, and `--tools` lists every tool there is."""
    flags = ["--setting-sources", "user", "--strict-mcp-config", "--tools", _TOOLS[request.tools]]
    if request.tools is ToolPolicy.EDIT:
        rules = [f"Bash({line})" for line in (*request.commands, *_READ_ONLY_COMMANDS)]
        rules += [f"Bash({line} *)" for line in (*request.commands, *_READ_ONLY_COMMANDS)]
        flags += ["--permission-mode", "acceptEdits", "--allowedTools", *rules, *request.allow]
    return flags


def denials(found: Any) -> list[str]:
    """`Tool(input)` for each denial in a result's `permission_denials`."""
    if not isinstance(found, list):
        return []
    shown = []
    for denial in found:
        if not isinstance(denial, dict):
            continue
        tool = str(denial.get("tool_name") or "a tool")
        given = denial.get("tool_input")
        what = ""
        if isinstance(given, dict):
            what = str(given.get("command") or given.get("file_path") or given.get("path") or "")
        shown.append(f"{tool}({short(what)[:80]})" if what else tool)
    return shown


class _Stream:
    """Reads Claude Code's stream-json lines as they come."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.result: dict[str, Any] | None = None

    def line(self, stream: str, line: str) -> bool:
        event = json_event(line) if stream == "out" else None
        if event is None:
            return False
        kind = event.get("type")
        if kind == "result":
            self.result = event
        elif kind == "stream_event":
            inner = event.get("event") or {}
            delta = inner.get("delta") if isinstance(inner, dict) else None
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                self.progress.add(str(delta.get("text") or ""))
        elif kind == "assistant":
            message = event.get("message") or {}
            for block in message.get("content") or [] if isinstance(message, dict) else []:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    self.progress.flush()
                    self.progress.ctx.log(f"[claude uses {block.get('name')}]")
        return False
