"""agentos — a batch executor for LLM agent workflows.

Runs many items (issue briefs, approved LLDs, shell commands) in parallel process workers, leases
each running item one API key, prefixes every output line with the item's id, and survives Ctrl+C,
dead workers and exhausted keys without losing finished work.

The public API, for writing a workflow of your own:

    Item, Workflow, Option, OnResume   what a workflow is made of (agentos.item.workflow)
    ItemContext                        what `execute_item` is given (agentos.item.context)
    ModelRef                           a model a workflow's agents call, for budgets
    run_workflow(WORKFLOW)             a script's entry point: options, run, summary, exit code
    AgentosError and its kinds         errors that end a command with their exit code
    ItemError, RateLimited, CredentialRejected, ItemTimeout, Interrupted
                                       how an item's attempt ends, raised in `execute_item`

Everything else is internal and may change. The names are loaded when first used: `import agentos`
stays as cheap as it is for the `agentos` command, whose start-up every run pays.
"""

#: public name -> (module, name there)
_EXPORTS = {
    "__version__": ("agentos.version", "__version__"),
    "Item": ("agentos.item.workflow", "Item"),
    "Workflow": ("agentos.item.workflow", "Workflow"),
    "Option": ("agentos.item.workflow", "Option"),
    "OnResume": ("agentos.item.workflow", "OnResume"),
    "ItemContext": ("agentos.item.context", "ItemContext"),
    "ModelRef": ("agentos.usage.prices", "ModelRef"),
    "run_workflow": ("agentos.commands.cli", "run_workflow_cli"),
    "AgentosError": ("agentos.errors", "AgentosError"),
    "UsageError": ("agentos.errors", "UsageError"),
    "ConfigError": ("agentos.errors", "ConfigError"),
    "ItemError": ("agentos.errors", "ItemError"),
    "RateLimited": ("agentos.errors", "RateLimited"),
    "CredentialRejected": ("agentos.errors", "CredentialRejected"),
    "ItemTimeout": ("agentos.errors", "ItemTimeout"),
    "Interrupted": ("agentos.errors", "Interrupted"),
}

__all__ = [
    "AgentosError",
    "ConfigError",
    "CredentialRejected",
    "Interrupted",
    "Item",
    "ItemContext",
    "ItemError",
    "ItemTimeout",
    "ModelRef",
    "OnResume",
    "Option",
    "RateLimited",
    "UsageError",
    "Workflow",
    "__version__",
    "run_workflow",
]

TYPE_CHECKING = False  # not typing's, nor __future__: see the module docstring
if TYPE_CHECKING:
    from agentos.commands.cli import run_workflow_cli as run_workflow
    from agentos.errors import (
        AgentosError,
        ConfigError,
        CredentialRejected,
        Interrupted,
        ItemError,
        ItemTimeout,
        RateLimited,
        UsageError,
    )
    from agentos.item.context import ItemContext
    from agentos.item.workflow import Item, OnResume, Option, Workflow
    from agentos.usage.prices import ModelRef
    from agentos.version import __version__


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agentos' has no attribute {name!r}")
    import importlib

    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
