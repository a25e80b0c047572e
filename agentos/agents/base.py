"""The `Agent` interface: one call, a prompt in, an answer out.

Workflows build an `AgentRequest` and never care which agent answers it. Text agents (a CLI via
`cmd:`, an HTTP API) use `request.prompt`; the offline `mock` agent reads the same material from
`request.inputs`, so it can behave deterministically without parsing prompts.

What an agent may do besides answering is the request's `tools` policy, stated by the workflow
and turned by each agent into its own CLI's flags (never left to the user's or the repository's
settings):

    NONE   text only: the answer is the work
    READ   it may read files under its working directory, and change nothing
    EDIT   it may create and edit files under its working directory, and run the `commands`
           the request allows (the repository's test command); nothing else

An agent signals the runner with exceptions from `agentos.errors`: `RateLimited` (the key cools
down and the item is queued again), `CredentialRejected` (the key is retired), `ItemError` (a clear
failure). Agents are small frozen records: they travel to the workers inside the workflow config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentos.vocabulary import StrEnum

if TYPE_CHECKING:
    from agentos.item.context import ItemContext
    from agentos.usage.prices import ModelRef


class ToolPolicy(StrEnum):
    """What an agent may do with tools (see the module docstring)."""

    NONE = "none"
    READ = "read"
    EDIT = "edit"


@dataclass(frozen=True)
class AgentRequest:
    """What a workflow asks of an agent: the task, its prompt and inputs, where it runs, and what
    it may do there."""

    task: str  # "draft" | "review" | "implement"
    prompt: str
    inputs: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    tools: ToolPolicy = ToolPolicy.NONE
    #: with EDIT: shell command lines the agent may run (and run with more arguments)
    commands: tuple[str, ...] = ()
    #: with EDIT: more tool permissions the user granted, in the agent CLI's own rule syntax
    allow: tuple[str, ...] = ()


class Agent(ABC):
    spec: str
    #: the agent cannot work without a leased key (checked before a run starts)
    needs_credential: bool = False
    #: the agent asks the governor for a key per call (`ctx.call_key`), so its items need no
    #: lease and run --parallel at a time whatever the number of keys; a subprocess agent reads
    #: its key once from its environment, so it keeps the item's lease instead
    keys_per_call: bool = False
    #: the agent can edit files itself (Claude Code, Gemini CLI, a command, the mock): under
    #: an EDIT policy it is given its tools; otherwise (an HTTP model, llm) its answer is the
    #: work, and a workflow writes the files the answer holds
    edits_files: bool = False

    @abstractmethod
    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        """The agent's answer to `request`."""

    def models(self) -> list[ModelRef | None]:
        """The models this agent calls, as known before the run, so that a budget can be
        checked against their prices before anything starts. None: only its calls will tell
        (a CLI agent reports them, if at all, through $AGENTOS_USAGE_FILE); [] no paid calls."""
        return [None]
