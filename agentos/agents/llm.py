"""`llm:<model>`: Simon Willison's `llm` (PyPI `llm`), with whatever plugins the user has.

    llm prompt -m <model> -u -n

The prompt goes to stdin. llm has no machine-readable output: the answer is stdout (streamed
into the item's output line by line as it comes), `-u` prints the token usage on stderr
("Token usage: 1,200 input, 340 output, {details}"), and an error is "Error: ..." on stderr with
exit 1, read for the four kinds of "no" (rate limit, quota, overloaded, key rejected).

The key: each llm model names its own variable (`key_env_var`: OPENAI_API_KEY for OpenAI's,
LLM_ECHO_NEEDS_KEY_KEY for llm-echo's `echo-needs-key`). When the agent is named, agentos asks
the Python that runs the `llm` executable which model the name stands for (aliases resolve to the
model id the price database knows) and which variable it reads; a leased key goes there and
nowhere else. Without keys, llm uses its own stored keys (`llm keys set`).

llm creates and migrates its log database (`logs.db` in its user directory) on first use; two
processes doing it at once fail ("table "schemas" already exists"). The same look-up migrates
the database once, in the parent, before any item starts.

Usage: the `-u` line's tokens, priced from the price database under the resolved model id (llm
states no cost). Who retries: llm itself does not retry; whatever its plugins do, agentos sees
the refusal when it is final and the governor paces the key.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from agentos.agents.base import AgentRequest
from agentos.agents.cli_agent import (
    VERSION_TIMEOUT,
    CliAgent,
    Executable,
    NotRetried,
    Progress,
    checked,
    failure,
    find_executable,
    last_lines,
    locate,
    model_of,
    plain,
    refused,
    short,
)
from agentos.errors import ConfigError, ItemError
from agentos.item.context import ItemContext
from agentos.item.process import CommandResult
from agentos.usage.prices import ModelRef

INSTALL = "pip install llm (or pipx install llm), and the plugin for your model"
MINIMUM = (0, 19)  # `llm prompt -u`
_USAGE = re.compile(
    r"Token usage:\s*(?:([\d,]+) input)?(?:,\s*)?(?:([\d,]+) output)?(?:,\s*(\{.*\}))?"
)
#: run by the Python of the `llm` executable (llm may live in its own virtualenv or pipx)
_INSPECT = r"""
import json, sys
import llm
try:
    model = llm.get_model(sys.argv[1])
except llm.UnknownModelError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
from importlib.metadata import version
found = {
    "version": version("llm"),
    "model_id": model.model_id,
    "needs_key": getattr(model, "needs_key", None),
    "key_env_var": getattr(model, "key_env_var", None),
}
try:
    import sqlite_utils
    from llm.cli import logs_db_path, logs_on
    from llm.migrations import migrate
    if logs_on():
        path = logs_db_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        migrate(sqlite_utils.Database(path))
except Exception as exc:
    found["logs_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(found))
"""


@dataclass(frozen=True)
class LlmAgent(CliAgent):
    """Simon Willison's `llm`, `llm:MODEL`."""

    program = "llm"
    install = INSTALL
    minimum = MINIMUM
    example = "llm:gpt-4o-mini"

    model_id: str  # what `model` resolves to (an alias names a model)
    key_env: str | None  # the variable the model reads its key from, when it says

    @classmethod
    def from_spec(cls, spec: str, option: str) -> LlmAgent:
        model = model_of(spec, option, cls.example)
        path = locate("llm", option=option, spec=spec, install=INSTALL)
        # one start of llm's Python (slow: it loads every plugin) tells the version too
        info = _inspect(path, model, option, spec)
        if info.get("version"):
            found = Executable(path, f"llm, version {info['version']}")
            found = checked(
                found, "llm", option=option, spec=spec, install=INSTALL, minimum=MINIMUM
            )
        else:
            found = find_executable(
                "llm", option=option, spec=spec, install=INSTALL, minimum=MINIMUM
            )
        return cls(
            spec=spec,
            model=model,
            executable=found,
            model_id=str(info.get("model_id") or model),
            key_env=info.get("key_env_var") or None,
        )

    def models(self) -> list[ModelRef | None]:
        return [ModelRef(self.model_id)]

    def argv(self, request: AgentRequest) -> list[str]:
        # llm has no tools: whatever the policy, its answer is the work.
        # -n: no logging. llm would write every prompt and answer to a database in the user's
        # home (answers may quote the key), and parallel items lock each other out of it
        # ("database is locked")
        return [self.executable.path, "prompt", "-m", self.model, "-u", "-n"]

    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        progress = Progress(ctx)

        def line(stream: str, text: str) -> bool:
            if stream == "out":
                progress.add(text + "\n")
            return False

        result = self.call(request, ctx, on_line=line, key_env=self.key_env)
        progress.flush()
        return self.outcome(result, ctx)

    def outcome(self, result: CommandResult, ctx: ItemContext) -> str:
        self._record(result, ctx)
        errors = [plain(line) for line in result.stderr_tail if not _USAGE.search(line)]
        if result.returncode != 0:
            cause = last_lines(errors)
            found = refused("llm", None, cause, ctx)
            if found is not None:
                raise found
            if "No key found" in cause:
                raise NotRetried(f"llm: {short(cause)}", exit_code=result.returncode)
            raise failure("llm", result.returncode, cause)
        answer = result.stdout.decode("utf-8", errors="replace")
        if not answer.strip():
            cause = last_lines(errors)
            said = f"; its stderr ended: {cause}" if cause else ""
            raise ItemError(f"{self.spec}: llm's answer was empty{said}")
        return answer

    def _record(self, result: CommandResult, ctx: ItemContext) -> None:
        for line in reversed(result.stderr_tail):
            match = _USAGE.search(plain(line))
            if match is None or not (match.group(1) or match.group(2)):
                continue
            ctx.record_usage(
                self.model_id,
                input_tokens=_number(match.group(1)),
                output_tokens=_number(match.group(2)),
                cached_tokens=_cached(match.group(3)),
            )
            return


def _inspect(path: str, model: str, option: str, spec: str) -> dict[str, Any]:
    """Ask the Python behind `llm` about `model` (see the module docstring)."""
    python = _interpreter(path)
    if python is None:
        return {}  # not a Python script: the name is used as given, the key as llm finds it
    try:
        done = subprocess.run(
            [python, "-c", _INSPECT, model],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
        info = json.loads(done.stdout.decode("utf-8", errors="replace").strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {}
    if not isinstance(info, dict):
        return {}
    if info.get("error"):
        raise ConfigError(
            f"{option} {spec!r}: llm does not know the model {model!r} ({info['error']}); "
            "'llm models' lists the ones its plugins provide"
        )
    return info


def _interpreter(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!") or b"python" not in first:
        return None
    command = first[2:].decode(errors="replace").split()
    # "#!/usr/bin/env python3" names the interpreter through env
    return (
        command[1]
        if command and command[0].endswith("/env") and len(command) > 1
        else (command[0] if command else None)
    )


def _number(text: str | None) -> int | None:
    return int(text.replace(",", "")) if text else None


def _cached(details: str | None) -> int:
    """Cached input tokens from llm's usage details (OpenAI's `prompt_tokens_details`)."""
    if not details:
        return 0
    try:
        data = json.loads(details)
    except ValueError:
        return 0
    found = _find(data, "cached_tokens")
    return found if isinstance(found, int) and found >= 0 else 0


def _find(data: Any, name: str) -> Any:
    if isinstance(data, dict):
        if name in data:
            return data[name]
        for value in data.values():
            found = _find(value, name)
            if found is not None:
                return found
    return None
