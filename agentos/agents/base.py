"""The `Agent` interface: one call, a prompt in, an answer out.

Workflows build an `AgentRequest` and never care which agent answers it. Text agents (a CLI via
`cmd:`, an HTTP API) use `request.prompt`; the offline `mock` agent reads the same material from
`request.inputs`, so it can behave deterministically without parsing prompts.

An agent signals the runner with exceptions from `agentos.errors`: `RateLimited` (the key cools
down and the item is queued again), `CredentialRejected` (the key is retired), `ItemError` (a clear
failure). Agents are small frozen records: they travel to the workers inside the workflow config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentos.usage.prices import ModelRef
    from agentos.workflows.parallel.context import ItemContext


@dataclass(frozen=True)
class AgentRequest:
    task: str  # "draft" | "review" | "implement"
    prompt: str
    inputs: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


class Agent(ABC):
    spec: str
    #: the agent cannot work without a leased key (checked before a run starts)
    needs_credential: bool = False
    #: the agent asks the governor for a key per call (`ctx.call_key`), so its items need no
    #: lease and run --parallel at a time whatever the number of keys; a subprocess agent reads
    #: its key once from its environment, so it keeps the item's lease instead
    keys_per_call: bool = False

    @abstractmethod
    def run(self, request: AgentRequest, ctx: ItemContext) -> str:
        """The agent's answer to `request`."""

    def models(self) -> list[ModelRef | None]:
        """The models this agent calls, as known before the run, so that a budget can be
        checked against their prices before anything starts. None: only its calls will tell
        (a CLI agent reports them, if at all, through $AGENTOS_USAGE_FILE); [] no paid calls."""
        return [None]
