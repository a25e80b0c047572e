#!/usr/bin/env python3
"""Implement approved LLDs (<repo>/docs/lld/active/*.md): one verified branch per LLD.

    python scripts/run_implement_from_lld.py --repo R --implementer SPEC [--parallel 4] [--dry-run]

Thin on purpose: the implement workflow is two callbacks, `collect_items` (one item per pending
approved LLD) and `execute_item` (a worktree, the agent, the tests, a commit), in
agentos/workflows/implement/. The shared runner owns everything else. Same as `agentos implement`.
"""

import sys
from pathlib import Path

try:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout
    from agentos.commands import quick_exit

    quick_exit.install()  # first: the interpreter's teardown is skipped (see its docstring)
    from agentos.engine.shutdown import EarlyInterrupt

    EarlyInterrupt.install()  # a Ctrl+C from here on is never lost (see its docstring)
    from agentos.commands.cli import run_workflow_cli
    from agentos.workflows.implement import WORKFLOW  # collect_items + execute_item
except KeyboardInterrupt:
    sys.exit(130)

if __name__ == "__main__":
    run_workflow_cli(WORKFLOW, prog_name="run_implement_from_lld.py")
