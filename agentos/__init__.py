"""agentos — a batch executor for LLM agent workflows.

Runs many items (issue briefs, approved LLDs, shell commands) in parallel process workers, leases
each running item one API key, prefixes every output line with the item's id, and survives Ctrl+C,
dead workers and exhausted keys without losing finished work.
"""

__version__ = "0.1.0"
